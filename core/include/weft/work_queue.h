// WorkQueue: work items and their state machine (docs/api.md §2.3, §2.4, §3.4,
// §4.1). Each item is one JSON value in the `weft-work` bucket keyed by its
// id, so it survives restarts and a lookup is one get. Every transition is
// one compare-and-set on that value; lists and routing read a watch-fed view.
// It deals in typed values (WorkItem, the requests and results below); their
// REST form is mapped at the HTTP edge (server/api/rest_work.h).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <unordered_map>
#include <mutex>
#include <set>
#include <thread>

#include "weft/agent_registry.h"
#include "weft/batch_result.h"
#include "weft/bucket_view.h"
#include "weft/dead_letters.h"
#include "weft/json.h"
#include "weft/pagination.h"
#include "weft/saved_view.h"
#include "weft/service_context.h"
#include "weft/sorted_blocks.h"
#include "weft/value_cache.h"
#include "weft/work_item.h"

namespace weft {

class WorkIndex;

// A stored work item decoded whole, plus what is derived from it once on
// decode (times in ms). What the lifecycle reads and writes, and what the
// view hands to its full listeners (the event stream).
struct WorkRecord : WorkItem {
  int64_t offeredAtMs = 0;
  int64_t updatedAtMs = 0;
  std::optional<int64_t> leaseExpiresAtMs;
  // nextAttemptAt in ms; 0 when absent (due now).
  int64_t dueAtMs = 0;
};

// What the work view keeps of a stored item: the fields that lists, claims,
// stats, events and the sweeper read, never the stored value itself. A
// claim, a list page or a get reads the value from the backend, through a
// cache of recent values that every write of this instance fills, so a claim
// of an item just submitted needs no read (docs/architecture.md, "Memory").
// Always owned by a shared_ptr (the list index hands out the entries it
// points at).
struct WorkEntry : std::enable_shared_from_this<WorkEntry> {
  std::string id, projectId, capability, boundary, requiredAgentType, assignedTo;
  std::string unknownStatus;  // the stored status text when status is Unknown
  WorkStatus status = WorkStatus::Pending;
  int64_t priority = 5;
  int64_t attempts = 0;
  int64_t offeredAtMs = 0, updatedAtMs = 0;
  int64_t dueAtMs = 0;  // 0: due now
  std::optional<int64_t> leaseExpiresAtMs;
  std::optional<int64_t> progress;  // a readable `progress`
  int64_t lastTransitionSeq = 0;    // of the transition log (work_transitions.h)
  size_t errorCount = 0;

