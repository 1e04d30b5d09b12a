// The scale-out workload: claim + complete cycles driven through several weftd
// instances that share one backend (./scripts/bench --scaleout).
//
// Agents (one per load thread) are registered through the first instance, and
// items are submitted beforehand, spread over the instances, all with one
// capability in a project of their own: the agents compete for the same
// queue, as a fleet does. Thread t talks to instance t mod N over its own
// keep-alive connection and runs closed loop: claim, then complete the item.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "http_client.h"
#include "load_driver.h"
#include "weft/json.h"

namespace weft::bench {

struct CycleOptions {
  std::vector<std::pair<std::string, int>> endpoints;  // host, port per instance
  int threads = 8;
  int64_t warmupMs = 1000;
  int64_t durationMs = 10000;
  int items = 20000;  // submitted beforehand; enough that claims never run dry
  int timeoutMs = 10000;
  std::string runId;
};

// One cycle: POST /api/work/claim with claimBody, then POST .../complete of
// the claimed item (with `result` when it is an object). When the claim
// started at or after measuredFrom, the two steps' latencies (ns) are added
// to claimNs and completeNs. 204 = exhausted.
OpResult claimAndComplete(HttpClient& client, const std::string& agentGuid, const Json& claimBody,
                          const Json& result, std::chrono::steady_clock::time_point measuredFrom,
                          std::vector<int64_t>& claimNs, std::vector<int64_t>& completeNs);

// {"instances", "threads", "cyclesPerSecond", "claim": {p50Us, p99Us},
//  "complete": {...}, "errors", "outcomes"}; or {"error": ...} when the
// set-up failed. Never throws.
Json runCycles(const CycleOptions& options);

}  // namespace weft::bench
