#include "weft/agent_monitor.h"

#include <algorithm>

#include "weft/log.h"

namespace weft {

AgentMonitor::AgentMonitor(ServiceContext context, AgentRegistry& agents,
                           std::function<bool(const std::string&)> busy)
    : ctx_(std::move(context)), agents_(agents), busy_(std::move(busy)) {}

AgentMonitor::~AgentMonitor() { stop(); }

void AgentMonitor::attach() {
  agents_.view().addListener([this](const std::string& guid,
                                    const std::shared_ptr<const AgentRecord>& before,
                                    const std::shared_ptr<const AgentRecord>& after, bool) {
    observe(guid, before, after);
  });
}

void AgentMonitor::observe(const std::string& guid,
                           const std::shared_ptr<const AgentRecord>& before,
                           const std::shared_ptr<const AgentRecord>& after) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!after) {
    activity_.erase(guid);
    requested_.erase(guid);
    return;
  }
  // First sight counts as activity, so a restart never causes a mass shutdown.
  bool active = !before || before->status != after->status ||
                before->currentTaskCount != after->currentTaskCount ||
                before->entry.get("lastActivity") != after->entry.get("lastActivity");
  if (active) activity_[guid] = ctx_.now();
}

int64_t AgentMonitor::lastActivityAt(const AgentRecord& agent) const {
  int64_t observed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = activity_.find(agent.guid);
    observed = it == activity_.end() ? ctx_.now() : it->second;
  }
  if (const Json* la = agent.entry.find("lastActivity"); la && la->isString()) {
    if (auto ms = parseIso(la->asString())) observed = std::max(observed, *ms);
  }
  return observed;
}

int64_t AgentMonitor::idleMs(const AgentRecord& agent) const {
  return ctx_.now() - lastActivityAt(agent);
}

AgentMonitor::CheckReport AgentMonitor::checkOnce() {
  CheckReport report;
  if (!ctx_.checkConnected() || !agents_.view().ready()) return report;
  const int64_t now = ctx_.now();
  const CoreOptions& o = ctx_.options;

  if (o.markStaleOffline) {
    std::vector<std::string> stale;
    agents_.view().forEach([&](const std::string& guid, const auto& a) {
      if (a->status != "offline" && a->isStale(now, o.staleAfterMs)) stale.push_back(guid);
    });
    for (const auto& guid : stale) {
      auto r = agents_.modify(guid, [&](Json& entry) {
        // Re-checked on the fresh entry: a heartbeat may have arrived.
        auto fresh = AgentRegistry::decode(entry.dump(), o.defaultProject);
        if (!fresh || fresh->status == "offline" || !fresh->isStale(now, o.staleAfterMs)) {
          return false;
        }
        entry.set("status", Json("offline"));
        return true;
      });
      if (r) {
        ++report.markedOffline;
      } else if (r.code() != Code::NotFound) {
        ++report.errors;
      }
    }
  }

  if (o.idleTimeoutMs <= 0) return report;
  struct Candidate {
    std::string guid;
    int64_t activityAt;
  };
  std::vector<Candidate> idle;
  agents_.view().forEach([&](const std::string& guid, const auto& a) {
    if (a->status != "online" || a->currentTaskCount != 0) return;
    const Json& spindown = a->entry.get("spindownAfterIdleMs");
    int64_t timeout = spindown.isInteger() ? spindown.asInt() : o.idleTimeoutMs;
    if (timeout <= 0) return;  // 0 = never idle
    int64_t at = lastActivityAt(*a);
    if (now - at < timeout) return;
    // A request newer than the last activity is already out (ours or
    // another instance's).
    if (const Json* req = a->entry.find("shutdownRequested"); req && req->isObject()) {
      auto requestedAt = parseIso(req->getString("requestedAt"));
      if (requestedAt && *requestedAt >= at) return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = requested_.find(guid);
      if (it != requested_.end() && it->second == at) return;
    }
    idle.push_back({guid, at});
  });
  for (const auto& c : idle) {
    if (busy_ && busy_(c.guid)) continue;
    AgentRegistry::ShutdownRequest request;
    request.reason = "idle-timeout";
    auto r = agents_.requestShutdown(c.guid, request);
    if (r) {
      std::lock_guard<std::mutex> lock(mutex_);
      requested_[c.guid] = c.activityAt;
      ++report.idleRequests;
    } else if (r.code() != Code::NotFound) {
      ++report.errors;
    }
  }
  return report;
}

void AgentMonitor::start() {
  int64_t interval = std::max<int64_t>(ctx_.options.idleCheckIntervalMs, 100);
  thread_ = std::thread([this, interval] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (cv_.wait_for(lock, std::chrono::milliseconds(interval), [this] { return stopping_; })) {
          return;
        }
      }
      try {
        CheckReport r = checkOnce();
        if (r.idleRequests || r.markedOffline || r.errors) {
          log::info("agent check", {{"idleShutdownRequests", r.idleRequests},
                                    {"markedOffline", r.markedOffline},
                                    {"errors", r.errors}});
        }
      } catch (const std::exception& e) {
        log::error("agent check failed", {{"error", e.what()}});
      }
    }
  });
}

void AgentMonitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace weft
