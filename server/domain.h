// The seam between the HTTP server (app.cpp) and the domain: weftd's generic
// start-up builds an AppContext and calls installDomain() once, BEFORE the
// HTTP server accepts its first connection, so every route exists by then.
// domain.cpp builds the core services and registers their routes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "http/errors.h"
#include "http/request_handler.h"
#include "http/router.h"
#include "weft/kv.h"

namespace weft {

class Config;

struct AppContext {
  // The validated configuration; lives until the process exits.
  const Config& config;
  // The loaded backend; never null. Released after Domain::stop().
  // installDomain may replace it with a decorator of the same backend (the
  // metrics wrapper); /health and /ready are registered on the final value.
  std::shared_ptr<KvStore> store;
  // Register routes here (only during installDomain).
  http::Router& router;
  // Backend name and Retry-After for http::errorResponse().
  http::ErrorMapping errors;
  // Open WebSocket connections, reported by /health; the WebSocket code
  // increments and decrements it.
  std::atomic<int64_t>& websocketConnections;
  // Optional: set during installDomain to receive one record per answered
  // request (method, route template, status, duration), e.g. for /metrics.
  // Called on HTTP worker threads; must not block.
  http::RequestObserver onRequest;
  // Ends the process with exit code 1 after the normal shutdown sequence; for
  // a fatal internal error detected on a background thread. Thread-safe.
  std::function<void(const std::string& reason)> fatal;
};

class Domain {
 public:
  virtual ~Domain() = default;
  // Shutdown, step 1, before HTTP connections are drained: close what would
  // hold a connection open indefinitely (WebSockets: 1001 "Server shutting
  // down"). The default does nothing.
  virtual void beginShutdown() {}
  // Shutdown, step 2, after HTTP drained: stop timers, watches and services.
  // No request runs any more. The store is released after this returns.
  virtual void stop() = 0;
};

// Builds the domain on ctx.store and registers its routes on ctx.router. May
// throw ConfigError (weftd exits 2) or anything else (exit 1). Never returns
// nullptr.
std::unique_ptr<Domain> installDomain(AppContext& ctx);

}  // namespace weft
