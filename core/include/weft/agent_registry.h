// AgentRegistry: the shared `agent-registry` bucket (docs/api.md §2.2, §3.1, §3.2,
// §6.3). Agents write entries there directly or through REST; both kinds are
// the same JSON, and this service cannot and must not tell them apart.
//
// Lists come from a watch-fed view (no backend call per agent or per request);
// a lookup by guid reads the backend. Every rewrite of an entry is a
// read-modify-write by compare-and-set that preserves members Weft does not
// know. The service deals in AgentRecord values; their REST form is rendered
// at the HTTP edge (server/api/rest_agents.h).
#pragma once

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/batch_result.h"
#include "weft/bucket_view.h"
#include "weft/field_rules.h"
#include "weft/json.h"
#include "weft/list_index.h"
#include "weft/pagination.h"
#include "weft/service_context.h"

namespace weft {

// One valid registry entry, decoded once when it changes.
// Always owned by a shared_ptr (the list index hands out the records it
// points at).
struct AgentRecord : std::enable_shared_from_this<AgentRecord> {
  Json entry;                     // the stored value, as stored
  std::string guid;
  std::string projectId;          // effective: the default project when missing
  std::string status;             // stored status, "" when missing
  std::string agentType;          // mapped enum: copilot-cli | claude-code
  std::vector<std::string> capabilities;
  std::vector<std::string> boundaries;  // mapped: ["default"] when none declared
  bool declaredBoundaries = false;      // metadata.boundaries is an array of strings
  std::optional<int64_t> lastHeartbeatMs;
  std::optional<int64_t> registeredAtMs;
  int64_t currentTaskCount = 0;
  // The RegisteredAgent (docs/api.md §3.2) up to, excluding, ",\"stale\":...}".
  // Made here, once per stored change on the view's watch thread, because a
  // list of thousands of agents is then rendered by appending strings only
  // (server/api/rest_agents.h renders the REST form from it); the service
  // itself never reads it.
  std::string renderedPrefix;