  bool isActive() const { return status == WorkStatus::Assigned || status == WorkStatus::InProgress; }
  bool isTerminal() const {
    return status == WorkStatus::Completed || status == WorkStatus::Failed ||
           status == WorkStatus::Cancelled;
  }
  std::string statusText() const {
    return status == WorkStatus::Unknown ? unknownStatus : workStatusText(status);
  }
  // The entry of a decoded item.
  static std::shared_ptr<const WorkEntry> of(const WorkRecord& record);
  // The entry of a stored value read directly, building only the members an
  // entry needs (checking the rest): what of(*WorkQueue::decode(stored))
  // makes, nullptr exactly when decode rejects the value, at a fraction of
  // the cost. A restart's replay reads the bucket with it.
  static std::shared_ptr<const WorkEntry> read(const std::string& stored);
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

// A new work item (§2.3), its fields already checked on their own (the
// rules that need no state; see the REST mapping). Absent optionals take the
// defaults of §2.3 and the configuration.
struct SubmitRequest {
  std::string boundary, capability, description;
  std::optional<int64_t> priority;  // 1..10
  std::optional<std::string> preferredAgentType, requiredAgentType;
  std::optional<int64_t> maxAttempts;  // 1..100
  std::optional<int64_t> leaseMs;
  std::optional<std::string> projectId;
  std::string taskId;  // empty: a new one is generated
  Json deadline;       // stored as given; null: none
  Json contextData;    // stored as given; null: none
  // Delayed work: not claimable before notBeforeMs, or before now + delayMs
  // (at most one of them; at most kMaxDelayMs ahead). A time in the past
  // means due now.
  std::optional<int64_t> notBeforeMs;
  std::optional<int64_t> delayMs;
  // The item's own retry policy (RetryPolicy::overriddenBy), already checked:
  // {backoff?, baseDelayMs?, maxDelayMs?, jitterPercent?}; null: the default.
  Json retry;
};

// The outcome of a submission: the stored item's id, where it was routed,
// and whether a spin-up was requested.
struct Submitted {
  std::string id;
  std::string targetAgentType;
  bool spinUpTriggered = false;
  std::optional<int64_t> estimatedWaitSeconds;
  // An idempotent submit whose key was already recorded: this is the outcome
  // of the first request with that key, and this request created nothing.
  bool replayed = false;
};

// The idempotency key of a submit (the Idempotency-Key header; docs/api.md
// §4.7), already checked at the edge. Keys live in a scope:
// the same key in two scopes names two different requests.
struct IdempotencyKey {
  std::string key;
  // Who may replay: e.g. a digest of the caller's token; "" when anonymous.
  std::string scope;
};

// A work item with the registry summary of its assignee (AgentRegistry::
// summary), null when unassigned or unknown to the registry.
struct WorkItemView {
  std::shared_ptr<const WorkItem> item;
  Json assignedToAgent;
};

// A claimed work item: the same, for the agent that now holds its claim
// token (item->claimToken).
struct ClaimedItem {
  WorkItemView work;
};

// A page of work items in list order. The items are read as the page is
// rendered: a live one decoded from the view's entry, a finished one read
// from the backend (a bounded page is read in list(); the whole list in
// batches as it is streamed). An item deleted between the index and the read
// is left out.
struct WorkPage {
  std::vector<std::shared_ptr<const WorkEntry>> entries;
  Pager pager;
  size_t total = 0;
  std::function<Json(const std::string& agentGuid)> agentSummary;
  // Reads the items of entries [from, from + count) whole: nullptr for one
  // that is gone. Set by WorkQueue::list().
  std::function<Result<std::vector<std::shared_ptr<const WorkItem>>>(
      const std::vector<std::shared_ptr<const WorkEntry>>& entries, size_t from, size_t count)>
      read;
  // Items already read (list() reads a bounded page before answering).
  std::vector<std::shared_ptr<const WorkItem>> items;
};

// What a claim asks for (§2.4). Absent optionals fall back to what the agent
// declared at registration.
struct ClaimRequest {
  std::string agentGuid;
  std::optional<std::vector<std::string>> capabilities, boundaries;
  std::optional<std::string> projectId;
  std::optional<int64_t> leaseMs;
  // Long poll (claimWait): how long to wait for an eligible item, 0..30000.
  std::optional<int64_t> waitMs;
};
inline constexpr int64_t kMaxClaimWaitMs = 30000;

// Who reports on a claimed item: the assignee and its claim token.
struct ClaimHolder {
  std::string agentGuid, claimToken;
};
struct ProgressReport {
  ClaimHolder holder;
  int64_t progress = 0;  // 0..100
};
struct CompleteReport {
  ClaimHolder holder;
  Json result;  // an object (summary, output, artifacts kept) or null
};
struct FailReport {
  ClaimHolder holder;
  std::string message;
  std::optional<std::string> code;
  bool recoverable = true;
};

// A batch cancel (§2.3): the given ids, or else the items matching the
// filter (and projectId), in list order.
struct CancelBatchRequest {
  std::optional<std::vector<std::string>> ids;
  struct Filter {
    std::optional<std::string> status, boundary, capability, assignedTo;
    std::optional<double> minPriority;
  } filter;
  std::optional<std::string> projectId;
  std::optional<std::string> reason;  // one of the four reasons of §2.3
  bool reassign = false;
};
struct CancelBatchResult {
  BatchResult batch;
  std::vector<std::string> cancelledItems, reassignedItems, notCancellable;
  int64_t completedAtMs = 0;
};

// Thread-safety: every public method may be called from any number of
// threads at once; instances on other processes may change the same records
// meanwhile (every write is a compare-and-set, retried on conflict).
// Errors (Status codes): InvalidArgument for a field rule (the message names
// the field), NotFound for an unknown id (or an unknown agent on claim),
// Conflict for a transition that does not fit the item's state, an offline
// agent or a stale claim token, Unavailable or Timeout when the backend is
// down or slow (a write may still have been applied), Internal for a stored
// value that cannot be used.
class WorkQueue {
 public:
  using View = BucketView<WorkEntry, WorkRecord>;

  WorkQueue(ServiceContext context, AgentRegistry& agents, DeadLetters& deadLetters);
  ~WorkQueue();

  // Starts the view; with sweepIntervalMs > 0 also the lease/repair sweeper.
  void start(int64_t sweepIntervalMs = 0);
  void stop();
  View& view() { return *view_; }
  const View& view() const { return *view_; }
  void setSpinUpRequester(SpinUpRequester requester) { spinUp_ = std::move(requester); }

