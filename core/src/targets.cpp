// The Targets service: construction, storage helpers, the target events
// derived from stored changes, and the stats contribution. The registry,
// health checks and spin-up are in target_registry.cpp, target_health.cpp
// and target_spin_up.cpp.
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

// ---- events --------------------------------------------------------------------

std::vector<Event> deriveTargetEvents(const TargetRecord* before, const TargetRecord* after,
                                      int64_t nowMs) {
  std::vector<Event> out;
  if (!before && !after) return out;
  const TargetRecord& t = after ? *after : *before;
  Json::Object fields{{"targetId", Json(t.id)}, {"targetName", Json(t.name)}};
  auto add = [&](const char* name) { out.push_back(makeEvent(name, t.projectId, nowMs, fields)); };

  if (!before) {
    Json caps = Json::array(), bounds = Json::array();
    for (const auto& c : t.capabilities) caps.push(Json(c));
    for (const auto& b : t.boundaries) bounds.push(Json(b));
    fields.emplace_back("agentType", Json(t.agentType));
    fields.emplace_back("capabilities", std::move(caps));
    fields.emplace_back("boundaries", std::move(bounds));
    fields.emplace_back("mechanism", Json(t.mechanism));
    add("target:registered");
    return out;
  }
  if (!after) {
    add("target:removed");
    return out;
  }
  // The texts as stored: a change between two texts Weft does not know is a
  // change too, and is reported as written.
  const std::string beforeHealth = before->healthText(), afterHealth = after->healthText();
  if (beforeHealth != afterHealth) {
    if (!beforeHealth.empty()) fields.emplace_back("previousHealth", Json(beforeHealth));
    fields.emplace_back("newHealth", Json(afterHealth));
    if (after->healthStatus == TargetHealth::Unhealthy) {
      if (const Json* e = after->target.find("lastError"); e && e->isString()) {
        fields.emplace_back("error", *e);
      }
    }
    add("target:health-changed");
    return out;
  }
  std::set<std::string> changed = changedMembers(before->target, after->target);
  if (changed.empty()) return out;
  std::set<std::string> substantive;
  for (const auto& k : changed) {
    if (k != "updatedAt" && k != "lastError" && k != "lastHealthCheck") substantive.insert(k);
  }
  // A probe that left healthStatus as it was is no event (§5.4 lists none).
  if (substantive.empty() && changed.count("lastHealthCheck")) return out;
  if (after->status == TargetStatus::Disabled &&
      (substantive.empty() || (substantive.size() == 1 && substantive.count("status")))) {
    fields.emplace_back("reason", Json("manual"));
    add("target:disabled");
    return out;
  }
  const std::string beforeStatus = before->statusText();
  if (!beforeStatus.empty()) fields.emplace_back("previousStatus", Json(beforeStatus));
  fields.emplace_back("newStatus", Json(after->statusText()));
  add("target:updated");
  return out;
}

// ---- construction ----------------------------------------------------------------

std::shared_ptr<const TargetRecord> Targets::decode(const std::string& value,
                                                    const std::string& defaultProject) {
  auto parsed = Json::parse(value, 64);
  if (!parsed || !parsed->isObject()) return nullptr;
  const Json& id = parsed->get("id");
  const Json& name = parsed->get("name");
  if (!id.isString() || id.asString().empty() || !name.isString() || name.asString().empty()) {
    return nullptr;
  }
  auto r = std::make_shared<TargetRecord>();
  r->target = std::move(*parsed);
  const Json& t = r->target;
  r->id = id.asString();
  r->name = name.asString();
  r->projectId = t.getString("projectId");
  if (r->projectId.empty()) r->projectId = defaultProject;
  r->description = t.getString("description");
  r->agentType = t.getString("agentType");
  r->mechanism = t.getString("mechanism");
  r->status = parseTargetStatus(r->statusText()).value_or(TargetStatus::Unknown);
  r->healthStatus = parseTargetHealth(r->healthText()).value_or(TargetHealth::Unknown);
  r->capabilities = stringsOf(t.get("capabilities"));
  r->boundaries = stringsOf(t.get("boundaries"));
  r->registeredAtMs = parseIso(t.getString("registeredAt")).value_or(0);
  r->updatedAtMs = parseIso(t.getString("updatedAt")).value_or(r->registeredAtMs);
  if (const Json& hc = t.get("healthCheck"); hc.isObject()) {
    r->healthEnabled = hc.getBool("enabled", false);
    r->healthIntervalMs = positiveOr(hc.get("intervalMs"), kDefaultHealthIntervalMs);
    r->healthTimeoutMs = healthTimeoutOr(hc.get("timeoutMs"), kDefaultHealthTimeoutMs);
  }
  if (const Json& last = t.get("lastHealthCheck"); last.isString()) {
    r->lastHealthCheckMs = parseIso(last.asString());
  }
  return r;
}

