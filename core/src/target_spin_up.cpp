// Spin-up through targets: spinUpTarget() on request, automatic spin-up
// for a submit no agent can take, and recording operation outcomes.
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

// ---- spin-up -----------------------------------------------------------------

Result<SpinUpStarted> Targets::spinUpTarget(const std::string& ref,
                                            const std::optional<std::string>& projectId) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  const TargetRecord& t = *resolved->record;
  if (t.status == TargetStatus::Disabled) {
    return Status::conflict("Target " + t.name + " is disabled");
  }
  if (!spinUp_->allows(t.mechanism)) {
    return Status(Code::PermissionDenied, spinup::disabledMessage(t.mechanism));
  }
  if (auto missing = spinup::missingFields(t.config(), t.mechanism); !missing.empty()) {
    return Status::conflict(spinup::missingConfigMessage(t.name, t.mechanism, missing));
  }
  auto op = spinUp_->startManual(t);
  if (!op) return op.status();
  auto now = spinUp_->find(op->id);
  SpinUpStarted out;
  out.operationId = op->id;
  out.targetName = t.name;
  out.targetId = t.id;
  out.status = now ? now->status : op->status;
  out.timestampMs = ctx_.now();
  return out;
}

void Targets::requestSpinUp(const SpinUpRequest& request) {
  try {
    emit(makeEvent("spin-up:triggered", request.projectId, ctx_.now(),
                   {{"targetAgentType", Json(request.agentType)},
                    {"capability", Json(request.capability)},
                    {"boundary", Json(request.boundary)},
                    {"workId", Json(request.workItemId)}}));
    std::vector<std::shared_ptr<const TargetRecord>> candidates;
    view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
      if (t->projectId != request.projectId || t->status != TargetStatus::Available ||
          t->agentType != request.agentType || !t->hasCapability(request.capability) ||
          !t->hasBoundary(request.boundary) || !spinUp_->allows(t->mechanism) ||
          !spinup::missingFields(t->config(), t->mechanism).empty()) {
        return;
      }
      candidates.push_back(t);
    });
    if (candidates.empty()) {
      log::info("spin-up skipped: no matching target", {{"workId", request.workItemId},
                                                        {"projectId", request.projectId},
                                                        {"agentType", request.agentType},
                                                        {"capability", request.capability},
                                                        {"boundary", request.boundary}});
      return;
    }
    sortByRegistration(candidates);
    std::string why;
    if (!spinUp_->startAutomatic(*candidates.front(), request.workItemId, request.capability,
                                 &why)) {
      log::info(
          "spin-up skipped",
          {{"workId", request.workItemId}, {"targetId", candidates.front()->id}, {"reason", why}});
    }
  } catch (const std::exception& e) {
    // The submission is already stored and answered; never fail it here.
    log::error("spin-up request failed", {{"workId", request.workItemId}, {"error", e.what()}});
  }
}

void Targets::recordOutcome(const SpinUpOperation& op) {
  const bool ok = op.status == "success";
  const std::string at = formatIso(op.completedAtMs.value_or(ctx_.now()));
  auto mutate = [&](const TargetRecord&, Json& target) {
    Json last = Json::object();
    last.set("operationId", Json(op.id));
    last.set("time", Json(at));
    last.set("outcome", Json(ok ? "success" : "failure"));
    if (!op.workItemId.empty()) last.set("workItemId", Json(op.workItemId));
    if (!ok) last.set("error", Json(op.error));
    if (!op.mechanismResult.isNull()) last.set("mechanismResult", op.mechanismResult);
    target.set("lastSpinUp", std::move(last));
    if (ok) {
      target.set("useCount", Json(target.getInt("useCount", 0) + 1));
      target.set("lastUsedAt", Json(at));
    } else {
      target.set("lastError", Json(op.error));
    }
    target.set("updatedAt", Json(at));
    return Status::ok();
  };
  // A short outage should not lose the outcome; a long one does (logged).
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto updated = modify(op.targetId, mutate);
    if (updated) {
      publishTarget("update", **updated);
      return;
    }
    if (updated.code() == Code::NotFound) {
      log::info("spin-up outcome not recorded: target removed",
                {{"operationId", op.id}, {"targetId", op.targetId}});
      return;
    }
    if (!updated.status().isOutage() || attempt == 2) {
      log::warn("spin-up outcome not recorded", {{"operationId", op.id},
                                                 {"targetId", op.targetId},
                                                 {"error", updated.status().toString()}});
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace weft