  // A stored value decoded whole; nullptr when it is not a work item.
  static std::shared_ptr<const WorkRecord> decode(const std::string& value);

  // The saved copy of the view (views.saveDir; work_saved.cpp): an entry in
  // the file's record encoding, and back (nullptr for a record that is not
  // one).
  static void encodeSaved(const std::string& key, const WorkEntry& entry, ByteSink& out);
  static std::shared_ptr<const WorkEntry> decodeSaved(const std::string& key, ByteSource& in);
  static constexpr const char* kSavedKind = "work-entry/1";
  // Reads the given entries' items whole: a live one decoded from its entry,
  // the others from the backend in one batch (KvBucket::getMany); nullptr
  // for one that is gone meanwhile.
  Result<std::vector<std::shared_ptr<const WorkItem>>> readItems(
      const std::vector<std::shared_ptr<const WorkEntry>>& entries, size_t from,
      size_t count) const;

  // Validates what needs state, routes, and stores the new item as pending
  // with one acknowledged write.
  Result<Submitted> submit(const SubmitRequest& request);
  // submit() without parking the calling thread on the backend's answer:
  // validation and routing run here; `done` gets what submit() would have
  // returned, exactly once, here or on the storage plugin's thread
  // (KvBucket::createAsync). `done` must not block. stop() waits for the
  // submits still in flight.
  using SubmitDone = std::function<void(Result<Submitted>)>;
  void submitAsync(const SubmitRequest& request, SubmitDone done);
  // submit() at most once per (scope, key) within the idempotency window
  // (work.idempotencyRetentionMs, capped at work.retentionMs). The first
  // request records the planned item (id and stored value) in the
  // `weft-idempotency` bucket with create(), then writes the item with
  // create(); a later request with the same key and the same request gets
  // the first outcome (replayed = true), writing the planned item itself
  // when it is still missing (the first request failed or crashed between
  // the two writes), so each key yields exactly one item whatever fails.
  // The same key with another request: Unprocessable. Waits for the backend
  // (a few round trips, each bounded by kv.timeoutMs).
  Result<Submitted> submit(const SubmitRequest& request, const IdempotencyKey& key);
  // The canonical digest of a request that idempotent submits compare (hex
  // SHA-256 over its fields, object members sorted; the key not included).
  static std::string fingerprint(const SubmitRequest& request);
  // Idempotent submits answered as replays since start (a metric).
  int64_t idempotentReplays() const { return idempotentReplays_.load(); }
  // One item, read fresh from the backend.
  Result<WorkItemView> get(const std::string& id) const;
  // The items matching the filter, highest priority first, then oldest
  // offer, then id; from the view's ordered index (work_index.h): a page
  // costs O(log n + page), its total O(1).
  Result<WorkPage> list(const WorkFilter& filter, const PageRequest& page) const;
  // How many items of the view match the filter: O(1) for filters without
  // assignedTo (the list index's counts).
  size_t count(const WorkFilter& filter) const;
  // Cancels an item that is not finished; returns the cancelled item.
  Result<std::shared_ptr<const WorkItem>> cancel(const std::string& id);
  // Cancels (or with reassign, re-queues active) items one by one; stops at
  // the first backend failure.
  Result<CancelBatchResult> cancelBatch(const CancelBatchRequest& request);