Targets::Targets(ServiceContext context, SpinUpSettings settings,
                 std::shared_ptr<ProcessRunner> runner, std::shared_ptr<HttpCaller> http,
                 AgentRegistry* agents)
    : ctx_(std::move(context)), listIndex_(std::make_unique<ListIndex<TargetListTraits>>()) {
  const std::string defaultProject = ctx_.options.defaultProject;
  view_ = std::make_unique<View>(kTargetBucket, View::Options{},
                                 [defaultProject](const std::string&, const std::string& value) {
                                   return decode(value, defaultProject);
                                 });
  view_->addIndexer([this](const std::string&, const View::Ptr& before, const View::Ptr& after) {
    listIndex_->update(before.get(), after.get());
  });
  loadInBulk(*view_, *listIndex_);
  view_->addListener(
      [this](const std::string&, const View::Ptr& before, const View::Ptr& after, bool live) {
        if (!live) return;  // the initial replay is old news
        for (auto& e : deriveTargetEvents(before.get(), after.get(), ctx_.now()))
          emit(std::move(e));
      });
  spinUp_ = std::make_unique<SpinUp>(ctx_, std::move(settings), std::move(runner), std::move(http));
  spinUp_->setRecorder([this](const SpinUpOperation& op) { recordOutcome(op); });
  spinUp_->setEventSink([this](Event e) { emit(std::move(e)); });
  if (agents) {
    // Agent linking: an agent started by a target registers with
    // metadata.targetId; the first live sighting links it to the target's
    // spin-up. Best effort and instance-local, like the operations.
    agents->view().addListener([this](const std::string&,
                                      const std::shared_ptr<const AgentRecord>& before,
                                      const std::shared_ptr<const AgentRecord>& after, bool live) {
      if (!live || !after) return;
      const std::string targetId = after->entry.get("metadata").getString("targetId");
      if (targetId.empty()) return;
      if (before && before->status != "offline" &&
          before->entry.get("metadata").getString("targetId") == targetId) {
        return;  // seen before: a heartbeat or an update, not a new start
      }
      spinUp_->linkAgent(targetId, after->guid);
    });
  }
}

Targets::~Targets() {
  stop();
}

void Targets::setEventSink(std::function<void(Event)> sink) {
  sink_ = std::move(sink);
}

void Targets::start() {
  if (started_) return;
  started_ = true;
  view_->start(ctx_.store);
  spinUp_->start();
  health_ = std::thread([this] { healthLoop(); });
}

void Targets::stop() {
  {
    std::lock_guard<std::mutex> lock(healthMutex_);
    healthStopping_ = true;
  }
  healthCancel_->cancel();
  healthCv_.notify_all();
  if (health_.joinable()) health_.join();
  spinUp_->stop();
  view_->stop();
}

void Targets::emit(Event event) {
  if (!sink_) return;
  try {
    sink_(std::move(event));
  } catch (const std::exception& e) {
    log::warn("target event delivery failed", {{"error", e.what()}});
  }
}

// ---- storage helpers ----------------------------------------------------------

