#include "weft/agent_registry.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/field_rules.h"
#include "weft/ids.h"
#include "weft/log.h"

namespace weft {

namespace {

constexpr int kMaxCasAttempts = 16;
constexpr size_t kMaxStringBytes = 256;
// The metadata object of a registration, serialised.
constexpr size_t kMaxMetadataBytes = 64 * 1024;
constexpr size_t kMaxListItems = 256;

// An array of non-blank strings (may be empty).
bool isStringList(const Json& v) {
  if (!v.isArray()) return false;
  for (const auto& e : v.asArray()) {
    if (!e.isString() || isBlank(e.asString())) return false;
  }
  return true;
}

Status invalid(std::string message) { return Status::invalidArgument(std::move(message)); }

Status notFound(const std::string& guid) {
  return Status::notFound("Agent with GUID " + guid + " not found");
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

}  // namespace

bool AgentRecord::hasCapability(const std::string& c) const {
  return std::find(capabilities.begin(), capabilities.end(), c) != capabilities.end();
}

std::shared_ptr<const AgentRecord> AgentRegistry::decode(const std::string& value,
                                                         const std::string& defaultProject) {
  auto parsed = Json::parse(value, 64);
  if (!parsed || !parsed->isObject()) return nullptr;
  const Json& guid = parsed->get("guid");
  if (!guid.isString() || guid.asString().empty()) return nullptr;

  auto r = std::make_shared<AgentRecord>();
  r->entry = std::move(*parsed);
  const Json& e = r->entry;
  r->guid = guid.asString();
  r->projectId = e.getString("projectId", defaultProject);
  r->status = e.getString("status");
  const Json& caps = e.get("capabilities");
  if (caps.isArray()) {
    for (const auto& c : caps.asArray()) {
      if (c.isString()) r->capabilities.push_back(c.asString());
    }
  }
  const Json& metadata = e.get("metadata");
  const Json& metaType = metadata.get("agentType");
  const Json& topType = e.get("agentType");
  r->agentType = isAgentTypeValue(metaType)  ? metaType.asString()
                 : isAgentTypeValue(topType) ? topType.asString()
                                            : "claude-code";
  const Json& bounds = metadata.get("boundaries");
  bool allStrings = bounds.isArray() && std::all_of(bounds.asArray().begin(),
                                                    bounds.asArray().end(),
                                                    [](const Json& b) { return b.isString(); });
  if (allStrings) {
    r->declaredBoundaries = true;
    for (const auto& b : bounds.asArray()) r->boundaries.push_back(b.asString());
  } else {
    r->boundaries = {"default"};
  }
  if (const Json* hb = e.find("lastHeartbeat"); hb && hb->isString()) {
    r->lastHeartbeatMs = parseIso(hb->asString());
  }
  if (const Json* ra = e.find("registeredAt"); ra && ra->isString()) {
    r->registeredAtMs = parseIso(ra->asString());
  }
  r->currentTaskCount = e.getInt("currentTaskCount", 0);

  // Pre-render the RegisteredAgent once per change: lists then only append
  // the time-dependent `stale` flag.
  Json out = Json::object();
  auto copyIf = [&](const char* field, Json::Type type) {
    const Json* v = e.find(field);
    if (v && v->type() == type) out.set(field, *v);
  };
  auto copyInt = [&](const char* field) {
    const Json* v = e.find(field);
    if (v && v->isInteger()) out.set(field, Json(v->asInt()));
  };
  copyIf("guid", Json::Type::String);
  copyIf("handle", Json::Type::String);
  copyIf("status", Json::Type::String);
  Json capsOut = Json::array();
  for (const auto& c : r->capabilities) capsOut.push(Json(c));
  out.set("capabilities", std::move(capsOut));
  copyIf("hostname", Json::Type::String);
  copyIf("projectId", Json::Type::String);
  copyIf("username", Json::Type::String);
  copyIf("scope", Json::Type::String);
  copyIf("visibility", Json::Type::String);
  copyInt("currentTaskCount");
  copyInt("maxConcurrentTasks");
  copyInt("spindownAfterIdleMs");
  copyIf("registeredAt", Json::Type::String);
  copyIf("lastHeartbeat", Json::Type::String);
  copyIf("lastActivity", Json::Type::String);
  copyIf("shutdownRequested", Json::Type::Object);
  if (topType.isString()) out.set("role", topType);
  out.set("agentType", Json(r->agentType));
  Json boundsOut = Json::array();
  for (const auto& b : r->boundaries) boundsOut.push(Json(b));
  out.set("boundaries", std::move(boundsOut));
  r->renderedPrefix = out.dump();
  r->renderedPrefix.pop_back();  // the closing brace; `stale` is appended per request
  return r;
}

AgentRegistry::AgentRegistry(ServiceContext context) : ctx_(std::move(context)) {
  View::Options options;
  options.bucket.maxAgeMs = ctx_.options.registryMaxAgeMs;
  // Agents that write the bucket directly created it with unlimited history;
  // a bucket Weft creates must match (docs/api.md §6.3).
  options.bucket.history = 0;
  // Entries that expire by max age or TTL produce no watch event.
  options.resyncIntervalMs = 30000;
  std::string defaultProject = ctx_.options.defaultProject;
  view_ = std::make_unique<View>(
      kAgentBucket, options,
      [defaultProject](const std::string&, const std::string& value) {
        return decode(value, defaultProject);
      });
}

AgentRegistry::~AgentRegistry() { stop(); }

void AgentRegistry::start() { view_->start(ctx_.store); }
void AgentRegistry::stop() { view_->stop(); }

Status AgentRegistry::ready() const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  if (!view_->ready()) return Status::unavailable("agent registry not loaded yet");
  return Status::ok();
}

std::shared_ptr<KvBucket> AgentRegistry::bucket() const { return view_->bucket(); }

Json AgentRegistry::render(const AgentRecord& record) const {
  std::string text = record.renderedPrefix;
  text += record.isStale(ctx_.now(), ctx_.options.staleAfterMs) ? ",\"stale\":true}"
                                                                : ",\"stale\":false}";
  return Json::parse(text, 64).value();
}

Json AgentRegistry::summary(const std::string& guid) const {
  auto r = view_->find(guid);
  if (!r) return Json();
  Json s = Json::object();
  s.set("guid", Json(r->guid));
  if (const Json* h = r->entry.find("handle"); h && h->isString()) s.set("handle", *h);
  s.set("agentType", Json(r->agentType));
  if (const Json* h = r->entry.find("hostname"); h && h->isString()) s.set("hostname", *h);
  return s;
}

Result<JsonListStream> AgentRegistry::listStream(const AgentFilter& f,
                                                const PageRequest& page) const {
  Json filters = Json::object();
  if (f.type) filters.set("type", Json(*f.type));
  if (f.status) filters.set("status", Json(*f.status));
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("agents", filters, page);
  if (!pager) return pager.status();
  if (auto s = ready(); !s) return s;

  auto rows = std::make_shared<std::vector<std::shared_ptr<const AgentRecord>>>();
  view_->forEach([&](const std::string&, const std::shared_ptr<const AgentRecord>& r) {
    if (f.type && r->agentType != *f.type) return;
    if (f.status && r->status != *f.status) return;
    if (f.capability && !r->hasCapability(*f.capability)) return;
    if (f.projectId && r->projectId != *f.projectId) return;
    rows->push_back(r);
  });
  std::sort(rows->begin(), rows->end(), [](const auto& a, const auto& b) {
    if (a->registeredAtMs.has_value() != b->registeredAtMs.has_value()) {
      return !a->registeredAtMs.has_value();
    }
    if (a->registeredAtMs && *a->registeredAtMs != *b->registeredAtMs) {
      return *a->registeredAtMs < *b->registeredAtMs;
    }
    return a->guid < b->guid;
  });

  const size_t begin = pager->begin(rows->size());
  const size_t end = pager->end(rows->size());
  JsonListStream out;
  out.head = "{\"agents\":[";
  out.count = end - begin;
  // Staleness is judged once, at the time of the request, for every element.
  const int64_t now = ctx_.now();
  const int64_t staleAfterMs = ctx_.options.staleAfterMs;
  out.element = [rows, begin, now, staleAfterMs](size_t i, std::string& text) {
    const AgentRecord& r = *(*rows)[begin + i];
    text += r.renderedPrefix;
    text += r.isStale(now, staleAfterMs) ? ",\"stale\":true}" : ",\"stale\":false}";
  };
  out.tail = pager->listTail(rows->size());
  return out;
}

Result<std::string> AgentRegistry::list(const AgentFilter& f, const PageRequest& page) const {
  auto stream = listStream(f, page);
  if (!stream) return stream.status();
  return stream->renderAll();
}

Result<std::shared_ptr<const AgentRecord>> AgentRegistry::fetch(const std::string& guid) const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  auto b = bucket();
  if (!b) return Status::unavailable("agent registry not open yet");
  auto entry = b->get(guid);
  if (!entry) {
    if (entry.code() == Code::NotFound || entry.code() == Code::InvalidArgument) {
      return notFound(guid);
    }
    return entry.status();
  }
  auto record = decode(entry->value, ctx_.options.defaultProject);
  if (!record) return notFound(guid);
  return record;
}

