// weftd's own restart: how long a fresh weftd takes to serve again with the
// items already stored (it rebuilds its watch-fed views from the backend).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "weft/json.h"

namespace weft::bench {

// Polls weftd (every 5 ms, up to timeoutMs) from the moment sinceNs (wall
// clock, when the script spawned it) and reports the first moment each
// answered: GET /health 200 (the process serves HTTP), GET /ready 200 (the
// backend answers), and GET /api/work?limit=1 200 with total >= minItems
// (the work view holds every stored item). The first two polls give up after
// 1 s, the list after up to 120 s (timeoutMs at most): with a million items
// stored, one list takes seconds. Never throws.
Json measureServeTime(const std::string& host, int port, int64_t sinceNs, int64_t minItems,
                      int timeoutMs);

struct FillOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 8;
  int64_t minItems = 0;
  std::string backend;
  std::string pluginDir;
  std::map<std::string, std::string> settings;
  std::string runId;
};

// Counts the stored work items through the plugin and submits through REST
// until at least minItems are stored. Returns {"stored": n, "submitted": m}
// or {"error": ...}.
Json fillWork(const FillOptions& options);

}  // namespace weft::bench
