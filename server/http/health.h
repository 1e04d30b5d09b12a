// GET /health and GET /ready (docs/api.md §2.1).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <memory>

#include "http/router.h"
#include "weft/kv.h"

namespace weft::http {

struct HealthDeps {
  // The loaded store; must stay valid while the server serves requests.
  std::shared_ptr<KvStore> store;
  // Open WebSocket connections (the WebSocket code maintains it).
  const std::atomic<int64_t>* websocketConnections = nullptr;
  int retryAfterSeconds = 2;  // Retry-After of a 503 /ready
  // What is still loading ("" when nothing is): /ready is 503 meanwhile.
  std::function<std::string()> loading;
};

// Registers both routes (GET, public by the default auth rule).
//  /health: liveness; never touches the backend (state() is a memory read).
//  /ready: one store->ping(), which the store bounds by kv.timeoutMs; 200 with
//          latencyMs when it succeeds and nothing is loading any more, 503 +
//          Retry-After otherwise (with `loading` while the views load).
void addHealthRoutes(Router& router, HealthDeps deps);

}  // namespace weft::http
