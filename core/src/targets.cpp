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

namespace weft {

namespace {

constexpr int kMaxCasAttempts = 16;
constexpr size_t kMaxShortString = 256;
constexpr size_t kMaxItems = 256;
constexpr size_t kMaxDescription = 64 * 1024;
constexpr size_t kMaxConfig = 256 * 1024;
constexpr size_t kMaxBatch = 1000;
constexpr int64_t kDefaultHealthIntervalMs = 300000;
constexpr int64_t kDefaultHealthTimeoutMs = 10000;
constexpr int64_t kMaxHealthTimeoutMs = 60000;
// A name reservation without its target is taken over only after this long,
// so a registration in flight on another instance is never disturbed.
constexpr int64_t kStaleReservationMs = 60000;

Status invalid(std::string message) {
  return Status::invalidArgument(std::move(message));
}

Status targetNotFound(const std::string& ref) {
  return Status::notFound("Target with ID or name " + ref + " not found");
}

bool isFalsy(const Json& v) {
  switch (v.type()) {
    case Json::Type::Null:
      return true;
    case Json::Type::Bool:
      return !v.asBool();
    case Json::Type::Number:
      return v.asDouble() == 0;
    case Json::Type::String:
      return v.asString().empty();
    default:
      return false;
  }
}

std::string shown(const Json& v) {
  return v.isString() ? v.asString() : v.dump();
}

bool isAgentTypeName(const std::string& s) {
  return s == "copilot-cli" || s == "claude-code";
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

// A stored timeout, bounded even when an older version stored a larger one.
int64_t healthTimeoutOr(const Json& v, int64_t fallback) {
  return std::min(positiveOr(v, fallback), kMaxHealthTimeoutMs);
}

// The mechanism settings Weft checks beyond presence; "" when fine.
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

// Sorted by registeredAt, then id (§2.6 list order, §4.2 selection order).
void sortByRegistration(std::vector<std::shared_ptr<const TargetRecord>>& rows) {
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    if (a->registeredAtMs != b->registeredAtMs) return a->registeredAtMs < b->registeredAtMs;
    return a->id < b->id;
  });
}

// The members whose values differ between two objects.
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

}  // namespace

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
  if (before->healthStatus != after->healthStatus) {
    if (!before->healthStatus.empty()) {
      fields.emplace_back("previousHealth", Json(before->healthStatus));
    }
    fields.emplace_back("newHealth", Json(after->healthStatus));
    if (after->healthStatus == "unhealthy") {
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
  if (after->status == "disabled" &&
      (substantive.empty() || (substantive.size() == 1 && substantive.count("status")))) {
    fields.emplace_back("reason", Json("manual"));
    add("target:disabled");
    return out;
  }
  if (!before->status.empty()) fields.emplace_back("previousStatus", Json(before->status));
  fields.emplace_back("newStatus", Json(after->status));
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
  r->status = t.getString("status");
  r->healthStatus = t.getString("healthStatus", "unknown");
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
    : ctx_(std::move(context)) {
  const std::string defaultProject = ctx_.options.defaultProject;
  view_ = std::make_unique<View>(kTargetBucket, View::Options{},
                                 [defaultProject](const std::string&, const std::string& value) {
                                   return decode(value, defaultProject);
                                 });
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

// ---- health ------------------------------------------------------------------

Status Targets::recordHealth(const std::string& id, const spinup::ProbeOutcome& probe) {
  const std::string nowIso = formatIso(ctx_.now());
  auto updated = modify(id, [&](const TargetRecord&, Json& target) {
    target.set("healthStatus", Json(probe.healthy ? "healthy" : "unhealthy"));
    target.set("lastHealthCheck", Json(nowIso));
    target.set("updatedAt", Json(nowIso));
    if (!probe.healthy) target.set("lastError", Json(probe.error));
    return Status::ok();
  });
  if (!updated) return updated.status();
  const TargetRecord& t = **updated;
  Json payload = Json::object();
  payload.set("targetId", Json(t.id));
  payload.set("targetName", Json(t.name));
  payload.set("healthStatus", Json(t.healthStatus));
  if (!probe.healthy) payload.set("error", Json(probe.error));
  payload.set("timestamp", Json(nowIso));
  publish("loominal." + t.projectId + ".targets.health." + t.id, payload);
  return Status::ok();
}

Result<Json> Targets::test(const std::string& ref, const std::optional<std::string>& projectId) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  const TargetRecord& t = *resolved->record;
  if (!spinUp_->allows(t.mechanism)) {
    return Status(Code::PermissionDenied, spinup::disabledMessage(t.mechanism));
  }
  // A probe holds its caller for up to the target's timeout: bound how many
  // run at once, so /test cannot take every worker.
  if (testsRunning_.fetch_add(1) >= kMaxConcurrentTests) {
    testsRunning_.fetch_sub(1);
    return Status::unavailable("too many target tests running (at most " +
                               std::to_string(kMaxConcurrentTests) + "); retry later");
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{testsRunning_};
  CancelToken cancel;
  const auto started = std::chrono::steady_clock::now();
  spinup::ProbeOutcome probe = spinUp_->mechanisms().probe(t, t.healthTimeoutMs, cancel);
  const int64_t latency = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
  if (auto s = recordHealth(t.id, probe); !s) {
    return s.code() == Code::NotFound ? targetNotFound(ref) : s;
  }
  Json out = Json::object();
  out.set("healthy", Json(probe.healthy));
  out.set("latencyMs", Json(latency));
  out.set("responseTimeMs", Json(latency));
  if (!probe.healthy) out.set("error", Json(probe.error));
  out.set("targetId", Json(t.id));
  out.set("timestamp", Json(formatIso(ctx_.now())));
  return out;
}

int Targets::healthCheckOnce() {
  if (!ctx_.checkConnected() || !view_->ready()) return 0;
  const int64_t now = ctx_.now();
  auto due = [&](const TargetRecord& t) {
    return t.healthEnabled && t.status != "disabled" && spinUp_->allows(t.mechanism) &&
           (!t.lastHealthCheckMs || now - *t.lastHealthCheckMs >= t.healthIntervalMs);
  };
  std::vector<std::string> ids;
  view_->forEach([&](const std::string& id, const std::shared_ptr<const TargetRecord>& t) {
    if (due(*t)) ids.push_back(id);
  });
  int probed = 0;
  for (const auto& id : ids) {
    if (healthCancel_->cancelled()) break;
    // One target's failure (even an exception) never ends the round.
    try {
      // Fresh from the backend: another instance may have probed it just now.
      auto fresh = load(id);
      if (!fresh || !due(*fresh->record)) continue;
      spinup::ProbeOutcome probe = spinUp_->mechanisms().probe(
          *fresh->record, fresh->record->healthTimeoutMs, *healthCancel_);
      if (healthCancel_->cancelled()) break;
      ++probed;
      if (Status s = recordHealth(id, probe); !s && s.code() != Code::NotFound) {
        log::warn("health check not recorded", {{"targetId", id}, {"error", s.toString()}});
      }
    } catch (const std::exception& e) {
      log::warn("health check of a target failed", {{"targetId", id}, {"error", e.what()}});
    }
  }
  return probed;
}

void Targets::healthLoop() {
  const int64_t period = std::max<int64_t>(spinUp_->settings().healthCheckPeriodMs, 10);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(healthMutex_);
      if (healthCv_.wait_for(lock, std::chrono::milliseconds(period),
                             [this] { return healthStopping_; })) {
        return;
      }
    }
    try {
      healthCheckOnce();
    } catch (const std::exception& e) {
      log::error("health check failed", {{"error", e.what()}});
    }
  }
}

// ---- spin-up -----------------------------------------------------------------

Result<Json> Targets::spinUpTarget(const std::string& ref,
                                   const std::optional<std::string>& projectId) {
  if (auto s = ready(); !s) return s;
  auto resolved = resolve(ref, projectId);
  if (!resolved) return resolved.status();
  const TargetRecord& t = *resolved->record;
  if (t.status == "disabled") return Status::conflict("Target " + t.name + " is disabled");
  if (!spinUp_->allows(t.mechanism)) {
    return Status(Code::PermissionDenied, spinup::disabledMessage(t.mechanism));
  }
  if (auto missing = spinup::missingFields(t.config(), t.mechanism); !missing.empty()) {
    return Status::conflict(spinup::missingConfigMessage(t.name, t.mechanism, missing));
  }
  auto op = spinUp_->startManual(t);
  if (!op) return op.status();
  auto now = spinUp_->find(op->id);
  Json out = Json::object();
  out.set("operationId", Json(op->id));
  out.set("targetName", Json(t.name));
  out.set("targetId", Json(t.id));
  out.set("status", Json(now ? now->status : op->status));
  out.set("success", Json(true));
  out.set("timestamp", Json(formatIso(ctx_.now())));
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
      if (t->projectId != request.projectId || t->status != "available" ||
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

// ---- stats -------------------------------------------------------------------

StatsContributor Targets::statsContributor() const {
  return [this](ProjectTotalsMap& totals) -> Status {
    if (!view_->ready()) return Status::unavailable("targets not loaded yet");
    view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
      ProjectTotals& p = totals[t->projectId];
      ++p.targets;
      if (t->status == "disabled") ++p.disabledTargets;
      p.noteActivity(t->updatedAtMs);
    });
    return Status::ok();
  };
}

Json Targets::liveStats(const std::optional<std::string>& projectId) const {
  int64_t total = 0, available = 0, inUse = 0, disabled = 0;
  view_->forEach([&](const std::string&, const std::shared_ptr<const TargetRecord>& t) {
    if (projectId && t->projectId != *projectId) return;
    ++total;
    if (t->status == "available") ++available;
    if (t->status == "in-use") ++inUse;
    if (t->status == "disabled") ++disabled;
  });
  Json out = Json::object();
  out.set("total", Json(total));
  out.set("available", Json(available));
  out.set("inUse", Json(inUse));
  out.set("disabled", Json(disabled));
  return out;
}

}  // namespace weft
