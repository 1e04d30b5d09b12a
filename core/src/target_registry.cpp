// The target registry (docs/api.md §2.6): list, get, create with its name
// reservation, update, remove, enable/disable and the batch disable.
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

// ---- registry ----------------------------------------------------------------

Result<TargetPage> Targets::list(const TargetFilter& f, const PageRequest& page) const {
  Json filters = Json::object();
  if (f.type) filters.set("type", Json(*f.type));
  if (f.status) filters.set("status", Json(*f.status));
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.boundary) filters.set("boundary", Json(*f.boundary));
  if (f.mechanism) filters.set("mechanism", Json(*f.mechanism));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("targets", filters, page);
  if (!pager) return pager.status();
  auto query = pageQuery<ListIndex<TargetListTraits>>(*pager);
  if (!query) return query.status();
  if (auto s = ready(); !s) return s;
  TargetPage out;
  out.pager = *pager;
  fillPage(*view_, *listIndex_,
           {f.type, f.status, f.capability, f.boundary, f.mechanism, f.projectId}, *query,
           out.targets, out.total, out.pager);
  return out;
}

Result<std::shared_ptr<const TargetRecord>> Targets::get(
    const std::string& ref, const std::optional<std::string>& projectId) const {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  return resolved->record;
}

Result<std::shared_ptr<const TargetRecord>> Targets::create(const CreateTargetRequest& r) {
  if (auto s = ready(); !s) return s;
  auto names = nameBucket();
  if (!names) return names.status();

  const std::string project = r.projectId.value_or(ctx_.options.defaultProject);
  const std::string id = newUuid();
  const int64_t now = ctx_.now();
  const std::string nowIso = formatIso(now);

  // The stored config always names its mechanism, first.
  Json storedConfig = Json::object();
  storedConfig.set("mechanism", Json(r.mechanism));
  if (r.config) {
    for (const auto& [k, v] : r.config->asObject()) {
      if (k != "mechanism") storedConfig.set(k, v);
    }
  }
  Json target = Json::object();
  target.set("id", Json(id));
  target.set("projectId", Json(project));
  target.set("name", Json(r.name));
  if (r.description) target.set("description", Json(*r.description));
  target.set("agentType", Json(r.agentType));
  target.set("capabilities", Json::stringArray(r.capabilities));
  target.set("boundaries", r.boundaries ? Json::stringArray(*r.boundaries)
                                        : Json(Json::Array{Json("corporate"),
                                                           Json("corporate-adjacent"),
                                                           Json("personal"), Json("open-source")}));
  target.set("mechanism", Json(r.mechanism));
  target.set("config", std::move(storedConfig));
  target.set("status", Json(targetStatusText(TargetStatus::Available)));
  if (r.healthCheck) {
    Json hc = Json::object();
    hc.set("enabled", Json(r.healthCheck->enabled.value_or(false)));
    hc.set("intervalMs", Json(r.healthCheck->intervalMs.value_or(kDefaultHealthIntervalMs)));
    hc.set("timeoutMs", Json(std::min(r.healthCheck->timeoutMs.value_or(kDefaultHealthTimeoutMs),
                                      kMaxHealthTimeoutMs)));
    target.set("healthCheck", std::move(hc));
  }
  target.set("healthStatus", Json(targetHealthText(TargetHealth::Unknown)));
  target.set("registeredBy", Json("api"));
  target.set("registeredAt", Json(nowIso));
  target.set("updatedAt", Json(nowIso));
  target.set("useCount", Json(0));
  if (r.tags) target.set("tags", Json::stringArray(*r.tags));

  // The name reservation first: create() has exactly one winner, on every
  // backend and across instances.
  const std::string key = reservationKey(project, r.name);
  Json reservation = Json::object();
  reservation.set("id", Json(id));
  reservation.set("reservedAt", Json(nowIso));
  const Status duplicate =
      Status::alreadyExists("Target with name '" + r.name + "' already exists");
  std::optional<uint64_t> reserved;
  for (int attempt = 0; attempt < 3 && !reserved; ++attempt) {
    auto created = (*names)->create(key, reservation.dump());
    if (created) {
      reserved = *created;
      break;
    }
    if (created.code() != Code::AlreadyExists) return created.status();
    auto held = (*names)->get(key);
    if (!held) {
      if (held.code() == Code::NotFound) continue;  // released meanwhile: try again
      return held.status();
    }
    auto holder = Json::parse(held->value, 8);
    std::string holderId = holder ? holder->getString("id") : "";
    if (!holderId.empty()) {
      auto existing = bucket()->get(holderId);
      if (existing) return duplicate;
      if (existing.code() != Code::NotFound) return existing.status();
    }
    // The holder's target does not exist: a registration in flight, or one
    // that died between its two writes. Only the latter is taken over.
    auto reservedAt = holder ? parseIso(holder->getString("reservedAt")) : std::nullopt;
    if (reservedAt && now - *reservedAt < kStaleReservationMs) return duplicate;
    Status erased = (*names)->erase(key, held->revision);
    if (!erased && erased.code() != Code::Conflict) return erased;
    log::warn("stale target name reservation removed", {{"key", key}, {"heldBy", holderId}});
  }
  if (!reserved) return duplicate;

  std::string value = target.dump();
  auto written = bucket()->create(id, value);
  if (!written) {
    // Release the name; if even that fails, the stale-reservation rule above
    // frees it later.
    Status released = (*names)->erase(key, *reserved);
    if (!released) {
      log::warn("target name reservation not released",
                {{"key", key}, {"error", released.toString()}});
    }
    if (written.code() == Code::AlreadyExists) return Status::internal("target id collision");
    return written.status();
  }
  view_->applyPut(id, value, *written);
  auto record = decode(value, ctx_.options.defaultProject);
  publishTarget("register", *record);
  // The answer carries the target as built: a read of the stored text could
  // differ in a number's spelling (a -0 in the config reads back as 0).
  auto created = std::make_shared<TargetRecord>(*record);
  created->target = std::move(target);
  return std::shared_ptr<const TargetRecord>(std::move(created));
}

