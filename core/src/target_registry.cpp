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

Result<Json> Targets::list(const TargetFilter& f, const PageRequest& page) const {
  Json filters = Json::object();
  if (f.type) filters.set("type", Json(*f.type));
  if (f.status) filters.set("status", Json(*f.status));
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.boundary) filters.set("boundary", Json(*f.boundary));
  if (f.mechanism) filters.set("mechanism", Json(*f.mechanism));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("targets", filters, page);
  if (!pager) return pager.status();
  if (auto s = ready(); !s) return s;
  std::vector<std::shared_ptr<const TargetRecord>> rows;
  view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
    if (f.type && t->agentType != *f.type) return;
    if (f.status && t->status != *f.status) return;
    if (f.capability && !t->hasCapability(*f.capability)) return;
    if (f.boundary && !t->hasBoundary(*f.boundary)) return;
    if (f.mechanism && t->mechanism != *f.mechanism) return;
    if (f.projectId && t->projectId != *f.projectId) return;
    rows.push_back(t);
  });
  sortByRegistration(rows);
  Json items = Json::array();
  for (size_t i = pager->begin(rows.size()), e = pager->end(rows.size()); i < e; ++i) {
    items.push(rows[i]->target);
  }
  Json body = Json::object();
  body.set("targets", std::move(items));
  pager->writeMetadata(body, rows.size());
  return body;
}

Result<Json> Targets::get(const std::string& ref,
                          const std::optional<std::string>& projectId) const {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  return resolved->record->target;
}

Result<Json> Targets::create(const Json& body) {
  // Validation, in the order of the docs/api.md §2.6 table.
  const Json& name = body.get("name");
  if (!name.isString() || isBlank(name.asString())) return invalid("name is required");
  if (name.asString().size() > kMaxShortString) return invalid("name exceeds 256 bytes");
  const Json& agentType = body.get("agentType");
  if (agentType.isNull()) return invalid("agentType is required");
  if (!agentType.isString() || !isAgentTypeName(agentType.asString())) {
    return invalid("Invalid agentType: " + shown(agentType) +
                   ". Must be copilot-cli or claude-code");
  }
  if (auto s = checkCapabilities(body.get("capabilities")); !s) return s;
  const Json& mechanism = body.get("mechanism");
  if (mechanism.isNull()) return invalid("mechanism is required");
  if (!mechanism.isString() || !spinup::isMechanism(mechanism.asString())) {
    return invalid("Invalid mechanism: " + shown(mechanism) +
                   ". Must be one of: ssh, github-actions, local, webhook, kubernetes");
  }
  const std::string mech = mechanism.asString();
  const Json& config = body.get("config");
  if (!config.isNull() && !config.isObject()) return invalid("config must be an object");
  if (const Json& cm = config.get("mechanism"); !cm.isNull() && cm != mechanism) {
    return invalid("config.mechanism must match top-level mechanism (" + mech + ")");
  }
  if (config.isObject() && config.dump().size() > kMaxConfig) {
    return invalid("config exceeds 262144 bytes");
  }
  if (auto problem = configProblem(config, mech); !problem.empty()) return invalid(problem);
  const Json& boundaries = body.get("boundaries");
  if (!boundaries.isNull()) {
    if (auto s = checkBoundaries(boundaries); !s) return s;
  }
  const Json& tags = body.get("tags");
  if (!tags.isNull()) {
    if (auto s = checkTags(tags); !s) return s;
  }
  const Json& healthCheck = body.get("healthCheck");
  if (!healthCheck.isNull()) {
    if (auto s = checkHealthCheck(healthCheck, true); !s) return s;
  }
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  const Json& description = body.get("description");
  if (description.isString() && description.asString().size() > kMaxDescription) {
    return invalid("description exceeds 65536 bytes");
  }

  if (auto s = ready(); !s) return s;
  auto names = nameBucket();
  if (!names) return names.status();

  const std::string project =
      projectId.isString() ? projectId.asString() : ctx_.options.defaultProject;
  const std::string id = newUuid();
  const int64_t now = ctx_.now();
  const std::string nowIso = formatIso(now);

  // The stored config always names its mechanism, first.
  Json storedConfig = Json::object();
  storedConfig.set("mechanism", Json(mech));
  if (config.isObject()) {
    for (const auto& [k, v] : config.asObject()) {
      if (k != "mechanism") storedConfig.set(k, v);
    }
  }
  Json target = Json::object();
  target.set("id", Json(id));
  target.set("projectId", Json(project));
  target.set("name", name);
  if (description.isString()) target.set("description", description);
  target.set("agentType", agentType);
  target.set("capabilities", body.get("capabilities"));
  target.set("boundaries", boundaries.isNull()
                               ? Json(Json::Array{Json("corporate"), Json("corporate-adjacent"),
                                                  Json("personal"), Json("open-source")})
                               : boundaries);
  target.set("mechanism", Json(mech));
  target.set("config", std::move(storedConfig));
  target.set("status", Json("available"));
  if (healthCheck.isObject()) {
    Json hc = Json::object();
    hc.set("enabled", healthCheck.get("enabled"));
    hc.set("intervalMs", Json(positiveOr(healthCheck.get("intervalMs"), kDefaultHealthIntervalMs)));
    hc.set("timeoutMs",
           Json(healthTimeoutOr(healthCheck.get("timeoutMs"), kDefaultHealthTimeoutMs)));
    target.set("healthCheck", std::move(hc));
  }
  target.set("healthStatus", Json("unknown"));
  target.set("registeredBy", Json("api"));
  target.set("registeredAt", Json(nowIso));
  target.set("updatedAt", Json(nowIso));
  target.set("useCount", Json(0));
  if (tags.isArray()) target.set("tags", tags);

  // The name reservation first: create() has exactly one winner, on every
  // backend and across instances.
  const std::string key = reservationKey(project, name.asString());
  Json reservation = Json::object();
  reservation.set("id", Json(id));
  reservation.set("reservedAt", Json(nowIso));
  const Status duplicate =
      Status::alreadyExists("Target with name '" + name.asString() + "' already exists");
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
  return target;
}