std::shared_ptr<KvBucket> Targets::bucket() const {
  return view_->bucket();
}

Status Targets::ready() const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  if (!view_->ready() || !bucket()) return Status::unavailable("targets not loaded yet");
  return Status::ok();
}

Result<std::shared_ptr<KvBucket>> Targets::nameBucket() {
  std::lock_guard<std::mutex> lock(namesMutex_);
  if (names_) return names_;
  auto opened = ctx_.store->openBucket(kTargetNameBucket, BucketOptions{});
  if (!opened) return opened.status();
  names_ = *opened;
  return names_;
}

std::string Targets::reservationKey(const std::string& projectId, const std::string& name) const {
  return projectId + "." + sha256Hex(name).substr(0, 32);
}

Result<Targets::Resolved> Targets::load(const std::string& id) const {
  auto b = bucket();
  if (!b) return Status::unavailable("targets not loaded yet");
  auto entry = b->get(id);
  if (!entry) return entry.status();
  auto record = decode(entry->value, ctx_.options.defaultProject);
  if (!record) return Status::notFound("invalid target value");
  return Resolved{record, entry->revision};
}

Result<Targets::Resolved> Targets::resolve(const std::string& ref,
                                           const std::optional<std::string>& projectId) const {
  // 1. An id match in any project wins.
  if (isUuid(ref)) {
    auto byId = load(ref);
    if (byId) return byId;
    if (byId.code() != Code::NotFound) return byId.status();
  }
  // 2. The name, within projectId when given. The view answers; it may lag
  // another instance's registration by up to a second.
  std::vector<std::shared_ptr<const TargetRecord>> matches;
  view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
    if (t->name != ref) return;
    if (projectId && t->projectId != *projectId) return;
    matches.push_back(t);
  });
  if (matches.empty()) return targetNotFound(ref);
  std::set<std::string> projects;
  for (const auto& m : matches) projects.insert(m->projectId);
  // 3. Ambiguous across projects.
  if (projects.size() > 1) {
    return Status::conflict("Target name '" + ref +
                            "' exists in several projects; use the id or pass projectId");
  }
  sortByRegistration(matches);
  auto fresh = load(matches.front()->id);
  if (!fresh) return fresh.code() == Code::NotFound ? targetNotFound(ref) : fresh.status();
  return fresh;
}

Result<std::shared_ptr<const TargetRecord>> Targets::modify(const std::string& id,
                                                            const Mutation& mutate) {
  auto b = bucket();
  if (!b) return Status::unavailable("targets not loaded yet");
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto loaded = load(id);
    if (!loaded) return loaded.status();
    Json target = loaded->record->target;
    if (auto s = mutate(*loaded->record, target); !s) return s;
    std::string value = target.dump();
    auto written = b->update(id, value, loaded->revision);
    if (written) {
      view_->applyPut(id, value, *written);
      return decode(value, ctx_.options.defaultProject);
    }
    if (written.code() != Code::Conflict) return written.status();
  }
  return Status::unavailable("too much contention on target " + id);
}

void Targets::publish(const std::string& subject, const Json& payload) const {
  KvMessaging* messaging = ctx_.store->messaging();
  if (!messaging) return;
  Status s = messaging->publish(subject, payload.dump());
  if (!s) log::warn("publication failed", {{"subject", subject}, {"error", s.toString()}});
}

void Targets::publishTarget(const char* action, const TargetRecord& record) const {
  publish("loominal." + record.projectId + ".targets." + action, record.target);
}


// ---- stats -------------------------------------------------------------------

TargetCounts Targets::liveStats(const std::optional<std::string>& projectId) const {
  TargetCounts out;
  view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
    if (projectId && t->projectId != *projectId) return;
    ++out.total;
    if (t->status == TargetStatus::Available) ++out.available;
    if (t->status == TargetStatus::InUse) ++out.inUse;
    if (t->status == TargetStatus::Disabled) ++out.disabled;
  });
  return out;
}

}  // namespace weft
