// The baseline: the storage primitives straight through the plugin interface
// (the same .so and loader weftd uses), so the cost Weft adds on top of its
// backend is visible next to the REST numbers.
//
//   put     unconditional write of a value of valueBytes, over 1,000 keys per thread
//   get     read of one of 1,000 keys written beforehand
//   create  write-if-absent of a new key each time
//   update  compare-and-set at the revision the previous write returned, each
//           thread on its own key (no conflicts: the cost of a CAS, not of contention)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "weft/json.h"

namespace weft::bench {

struct KvOptions {
  std::string backend;                          // nats, redis, sqlite
  std::string pluginDir;                        // "" = the build's plugin folder
  std::map<std::string, std::string> settings;  // e.g. nats.url, sqlite.path
  std::vector<int> threadCounts{1, 8};          // one closed-loop run per count and operation
  int64_t warmupMs = 300;
  int64_t durationMs = 2000;
  int valueBytes = 512;
  std::string bucket = "bench-kv";
  std::string runId;
};

// Returns {"backend", "valueBytes", "ops": [result...]} or {"error": ...}
// when the plugin cannot be loaded or the backend does not answer. Never throws.
Json runKvWorkloads(const KvOptions& options);

}  // namespace weft::bench
