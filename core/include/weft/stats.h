// Stats: per-project counts over the watch-fed views (docs/api.md §2.7, §3.9).
// Computed at request time, never persisted, and never a backend call.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "weft/service_context.h"

namespace weft {

class AgentRegistry;
class WorkQueue;
class DeadLetters;

struct ProjectTotals {
  int64_t agents = 0, pendingWork = 0, activeWork = 0, completedWork = 0, failedWork = 0,
          cancelledWork = 0, deadLettered = 0, targets = 0, disabledTargets = 0;
  int64_t lastActivityMs = std::numeric_limits<int64_t>::min();

  void noteActivity(int64_t ms) {
    if (ms > lastActivityMs) lastActivityMs = ms;
  }
};

using ProjectTotalsMap = std::map<std::string, ProjectTotals>;
// Adds one service's counts; creating a map entry makes the project known.
// Returns a non-Ok Status when its data is not available (outage).
using StatsContributor = std::function<Status(ProjectTotalsMap&)>;

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

// Thread-safety: any number of threads; reads views only, never the backend.
// Errors: Unavailable while a view has not loaded yet (an outage at start-up).
class Stats {
 public:
  explicit Stats(ServiceContext context) : ctx_(std::move(context)) {}
  void addContributor(StatsContributor contributor) {
    contributors_.push_back(std::move(contributor));
  }

  // Contributors for the services that exist.
  static StatsContributor agentContributor(const AgentRegistry& agents);
  static StatsContributor workContributor(const WorkQueue& work);
  static StatsContributor deadLetterContributor(const DeadLetters& deadLetters);

  Result<ProjectTotalsMap> collect() const;
  // GET /api/stats: the sums and each project's counts, at timestampMs.
  Result<StatsOverview> overview() const;
  // GET /api/stats/projects: every known project, sorted.
  Result<ProjectList> projects() const;

 private:
  ServiceContext ctx_;
  std::vector<StatsContributor> contributors_;
};

}  // namespace weft
