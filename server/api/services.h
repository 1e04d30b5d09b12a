// The core services weftd runs, wired to one store. Built and started by the
// domain hook (domain.cpp); the route handlers only call into them.
#pragma once

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

// Spin-up: the spinup.* settings and the outbound implementations.
// Null runner/http = the real ones (posix_spawn, Poco HTTP).
struct SpinUpSetup {
  SpinUpSettings settings;
  std::shared_ptr<ProcessRunner> runner;
  std::shared_ptr<HttpCaller> http;
};
SpinUpSetup spinUpSetupFrom(const Config& config);

struct Services {
  explicit Services(ServiceContext context, SpinUpSetup spinUp = {});
  ~Services();
  void start();
  void stop();

  ServiceContext context;
  AgentRegistry agents;
  DeadLetters deadLetters;
  WorkQueue work;
  AgentMonitor monitor;
  Stats stats;
  Targets targets;  // spin-up targets
};

}  // namespace weft