Result<Json> AgentRegistry::get(const std::string& guid) const {
  auto record = fetch(guid);
  if (!record) return record.status();
  return render(**record);
}

namespace {

// Validates a registration body (docs/api.md §2.2 table order) and builds the
// entry to store.
Result<Json> buildRegistration(const Json& body, const std::string& defaultProject,
                               const std::string& nowIso) {
  Json entry = Json::object();
  const Json& guid = body.get("guid");
  if (!guid.isNull()) {
    if (!guid.isString() || !isValidGuid(guid.asString())) {
      return invalid("guid must be 1-128 characters from [A-Za-z0-9_-]");
    }
    entry.set("guid", guid);
  } else {
    entry.set("guid", Json(newUuid()));
  }
  const Json& handle = body.get("handle");
  if (!handle.isString() || isBlank(handle.asString())) return invalid("handle is required");
  if (handle.asString().size() > kMaxStringBytes) return invalid("handle exceeds 256 bytes");
  const Json& caps = body.get("capabilities");
  if (!isStringList(caps)) return invalid("capabilities must be an array of non-empty strings");
  if (auto s = checkListSizes(caps, "capabilities", "capability"); !s) return s;
  const Json& agentType = body.get("agentType");
  if (!agentType.isNull() && !agentType.isString()) return invalid("agentType must be a string");
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  for (const char* field : {"hostname", "username", "natsUrl"}) {
    const Json& v = body.get(field);
    if (!v.isNull() && !v.isString()) return invalid(std::string(field) + " must be a string");
    if (v.isString() && v.asString().size() > kMaxStringBytes) {
      return invalid(std::string(field) + " exceeds " + std::to_string(kMaxStringBytes) + " bytes");
    }
  }
  const Json& scope = body.get("scope");
  if (!scope.isNull()) {
    static const char* kScopes[] = {"private", "personal", "team", "public"};
    if (!scope.isString() ||
        std::none_of(std::begin(kScopes), std::end(kScopes),
                     [&](const char* s) { return scope.asString() == s; })) {
      return invalid("scope must be one of: private, personal, team, public");
    }
  }
  const Json& visibility = body.get("visibility");
  if (!visibility.isNull()) {
    static const char* kVis[] = {"private", "project-only", "user-only", "public"};
    if (!visibility.isString() ||
        std::none_of(std::begin(kVis), std::end(kVis),
                     [&](const char* s) { return visibility.asString() == s; })) {
      return invalid("visibility must be one of: private, project-only, user-only, public");
    }
  }
  const Json& taskCount = body.get("currentTaskCount");
  if (!taskCount.isNull() && (!taskCount.isInteger() || taskCount.asInt() < 0)) {
    return invalid("currentTaskCount must be a non-negative integer");
  }
  const Json& maxTasks = body.get("maxConcurrentTasks");
  if (!maxTasks.isNull() && (!maxTasks.isInteger() || maxTasks.asInt() < 1)) {
    return invalid("maxConcurrentTasks must be a positive integer");
  }
  const Json& spindown = body.get("spindownAfterIdleMs");
  if (!spindown.isNull() && (!spindown.isInteger() || spindown.asInt() < 0)) {
    return invalid("spindownAfterIdleMs must be a non-negative integer");
  }
  const Json& metadata = body.get("metadata");
  if (!metadata.isNull()) {
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
  }

  // The stored entry: the same shape agents write directly (§3.1).
  if (agentType.isString()) entry.set("agentType", agentType);
  entry.set("handle", handle);
  for (const char* field : {"hostname", "natsUrl", "username"}) {
    const Json& v = body.get(field);
    if (v.isString()) entry.set(field, v);
  }
  entry.set("projectId", projectId.isString() ? projectId : Json(defaultProject));
  entry.set("capabilities", caps);
  entry.set("scope", scope.isString() ? scope : Json("team"));
  if (visibility.isString()) entry.set("visibility", visibility);
  entry.set("status", Json("online"));
  entry.set("currentTaskCount", Json(taskCount.isNull() ? int64_t{0} : taskCount.asInt()));
  if (!maxTasks.isNull()) entry.set("maxConcurrentTasks", Json(maxTasks.asInt()));
  if (!spindown.isNull()) entry.set("spindownAfterIdleMs", Json(spindown.asInt()));
  entry.set("registeredAt", Json(nowIso));
  entry.set("lastHeartbeat", Json(nowIso));
  if (metadata.isObject()) entry.set("metadata", metadata);
  return entry;
}

}  // namespace

