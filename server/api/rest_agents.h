// The REST form of the agent registry (docs/api.md §2.2, §3.2): request
// bodies parsed into the AgentRegistry's typed requests, with the field rules
// of §1.9 and their messages, and its results rendered as response bodies.
#pragma once

#include "weft/agent_registry.h"
#include "weft/json.h"
#include "weft/json_list_stream.h"
#include "weft/status.h"

namespace weft::rest {

// POST /api/agents. InvalidArgument naming the first field that breaks a
// rule, in the order of the §2.2 table.
Result<RegisterRequest> parseRegisterRequest(const Json& body);
// POST /api/agents/{guid}/heartbeat: status (online | busy),
// currentTaskCount, capabilities, each optional.
Result<HeartbeatRequest> parseHeartbeatRequest(const Json& body);
// POST /api/agents/{guid}/shutdown: `graceful`; anything but false counts as
// true.
AgentRegistry::ShutdownRequest parseShutdownRequest(const Json& body);
// POST /api/agents/shutdown-batch: agentGuids (at most 1000) or filter,
// reason, graceful, gracePeriodMs, projectId.
Result<AgentRegistry::ShutdownBatchRequest> parseShutdownBatchRequest(const Json& body);

// A RegisteredAgent (§3.2): the agent's renderedPrefix and `stale`.
Json toJson(const AgentRecord& agent, bool stale);
// The RegisteredAgent of a service result, stale as of now, or the Status.
Result<Json> rendered(const AgentRegistry& agents,
                      const Result<std::shared_ptr<const AgentRecord>>& result);
// GET /api/agents: {"agents":[...], pagination metadata}, rendered lazily
// (each element from the page's shared records, safe on another thread).
JsonListStream toListStream(AgentPage page);
// POST /api/agents/{guid}/shutdown: success, message, graceful.
Json toJson(const AgentRegistry::ShutdownSent& sent);
// POST /api/agents/shutdown-batch: the batch members (§3.8), shutdownAgents,
// graceful.
Json toJson(const AgentRegistry::ShutdownBatchResult& result);

}  // namespace weft::rest