Result<std::shared_ptr<const TargetRecord>> Targets::update(
    const std::string& ref, const std::optional<std::string>& projectId,
    const UpdateTargetRequest& r) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  const std::string& mech = resolved->record->mechanism;
  const Json config = r.config.value_or(Json());
  if (auto problem = targetConfigProblem(config, mech); !problem.empty()) return invalid(problem);
  if (const Json& cm = config.get("mechanism"); !cm.isNull() && cm != Json(mech)) {
    return invalid("config.mechanism must match top-level mechanism (" + mech + ")");
  }

  auto updated = modify(resolved->record->id, [&](const TargetRecord& current, Json& target) {
    if (r.description) target.set("description", Json(*r.description));
    if (r.capabilities) target.set("capabilities", Json::stringArray(*r.capabilities));
    if (r.boundaries) target.set("boundaries", Json::stringArray(*r.boundaries));
    if (r.tags) target.set("tags", Json::stringArray(*r.tags));
    if (r.config) {
      // Shallow merge: top-level keys replaced.
      Json merged = current.config().isObject() ? current.config() : Json::object();
      for (const auto& [k, v] : r.config->asObject()) merged.set(k, v);
      merged.set("mechanism", Json(current.mechanism));
      if (merged.dump().size() > kMaxConfig) return invalid("config exceeds 262144 bytes");
      target.set("config", std::move(merged));
    }
    if (const auto& given = r.healthCheck) {
      const Json& existing = target.get("healthCheck");
      if (existing.isObject() || given->enabled) {
        Json hc = Json::object();
        hc.set("enabled", Json(given->enabled.value_or(existing.getBool("enabled"))));
        hc.set("intervalMs", Json(given->intervalMs.value_or(positiveOr(
                                 existing.get("intervalMs"), kDefaultHealthIntervalMs))));
        hc.set("timeoutMs", Json(given->timeoutMs.value_or(
                                positiveOr(existing.get("timeoutMs"), kDefaultHealthTimeoutMs))));
        target.set("healthCheck", std::move(hc));
      }
    }
    target.set("updatedAt", Json(formatIso(ctx_.now())));
    return Status::ok();
  });
  if (!updated) return updated.code() == Code::NotFound ? targetNotFound(ref) : updated.status();
  publishTarget("update", **updated);
  return *updated;
}

