#include "weft/agent_registry.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/field_rules.h"
#include "weft/ids.h"
#include "weft/log.h"

namespace weft {

namespace {

constexpr int kMaxCasAttempts = 16;

Status notFound(const std::string& guid) {
  return Status::notFound("Agent with GUID " + guid + " not found");
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

AgentRegistry::AgentRegistry(ServiceContext context)
    : ctx_(std::move(context)),
      listIndex_(std::make_unique<ListIndex<AgentListTraits>>()) {
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
  view_->addIndexer([this](const std::string&, const std::shared_ptr<const AgentRecord>& before,
                           const std::shared_ptr<const AgentRecord>& after) {
    listIndex_->update(before.get(), after.get());
  });
  loadInBulk(*view_, *listIndex_);
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

bool AgentRegistry::isStale(const AgentRecord& record) const {
  return record.isStale(ctx_.now(), ctx_.options.staleAfterMs);
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

Result<AgentPage> AgentRegistry::list(const AgentFilter& f, const PageRequest& page) const {
  Json filters = Json::object();
  if (f.type) filters.set("type", Json(*f.type));
  if (f.status) filters.set("status", Json(*f.status));
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("agents", filters, page);
  if (!pager) return pager.status();
  auto query = pageQuery<ListIndex<AgentListTraits>>(*pager);
  if (!query) return query.status();
  if (auto s = ready(); !s) return s;
  AgentPage out;
  out.pager = *pager;
  fillPage(*view_, *listIndex_, {f.type, f.status, f.capability, f.projectId}, *query, out.agents,
           out.total, out.pager);
  // Staleness is judged once, at the time of the request, for every agent.
  out.asOfMs = ctx_.now();
  out.staleAfterMs = ctx_.options.staleAfterMs;
  return out;
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

Result<std::shared_ptr<const AgentRecord>> AgentRegistry::get(const std::string& guid) const {
  return fetch(guid);
}

namespace {

// The entry a registration stores: the same shape agents write directly
// (§3.1), members in this order.
Json registrationEntry(const RegisterRequest& r, const std::string& guid,
                       const std::string& defaultProject, const std::string& nowIso) {
  Json entry = Json::object();
  entry.set("guid", Json(guid));
  if (r.agentType) entry.set("agentType", Json(*r.agentType));
  entry.set("handle", Json(r.handle));
  if (r.hostname) entry.set("hostname", Json(*r.hostname));
  if (r.natsUrl) entry.set("natsUrl", Json(*r.natsUrl));
  if (r.username) entry.set("username", Json(*r.username));
  entry.set("projectId", Json(r.projectId.value_or(defaultProject)));
  entry.set("capabilities", Json::stringArray(r.capabilities));
  entry.set("scope", Json(r.scope.value_or("team")));
  if (r.visibility) entry.set("visibility", Json(*r.visibility));
  entry.set("status", Json("online"));
  entry.set("currentTaskCount", Json(r.currentTaskCount.value_or(0)));
  if (r.maxConcurrentTasks) entry.set("maxConcurrentTasks", Json(*r.maxConcurrentTasks));
  if (r.spindownAfterIdleMs) entry.set("spindownAfterIdleMs", Json(*r.spindownAfterIdleMs));
  entry.set("registeredAt", Json(nowIso));
  entry.set("lastHeartbeat", Json(nowIso));
  if (r.metadata) entry.set("metadata", *r.metadata);
  return entry;
}

}  // namespace

Result<AgentRegistry::Registration> AgentRegistry::registerAgent(const RegisterRequest& request) {
  const std::string guid = request.guid ? *request.guid : newUuid();
  const Json entry =
      registrationEntry(request, guid, ctx_.options.defaultProject, formatIso(ctx_.now()));
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
      return Registration{decode(value, ctx_.options.defaultProject), created};
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

Result<std::shared_ptr<const AgentRecord>> AgentRegistry::heartbeat(
    const std::string& guid, const HeartbeatRequest& request) {
  return modify(guid, [&](Json& entry) {
    entry.set("lastHeartbeat", Json(formatIso(ctx_.now())));
    if (request.status) entry.set("status", Json(*request.status));
    if (request.currentTaskCount) entry.set("currentTaskCount", Json(*request.currentTaskCount));
    if (request.capabilities) entry.set("capabilities", Json::stringArray(*request.capabilities));
    return true;
  });
}

Result<std::shared_ptr<const AgentRecord>> AgentRegistry::deregister(const std::string& guid) {
  return modify(guid, [](Json& entry) {
    if (entry.getString("status") == "offline") return false;  // idempotent
    entry.set("status", Json("offline"));
    return true;
  });
}

}  // namespace weft
