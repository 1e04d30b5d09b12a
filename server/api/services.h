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
#include "weft/work_queue.h"

namespace weft {

CoreOptions coreOptionsFrom(const Config& config);

struct Services {
  explicit Services(ServiceContext context);
  ~Services();
  void start();
  void stop();

  ServiceContext context;
  AgentRegistry agents;
  DeadLetters deadLetters;
  WorkQueue work;
  AgentMonitor monitor;
  Stats stats;
};

}  // namespace weft
