// The REST workloads: Weft's API driven over keep-alive HTTP connections,
// one connection per load thread.
//
//   agent-register  POST /api/agents (the agents the other workloads use)
//   agent-list      GET /api/agents with `agents` agents registered (full list)
//   heartbeat       POST /api/agents/{guid}/heartbeat, each thread its own agent
//   submit          POST /api/work
//   claim-complete  POST /api/work/claim then POST /api/work/{id}/complete on
//                   items submitted beforehand; each thread claims from its
//                   own capability, so the cycle measures the work path, not
//                   claim contention; the items live in a project of their own,
//                   away from the items the other workloads leave pending
//
// heartbeat and submit run closed loop and, when openRate > 0, open loop too.
#pragma once

#include <cstdint>
#include <string>

#include "weft/json.h"

namespace weft::bench {

struct RestOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 8;
  int64_t warmupMs = 500;
  int64_t durationMs = 3000;
  double openRate = 0;    // ops/s of the open-loop runs; 0 = none
  int agents = 1000;      // registered before agent-list
  int cycleItems = 3000;  // items submitted for claim-complete (split over threads)
  int timeoutMs = 10000;  // per request
  std::string runId;      // makes guids and task ids unique per run
};

// Runs the workloads in the order above. Returns
// {"workloads": [result...], "agentsListed": n}; a workload whose set-up
// failed is reported with an "error" member instead of numbers. Never throws.
Json runRestWorkloads(const RestOptions& options);

}  // namespace weft::bench
