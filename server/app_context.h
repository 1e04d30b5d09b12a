// What weftd's start-up hands to the parts it wires together (the domain,
// the WebSocket module, metrics): the configuration, the backend, the router
// and a few process-wide hooks. Built once in app.cpp; see domain.h.
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

}  // namespace weft