  // The best pending item the agent may take, now assigned to it with a new
  // claim token and lease; nullopt when nothing is claimable.
  Result<std::optional<ClaimedItem>> claim(const ClaimRequest& request);
  // A claim that waits up to request.waitMs for an eligible item (long poll)
  // without holding a thread. The first attempt runs here, on the caller's
  // thread; when it finds nothing the claim is parked. Each item that becomes
  // claimable (submitted through any instance and seen in the change feed,
  // retried, or a delayed item coming due) wakes ONE parked eligible claim,
  // the longest-waiting first; a woken claim runs on this queue's claim
  // threads, and when it loses the race it is parked again in its place.
  // `done` gets what claim() would have returned, exactly once, on any thread:
  // nullopt when waitMs passed, the wait was cancelled or ended. It must not
  // block. Returns an id for cancelClaimWait (0 when done was already called).
  using ClaimDone = std::function<void(Result<std::optional<ClaimedItem>>)>;
  uint64_t claimWait(const ClaimRequest& request, ClaimDone done);
  // The client went away: a parked claim ends at once with nullopt and never
  // claims; one whose claim attempt is already running finishes it (an item it
  // takes is then held by nobody and comes back when its lease expires).
  // Unknown or finished ids are ignored.
  void cancelClaimWait(uint64_t waitId);
  // Shutdown: every parked claim ends with nullopt, and from now on a claim
  // does not wait. stop() does this too.
  void endClaimWaits();
  // Parked claims (tests, metrics).
  size_t parkedClaims() const;
  // Moves delayed items that are due by the clock into the claimable index
  // and wakes waiting claims for them. The due timer calls it; claim() calls
  // it too, so an injected clock needs no timer.
  void promoteDue();
  // Agent reports on claimed work (§2.4), fenced by the claim token; each
  // returns the updated item.
  Result<WorkItemView> start(const std::string& id, const ClaimHolder& holder);
  Result<WorkItemView> progress(const std::string& id, const ProgressReport& report);
  Result<WorkItemView> complete(const std::string& id, const CompleteReport& report);
  Result<WorkItemView> fail(const std::string& id, const FailReport& report);
  // Re-queues a dead-lettered item (recreating it from the entry's snapshot
  // when retention removed it), its attempts reset to 0 unless resetAttempts
  // is false; the entry is removed.
  Result<WorkItemView> retryDeadLetter(const std::string& id, bool resetAttempts = true);

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
  Result<NewItem> prepareSubmit(const SubmitRequest& request);
  // The outcome a successful write of item answers (no side effects).
  Submitted plannedOutcome(const NewItem& item) const;
  // After the write: the view, the spin-up request and the outcome.
  Result<Submitted> finishSubmit(const NewItem& item, Result<uint64_t> written);
  // The idempotency bucket, opened on first use.
  Result<std::shared_ptr<KvBucket>> idempotencyBucket();
  // The window in which a recorded key answers (see submit(request, key)).
  int64_t idempotencyWindowMs() const;
  // The item with its assignee's summary.
  WorkItemView viewOf(std::shared_ptr<const WorkItem> item) const;

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
  // A claim's effective selection (§2.4), resolved once per claim.
  struct Selection {
    std::string agentGuid, project, agentType;
    std::vector<std::string> caps;  // distinct
    bool anyBoundary = true;
    std::vector<std::string> bounds;
    bool eligible(const Candidate& c) const;
  };
  Result<Selection> selectionFor(const ClaimRequest& request);
  Result<std::optional<ClaimedItem>> claimSelected(const Selection& selection,
                                                   const ClaimRequest& request);
  // Delayed items (not due yet) by due time; moved to pending_ when due.
  struct DelayedEntry {
    std::string project;
    PendingKey key;
    Candidate candidate;
  };
  void index(const std::string& key, const std::shared_ptr<const WorkEntry>& before,
             const std::shared_ptr<const WorkEntry>& after);

  // Reads id fresh from the backend. NotFound with the spec message.
  Result<std::pair<std::shared_ptr<const WorkRecord>, uint64_t>> load(const std::string& id) const;
  // Writes item at revision; on success updates the view.
  Result<uint64_t> store(const std::string& id, const WorkItem& item, uint64_t revision);
  // value is stored at revision (written or read here): into the view (read
  // your writes) and the value cache (a claim of it needs no read).
  void applyStored(const std::string& id, const std::string& value, uint64_t revision) const;

  // What is shared by start/progress/complete/fail: validation already
  // done; checks token and state, then applies mutate by compare-and-set,
  // re-reading after a conflict. mutate returns the Conflict message when
  // the state does not allow the operation.
  using Mutation = std::function<std::optional<std::string>(const WorkRecord& record, WorkItem& item)>;
  Result<WorkItemView> fenced(const std::string& id, const ClaimHolder& holder,
                              const Mutation& mutate);
  // The general form: step writes the item read at revision and returns the
  // result, or nullopt when it lost a race (then the item is re-read and
  // the token checked again).
  using FencedStep = std::function<std::optional<Result<WorkItemView>>(const WorkRecord& record,
                                                                       uint64_t revision)>;
  Result<WorkItemView> fenced(const std::string& id, const ClaimHolder& holder,
                              const FencedStep& step);

  // Applies a failure (agent-reported or lease expiry) to the item read at
  // revision: retry or dead-letter. Conflict when the item moved meanwhile.
  enum class FailOutcome { Retried, DeadLettered };
  Result<FailOutcome> applyFailure(const WorkRecord& record, uint64_t revision, ErrorRecord error,
                                   std::shared_ptr<const WorkRecord>* updated);

  void sweeperLoop(int64_t intervalMs);

