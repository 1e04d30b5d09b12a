#include "target_rules.h"

#include <algorithm>

#include "weft/ids.h"

namespace weft::target_rules {

Status invalid(std::string message) {
  return Status::invalidArgument(std::move(message));
}

Status targetNotFound(const std::string& ref) {
  return Status::notFound("Target with ID or name " + ref + " not found");
}

std::vector<std::string> stringsOf(const Json& v) {
  std::vector<std::string> out;
  if (!v.isArray()) return out;
  for (const auto& e : v.asArray()) {
    if (e.isString()) out.push_back(e.asString());
  }
  return out;
}

Status checkCapabilities(const Json& v) {
  if (!v.isArray()) return invalid("capabilities must be a non-empty array");
  if (v.asArray().empty()) return invalid("capabilities must contain at least one item");
  if (v.asArray().size() > kMaxItems) return invalid("capabilities exceeds 256 items");
  for (const auto& c : v.asArray()) {
    if (!c.isString() || isBlank(c.asString())) {
      return invalid("Each capability must be a non-empty string");
    }
    if (c.asString().size() > kMaxShortString) return invalid("capability exceeds 256 bytes");
  }
  return Status::ok();
}

Status checkBoundaries(const Json& v) {
  if (!v.isArray()) return invalid("boundaries must be an array");
  if (v.asArray().size() > kMaxItems) return invalid("boundaries exceeds 256 items");
  for (const auto& b : v.asArray()) {
    if (!b.isString() || isBlank(b.asString())) {
      return invalid("Each boundary must be a non-empty string");
    }
    if (b.asString().size() > kMaxShortString) return invalid("boundary exceeds 256 bytes");
  }
  return Status::ok();
}

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

int64_t positiveOr(const Json& v, int64_t fallback) {
  return v.isInteger() && v.asInt() > 0 ? v.asInt() : fallback;
}

int64_t healthTimeoutOr(const Json& v, int64_t fallback) {
  return std::min(positiveOr(v, fallback), kMaxHealthTimeoutMs);
}

std::string configProblem(const Json& config, const std::string& mechanism) {
  if (mechanism != "github-actions" || !config.isObject()) return "";
  const Json& cfg = spinup::settingsOf(config, mechanism);
  for (const char* field : {"workflow", "workflowFile"}) {
    const Json& w = cfg.get(field);
    if (w.isString() && !w.asString().empty() && !spinup::isValidWorkflow(w.asString())) {
      return std::string("config.") + field +
             " must be one path segment: a workflow file name or id (no / \\ % ? #, not . or ..)";
    }
  }
  return "";
}

void sortByRegistration(std::vector<std::shared_ptr<const TargetRecord>>& rows) {
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    if (a->registeredAtMs != b->registeredAtMs) return a->registeredAtMs < b->registeredAtMs;
    return a->id < b->id;
  });
}

std::set<std::string> changedMembers(const Json& a, const Json& b) {
  std::set<std::string> out;
  if (a.isObject()) {
    for (const auto& [k, v] : a.asObject()) {
      const Json* other = b.find(k);
      if (!other || *other != v) out.insert(k);
    }
  }
  if (b.isObject()) {
    for (const auto& [k, v] : b.asObject()) {
      if (!a.find(k)) out.insert(k);
    }
  }
  return out;
}
}  // namespace weft::target_rules

