// AgentMonitor: idle detection and staleness marking (docs/api.md §4.6).
//
// Activity is derived from the registry change feed, so it is the same on
// every instance whoever wrote the entry: a change of currentTaskCount or
// status, or a newer lastActivity. A heartbeat alone is not activity. Each
// check, an online agent with no tasks, no assigned work and no activity for
// its timeout gets one shutdown request (reason idle-timeout); it gets no
// further one until new activity is seen, and an instance skips an agent
// whose entry already holds a request newer than its last activity, so only
// one instance sends it.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "weft/agent_registry.h"

namespace weft {

class AgentMonitor {
 public:
  // busy(guid): whether the agent holds assigned or in-progress work.
  AgentMonitor(ServiceContext context, AgentRegistry& agents,
               std::function<bool(const std::string&)> busy);
  ~AgentMonitor();

  // Registers the change-feed listener; call before the registry starts.
  void attach();
  // Starts the periodic checks (idleCheckIntervalMs).
  void start();
  void stop();

  // Now minus the agent's last activity (§4.6), for shutdown-batch filters.
  int64_t idleMs(const AgentRecord& agent) const;

  struct CheckReport {
    int idleRequests = 0, markedOffline = 0, errors = 0;
  };
  // One check; public so tests drive it with an injected clock.
  CheckReport checkOnce();

 private:
  void observe(const std::string& guid, const std::shared_ptr<const AgentRecord>& before,
               const std::shared_ptr<const AgentRecord>& after);
  int64_t lastActivityAt(const AgentRecord& agent) const;

  ServiceContext ctx_;
  AgentRegistry& agents_;
  std::function<bool(const std::string&)> busy_;

  mutable std::mutex mutex_;
  std::map<std::string, int64_t> activity_;   // observed activity time per guid
  std::map<std::string, int64_t> requested_;  // activity time at our last idle request

  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace weft
