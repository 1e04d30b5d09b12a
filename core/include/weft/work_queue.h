// WorkQueue: work items and their state machine (docs/api.md §2.3, §2.4, §3.4,
// §4.1). Each item is one JSON value in the `weft-work` bucket keyed by its
// id, so it survives restarts and a lookup is one get. Every transition is
// one compare-and-set on that value; lists and routing read a watch-fed view.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "weft/agent_registry.h"
#include "weft/bucket_view.h"
#include "weft/dead_letters.h"
#include "weft/json.h"
#include "weft/json_list_stream.h"
#include "weft/pagination.h"
#include "weft/service_context.h"

namespace weft {

struct WorkRecord {
  Json item;  // the stored value (includes claimToken)
  std::string id, taskId, projectId, status, capability, boundary, assignedTo;
  std::string requiredAgentType;
  int64_t priority = 5;
  std::string offeredAt;
  int64_t offeredAtMs = 0;
  int64_t updatedAtMs = 0;
  std::optional<int64_t> leaseExpiresAtMs;

  bool isActive() const { return status == "assigned" || status == "in-progress"; }
  bool isTerminal() const {
    return status == "completed" || status == "failed" || status == "cancelled";
  }
};

struct WorkFilter {
  std::optional<std::string> status, boundary, capability, assignedTo, projectId;
};

// Called after a submission was stored when no eligible worker of the target
// type exists (§4.2). Supplied by whoever owns spin-up; may be empty.
struct SpinUpRequest {
  std::string workItemId, projectId, capability, boundary, agentType;
};
using SpinUpRequester = std::function<void(const SpinUpRequest&)>;

// Thread-safety: every public method may be called from any number of
// threads at once; instances on other processes may change the same records
// meanwhile (every write is a compare-and-set, retried on conflict).
// Errors (Status codes): InvalidArgument for a field rule (the message names
// the field), NotFound for an unknown id, Conflict for a transition that does
// not fit the item's state or a stale claim token, Unavailable or Timeout when
// the backend is down or slow (a write may still have been applied).
class WorkQueue {
 public:
  using View = BucketView<WorkRecord>;

  WorkQueue(ServiceContext context, AgentRegistry& agents, DeadLetters& deadLetters);
  ~WorkQueue();

  // Starts the view; with sweepIntervalMs > 0 also the lease/repair sweeper.
  void start(int64_t sweepIntervalMs = 0);
  void stop();
  View& view() { return *view_; }
  const View& view() const { return *view_; }
  void setSpinUpRequester(SpinUpRequester requester) { spinUp_ = std::move(requester); }

  static std::shared_ptr<const WorkRecord> decode(const std::string& value);

  // The WorkItem of §3.4 as returned: no claimToken, plus assignedToAgent.
  Json render(const WorkRecord& record) const;

  // POST /api/work: validates, routes, stores the new item as pending with
  // one acknowledged write; returns the 201 body.
  Result<Json> submit(const Json& body);
  // submit() without parking the calling thread on the backend's answer:
  // validation and routing run here; `done` gets what submit() would have
  // returned, exactly once, here or on the storage plugin's thread
  // (KvBucket::createAsync). `done` must not block. stop() waits for the
  // submits still in flight.
  using SubmitDone = std::function<void(Result<Json>)>;
  void submitAsync(const Json& body, SubmitDone done);
  Result<Json> get(const std::string& id) const;
  Result<Json> list(const WorkFilter& filter, const PageRequest& page) const;
  // The same document as list(), rendered lazily (json_list_stream.h).
  Result<JsonListStream> listStream(const WorkFilter& filter, const PageRequest& page) const;
  Result<Json> cancel(const std::string& id);
  // POST /api/work/cancel-batch: the batch result of §2.3.
  Result<Json> cancelBatch(const Json& body);

  // POST /api/work/claim: the claimed WorkItem plus claimToken, or nullopt
  // when nothing is claimable (204).
  Result<std::optional<Json>> claim(const Json& body);
  // Agent reports on claimed work (§2.4); each returns the updated WorkItem.
  Result<Json> start(const std::string& id, const Json& body);
  Result<Json> progress(const std::string& id, const Json& body);
  Result<Json> complete(const std::string& id, const Json& body);
  Result<Json> fail(const std::string& id, const Json& body);
  // POST /api/dlq/{id}/retry: the re-queued WorkItem, its attempts reset to
  // 0 unless resetAttempts is false.
  Result<Json> retryDeadLetter(const std::string& id, bool resetAttempts = true);

