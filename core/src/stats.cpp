#include "weft/stats.h"

#include "weft/agent_registry.h"
#include "weft/dead_letters.h"
#include "weft/work_queue.h"

namespace weft {

StatsContributor Stats::agentContributor(const AgentRegistry& agents) {
  return [&agents](ProjectTotalsMap& totals) -> Status {
    if (!agents.view().ready()) return Status::unavailable("agent registry not loaded yet");
    agents.view().forEach([&](const std::string&, const std::shared_ptr<const AgentRecord>& a) {
      ProjectTotals& t = totals[a->projectId];
      if (a->status != "offline") ++t.agents;
      if (a->lastHeartbeatMs) t.noteActivity(*a->lastHeartbeatMs);
      if (const Json* la = a->entry.find("lastActivity"); la && la->isString()) {
        if (auto ms = parseIso(la->asString())) t.noteActivity(*ms);
      }
    });
    return Status::ok();
  };
}

StatsContributor Stats::workContributor(const WorkQueue& work) {
  return [&work](ProjectTotalsMap& totals) -> Status {
    if (!work.view().ready()) return Status::unavailable("work items not loaded yet");
    work.view().forEach([&](const std::string&, const std::shared_ptr<const WorkRecord>& w) {
      ProjectTotals& t = totals[w->projectId];
      if (w->status == WorkStatus::Pending) ++t.pendingWork;
      else if (w->isActive()) ++t.activeWork;
      else if (w->status == WorkStatus::Completed) ++t.completedWork;
      else if (w->status == WorkStatus::Failed) ++t.failedWork;
      else if (w->status == WorkStatus::Cancelled) ++t.cancelledWork;
      t.noteActivity(w->updatedAtMs);
    });
    return Status::ok();
  };
}

StatsContributor Stats::deadLetterContributor(const DeadLetters& deadLetters) {
  return [&deadLetters](ProjectTotalsMap& totals) -> Status {
    if (!deadLetters.view().ready()) return Status::unavailable("dead letters not loaded yet");
    deadLetters.view().forEach(
        [&](const std::string&, const std::shared_ptr<const DeadLetter>& d) {
          ++totals[d->projectId].deadLettered;
        });
    return Status::ok();
  };
}

Result<ProjectTotalsMap> Stats::collect() const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  ProjectTotalsMap totals;
  for (const auto& c : contributors_) {
    if (auto s = c(totals); !s) return s;
  }
  return totals;
}

Result<StatsOverview> Stats::overview() const {
  auto collected = collect();
  if (!collected) return collected.status();
  StatsOverview out;
  out.timestampMs = ctx_.now();
  ProjectTotals& sum = out.totals;
  for (const auto& [project, t] : *collected) {
    sum.agents += t.agents;
    sum.pendingWork += t.pendingWork;
    sum.activeWork += t.activeWork;
    sum.completedWork += t.completedWork;
    sum.failedWork += t.failedWork;
    sum.cancelledWork += t.cancelledWork;
    sum.deadLettered += t.deadLettered;
    sum.targets += t.targets;
    sum.disabledTargets += t.disabledTargets;
    ProjectTotals p = t;
    if (p.lastActivityMs == std::numeric_limits<int64_t>::min()) p.lastActivityMs = out.timestampMs;
    out.byProject.emplace(project, p);
  }
  return out;
}

Result<ProjectList> Stats::projects() const {
  auto collected = collect();
  if (!collected) return collected.status();
  ProjectList out;
  out.timestampMs = ctx_.now();
  for (const auto& kv : *collected) out.projects.push_back(kv.first);  // std::map: sorted
  return out;
}

}  // namespace weft
