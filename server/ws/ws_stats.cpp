#include "ws/ws_stats.h"

#include <map>

#include "weft/agent_registry.h"
#include "weft/dead_letters.h"
#include "weft/work_queue.h"

namespace weft::ws {

namespace {

Json countsObject(const std::map<std::string, int64_t>& counts) {
  Json o = Json::object();
  for (const auto& [key, n] : counts) o.set(key, Json(n));
  return o;
}

}  // namespace

Json computeLiveStats(const LiveStatsSources& src, const std::optional<std::string>& projectId) {
  auto inScope = [&](const std::string& project) { return !projectId || project == *projectId; };

  int64_t total = 0, stale = 0;
  std::map<std::string, int64_t> byType, byStatus;
  if (src.agents) {
    const int64_t now = src.clock->nowMs();
    src.agents->view().forEach(
        [&](const std::string&, const std::shared_ptr<const AgentRecord>& a) {
          if (!inScope(a->projectId)) return;
          ++total;
          ++byType[a->agentType];
          if (!a->status.empty()) ++byStatus[a->status];
          if (a->isStale(now, src.staleAfterMs)) ++stale;
        });
  }
  Json agents = Json::object();
  agents.set("total", Json(total));
  agents.set("byType", countsObject(byType));
  agents.set("byStatus", countsObject(byStatus));
  agents.set("stale", Json(stale));

  // From the list indexes' counts: O(1) however many items are stored.
  int64_t pending = 0, active = 0, completed = 0, failed = 0, cancelled = 0, deadLettered = 0;
  if (src.work) {
    auto count = [&](const char* status) {
      WorkFilter f;
      f.status = status;
      f.projectId = projectId;
      return static_cast<int64_t>(src.work->count(f));
    };
    pending = count("pending");
    active = count("assigned") + count("in-progress");
    completed = count("completed");
    failed = count("failed");
    cancelled = count("cancelled");
  }
  if (src.deadLetters) {
    DeadLetterFilter f;
    f.projectId = projectId;
    deadLettered = static_cast<int64_t>(src.deadLetters->count(f));
  }
  Json work = Json::object();
  work.set("pending", Json(pending));
  work.set("active", Json(active));
  work.set("completed", Json(completed));
  work.set("failed", Json(failed));
  work.set("cancelled", Json(cancelled));
  work.set("deadLettered", Json(deadLettered));

  const TargetCounts counts = src.targets ? src.targets(projectId) : TargetCounts{};
  Json targets = Json::object();
  targets.set("total", Json(counts.total));
  targets.set("available", Json(counts.available));
  targets.set("inUse", Json(counts.inUse));
  targets.set("disabled", Json(counts.disabled));

  Json data = Json::object();
  data.set("agents", std::move(agents));
  data.set("work", std::move(work));
  data.set("targets", std::move(targets));
  return data;
}

}  // namespace weft::ws