Result<TargetChange> Targets::remove(const std::string& ref,
                                     const std::optional<std::string>& projectId) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  auto current = *resolved;
  bool erased = false;
  for (int attempt = 0; attempt < kMaxCasAttempts && !erased; ++attempt) {
    Status s = bucket()->erase(current.record->id, current.revision);
    if (s) {
      erased = true;
      break;
    }
    if (s.code() != Code::Conflict) return s;
    auto again = load(current.record->id);
    if (!again) return again.code() == Code::NotFound ? targetNotFound(ref) : again.status();
    current = *again;
  }
  if (!erased) return Status::unavailable("too much contention on target " + current.record->id);
  view_->applyErase(current.record->id, current.revision);

  // Then the name, when the reservation is still this target's. A failure
  // leaves a stale reservation that the next registration of the name takes
  // over (see create()).
  if (auto names = nameBucket()) {
    const std::string key = reservationKey(current.record->projectId, current.record->name);
    auto held = (*names)->get(key);
    if (held) {
      auto holder = Json::parse(held->value, 8);
      if (holder && holder->getString("id") == current.record->id) {
        Status released = (*names)->erase(key, held->revision);
        if (!released) {
          log::warn("target name reservation not released",
                    {{"key", key}, {"error", released.toString()}});
        }
      }
    }
  }
  publishTarget("remove", *current.record);
  return TargetChange{TargetChange::Action::Removed, ref, current.record};
}

Result<TargetChange> Targets::setEnabled(const std::string& ref,
                                         const std::optional<std::string>& projectId,
                                         bool enabled) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  auto updated = modify(resolved->record->id, [&](const TargetRecord&, Json& target) {
    target.set("status",
               Json(targetStatusText(enabled ? TargetStatus::Available : TargetStatus::Disabled)));
    target.erase("lastError");
    target.set("updatedAt", Json(formatIso(ctx_.now())));
    return Status::ok();
  });
  if (!updated) return updated.code() == Code::NotFound ? targetNotFound(ref) : updated.status();
  publishTarget("update", **updated);
  return TargetChange{enabled ? TargetChange::Action::Enabled : TargetChange::Action::Disabled,
                      ref, *updated};
}

Result<TargetChange> Targets::enable(const std::string& ref,
                                     const std::optional<std::string>& projectId) {
  return setEnabled(ref, projectId, true);
}

Result<TargetChange> Targets::disable(const std::string& ref,
                                      const std::optional<std::string>& projectId) {
  return setEnabled(ref, projectId, false);
}

Result<DisableBatchResult> Targets::disableBatch(const DisableBatchRequest& r) {
  const std::optional<std::string>& projectId = r.projectId;
  if (auto s = ready(); !s) return s;

  DisableBatchResult out;
  BatchResult& batch = out.batch;
  std::vector<std::string> selected;  // resolved ids, in order
  if (r.targetIds) {
    for (const auto& entry : *r.targetIds) {
      if (!entry.valid) {
        batch.fail(entry.ref, "Target not found");
        continue;
      }
      auto resolved = resolve(entry.ref, projectId);
      if (!resolved) {
        if (resolved.status().isOutage()) return resolved.status();  // stop at an outage (§1.9)
        batch.fail(entry.ref, "Target not found");
        continue;
      }
      selected.push_back(resolved->record->id);
    }
  } else {
    std::vector<std::shared_ptr<const TargetRecord>> rows;
    view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
      if (projectId && t->projectId != *projectId) return;
      if (r.agentType && t->agentType != *r.agentType) return;
      if (r.status && t->statusText() != *r.status) return;  // any text, as stored
      if (r.mechanism && t->mechanism != *r.mechanism) return;
      rows.push_back(t);
    });
    sortByRegistration(rows);
    for (const auto& r : rows) selected.push_back(r->id);
  }

  std::set<std::string> done;
  for (const auto& id : selected) {
    if (!done.insert(id).second) continue;  // named twice: processed once
    bool already = false;
    auto updated = modify(id, [&](const TargetRecord& current, Json& target) {
      if (current.status == TargetStatus::Disabled) {
        already = true;
        return Status(Code::AlreadyExists, "already disabled");  // no write
      }
      target.set("status", Json(targetStatusText(TargetStatus::Disabled)));
      target.erase("lastError");
      target.set("updatedAt", Json(formatIso(ctx_.now())));
      return Status::ok();
    });
    if (already) {
      batch.succeed(id);
      out.alreadyDisabled.push_back(id);
    } else if (updated) {
      batch.succeed(id);
      out.disabledTargets.push_back(id);
      publishTarget("update", **updated);
    } else if (updated.code() == Code::NotFound) {
      batch.fail(id, "Target not found");
    } else {
      return updated.status();
    }
  }
  out.completedAtMs = ctx_.now();
  return out;
}

}  // namespace weft
