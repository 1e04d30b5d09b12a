// Stats: per-project counts over the watch-fed views (docs/api.md §2.7, §3.9).
// Kept in memory as the views change, never persisted, and never a backend
// call.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "weft/service_context.h"

namespace weft {

class AgentRegistry;
class WorkQueue;
class DeadLetters;
class Targets;

struct ProjectTotals {
  int64_t agents = 0, pendingWork = 0, activeWork = 0, completedWork = 0, failedWork = 0,
          cancelledWork = 0, deadLettered = 0, targets = 0, disabledTargets = 0;
  int64_t lastActivityMs = std::numeric_limits<int64_t>::min();

  void noteActivity(int64_t ms) {
    if (ms > lastActivityMs) lastActivityMs = ms;
  }
  // Adds the counts of o (not its activity).
  void addCounts(const ProjectTotals& o) {
    agents += o.agents;
    pendingWork += o.pendingWork;
    activeWork += o.activeWork;
    completedWork += o.completedWork;
    failedWork += o.failedWork;
    cancelledWork += o.cancelledWork;
    deadLettered += o.deadLettered;
    targets += o.targets;
    disabledTargets += o.disabledTargets;
  }
  bool sameCounts(const ProjectTotals& o) const {
    return agents == o.agents && pendingWork == o.pendingWork && activeWork == o.activeWork &&
           completedWork == o.completedWork && failedWork == o.failedWork &&
           cancelledWork == o.cancelledWork && deadLettered == o.deadLettered &&
           targets == o.targets && disabledTargets == o.disabledTargets;
  }
};

using ProjectTotalsMap = std::map<std::string, ProjectTotals>;

// One service's share of the stats.
struct StatsContributor {
  std::string source;  // e.g. "work"; names it in logs and the drift metric
  // Adds the service's counts; creating a map entry makes the project known.
  // Returns a non-Ok Status when its data is not available (outage).
  std::function<Status(ProjectTotalsMap&)> addTo;
  // Recounts incrementally kept counts and corrects them; returns how many
  // projects differed. Empty for counts computed on each request.
  std::function<int()> verify;
};

// GET /api/stats (docs/api.md §2.7). byProject's lastActivityMs is the
// project's last activity, or timestampMs when none is known.
struct StatsOverview {
  int64_t timestampMs = 0;
  ProjectTotals totals;  // summed over the projects
  ProjectTotalsMap byProject;
};

// GET /api/stats/projects.
struct ProjectList {
  int64_t timestampMs = 0;
  std::vector<std::string> projects;  // sorted
};

// Counts are kept per project as the views change (project_counts.h), so a
// request costs O(projects), whatever the number of stored records. A
// periodic recount (start()) checks them; a difference is corrected, logged
// and counted (drift()), which the metrics expose.
//
// Thread-safety: any number of threads; reads views only, never the backend.
// add*() and addContributor() before the views start.
// Errors: Unavailable while a view has not loaded yet (an outage at start-up).
class Stats {
 public:
  explicit Stats(ServiceContext context) : ctx_(std::move(context)) {}
  ~Stats();
  Stats(const Stats&) = delete;
  Stats& operator=(const Stats&) = delete;

  void addContributor(StatsContributor contributor) {
    contributors_.push_back(std::move(contributor));
  }

  // Contributors for the services that exist; each attaches its counts to
  // the service's view, so call them before the view starts.
  static StatsContributor agentContributor(AgentRegistry& agents);
  static StatsContributor workContributor(WorkQueue& work);
  static StatsContributor deadLetterContributor(DeadLetters& deadLetters);
  static StatsContributor targetContributor(Targets& targets);

  Result<ProjectTotalsMap> collect() const;
  // GET /api/stats: the sums and each project's counts, at timestampMs.
  Result<StatsOverview> overview() const;
  // GET /api/stats/projects: every known project, sorted.
  Result<ProjectList> projects() const;

  // Recounts every contributor's views now; returns the number of projects
  // whose counts had drifted (and are now corrected).
  int verify();
  // Verifies every intervalMs (> 0) on a thread of its own until stop().
  void start(int64_t verifyIntervalMs);
  void stop();
  // Projects corrected by verify() so far, by contributor source.
  std::map<std::string, uint64_t> drift() const;

 private:
  ServiceContext ctx_;
  std::vector<StatsContributor> contributors_;
  mutable std::mutex driftMutex_;
  std::map<std::string, uint64_t> drift_;
  std::mutex verifierMutex_;
  std::condition_variable verifierCv_;
  bool stopping_ = false;
  std::thread verifier_;
};

}  // namespace weft
