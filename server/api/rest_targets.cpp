#include "api/rest_targets.h"

#include <algorithm>

#include "api/rest_common.h"
#include "weft/clock.h"
#include "weft/field_rules.h"
#include "weft/spin_up_mechanisms.h"

namespace weft::rest {

namespace {

constexpr size_t kMaxShortString = 256;
constexpr size_t kMaxItems = 256;
constexpr size_t kMaxDescription = 64 * 1024;
constexpr size_t kMaxBatch = 1000;
constexpr int64_t kMaxHealthTimeoutMs = kMaxTargetHealthTimeoutMs;

Status invalid(std::string message) { return Status::invalidArgument(std::move(message)); }

// An array of at most 256 non-blank strings of at most 256 bytes each (and
// at least one when required), named `list`, its elements `item`.
Status checkNames(const Json& v, const std::string& list, const std::string& item,
                  bool required) {
  if (!v.isArray()) {
    return invalid(list + (required ? " must be a non-empty array" : " must be an array"));
  }
  if (required && v.asArray().empty()) return invalid(list + " must contain at least one item");
  if (v.asArray().size() > kMaxItems) return invalid(list + " exceeds 256 items");
  for (const auto& e : v.asArray()) {
    if (!e.isString() || isBlank(e.asString())) {
      return invalid("Each " + item + " must be a non-empty string");
    }
    if (e.asString().size() > kMaxShortString) return invalid(item + " exceeds 256 bytes");
  }
  return Status::ok();
}

Status checkCapabilities(const Json& v) {
  return checkNames(v, "capabilities", "capability", true);
}

Status checkBoundaries(const Json& v) { return checkNames(v, "boundaries", "boundary", false); }

Status checkTags(const Json& v) {
  if (!v.isArray() || std::any_of(v.asArray().begin(), v.asArray().end(),
                                  [](const Json& t) { return !t.isString(); })) {
    return invalid("tags must be an array of strings");
  }
  if (v.asArray().size() > kMaxItems) return invalid("tags exceeds 256 items");
  for (const Json& t : v.asArray()) {
    if (t.asString().size() > kMaxShortString) return invalid("tag exceeds 256 bytes");
  }
  return Status::ok();
}

Status checkHealthCheck(const Json& v, bool enabledRequired) {
  if (!v.isObject()) return invalid("healthCheck.enabled must be a boolean");
  const Json& enabled = v.get("enabled");
  if (enabledRequired ? !enabled.isBool() : (!enabled.isNull() && !enabled.isBool())) {
    return invalid("healthCheck.enabled must be a boolean");
  }
  if (const Json& t = v.get("timeoutMs"); t.isNumber() && t.asDouble() > kMaxHealthTimeoutMs) {
    return invalid("healthCheck.timeoutMs must be at most " + std::to_string(kMaxHealthTimeoutMs));
  }
  return Status::ok();
}

// The strings of a list that passed one of the checks above.
std::vector<std::string> strings(const Json& list) {
  std::vector<std::string> out;
  for (const auto& e : list.asArray()) out.push_back(e.asString());
  return out;
}

// An optional list member: absent (null), or one that passes `check`.
Status parseList(const Json& v, Status (*check)(const Json&),
                 std::optional<std::vector<std::string>>& out) {
  if (v.isNull()) return Status::ok();
  if (auto s = check(v); !s) return s;
  out = strings(v);
  return Status::ok();
}

// An optional healthCheck member: what of it is used.
Status parseHealthCheck(const Json& v, bool enabledRequired,
                        std::optional<HealthCheckRequest>& out) {
  if (v.isNull()) return Status::ok();
  if (auto s = checkHealthCheck(v, enabledRequired); !s) return s;
  auto positive = [](const Json& n) -> std::optional<int64_t> {
    if (n.isInteger() && n.asInt() > 0) return n.asInt();
    return std::nullopt;
  };
  HealthCheckRequest hc;
  if (v.get("enabled").isBool()) hc.enabled = v.get("enabled").asBool();
  hc.intervalMs = positive(v.get("intervalMs"));
  hc.timeoutMs = positive(v.get("timeoutMs"));
  out = hc;
  return Status::ok();
}

}  // namespace

Result<CreateTargetRequest> parseCreateTargetRequest(const Json& body) {
  // In the order of the docs/api.md §2.6 table.
  CreateTargetRequest r;
  const Json& name = body.get("name");
  if (!name.isString() || isBlank(name.asString())) return invalid("name is required");
  if (name.asString().size() > kMaxShortString) return invalid("name exceeds 256 bytes");
  r.name = name.asString();
  const Json& agentType = body.get("agentType");
  if (agentType.isNull()) return invalid("agentType is required");
  if (!agentType.isString() || !isAgentTypeName(agentType.asString())) {
    return invalid("Invalid agentType: " + shown(agentType) +
                   ". Must be copilot-cli or claude-code");
  }
  r.agentType = agentType.asString();
  const Json& capabilities = body.get("capabilities");
  if (auto s = checkCapabilities(capabilities); !s) return s;
  r.capabilities = strings(capabilities);
  const Json& mechanism = body.get("mechanism");
  if (mechanism.isNull()) return invalid("mechanism is required");
  if (!mechanism.isString() || !spinup::isMechanism(mechanism.asString())) {
    return invalid("Invalid mechanism: " + shown(mechanism) +
                   ". Must be one of: ssh, github-actions, local, webhook, kubernetes");
  }
  r.mechanism = mechanism.asString();
  const Json& config = body.get("config");
  if (!config.isNull() && !config.isObject()) return invalid("config must be an object");
  if (const Json& cm = config.get("mechanism"); !cm.isNull() && cm != mechanism) {
    return invalid("config.mechanism must match top-level mechanism (" + r.mechanism + ")");
  }
  if (config.isObject() && config.dump().size() > kMaxTargetConfigBytes) {
    return invalid("config exceeds 262144 bytes");
  }
  if (auto problem = targetConfigProblem(config, r.mechanism); !problem.empty()) {
    return invalid(problem);
  }
  if (config.isObject()) r.config = config;
  if (auto s = parseList(body.get("boundaries"), checkBoundaries, r.boundaries); !s) return s;
  if (auto s = parseList(body.get("tags"), checkTags, r.tags); !s) return s;
  if (auto s = parseHealthCheck(body.get("healthCheck"), true, r.healthCheck); !s) return s;
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  if (projectId.isString()) r.projectId = projectId.asString();
  // A description that is not a string is left out.
  const Json& description = body.get("description");
  if (description.isString()) {
    if (description.asString().size() > kMaxDescription) {
      return invalid("description exceeds 65536 bytes");
    }
    r.description = description.asString();
  }
  return r;
}

Result<UpdateTargetRequest> parseUpdateTargetRequest(const Json& body) {
  // In the order of the docs/api.md §2.6 PUT table.
  UpdateTargetRequest r;
  const Json& description = body.get("description");
  if (!description.isNull()) {
    if (!description.isString()) return invalid("description must be a string");
    if (description.asString().size() > kMaxDescription) {
      return invalid("description exceeds 65536 bytes");
    }
    r.description = description.asString();
  }
  if (auto s = parseList(body.get("capabilities"), checkCapabilities, r.capabilities); !s) {
    return s;
  }
  if (auto s = parseList(body.get("boundaries"), checkBoundaries, r.boundaries); !s) return s;
  if (auto s = parseList(body.get("tags"), checkTags, r.tags); !s) return s;
  const Json& config = body.get("config");
  if (!config.isNull() && !config.isObject()) return invalid("config must be an object");
  if (config.isObject()) r.config = config;
  if (auto s = parseHealthCheck(body.get("healthCheck"), false, r.healthCheck); !s) return s;
  return r;
}

Result<DisableBatchRequest> parseDisableBatchRequest(const Json& body) {
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

  DisableBatchRequest r;
  if (idsGiven) {
    std::vector<DisableBatchRequest::Ref> refs;
    for (const auto& entry : ids.asArray()) refs.push_back({shown(entry), entry.isString()});
    r.targetIds = std::move(refs);
  }
  if (body.get("projectId").isString()) r.projectId = body.get("projectId").asString();
  if (fType.isString()) r.agentType = fType.asString();
  if (fStatus.isString()) r.status = fStatus.asString();
  if (fMechanism.isString()) r.mechanism = fMechanism.asString();
  return r;
}

Json toJson(const TargetRecord& target) { return target.target; }

Result<Json> rendered(const Result<std::shared_ptr<const TargetRecord>>& result) {
  if (!result) return result.status();
  return toJson(**result);
}

Json toJson(const TargetPage& page) {
  return pageJson("targets", page.targets, page.pager, page.total,
                  [](const TargetRecord& t) { return toJson(t); });
}

Json toJson(const TargetChange& change) {
  const char* done = change.action == TargetChange::Action::Removed   ? " removed"
                     : change.action == TargetChange::Action::Enabled ? " enabled"
                                                                      : " disabled";
  return successMessage("Target " + change.ref + done);
}

Json toJson(const DisableBatchResult& result) {
  Json out = result.batch.toJson(result.completedAtMs);
  out.set("disabledTargets", Json::stringArray(result.disabledTargets));
  out.set("alreadyDisabled", Json::stringArray(result.alreadyDisabled));
  return out;
}

Json toJson(const TargetTestResult& result) {
  Json out = Json::object();
  out.set("healthy", Json(result.healthy));
  out.set("latencyMs", Json(result.latencyMs));
  out.set("responseTimeMs", Json(result.latencyMs));
  if (!result.healthy) out.set("error", Json(result.error));
  out.set("targetId", Json(result.targetId));
  out.set("timestamp", Json(formatIso(result.timestampMs)));
  return out;
}

Json toJson(const SpinUpStarted& started) {
  Json out = Json::object();
  out.set("operationId", Json(started.operationId));
  out.set("targetName", Json(started.targetName));
  out.set("targetId", Json(started.targetId));
  out.set("status", Json(started.status));
  out.set("success", Json(true));
  out.set("timestamp", Json(formatIso(started.timestampMs)));
  return out;
}

}  // namespace weft::rest
