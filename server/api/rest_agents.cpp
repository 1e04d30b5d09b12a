#include "api/rest_agents.h"

#include <algorithm>

#include "api/rest_common.h"
#include "weft/field_rules.h"

namespace weft::rest {

namespace {

constexpr size_t kMaxStringBytes = 256;
// The metadata object of a registration, serialised.
constexpr size_t kMaxMetadataBytes = 64 * 1024;
constexpr size_t kMaxListItems = 256;
constexpr size_t kMaxBatchGuids = 1000;

Status invalid(std::string message) { return Status::invalidArgument(std::move(message)); }

// An array of non-blank strings (may be empty).
bool isStringList(const Json& v) {
  if (!v.isArray()) return false;
  for (const auto& e : v.asArray()) {
    if (!e.isString() || isBlank(e.asString())) return false;
  }
  return true;
}

// Checks the size rules of §1.9 for a list of capability/boundary strings.
Status checkListSizes(const Json& list, const char* listName, const char* itemName) {
  if (list.asArray().size() > kMaxListItems) {
    return invalid(std::string(listName) + " exceeds " + std::to_string(kMaxListItems) +
                   " items");
  }
  for (const auto& e : list.asArray()) {
    if (e.asString().size() > kMaxStringBytes) {
      return invalid(std::string(itemName) + " exceeds " + std::to_string(kMaxStringBytes) +
                     " bytes");
    }
  }
  return Status::ok();
}

// A capability list: an array of non-blank strings within the size rules.
Result<std::vector<std::string>> parseCapabilities(const Json& caps) {
  if (!isStringList(caps)) return invalid("capabilities must be an array of non-empty strings");
  if (auto s = checkListSizes(caps, "capabilities", "capability"); !s) return s;
  std::vector<std::string> out;
  for (const auto& c : caps.asArray()) out.push_back(c.asString());
  return out;
}

std::optional<std::string> optionalString(const Json& v) {
  if (!v.isString()) return std::nullopt;
  return v.asString();
}

bool isOneOf(const Json& v, std::initializer_list<const char*> values) {
  return v.isString() && std::any_of(values.begin(), values.end(),
                                     [&](const char* s) { return v.asString() == s; });
}

// `graceful`: anything but false counts as true.
bool gracefulOf(const Json& body) {
  const Json& graceful = body.get("graceful");
  return !(graceful.isBool() && !graceful.asBool());
}

Status checkMetadata(const Json& metadata) {
  if (!metadata.isObject()) return invalid("metadata must be an object");
  if (metadata.dump().size() > kMaxMetadataBytes) {
    return invalid("metadata exceeds " + std::to_string(kMaxMetadataBytes) + " bytes");
  }
  const Json& mt = metadata.get("agentType");
  if (!mt.isNull() && !isAgentTypeValue(mt)) {
    return invalid("metadata.agentType must be copilot-cli or claude-code");
  }
  const Json& mb = metadata.get("boundaries");
  if (!mb.isNull()) {
    if (!isStringList(mb)) {
      return invalid("metadata.boundaries must be an array of non-empty strings");
    }
    if (auto s = checkListSizes(mb, "metadata.boundaries", "boundary"); !s) return s;
  }
  return Status::ok();
}

// An optional integer member at least `min`.
Result<std::optional<int64_t>> optionalInt(const Json& body, const char* field, int64_t min,
                                           const char* rule) {
  const Json& v = body.get(field);
  if (v.isNull()) return std::optional<int64_t>();
  if (!v.isInteger() || v.asInt() < min) return invalid(std::string(field) + " must be " + rule);
  return std::optional<int64_t>(v.asInt());
}

}  // namespace

Result<RegisterRequest> parseRegisterRequest(const Json& body) {
  RegisterRequest r;
  const Json& guid = body.get("guid");
  if (!guid.isNull()) {
    if (!guid.isString() || !isValidGuid(guid.asString())) {
      return invalid("guid must be 1-128 characters from [A-Za-z0-9_-]");
    }
    r.guid = guid.asString();
  }
  const Json& handle = body.get("handle");
  if (!handle.isString() || isBlank(handle.asString())) return invalid("handle is required");
  if (handle.asString().size() > kMaxStringBytes) return invalid("handle exceeds 256 bytes");
  r.handle = handle.asString();
  auto caps = parseCapabilities(body.get("capabilities"));
  if (!caps) return caps.status();
  r.capabilities = std::move(*caps);
  const Json& agentType = body.get("agentType");
  if (!agentType.isNull() && !agentType.isString()) return invalid("agentType must be a string");
  r.agentType = optionalString(agentType);
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  r.projectId = optionalString(projectId);
  for (const char* field : {"hostname", "username", "natsUrl"}) {
    const Json& v = body.get(field);
    if (!v.isNull() && !v.isString()) return invalid(std::string(field) + " must be a string");
    if (v.isString() && v.asString().size() > kMaxStringBytes) {
      return invalid(std::string(field) + " exceeds " + std::to_string(kMaxStringBytes) + " bytes");
    }
  }
  r.hostname = optionalString(body.get("hostname"));
  r.username = optionalString(body.get("username"));
  r.natsUrl = optionalString(body.get("natsUrl"));
  const Json& scope = body.get("scope");
  if (!scope.isNull() && !isOneOf(scope, {"private", "personal", "team", "public"})) {
    return invalid("scope must be one of: private, personal, team, public");
  }
  r.scope = optionalString(scope);
  const Json& visibility = body.get("visibility");
  if (!visibility.isNull() &&
      !isOneOf(visibility, {"private", "project-only", "user-only", "public"})) {
    return invalid("visibility must be one of: private, project-only, user-only, public");
  }
  r.visibility = optionalString(visibility);
  auto taskCount = optionalInt(body, "currentTaskCount", 0, "a non-negative integer");
  if (!taskCount) return taskCount.status();
  r.currentTaskCount = *taskCount;
  auto maxTasks = optionalInt(body, "maxConcurrentTasks", 1, "a positive integer");
  if (!maxTasks) return maxTasks.status();
  r.maxConcurrentTasks = *maxTasks;
  auto spindown = optionalInt(body, "spindownAfterIdleMs", 0, "a non-negative integer");
  if (!spindown) return spindown.status();
  r.spindownAfterIdleMs = *spindown;
  const Json& metadata = body.get("metadata");
  if (!metadata.isNull()) {
    if (auto s = checkMetadata(metadata); !s) return s;
    r.metadata = metadata;
  }
  return r;
}

Result<HeartbeatRequest> parseHeartbeatRequest(const Json& body) {
  HeartbeatRequest r;
  const Json& status = body.get("status");
  if (!status.isNull() && !isOneOf(status, {"online", "busy"})) {
    return invalid("status must be online or busy");
  }
  r.status = optionalString(status);
  auto taskCount = optionalInt(body, "currentTaskCount", 0, "a non-negative integer");
  if (!taskCount) return taskCount.status();
  r.currentTaskCount = *taskCount;
  const Json& caps = body.get("capabilities");
  if (!caps.isNull()) {
    auto list = parseCapabilities(caps);
    if (!list) return list.status();
    r.capabilities = std::move(*list);
  }
  return r;
}

AgentRegistry::ShutdownRequest parseShutdownRequest(const Json& body) {
  AgentRegistry::ShutdownRequest request;
  request.graceful = gracefulOf(body);
  return request;
}

Result<AgentRegistry::ShutdownBatchRequest> parseShutdownBatchRequest(const Json& body) {
  const Json& filter = body.get("filter");
  const Json& guids = body.get("agentGuids");
  // The checks in order, with the truthiness their wording comes from.
  auto falsy = [](const Json& v) { return isFalsy(v); };
  const bool guidsGiven = !falsy(guids) && !(guids.isArray() && guids.asArray().empty());
  if (falsy(filter) && !guidsGiven) return invalid("Either filter or agentGuids must be provided");
  if (!guids.isNull() && !guids.isArray()) return invalid("agentGuids must be an array");
  if (!falsy(filter) && !filter.isObject()) return invalid("filter must be an object");
  const Json& fStatus = filter.get("status");
  if (!fStatus.isNull() && !fStatus.isString()) return invalid("filter.status must be a string");
  const Json& fIdle = filter.get("idleTimeMs");
  if (!fIdle.isNull() && !fIdle.isNumber()) return invalid("filter.idleTimeMs must be a number");
  const Json& fType = filter.get("agentType");
  if (!fType.isNull() && !isAgentTypeValue(fType)) {
    return invalid("filter.agentType must be copilot-cli or claude-code");
  }
  const Json& fBoundary = filter.get("boundary");
  if (!fBoundary.isNull() && !fBoundary.isString()) {
    return invalid("filter.boundary must be a string");
  }
  const Json& fCap = filter.get("capability");
  if (!fCap.isNull() && !fCap.isString()) return invalid("filter.capability must be a string");
  const Json& reason = body.get("reason");
  if (!reason.isNull() && !isOneOf(reason, {"manual", "scaling-down", "maintenance", "error"})) {
    return invalid("Invalid reason. Must be one of: manual, scaling-down, maintenance, error");
  }
  if (guidsGiven && guids.asArray().size() > kMaxBatchGuids) {
    return invalid("agentGuids exceeds " + std::to_string(kMaxBatchGuids) + " items");
  }

  AgentRegistry::ShutdownBatchRequest r;
  if (guidsGiven) {
    std::vector<std::string> list;
    for (const auto& g : guids.asArray()) list.push_back(shown(g));
    r.agentGuids = std::move(list);
  }
  r.projectId = optionalString(body.get("projectId"));
  r.status = optionalString(fStatus);
  r.agentType = optionalString(fType);
  r.boundary = optionalString(fBoundary);
  r.capability = optionalString(fCap);
  if (fIdle.isNumber()) r.idleTimeMs = fIdle.asDouble();
  r.request.graceful = gracefulOf(body);
  if (reason.isString()) r.request.reason = reason.asString();
  if (body.get("gracePeriodMs").isNumber()) {
    r.request.gracePeriodMs = static_cast<int64_t>(body.get("gracePeriodMs").asDouble());
  }
  return r;
}

namespace {

void appendAgent(const AgentRecord& agent, bool stale, std::string& out) {
  out += agent.renderedPrefix;
  out += stale ? ",\"stale\":true}" : ",\"stale\":false}";
}

}  // namespace

Json toJson(const AgentRecord& agent, bool stale) {
  std::string text;
  appendAgent(agent, stale, text);
  return Json::parse(text, 64).value();
}

Result<Json> rendered(const AgentRegistry& agents,
                      const Result<std::shared_ptr<const AgentRecord>>& result) {
  if (!result) return result.status();
  return toJson(**result, agents.isStale(**result));
}

JsonListStream toListStream(AgentPage page) {
  auto shared = std::make_shared<const AgentPage>(std::move(page));
  JsonListStream out;
  out.head = "{\"agents\":[";
  out.count = shared->agents.size();
  out.element = [shared](size_t i, std::string& text) {
    const AgentRecord& agent = *shared->agents[i];
    appendAgent(agent, shared->stale(agent), text);
  };
  out.tail = shared->pager.listTail(shared->total);
  return out;
}

Json toJson(const AgentRegistry::ShutdownSent& sent) {
  Json out = successMessage("Shutdown request sent to agent " + sent.guid);
  out.set("graceful", Json(sent.graceful));
  return out;
}

Json toJson(const AgentRegistry::ShutdownBatchResult& result) {
  Json out = result.batch.toJson(result.completedAtMs);
  out.set("shutdownAgents", result.batch.success());
  out.set("graceful", Json(result.graceful));
  return out;
}

}  // namespace weft::rest
