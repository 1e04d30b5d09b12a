// AgentRegistry: the shared `agent-registry` bucket (docs/api.md §2.2, §3.1, §3.2,
// §6.3). Agents write entries there directly or through REST; both kinds are
// the same JSON, and this service cannot and must not tell them apart.
//
// Lists come from a watch-fed view (no backend call per agent or per request);
// a lookup by guid reads the backend. Every rewrite of an entry is a
// read-modify-write by compare-and-set that preserves members Weft does not
// know.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/bucket_view.h"
#include "weft/field_rules.h"
#include "weft/json.h"
#include "weft/json_list_stream.h"
#include "weft/pagination.h"
#include "weft/service_context.h"

namespace weft {

// One valid registry entry, decoded once when it changes.
struct AgentRecord {
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
  std::string renderedPrefix;     // RegisteredAgent JSON up to (excluding) ",\"stale\":...}"

  bool hasCapability(const std::string& c) const;
  bool isStale(int64_t nowMs, int64_t staleAfterMs) const {
    return lastHeartbeatMs && nowMs - *lastHeartbeatMs > staleAfterMs;
  }
};

struct AgentFilter {
  std::optional<std::string> type, status, capability, projectId;
};

// Thread-safety: every public method may be called from any number of
// threads at once; instances on other processes may change the same records
// meanwhile (every write is a compare-and-set, retried on conflict).
// Errors (Status codes): InvalidArgument for a field rule, NotFound for an
// unknown guid, Conflict when a registration names a guid that is already
// registered and online, Unavailable or Timeout for a backend outage.
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
  // The RegisteredAgent of §3.2 for an entry.
  Json render(const AgentRecord& record) const;
  // AgentSummary of §3.2, or null when guid is not in the registry.
  Json summary(const std::string& guid) const;

  // GET /api/agents: the whole response body as JSON text.
  Result<std::string> list(const AgentFilter& filter, const PageRequest& page) const;
  // The same document, rendered lazily (json_list_stream.h).
  Result<JsonListStream> listStream(const AgentFilter& filter, const PageRequest& page) const;
  // GET /api/agents/{guid}: reads the backend. NotFound with the spec message.
  Result<Json> get(const std::string& guid) const;
  struct Registration {
    Json agent;
    bool created = false;  // 201 vs 200
  };
  Result<Registration> registerAgent(const Json& body);
  Result<Json> heartbeat(const std::string& guid, const Json& body);
  Result<Json> deregister(const std::string& guid);

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
  // POST /api/agents/{guid}/shutdown: the 200 body.
  Result<Json> shutdown(const std::string& guid, const Json& body);
  // POST /api/agents/shutdown-batch. busy(guid) tells whether the agent holds
  // assigned or in-progress work; idleMs(guid) its idle time (§4.6).
  Result<Json> shutdownBatch(const Json& body, const std::function<bool(const std::string&)>& busy,
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
};

}  // namespace weft
