#include "weft/stats.h"

#include <chrono>

#include "weft/agent_registry.h"
#include "weft/dead_letters.h"
#include "weft/log.h"
#include "weft/project_counts.h"
#include "weft/targets.h"
#include "weft/work_queue.h"

namespace weft {

namespace {

// A contributor backed by counts kept on the view.
template <typename Counts>
StatsContributor counted(std::string source, const char* notLoaded,
                         std::shared_ptr<Counts> counts) {
  StatsContributor c;
  c.source = std::move(source);
  c.addTo = [counts, notLoaded](ProjectTotalsMap& totals) {
    return counts->addTo(totals, notLoaded);
  };
  c.verify = [counts] { return counts->verify(); };
  return c;
}

}  // namespace

StatsContributor Stats::agentContributor(AgentRegistry& agents) {
  auto counts = ProjectCounts<AgentRecord>::attach(
      agents.view(), [](const AgentRecord& a) -> const std::string& { return a.projectId; },
      [](const AgentRecord& a, ProjectTotals& t, int64_t sign) {
        if (a.status != "offline") t.agents += sign;
      },
      [](const AgentRecord& a) -> std::optional<int64_t> {
        std::optional<int64_t> latest = a.lastHeartbeatMs;
        if (const Json* la = a.entry.find("lastActivity"); la && la->isString()) {
          if (auto ms = parseIso(la->asString()); ms && (!latest || *ms > *latest)) latest = ms;
        }
        return latest;
      });
  return counted("agents", "agent registry not loaded yet", std::move(counts));
}

StatsContributor Stats::workContributor(WorkQueue& work) {
  auto counts = ProjectCounts<WorkEntry, WorkRecord>::attach(
      work.view(), [](const WorkEntry& w) -> const std::string& { return w.projectId; },
      [](const WorkEntry& w, ProjectTotals& t, int64_t sign) {
        if (w.status == WorkStatus::Pending) t.pendingWork += sign;
        else if (w.isActive()) t.activeWork += sign;
        else if (w.status == WorkStatus::Completed) t.completedWork += sign;
        else if (w.status == WorkStatus::Failed) t.failedWork += sign;
        else if (w.status == WorkStatus::Cancelled) t.cancelledWork += sign;
      },
      [](const WorkEntry& w) -> std::optional<int64_t> { return w.updatedAtMs; });
  return counted("work", "work items not loaded yet", std::move(counts));
}

StatsContributor Stats::deadLetterContributor(DeadLetters& deadLetters) {
  auto counts = ProjectCounts<DeadLetterEntry, DeadLetter>::attach(
      deadLetters.view(),
      [](const DeadLetterEntry& d) -> const std::string& { return d.projectId; },
      [](const DeadLetterEntry&, ProjectTotals& t, int64_t sign) { t.deadLettered += sign; },
      [](const DeadLetterEntry&) -> std::optional<int64_t> { return std::nullopt; });
  return counted("deadLetters", "dead letters not loaded yet", std::move(counts));
}

StatsContributor Stats::targetContributor(Targets& targets) {
  auto counts = ProjectCounts<TargetRecord>::attach(
      targets.view(), [](const TargetRecord& t) -> const std::string& { return t.projectId; },
      [](const TargetRecord& r, ProjectTotals& t, int64_t sign) {
        t.targets += sign;
        if (r.status == TargetStatus::Disabled) t.disabledTargets += sign;
      },
      [](const TargetRecord& r) -> std::optional<int64_t> { return r.updatedAtMs; });
  return counted("targets", "targets not loaded yet", std::move(counts));
}

Stats::~Stats() { stop(); }

int Stats::verify() {
  int drifted = 0;
  for (const auto& c : contributors_) {
    if (!c.verify) continue;
    const int differ = c.verify();
    if (differ == 0) continue;
    drifted += differ;
    {
      std::lock_guard<std::mutex> lock(driftMutex_);
      drift_[c.source] += static_cast<uint64_t>(differ);
    }
    log::warn("stats drifted from a recount and were corrected",
              {{"source", c.source}, {"projects", differ}});
  }
  return drifted;
}

void Stats::start(int64_t verifyIntervalMs) {
  if (verifyIntervalMs <= 0 || verifier_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(verifierMutex_);
    stopping_ = false;
  }
  verifier_ = std::thread([this, verifyIntervalMs] {
    std::unique_lock<std::mutex> lock(verifierMutex_);
    while (!verifierCv_.wait_for(lock, std::chrono::milliseconds(verifyIntervalMs),
                                 [this] { return stopping_; })) {
      lock.unlock();
      try {
        verify();
      } catch (const std::exception& e) {
        log::error("stats verification failed", {{"error", e.what()}});
      }
      lock.lock();
    }
  });
}

void Stats::stop() {
  {
    std::lock_guard<std::mutex> lock(verifierMutex_);
    stopping_ = true;
  }
  verifierCv_.notify_all();
  if (verifier_.joinable()) verifier_.join();
}

std::map<std::string, uint64_t> Stats::drift() const {
  std::lock_guard<std::mutex> lock(driftMutex_);
  return drift_;
}

Result<ProjectTotalsMap> Stats::collect() const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  ProjectTotalsMap totals;
  for (const auto& c : contributors_) {
    if (auto s = c.addTo(totals); !s) return s;
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
    sum.addCounts(t);
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