Result<AgentRegistry::Registration> AgentRegistry::registerAgent(const Json& body) {
  auto built = buildRegistration(body, ctx_.options.defaultProject, formatIso(ctx_.now()));
  if (!built) return built.status();
  Json entry = std::move(*built);
  const std::string guid = entry.getString("guid");
  const std::string value = entry.dump();
  if (auto s = ctx_.checkConnected(); !s) return s;
  auto b = bucket();
  if (!b) return Status::unavailable("agent registry not open yet");

  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto current = b->get(guid);
    if (!current && current.code() != Code::NotFound) return current.status();
    Result<uint64_t> written = Status::internal("unreachable");
    bool created = true;
    if (!current) {
      written = b->create(guid, value);
    } else {
      auto existing = decode(current->value, ctx_.options.defaultProject);
      if (existing) {
        created = false;
        const Json& e = existing->entry;
        bool offline = existing->status == "offline";
        bool stale = existing->isStale(ctx_.now(), ctx_.options.staleAfterMs);
        const Json& newHost = entry.get("hostname");
        const Json& oldHost = e.get("hostname");
        bool sameAgent = e.get("handle") == entry.get("handle") &&
                         existing->projectId == entry.getString("projectId") &&
                         !(newHost.isString() && oldHost.isString() && newHost != oldHost);
        if (!offline && !stale && !sameAgent) {
          return Status::conflict("Agent with GUID " + guid + " is already registered and online");
        }
      }
      written = b->update(guid, value, current->revision);
    }
    if (written) {
      view_->applyPut(guid, value, *written);
      return Registration{render(*decode(value, ctx_.options.defaultProject)), created};
    }
    if (written.code() != Code::Conflict && written.code() != Code::AlreadyExists) {
      return written.status();
    }
  }
  return Status::unavailable("too much contention on agent " + guid);
}

