// The seam between the HTTP server (app.cpp) and the domain: weftd's generic
// start-up builds an AppContext and calls installDomain() once, BEFORE the
// HTTP server accepts its first connection, so every route exists by then.
// domain.cpp builds the core services and registers their routes.
#pragma once

#include <memory>
#include <string>

#include "app_context.h"

namespace weft {

class Domain {
 public:
  virtual ~Domain() = default;
  // Shutdown, step 1, before HTTP connections are drained: close what would
  // hold a connection open indefinitely (WebSockets: 1001 "Server shutting
  // down"). The default does nothing.
  virtual void beginShutdown() {}
  // What is still loading (readiness: /ready answers 503 while it is not
  // empty). The default: nothing.
  virtual std::string loading() const { return {}; }
  // Shutdown, step 2, after HTTP drained: stop timers, watches and services.
  // No request runs any more. The store is released after this returns.
  virtual void stop() = 0;
};

// Builds the domain on ctx.store and registers its routes on ctx.router. May
// throw ConfigError (weftd exits 2) or anything else (exit 1). Never returns
// nullptr.
std::unique_ptr<Domain> installDomain(AppContext& ctx);

}  // namespace weft
