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

int64_t positiveOr(const Json& v, int64_t fallback) {
  return v.isInteger() && v.asInt() > 0 ? v.asInt() : fallback;
}

int64_t healthTimeoutOr(const Json& v, int64_t fallback) {
  return std::min(positiveOr(v, fallback), kMaxHealthTimeoutMs);
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

namespace weft {

std::string targetConfigProblem(const Json& config, const std::string& mechanism) {
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

}  // namespace weft