Result<std::shared_ptr<const AgentRecord>> AgentRegistry::modify(
    const std::string& guid, const std::function<bool(Json& entry)>& mutate) {
  if (auto s = ctx_.checkConnected(); !s) return s;
  auto b = bucket();
  if (!b) return Status::unavailable("agent registry not open yet");
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto current = b->get(guid);
    if (!current) {
      if (current.code() == Code::NotFound || current.code() == Code::InvalidArgument) {
        return notFound(guid);
      }
      return current.status();
    }
    auto record = decode(current->value, ctx_.options.defaultProject);
    if (!record) return notFound(guid);
    Json entry = record->entry;
    if (!mutate(entry)) return record;
    std::string value = entry.dump();
    auto written = b->update(guid, value, current->revision);
    if (written) {
      view_->applyPut(guid, value, *written);
      return decode(value, ctx_.options.defaultProject);
    }
    if (written.code() != Code::Conflict) return written.status();
  }
  return Status::unavailable("too much contention on agent " + guid);
}

Result<Json> AgentRegistry::heartbeat(const std::string& guid, const Json& body) {
  const Json& status = body.get("status");
  if (!status.isNull() &&
      !(status.isString() && (status.asString() == "online" || status.asString() == "busy"))) {
    return invalid("status must be online or busy");
  }
  const Json& taskCount = body.get("currentTaskCount");
  if (!taskCount.isNull() && (!taskCount.isInteger() || taskCount.asInt() < 0)) {
    return invalid("currentTaskCount must be a non-negative integer");
  }
  const Json& caps = body.get("capabilities");
  if (!caps.isNull()) {
    if (!isStringList(caps)) return invalid("capabilities must be an array of non-empty strings");
    if (auto s = checkListSizes(caps, "capabilities", "capability"); !s) return s;
  }
  auto updated = modify(guid, [&](Json& entry) {
    entry.set("lastHeartbeat", Json(formatIso(ctx_.now())));
    if (!status.isNull()) entry.set("status", status);
    if (!taskCount.isNull()) entry.set("currentTaskCount", Json(taskCount.asInt()));
    if (!caps.isNull()) entry.set("capabilities", caps);
    return true;
  });
  if (!updated) return updated.status();
  return render(**updated);
}

Result<Json> AgentRegistry::deregister(const std::string& guid) {
  auto updated = modify(guid, [](Json& entry) {
    if (entry.getString("status") == "offline") return false;  // idempotent
    entry.set("status", Json("offline"));
    return true;
  });
  if (!updated) return updated.status();
  return render(**updated);
}

}  // namespace weft
