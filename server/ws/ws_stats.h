// The data of the WebSocket `stats` message (docs/api.md §5.3), computed from the
// watch-fed views at tick time: never a backend call, never persisted.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "weft/clock.h"
#include "weft/json.h"
#include "weft/targets.h"

namespace weft {
class AgentRegistry;
class WorkQueue;
class DeadLetters;
}  // namespace weft

namespace weft::ws {

struct LiveStatsSources {
  const AgentRegistry* agents = nullptr;
  const WorkQueue* work = nullptr;
  const DeadLetters* deadLetters = nullptr;
  const Clock* clock = &SystemClock::instance();
  int64_t staleAfterMs = 180000;
  // The target counts for a scope; empty = all zeros (no targets service
  // yet). nullopt scope = all projects.
  std::function<TargetCounts(const std::optional<std::string>& projectId)> targets;
};

// {agents, work, targets} for one scope (nullopt = all projects). The
// `websocket` member is added by the server, which knows its connections.
//  agents:  total (every valid entry in scope, offline included), byType
//           (mapped agentType), byStatus (stored status; entries without one
//           are not counted there), stale.
//  work:    pending, active (assigned + in-progress), completed, failed,
//           cancelled, deadLettered (entries in the DLQ).
// Each view is read under its shared lock; safe from any thread.
Json computeLiveStats(const LiveStatsSources& sources, const std::optional<std::string>& projectId);

}  // namespace weft::ws
