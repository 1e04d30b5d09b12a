// The scale benchmark (./scripts/bench --scale): how the cost of a request,
// weftd's memory and its restart grow with the number of stored work items.
// Three commands, run by the script once per size of a growing data set:
//
//   scale-prepare  (weftd running) makes, through REST, one item of every
//                  status (pending, assigned, in-progress, completed, failed,
//                  cancelled) and an agent, reads their stored values back
//                  through the plugin (the failed item's dead-letter entry
//                  too), submits a sample through REST and counts what weftd
//                  lists. Its JSON is the input of scale-fill.
//   scale-fill     (weftd stopped or running) clones those stored values
//                  through the plugin, on many threads, until N work items
//                  and A agents are stored: fresh UUIDs, recent timestamps,
//                  items spread over kProjects projects and kCapabilities
//                  capabilities, about 10 % pending, 0.1 % assigned, 0.1 %
//                  in progress, the rest terminal.
//   scale-measure  each request kind sequentially on one keep-alive
//                  connection (so a latency is the cost of one request):
//                  count, p50, p99, bounded by a count and a time budget.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "weft/json.h"

namespace weft::bench {

// The data set's names, shared by the three commands and the script.
inline constexpr int kScaleProjects = 20;
inline constexpr int kScaleCapabilities = 50;
std::string scaleProject(int64_t i);     // "scale-p07"
std::string scaleCapability(int64_t i);  // "scale-c42"
std::string scaleAgent(int64_t i);       // "scale-agent-000123"
// The agent that claims in scale-measure (registered by scale-prepare).
inline constexpr const char* kScaleClaimer = "scale-claimer";

struct ScaleStoreOptions {
  std::string backend;
  std::string pluginDir;
  std::map<std::string, std::string> settings;
};

struct ScalePrepareOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  ScaleStoreOptions store;
  int64_t items = 0;       // the size this step grows to (caps the REST sample)
  int64_t restSample = 0;  // POST /api/work submits at most (8 connections)
  int threads = 8;
  int timeoutMs = 60000;
  std::string runId;
};

// {"tag", "templates": {"work": {status: stored value}, "dlq": {...},
//  "agent": value, "roles": {...}}, "total", "byStatus", "restSample"},
// or {"error"}. Never throws.
Json runScalePrepare(const ScalePrepareOptions& options);

struct ScaleFillOptions {
  ScaleStoreOptions store;
  Json prepared;       // the output of scale-prepare
  int64_t items = 0;   // work items stored when done
  int64_t agents = 0;  // scale agents stored when done (all rewritten, fresh heartbeats)
  int threads = 8;
  int64_t spreadMs = 3600000;  // clones' offeredAt fall within this long before now
  uint64_t seed = 1;
};

// {"before", "written": {status: n}, "deadLetters", "agents", "failures",
//  "itemsPerSec", "seconds", "expectedTotal"} ("error" when writes failed).
Json runScaleFill(const ScaleFillOptions& options);

struct ScaleMeasureOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int samples = 200;        // measured requests per kind at most
  int minSamples = 5;       // ... and at least, whatever the budget
  int64_t budgetMs = 5000;  // per kind; stop after it once minSamples are in
  int deepPages = 10;       // list-deep: nextCursor followed this many times
  int timeoutMs = 60000;    // per request
  int pid = 0;              // weftd's, for its CPU time per request (0 = not measured)
  std::string runId;
};

// {"requests": [{"name", "request", "count", "errors", "p50Us", "p99Us",
//  "cpuUsPerRequest", ...}]}. Never throws.
Json runScaleMeasure(const ScaleMeasureOptions& options);

}  // namespace weft::bench