Result<Json> Targets::update(const std::string& ref, const std::optional<std::string>& projectId,
                             const Json& body) {
  // Validation, in the order of the docs/api.md §2.6 PUT table.
  const Json& description = body.get("description");
  if (!description.isNull()) {
    if (!description.isString()) return invalid("description must be a string");
    if (description.asString().size() > kMaxDescription) {
      return invalid("description exceeds 65536 bytes");
    }
  }
  const Json& capabilities = body.get("capabilities");
  if (!capabilities.isNull()) {
    if (auto s = checkCapabilities(capabilities); !s) return s;
  }
  const Json& boundaries = body.get("boundaries");
  if (!boundaries.isNull()) {
    if (auto s = checkBoundaries(boundaries); !s) return s;
  }
  const Json& tags = body.get("tags");
  if (!tags.isNull()) {
    if (auto s = checkTags(tags); !s) return s;
  }
  const Json& config = body.get("config");
  if (!config.isNull() && !config.isObject()) return invalid("config must be an object");
  const Json& healthCheck = body.get("healthCheck");
  if (!healthCheck.isNull()) {
    if (auto s = checkHealthCheck(healthCheck, false); !s) return s;
  }

  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  const std::string& mech = resolved->record->mechanism;
  if (auto problem = configProblem(config, mech); !problem.empty()) return invalid(problem);
  if (const Json& cm = config.get("mechanism"); !cm.isNull() && cm != Json(mech)) {
    return invalid("config.mechanism must match top-level mechanism (" + mech + ")");
  }

  auto updated = modify(resolved->record->id, [&](const TargetRecord& current, Json& target) {
    if (description.isString()) target.set("description", description);
    if (capabilities.isArray()) target.set("capabilities", capabilities);
    if (boundaries.isArray()) target.set("boundaries", boundaries);
    if (tags.isArray()) target.set("tags", tags);
    if (config.isObject()) {
      // Shallow merge: top-level keys replaced.
      Json merged = current.config().isObject() ? current.config() : Json::object();
      for (const auto& [k, v] : config.asObject()) merged.set(k, v);
      merged.set("mechanism", Json(current.mechanism));
      if (merged.dump().size() > kMaxConfig) return invalid("config exceeds 262144 bytes");
      target.set("config", std::move(merged));
    }
    if (healthCheck.isObject()) {
      const Json& existing = target.get("healthCheck");
      if (existing.isObject() || healthCheck.get("enabled").isBool()) {
        Json hc = Json::object();
        hc.set("enabled", healthCheck.get("enabled").isBool() ? healthCheck.get("enabled")
                                                              : Json(existing.getBool("enabled")));
        hc.set("intervalMs",
               Json(positiveOr(healthCheck.get("intervalMs"),
                               positiveOr(existing.get("intervalMs"), kDefaultHealthIntervalMs))));
        hc.set("timeoutMs",
               Json(positiveOr(healthCheck.get("timeoutMs"),
                               positiveOr(existing.get("timeoutMs"), kDefaultHealthTimeoutMs))));
        target.set("healthCheck", std::move(hc));
      }
    }
    target.set("updatedAt", Json(formatIso(ctx_.now())));
    return Status::ok();
  });
  if (!updated) return updated.code() == Code::NotFound ? targetNotFound(ref) : updated.status();
  publishTarget("update", **updated);
  return (*updated)->target;
}

Result<Json> Targets::remove(const std::string& ref, const std::optional<std::string>& projectId) {
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
  Json out = Json::object();
  out.set("success", Json(true));
  out.set("message", Json("Target " + ref + " removed"));
  return out;
}

