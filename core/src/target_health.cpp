// Target health: recording probe outcomes, test() on request, and the
// periodic health-check loop.
#include "weft/targets.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "weft/agent_registry.h"
#include "weft/batch_result.h"
#include "weft/ids.h"
#include "weft/log.h"
#include "weft/work_queue.h"

#include "target_rules.h"

namespace weft {

using namespace target_rules;

// ---- health ------------------------------------------------------------------

Status Targets::recordHealth(const std::string& id, const spinup::ProbeOutcome& probe) {
  const std::string nowIso = formatIso(ctx_.now());
  auto updated = modify(id, [&](const TargetRecord&, Json& target) {
    target.set("healthStatus", Json(targetHealthText(probe.healthy ? TargetHealth::Healthy
                                                                   : TargetHealth::Unhealthy)));
    target.set("lastHealthCheck", Json(nowIso));
    target.set("updatedAt", Json(nowIso));
    if (!probe.healthy) target.set("lastError", Json(probe.error));
    return Status::ok();
  });
  if (!updated) return updated.status();
  const TargetRecord& t = **updated;
  Json payload = Json::object();
  payload.set("targetId", Json(t.id));
  payload.set("targetName", Json(t.name));
  payload.set("healthStatus", Json(t.healthText()));
  if (!probe.healthy) payload.set("error", Json(probe.error));
  payload.set("timestamp", Json(nowIso));
  publish("loominal." + t.projectId + ".targets.health." + t.id, payload);
  return Status::ok();
}

Result<TargetTestResult> Targets::test(const std::string& ref,
                                       const std::optional<std::string>& projectId) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  const TargetRecord& t = *resolved->record;
  if (!spinUp_->allows(t.mechanism)) {
    return Status(Code::PermissionDenied, spinup::disabledMessage(t.mechanism));
  }
  // A probe holds its caller for up to the target's timeout: bound how many
  // run at once, so /test cannot take every worker.
  if (testsRunning_.fetch_add(1) >= kMaxConcurrentTests) {
    testsRunning_.fetch_sub(1);
    return Status::unavailable("too many target tests running (at most " +
                               std::to_string(kMaxConcurrentTests) + "); retry later");
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{testsRunning_};
  CancelToken cancel;
  const auto started = std::chrono::steady_clock::now();
  spinup::ProbeOutcome probe = spinUp_->mechanisms().probe(t, t.healthTimeoutMs, cancel);
  const int64_t latency = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
  if (auto s = recordHealth(t.id, probe); !s) {
    return s.code() == Code::NotFound ? targetNotFound(ref) : s;
  }
  TargetTestResult out;
  out.targetId = t.id;
  out.healthy = probe.healthy;
  if (!probe.healthy) out.error = probe.error;
  out.latencyMs = latency;
  out.timestampMs = ctx_.now();
  return out;
}

int Targets::healthCheckOnce() {
  if (!ctx_.checkConnected() || !view_->ready()) return 0;
  const int64_t now = ctx_.now();
  auto due = [&](const TargetRecord& t) {
    return t.healthEnabled && t.status != TargetStatus::Disabled && spinUp_->allows(t.mechanism) &&
           (!t.lastHealthCheckMs || now - *t.lastHealthCheckMs >= t.healthIntervalMs);
  };
  std::vector<std::string> ids;
  view_->forEach([&](const std::string& id, const std::shared_ptr<const TargetRecord>& t) {
    if (due(*t)) ids.push_back(id);
  });
  int probed = 0;
  for (const auto& id : ids) {
    if (healthCancel_->cancelled()) break;
    // One target's failure (even an exception) never ends the round.
    try {
      // Fresh from the backend: another instance may have probed it just now.
      auto fresh = load(id);
      if (!fresh || !due(*fresh->record)) continue;
      spinup::ProbeOutcome probe = spinUp_->mechanisms().probe(
          *fresh->record, fresh->record->healthTimeoutMs, *healthCancel_);
      if (healthCancel_->cancelled()) break;
      ++probed;
      if (Status s = recordHealth(id, probe); !s && s.code() != Code::NotFound) {
        log::warn("health check not recorded", {{"targetId", id}, {"error", s.toString()}});
      }
    } catch (const std::exception& e) {
      log::warn("health check of a target failed", {{"targetId", id}, {"error", e.what()}});
    }
  }
  return probed;
}

void Targets::healthLoop() {
  const int64_t period = std::max<int64_t>(spinUp_->settings().healthCheckPeriodMs, 10);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(healthMutex_);
      if (healthCv_.wait_for(lock, std::chrono::milliseconds(period),
                             [this] { return healthStopping_; })) {
        return;
      }
    }
    try {
      healthCheckOnce();
    } catch (const std::exception& e) {
      log::error("health check failed", {{"error", e.what()}});
    }
  }
}

}  // namespace weft