  // Whether guid holds an assigned or in-progress item (view).
  bool hasActiveWork(const std::string& agentGuid) const;

  // One pass of the sweeper (§4.3): expired leases handled as recoverable
  // failures, orphaned dead-letter entries removed, retention applied. Every
  // change is a compare-and-set, so instances sweeping together apply each
  // change once. Public so tests can drive it with an injected clock.
  struct SweepReport {
    int leasesExpired = 0, retried = 0, deadLettered = 0, orphansRemoved = 0, itemsPurged = 0,
        deadLettersPurged = 0, errors = 0;
  };
  SweepReport sweepOnce();

 private:
  // A validated, routed submit, ready to be written (submit/submitAsync).
  struct NewItem {
    std::string id;
    std::string value;  // the stored form
    bool haveWorker = false;
    SpinUpRequest spinUp;  // also the routing result: agentType is targetAgentType
  };
  Result<NewItem> prepareSubmit(const Json& body);
  // After the write: the view, the spin-up request and the 201 body.
  Result<Json> finishSubmit(const NewItem& item, Result<uint64_t> written);

  Status ready() const;
  std::shared_ptr<KvBucket> bucket() const;

  // The pending index: per project, pending items in claim order.
  struct PendingKey {
    int64_t priority;
    int64_t offeredAtMs;
    std::string id;
    bool operator<(const PendingKey& o) const {
      if (priority != o.priority) return priority > o.priority;
      if (offeredAtMs != o.offeredAtMs) return offeredAtMs < o.offeredAtMs;
      return id < o.id;
    }
  };
  struct Candidate {
    std::string capability, boundary, requiredAgentType;
  };
  void index(const std::string& key, const std::shared_ptr<const WorkRecord>& before,
             const std::shared_ptr<const WorkRecord>& after);

  // Reads id fresh from the backend. NotFound with the spec message.
  Result<std::pair<std::shared_ptr<const WorkRecord>, uint64_t>> load(const std::string& id) const;
  // Writes item at revision; on success updates the view.
  Result<uint64_t> store(const std::string& id, const Json& item, uint64_t revision);

  // The shared body of start/progress/complete/fail: validation already
  // done; checks token and state, then applies mutate by compare-and-set,
  // re-reading after a conflict. mutate returns the 409 state message when
  // the state does not allow the operation.
  using Mutation = std::function<std::optional<std::string>(const WorkRecord& record, Json& item)>;
  Result<Json> fenced(const std::string& id, const Json& body, const Mutation& mutate);
  // The general form: step writes the item read at revision and returns the
  // response, or nullopt when it lost a race (then the item is re-read and
  // the token checked again).
  using FencedStep =
      std::function<std::optional<Result<Json>>(const WorkRecord& record, uint64_t revision)>;
  Result<Json> fenced(const std::string& id, const Json& body, const FencedStep& step);

  // Applies a failure (agent-reported or lease expiry) to the item read at
  // revision: retry or dead-letter. Conflict when the item moved meanwhile.
  enum class FailOutcome { Retried, DeadLettered };
  Result<FailOutcome> applyFailure(const WorkRecord& record, uint64_t revision, Json error,
                                   Json* updated);

  void sweeperLoop(int64_t intervalMs);

  ServiceContext ctx_;
  AgentRegistry& agents_;
  DeadLetters& deadLetters_;
  std::unique_ptr<View> view_;
  SpinUpRequester spinUp_;
  // Pending items per project and capability, in claim order. Guarded by the
  // view's lock (maintained by the view's indexer).
  static std::string pendingKeyOf(const std::string& project, const std::string& capability) {
    return project + '\0' + capability;
  }
  std::map<std::string, std::map<PendingKey, Candidate>> pending_;
  std::map<std::string, int> activeByAgent_;             // guarded by the view's lock

  // Asynchronous submits not answered yet; stop() and the destructor wait
  // for them (the backend answers each within its timeout).
  std::mutex asyncMutex_;
  std::condition_variable asyncIdle_;
  int64_t asyncInFlight_ = 0;
  std::mutex sweeperMutex_;
  std::condition_variable sweeperCv_;
  bool stopping_ = false;
  std::thread sweeper_;
};

}  // namespace weft