  // Long-poll claims (work_waiters.cpp).
  struct Waiter;
  using WaiterPtr = std::shared_ptr<Waiter>;
  // Under the view's exclusive lock: an item became claimable.
  void onClaimable(const std::string& pendingKey, const Candidate& candidate);
  // Under waitersMutex_: moves the longest-parked waiter of pendingKey that
  // may take candidate to the run queue; false when there is none.
  bool wakeOneLocked(const std::string& pendingKey, const Candidate& candidate);
  // Parks w (its id keeps its place) or, when claimable items for it appeared
  // meanwhile, runs it again; finishes it when its time is up.
  void park(const WaiterPtr& w);
  void unparkLocked(Waiter& w);
  void runWaiter(const WaiterPtr& w);
  void finishWaiter(const WaiterPtr& w, Result<std::optional<ClaimedItem>> result);
  // Wakes parked waiters for claimable items in the given keys that no
  // running waiter is about to take (a wake that was not used).
  void passOnWakes(const std::vector<std::string>& keys);
  void claimWorkerLoop();
  void timerLoop();
  void kickTimer();

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
  std::map<std::pair<int64_t, std::string>, DelayedEntry> delayed_;  // (due ms, id)
  std::map<std::string, int> activeByAgent_;             // guarded by the view's lock
  std::unique_ptr<WorkIndex> listIndex_;                 // guarded by the view's lock
  // The sweeper's indexes, guarded by the view's lock: active items by lease
  // expiry, and finished items by their last update (retention), so a sweep
  // costs what it finds and not what is stored.
  std::set<std::pair<int64_t, std::string>> leases_;
  struct Finished {
    int64_t updatedAtMs;
    const WorkEntry* entry;  // held by the view while it is in the index
  };
  struct FinishedOrder {
    bool operator()(const Finished& a, const Finished& b) const {
      if (a.updatedAtMs != b.updatedAtMs) return a.updatedAtMs < b.updatedAtMs;
      return a.entry->id < b.entry->id;
    }
    bool operator()(const Finished& a, int64_t b) const { return a.updatedAtMs < b; }
    bool operator()(int64_t a, const Finished& b) const { return a < b.updatedAtMs; }
  };
  SortedBlocks<Finished, FinishedOrder> finished_;
  // True during the view's first replay: finished_ takes its entries in
  // bulk and puts them in order once (the view's loaded hook).
  bool loading_ = true;
  // Stored values (value_cache.h): those this instance wrote, and those
  // pages and claims read from the backend, so a claim of an item submitted
  // here and a page read again need no round trip. 4,096 values: a few MB.
  mutable ValueCache values_{4096};

  // Asynchronous submits not answered yet; stop() and the destructor wait
  // for them (the backend answers each within its timeout).
  std::mutex asyncMutex_;
  std::condition_variable asyncIdle_;
  int64_t asyncInFlight_ = 0;
  std::mutex idempotencyMutex_;
  std::shared_ptr<KvBucket> idempotency_;  // guarded by idempotencyMutex_
  std::atomic<int64_t> idempotentReplays_{0};
  std::mutex sweeperMutex_;
  std::condition_variable sweeperCv_;
  bool stopping_ = false;
  std::thread sweeper_;

  // The view's saved copy (saved_view.h).
  std::unique_ptr<ViewSaver<WorkEntry, WorkRecord>> saver_;

  // Long-poll claims. Lock order: the view's lock, then waitersMutex_, then
  // timerMutex_; claim attempts and `done` run with none of them held.
  mutable std::mutex waitersMutex_;
  std::condition_variable runCv_;
  uint64_t nextWaiterId_ = 1;
  std::unordered_map<uint64_t, WaiterPtr> waiters_;  // not finished
  // Parked waiters per pendingKeyOf(project, capability), in id (FIFO) order.
  std::map<std::string, std::map<uint64_t, WaiterPtr>> parked_;
  std::set<std::pair<std::chrono::steady_clock::time_point, uint64_t>> deadlines_;
  std::deque<WaiterPtr> runQueue_;  // woken, for the claim threads
  std::atomic<int64_t> parkedCount_{0};
  bool waitsEnded_ = false;
  bool workersStopping_ = false;
  std::vector<std::thread> claimWorkers_;
  // The due timer: promotes delayed items and ends waits whose time is up.
  std::mutex timerMutex_;
  std::condition_variable timerCv_;
  bool timerKick_ = false;
  bool timerStopping_ = false;
  std::thread timer_;
};

}  // namespace weft