  bool hasCapability(const std::string& c) const;
  bool isStale(int64_t nowMs, int64_t staleAfterMs) const {
    return lastHeartbeatMs && nowMs - *lastHeartbeatMs > staleAfterMs;
  }
};

struct AgentFilter {
  std::optional<std::string> type, status, capability, projectId;
};

// A registration (docs/api.md §2.2), already checked against the field rules
// (server/api/rest_agents.h parses and checks the REST form). The stored
// entry takes these members in the shape agents write directly (§3.1).
struct RegisterRequest {
  std::optional<std::string> guid;  // a new UUID when missing
  std::string handle;
  std::vector<std::string> capabilities;
  std::optional<std::string> agentType;  // the agent's own top-level value (its role)
  std::optional<std::string> projectId;  // the default project when missing
  std::optional<std::string> hostname, username, natsUrl;
  std::optional<std::string> scope;  // "team" when missing
  std::optional<std::string> visibility;
  std::optional<int64_t> currentTaskCount;  // 0 when missing
  std::optional<int64_t> maxConcurrentTasks, spindownAfterIdleMs;
  std::optional<Json> metadata;  // an object; the agent's own value, kept as given
};

// A heartbeat: what changes besides lastHeartbeat, already checked.
struct HeartbeatRequest {
  std::optional<std::string> status;  // online | busy
  std::optional<int64_t> currentTaskCount;
  std::optional<std::vector<std::string>> capabilities;
};

// A page of agents, oldest registration first, and what the pagination
// metadata and the `stale` flags need (judged once, at asOfMs).
// The agent list: filters type, status, capability (any of the agent's)
// and projectId, order registeredAt (agents without one first) then guid
// (weft/list_index.h). Every combination is ordered and counted: a
// registry holds thousands of agents, not millions.
struct AgentListTraits {
  using Record = AgentRecord;
  static constexpr size_t kFields = 4;
  static constexpr unsigned kOrdered[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  static constexpr unsigned kCounted[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  static int64_t major(const AgentRecord& a) {
    return a.registeredAtMs ? *a.registeredAtMs : std::numeric_limits<int64_t>::min();
  }
  static int64_t minor(const AgentRecord&) { return 0; }
  static const std::string& id(const AgentRecord& a) { return a.guid; }
  template <typename Emit>
  static void values(const AgentRecord& a, size_t field, Emit&& emit) {
    switch (field) {
      case 0: emit(a.agentType); break;
      case 1: emit(a.status); break;
      case 2:
        for (const auto& c : a.capabilities) emit(c);
        break;
      default: emit(a.projectId);
    }
  }
  static bool has(const AgentRecord& a, size_t field, const std::string& value) {
    switch (field) {
      case 0: return a.agentType == value;
      case 1: return a.status == value;
      case 2: return a.hasCapability(value);
      default: return a.projectId == value;
    }
  }
};

struct AgentPage {
  std::vector<std::shared_ptr<const AgentRecord>> agents;
  Pager pager;
  size_t total = 0;
  int64_t asOfMs = 0;
  int64_t staleAfterMs = 0;

  bool stale(const AgentRecord& agent) const { return agent.isStale(asOfMs, staleAfterMs); }
};

// Thread-safety: every public method may be called from any number of
// threads at once; instances on other processes may change the same records
// meanwhile (every write is a compare-and-set, retried on conflict).
// Errors (Status codes): InvalidArgument for filters and cursors, NotFound
// for an unknown guid, Conflict when a registration names a guid that is
// already registered and online, Unavailable or Timeout for a backend outage.
// Requests arrive checked: the field rules are applied where they are parsed
// (server/api/rest_agents.h).
class AgentRegistry {
 public:
  using View = BucketView<AgentRecord>;

  explicit AgentRegistry(ServiceContext context);
  ~AgentRegistry();

  void start();
  void stop();
  View& view() { return *view_; }
  const View& view() const { return *view_; }
  const ServiceContext& context() const { return ctx_; }

  // Decodes a stored value; nullptr when invalid (not an object, no guid).
  static std::shared_ptr<const AgentRecord> decode(const std::string& value,
                                                   const std::string& defaultProject);
  // Whether the agent's last heartbeat is older than agents.staleAfterMs now.
  bool isStale(const AgentRecord& record) const;
  // AgentSummary of §3.2, or null when guid is not in the registry.
  Json summary(const std::string& guid) const;

  // The agents in the view after the filters, one page of them.
  Result<AgentPage> list(const AgentFilter& filter, const PageRequest& page) const;
  // Reads the backend. NotFound with the spec message.
  Result<std::shared_ptr<const AgentRecord>> get(const std::string& guid) const;
  struct Registration {
    std::shared_ptr<const AgentRecord> agent;
    bool created = false;  // a new entry, not a re-registration
  };
  Result<Registration> registerAgent(const RegisterRequest& request);
  // Sets lastHeartbeat and what the request carries. NotFound when absent.
  Result<std::shared_ptr<const AgentRecord>> heartbeat(const std::string& guid,
                                                       const HeartbeatRequest& request);
  // Marks the entry offline (idempotent). NotFound when absent.
  Result<std::shared_ptr<const AgentRecord>> deregister(const std::string& guid);

  // Shutdown requests (§4.6): records `shutdownRequested` on the entry by
  // compare-and-set (every backend), then, with nats, publishes the request
  // on the agent's subject and inbox (best effort). Never changes status.
  struct ShutdownRequest {
    bool graceful = true;
    std::string reason = "manual";
    std::optional<int64_t> gracePeriodMs;
  };
  Result<std::shared_ptr<const AgentRecord>> requestShutdown(const std::string& guid,
                                                             const ShutdownRequest& request);
  // One agent's shutdown request, as sent.
  struct ShutdownSent {
    std::string guid;
    bool graceful = true;
    std::shared_ptr<const AgentRecord> agent;  // the entry after the request
  };
  Result<ShutdownSent> shutdown(const std::string& guid, const ShutdownRequest& request);

  // Which agents a batch shutdown asks: the listed guids, or else every agent
  // in the view that passes all the filters given.
  struct ShutdownBatchRequest {
    std::optional<std::vector<std::string>> agentGuids;
    std::optional<std::string> projectId, status, agentType, boundary, capability;
    std::optional<double> idleTimeMs;  // at least this idle (idleMs below)
    ShutdownRequest request;
  };
  struct ShutdownBatchResult {
    BatchResult batch;  // per guid, in request order (by guid for a filter)
    bool graceful = true;
    int64_t completedAtMs = 0;
  };
  // busy(guid) tells whether the agent holds assigned or in-progress work
  // (a busy agent is not asked to stop at once); idleMs(agent) its idle time.
  // Stops at the first backend failure and returns it.
  Result<ShutdownBatchResult> shutdownBatch(
      const ShutdownBatchRequest& request, const std::function<bool(const std::string&)>& busy,
      const std::function<int64_t(const AgentRecord&)>& idleMs);

  // The valid entry of guid read from the backend (not the view). NotFound
  // with the spec message when absent or invalid.
  Result<std::shared_ptr<const AgentRecord>> fetch(const std::string& guid) const;

  // Applies mutate() to the stored entry of guid by compare-and-set, retrying
  // on conflicts. mutate returns false to leave the entry unchanged. NotFound
  // when the entry is absent or invalid. Used by heartbeat, deregister and
  // shutdown requests.
  Result<std::shared_ptr<const AgentRecord>> modify(
      const std::string& guid, const std::function<bool(Json& entry)>& mutate);

 private:
  Status ready() const;
  std::shared_ptr<KvBucket> bucket() const;

  ServiceContext ctx_;
  std::unique_ptr<View> view_;
  // Filters (type, status, capability, projectId) and order (registeredAt,
  // agents without one first, then guid); guarded by the view's lock.
  std::unique_ptr<ListIndex<AgentListTraits>> listIndex_;
};

}  // namespace weft
