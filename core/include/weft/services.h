// The core services weftd runs, wired to one store: the registry, the work
// queue and dead letters, the agent monitor, stats and spin-up targets. Built
// and started by weftd's domain hook (server/domain.cpp); the route handlers
// only call into them. Nothing here knows HTTP.
#pragma once

#include <string>

#include <memory>

#include "weft/agent_monitor.h"
#include "weft/agent_registry.h"
#include "weft/config.h"
#include "weft/dead_letters.h"
#include "weft/service_context.h"
#include "weft/stats.h"
#include "weft/targets.h"
#include "weft/work_queue.h"

namespace weft {

CoreOptions coreOptionsFrom(const Config& config);

// Spin-up: the spinup.* settings and the outbound implementations. The
// server supplies the real runner and HTTP caller (posix_spawn, Poco HTTP);
// tests supply fakes. Both must be set before Services is built.
struct SpinUpSetup {
  SpinUpSettings settings;
  std::shared_ptr<ProcessRunner> runner;
  std::shared_ptr<HttpCaller> http;
};
SpinUpSetup spinUpSetupFrom(const Config& config);

// Thread-safety: build, start() and stop() from one thread; the members are
// thread-safe services (see their headers) once started.
struct Services {
  Services(ServiceContext context, SpinUpSetup spinUp);
  ~Services();
  void start();
  void stop();
  // What is still loading after a start: the views that have not replayed
  // their bucket yet, with how many records each has read, e.g.
  // "work items (412345 read)"; empty once every view is loaded (readiness).
  std::string loading() const;

  ServiceContext context;
  AgentRegistry agents;
  DeadLetters deadLetters;
  WorkQueue work;
  AgentMonitor monitor;
  Stats stats;
  Targets targets;  // spin-up targets
};

}  // namespace weft