Result<Json> Targets::setEnabled(const std::string& ref,
                                 const std::optional<std::string>& projectId, bool enabled) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  auto updated = modify(resolved->record->id, [&](const TargetRecord&, Json& target) {
    target.set("status", Json(enabled ? "available" : "disabled"));
    target.erase("lastError");
    target.set("updatedAt", Json(formatIso(ctx_.now())));
    return Status::ok();
  });
  if (!updated) return updated.code() == Code::NotFound ? targetNotFound(ref) : updated.status();
  publishTarget("update", **updated);
  Json out = Json::object();
  out.set("success", Json(true));
  out.set("message", Json("Target " + ref + (enabled ? " enabled" : " disabled")));
  return out;
}

Result<Json> Targets::enable(const std::string& ref, const std::optional<std::string>& projectId) {
  return setEnabled(ref, projectId, true);
}

Result<Json> Targets::disable(const std::string& ref, const std::optional<std::string>& projectId) {
  return setEnabled(ref, projectId, false);
}

Result<Json> Targets::disableBatch(const Json& body) {
  const Json& filter = body.get("filter");
  const Json& ids = body.get("targetIds");
  // The checks of §2.6 in order, with the truthiness their wording comes
  // from: any value other than an empty list counts as "given".
  const bool idsGiven = !isFalsy(ids) && !(ids.isArray() && ids.asArray().empty());
  if (isFalsy(filter) && !idsGiven) return invalid("Either filter or targetIds must be provided");
  if (!ids.isNull() && !ids.isArray()) return invalid("targetIds must be an array");
  if (!isFalsy(filter) && !filter.isObject()) return invalid("filter must be an object");
  if (idsGiven && ids.asArray().size() > kMaxBatch) return invalid("targetIds exceeds 1000 items");
  const Json& fType = filter.get("agentType");
  if (!fType.isNull() && !(fType.isString() && isAgentTypeName(fType.asString()))) {
    return invalid("filter.agentType must be copilot-cli or claude-code");
  }
  const Json& fStatus = filter.get("status");
  if (!fStatus.isNull() && !fStatus.isString()) return invalid("filter.status must be a string");
  const Json& fMechanism = filter.get("mechanism");
  if (!fMechanism.isNull() && !fMechanism.isString()) {
    return invalid("filter.mechanism must be a string");
  }
  std::optional<std::string> projectId;
  if (body.get("projectId").isString()) projectId = body.get("projectId").asString();
  if (auto s = ready(); !s) return s;

  BatchResult batch;
  std::vector<std::string> selected;  // resolved ids, in order
  if (idsGiven) {
    for (const auto& entry : ids.asArray()) {
      const std::string given = shown(entry);
      if (!entry.isString()) {
        batch.fail(given, "Target not found");
        continue;
      }
      auto resolved = resolve(given, projectId);
      if (!resolved) {
        if (resolved.status().isOutage()) return resolved.status();  // stop at an outage (§1.9)
        batch.fail(given, "Target not found");
        continue;
      }
      selected.push_back(resolved->record->id);
    }
  } else {
    std::vector<std::shared_ptr<const TargetRecord>> rows;
    view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
      if (projectId && t->projectId != *projectId) return;
      if (fType.isString() && t->agentType != fType.asString()) return;
      if (fStatus.isString() && t->status != fStatus.asString()) return;
      if (fMechanism.isString() && t->mechanism != fMechanism.asString()) return;
      rows.push_back(t);
    });
    sortByRegistration(rows);
    for (const auto& r : rows) selected.push_back(r->id);
  }

  Json disabledTargets = Json::array(), alreadyDisabled = Json::array();
  std::set<std::string> done;
  for (const auto& id : selected) {
    if (!done.insert(id).second) continue;  // named twice: processed once
    bool already = false;
    auto updated = modify(id, [&](const TargetRecord& current, Json& target) {
      if (current.status == "disabled") {
        already = true;
        return Status(Code::AlreadyExists, "already disabled");  // no write
      }
      target.set("status", Json("disabled"));
      target.erase("lastError");
      target.set("updatedAt", Json(formatIso(ctx_.now())));
      return Status::ok();
    });
    if (already) {
      batch.succeed(id);
      alreadyDisabled.push(Json(id));
    } else if (updated) {
      batch.succeed(id);
      disabledTargets.push(Json(id));
      publishTarget("update", **updated);
    } else if (updated.code() == Code::NotFound) {
      batch.fail(id, "Target not found");
    } else {
      return updated.status();
    }
  }
  Json out = batch.toJson(ctx_.now());
  out.set("disabledTargets", std::move(disabledTargets));
  out.set("alreadyDisabled", std::move(alreadyDisabled));
  return out;
}

}  // namespace weft
