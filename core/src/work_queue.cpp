#include "weft/work_queue.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/ids.h"
#include "weft/log.h"
#include "weft/work_transitions.h"

namespace weft {

namespace {

constexpr int kMaxCasAttempts = 16;
constexpr size_t kMaxShortString = 256;
constexpr size_t kMaxDescription = 64 * 1024;
constexpr size_t kMaxContextData = 256 * 1024;
constexpr size_t kMaxErrorMessage = 16 * 1024;

Status invalid(std::string message) { return Status::invalidArgument(std::move(message)); }

Status workNotFound(const std::string& id) {
  return Status::notFound("Work item with ID " + id + " not found");
}

// JavaScript falsiness of a JSON value, as the submit rules use it.
bool isFalsy(const Json& v) {
  switch (v.type()) {
    case Json::Type::Null: return true;
    case Json::Type::Bool: return !v.asBool();
    case Json::Type::Number: return v.asDouble() == 0;
    case Json::Type::String: return v.asString().empty();
    default: return false;
  }
}

// How a rejected value appears inside a message: strings raw, others as JSON.
std::string shown(const Json& v) { return v.isString() ? v.asString() : v.dump(); }

bool isAgentTypeName(const std::string& s) { return s == "copilot-cli" || s == "claude-code"; }

// The transition log's fields for a step of the current assignment.
Json::Object attemptFields(const WorkRecord& record) {
  return {{"attempt", Json(record.item.getInt("attempts", 0))},
          {"agentGuid", Json(record.assignedTo)}};
}

// {agentGuid} of the current assignee, or nothing when unassigned.
Json::Object assigneeField(const WorkRecord& record) {
  if (record.assignedTo.empty()) return {};
  return {{"agentGuid", Json(record.assignedTo)}};
}

}  // namespace

std::shared_ptr<const WorkRecord> WorkQueue::decode(const std::string& value) {
  auto parsed = Json::parse(value, 64);
  if (!parsed || !parsed->isObject()) return nullptr;
  const Json& id = parsed->get("id");
  const Json& status = parsed->get("status");
  if (!id.isString() || id.asString().empty() || !status.isString()) return nullptr;
  auto r = std::make_shared<WorkRecord>();
  r->item = std::move(*parsed);
  const Json& it = r->item;
  r->id = id.asString();
  r->status = status.asString();
  r->taskId = it.getString("taskId");
  r->projectId = it.getString("projectId");
  r->capability = it.getString("capability");
  r->boundary = it.getString("boundary");
  r->assignedTo = it.getString("assignedTo");
  r->requiredAgentType = it.getString("requiredAgentType");
  r->priority = it.getInt("priority", 5);
  r->offeredAt = it.getString("offeredAt");
  r->offeredAtMs = parseIso(r->offeredAt).value_or(0);
  r->updatedAtMs = parseIso(it.getString("updatedAt")).value_or(r->offeredAtMs);
  if (const Json* lease = it.find("leaseExpiresAt"); lease && lease->isString()) {
    r->leaseExpiresAtMs = parseIso(lease->asString());
  }
  return r;
}

WorkQueue::WorkQueue(ServiceContext context, AgentRegistry& agents, DeadLetters& deadLetters)
    : ctx_(std::move(context)), agents_(agents), deadLetters_(deadLetters) {
  view_ = std::make_unique<View>(kWorkBucket, View::Options{},
                                 [](const std::string&, const std::string& value) {
                                   return decode(value);
                                 });
  view_->setIndexer([this](const std::string& key, const std::shared_ptr<const WorkRecord>& b,
                           const std::shared_ptr<const WorkRecord>& a) { index(key, b, a); });
}

WorkQueue::~WorkQueue() { stop(); }

void WorkQueue::start(int64_t sweepIntervalMs) {
  view_->start(ctx_.store);
  if (sweepIntervalMs > 0) {
    sweeper_ = std::thread([this, sweepIntervalMs] { sweeperLoop(sweepIntervalMs); });
  }
}

void WorkQueue::stop() {
  {
    std::lock_guard<std::mutex> lock(sweeperMutex_);
    stopping_ = true;
  }
  sweeperCv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  {
    std::unique_lock<std::mutex> lock(asyncMutex_);
    asyncIdle_.wait(lock, [this] { return asyncInFlight_ == 0; });
  }
  view_->stop();
}

void WorkQueue::index(const std::string& key, const std::shared_ptr<const WorkRecord>& before,
                      const std::shared_ptr<const WorkRecord>& after) {
  if (before && before->status == "pending") {
    auto it = pending_.find(pendingKeyOf(before->projectId, before->capability));
    if (it != pending_.end()) {
      it->second.erase(PendingKey{before->priority, before->offeredAtMs, key});
      if (it->second.empty()) pending_.erase(it);
    }
  }
  if (before && before->isActive() && !before->assignedTo.empty()) {
    auto it = activeByAgent_.find(before->assignedTo);
    if (it != activeByAgent_.end() && --it->second <= 0) activeByAgent_.erase(it);
  }
  if (after && after->status == "pending") {
    pending_[pendingKeyOf(after->projectId, after->capability)].emplace(
        PendingKey{after->priority, after->offeredAtMs, key},
                                       Candidate{after->capability, after->boundary,
                                                 after->requiredAgentType});
  }
  if (after && after->isActive() && !after->assignedTo.empty()) {
    ++activeByAgent_[after->assignedTo];
  }
}

bool WorkQueue::hasActiveWork(const std::string& agentGuid) const {
  return view_->read([&] { return activeByAgent_.count(agentGuid) > 0; });
}

std::shared_ptr<KvBucket> WorkQueue::bucket() const { return view_->bucket(); }

Status WorkQueue::ready() const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  if (!view_->ready()) return Status::unavailable("work items not loaded yet");
  return Status::ok();
}

Json WorkQueue::render(const WorkRecord& record) const {
  Json out = record.item;
  out.erase("claimToken");
  if (!record.assignedTo.empty()) {
    Json summary = agents_.summary(record.assignedTo);
    if (!summary.isNull()) out.set("assignedToAgent", std::move(summary));
  }
  return out;
}

Result<Json> WorkQueue::submit(const Json& body) {
  Result<NewItem> item = prepareSubmit(body);
  if (!item) return item.status();
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("work bucket not open yet");
  return finishSubmit(*item, bucket->create(item->id, item->value));
}

void WorkQueue::submitAsync(const Json& body, SubmitDone done) {
  Result<NewItem> prepared = prepareSubmit(body);
  if (!prepared) return done(prepared.status());
  auto bucket = view_->bucket();
  if (!bucket) return done(Status::unavailable("work bucket not open yet"));
  {
    std::lock_guard<std::mutex> lock(asyncMutex_);
    ++asyncInFlight_;
  }
  auto item = std::make_shared<NewItem>(std::move(*prepared));
  bucket->createAsync(item->id, item->value,
                      [this, item, done = std::move(done)](Result<uint64_t> written) {
                        done(finishSubmit(*item, std::move(written)));
                        std::lock_guard<std::mutex> lock(asyncMutex_);
                        if (--asyncInFlight_ == 0) asyncIdle_.notify_all();
                      });
}

Result<WorkQueue::NewItem> WorkQueue::prepareSubmit(const Json& body) {
  // Validation, in the order of the docs/api.md §2.3 table.
  const Json& boundary = body.get("boundary");
  if (isFalsy(boundary)) return invalid("classification is required");
  if (!boundary.isString() || isBlank(boundary.asString())) {
    return invalid("boundary must be a non-empty string");
  }
  if (boundary.asString().size() > kMaxShortString) return invalid("boundary exceeds 256 bytes");
  const Json& capability = body.get("capability");
  if (isFalsy(capability)) return invalid("capability is required");
  if (!capability.isString() || isBlank(capability.asString())) {
    return invalid("capability must be a non-empty string");
  }
  if (capability.asString().size() > kMaxShortString) {
    return invalid("capability exceeds 256 bytes");
  }
  const Json& description = body.get("description");
  if (isFalsy(description)) return invalid("description is required");
  if (!description.isString()) return invalid("description must be a string");
  if (description.asString().size() > kMaxDescription) {
    return invalid("description exceeds 65536 bytes");
  }
  const Json& priority = body.get("priority");
  if (!priority.isNull() &&
      (!priority.isInteger() || priority.asInt() < 1 || priority.asInt() > 10)) {
    return invalid("priority must be an integer between 1 and 10");
  }
  const Json& preferred = body.get("preferredAgentType");
  if (!preferred.isNull() && !(preferred.isString() && isAgentTypeName(preferred.asString()))) {
    return invalid("Invalid preferredAgentType: " + shown(preferred) +
                   ". Must be copilot-cli or claude-code");
  }
  const Json& required = body.get("requiredAgentType");
  if (!required.isNull() && !(required.isString() && isAgentTypeName(required.asString()))) {
    return invalid("Invalid requiredAgentType: " + shown(required) +
                   ". Must be copilot-cli or claude-code");
  }
  const Json& maxAttempts = body.get("maxAttempts");
  if (!maxAttempts.isNull() &&
      (!maxAttempts.isInteger() || maxAttempts.asInt() < 1 || maxAttempts.asInt() > 100)) {
    return invalid("maxAttempts must be an integer between 1 and 100");
  }
  const Json& leaseMs = body.get("leaseMs");
  if (auto s = checkLeaseMsField(leaseMs); !s) return s;
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  const Json& taskId = body.get("taskId");
  if (!isFalsy(taskId) && !taskId.isString()) return invalid("taskId must be a string");
  if (taskId.isString() && taskId.asString().size() > kMaxShortString) {
    return invalid("taskId exceeds 256 bytes");
  }
  // deadline is stored verbatim; bounded like the other short strings.
  if (const Json* d = body.find("deadline"); d && !d->isNull() && d->dump().size() > kMaxShortString) {
    return invalid("deadline exceeds 256 bytes");
  }
  const Json* contextData = body.find("contextData");
  if (contextData && contextData->dump().size() > kMaxContextData) {
    return invalid("contextData exceeds 262144 bytes");
  }

  if (auto s = ready(); !s) return s;
  if (!agents_.view().ready()) return Status::unavailable("agent registry not loaded yet");

  const std::string project =
      projectId.isString() ? projectId.asString() : ctx_.options.defaultProject;
  const std::string cap = capability.asString();
  const std::string bound = boundary.asString();
  const int64_t now = ctx_.now();

  // Routing (§4.2): eligible workers, in registry list order.
  std::vector<std::shared_ptr<const AgentRecord>> eligible;
  agents_.view().forEach([&](const std::string&, const std::shared_ptr<const AgentRecord>& a) {
    if (!a->hasCapability(cap) || a->status == "offline" ||
        a->isStale(now, ctx_.options.staleAfterMs) || a->projectId != project) {
      return;
    }
    if (a->declaredBoundaries &&
        std::find(a->boundaries.begin(), a->boundaries.end(), bound) == a->boundaries.end()) {
      return;
    }
    eligible.push_back(a);
  });
  std::sort(eligible.begin(), eligible.end(), [](const auto& a, const auto& b) {
    if (a->registeredAtMs.has_value() != b->registeredAtMs.has_value()) {
      return !a->registeredAtMs.has_value();
    }
    if (a->registeredAtMs && *a->registeredAtMs != *b->registeredAtMs) {
      return *a->registeredAtMs < *b->registeredAtMs;
    }
    return a->guid < b->guid;
  });
  std::string target;
  if (required.isString()) {
    target = required.asString();
  } else {
    std::vector<std::string> types;
    for (const auto& a : eligible) {
      if (std::find(types.begin(), types.end(), a->agentType) == types.end()) {
        types.push_back(a->agentType);
      }
    }
    if (types.empty()) types.push_back("claude-code");
    target = types.front();
    if (preferred.isString() &&
        std::find(types.begin(), types.end(), preferred.asString()) != types.end()) {
      target = preferred.asString();
    }
  }
  bool haveWorker = std::any_of(eligible.begin(), eligible.end(),
                                [&](const auto& a) { return a->agentType == target; });

  // The stored item (§3.4).
  const std::string id = newUuid();
  const std::string nowIso = formatIso(now);
  Json item = Json::object();
  item.set("id", Json(id));
  item.set("taskId", taskId.isString() && !taskId.asString().empty() ? taskId : Json(newUuid()));
  item.set("projectId", Json(project));
  item.set("description", description);
  item.set("capability", capability);
  item.set("boundary", boundary);
  item.set("priority", Json(priority.isNull() ? int64_t{5} : priority.asInt()));
  if (const Json* d = body.find("deadline"); d && !d->isNull()) item.set("deadline", *d);
  if (contextData && !contextData->isNull()) item.set("contextData", *contextData);
  if (preferred.isString()) item.set("preferredAgentType", preferred);
  if (required.isString()) item.set("requiredAgentType", required);
  item.set("targetAgentType", Json(target));
  item.set("status", Json("pending"));
  item.set("offeredBy", Json("coordinator"));
  item.set("offeredAt", Json(nowIso));
  item.set("updatedAt", Json(nowIso));
  item.set("attempts", Json(int64_t{0}));
  item.set("maxAttempts",
           Json(maxAttempts.isNull() ? ctx_.options.maxAttempts : maxAttempts.asInt()));
  if (!leaseMs.isNull()) item.set("leaseMs", Json(leaseMs.asInt()));
  item.set("errors", Json::array());
  appendTransition(item, "submitted", nowIso);

  return NewItem{id, item.dump(), target, haveWorker, SpinUpRequest{id, project, cap, bound, target}};
}

Result<Json> WorkQueue::finishSubmit(const NewItem& item, Result<uint64_t> written) {
  if (!written) {
    if (written.code() == Code::AlreadyExists) return Status::internal("work id collision");
    return written.status();
  }
  view_->applyPut(item.id, item.value, *written);

  Json response = Json::object();
  response.set("id", Json(item.id));
  response.set("workItemId", Json(item.id));
  response.set("targetAgentType", Json(item.target));
  bool spinUp = !item.haveWorker && ctx_.options.spinupOnSubmit;
  response.set("spinUpTriggered", Json(spinUp));
  if (item.haveWorker) {
    response.set("estimatedWaitSeconds", Json(5));
  } else if (spinUp) {
    response.set("estimatedWaitSeconds", Json(30));
  }
  if (spinUp) {
    if (spinUp_) {
      spinUp_(item.spinUp);
    } else {
      log::info("spin-up requested but no spin-up service is configured",
                {{"workId", item.id},
                 {"agentType", item.target},
                 {"capability", item.spinUp.capability}});
    }
  }
  return response;
}

Result<Json> WorkQueue::get(const std::string& id) const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  if (!isUuid(id)) return workNotFound(id);
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("work bucket not open yet");
  auto entry = bucket->get(id);
  if (!entry) {
    if (entry.code() == Code::NotFound) return workNotFound(id);
    return entry.status();
  }
  auto record = decode(entry->value);
  if (!record) return workNotFound(id);
  return render(*record);
}

Result<JsonListStream> WorkQueue::listStream(const WorkFilter& f,
                                            const PageRequest& page) const {
  Json filters = Json::object();
  if (f.status) filters.set("status", Json(*f.status));
  if (f.boundary) filters.set("boundary", Json(*f.boundary));
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.assignedTo) filters.set("assignedTo", Json(*f.assignedTo));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("work", filters, page);
  if (!pager) return pager.status();
  if (auto s = ready(); !s) return s;

  auto rows = std::make_shared<std::vector<std::shared_ptr<const WorkRecord>>>();
  view_->forEach([&](const std::string&, const std::shared_ptr<const WorkRecord>& r) {
    if (f.status && r->status != *f.status) return;
    if (f.boundary && r->boundary != *f.boundary) return;
    if (f.capability && r->capability != *f.capability) return;
    if (f.assignedTo && r->assignedTo != *f.assignedTo) return;
    if (f.projectId && r->projectId != *f.projectId) return;
    rows->push_back(r);
  });
  std::sort(rows->begin(), rows->end(), [](const auto& a, const auto& b) {
    if (a->priority != b->priority) return a->priority > b->priority;
    if (a->offeredAtMs != b->offeredAtMs) return a->offeredAtMs < b->offeredAtMs;
    return a->id < b->id;
  });
  const size_t begin = pager->begin(rows->size());
  const size_t end = pager->end(rows->size());
  JsonListStream out;
  out.head = "{\"workItems\":[";
  out.count = end - begin;
  // The records are immutable snapshots; render() reads only them.
  out.element = [this, rows, begin](size_t i, std::string& text) {
    render(*(*rows)[begin + i]).dumpTo(text);
  };
  out.tail = pager->listTail(rows->size());
  return out;
}

Result<Json> WorkQueue::list(const WorkFilter& f, const PageRequest& page) const {
  auto stream = listStream(f, page);
  if (!stream) return stream.status();
  auto parsed = Json::parse(stream->renderAll(), 1000);
  if (!parsed) return Status::internal("work list did not render as JSON");
  return std::move(parsed.value());
}

Result<Json> WorkQueue::cancel(const std::string& id) {
  if (auto s = ctx_.checkConnected(); !s) return s;
  if (!isUuid(id)) return workNotFound(id);
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("work bucket not open yet");
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto entry = bucket->get(id);
    if (!entry) {
      if (entry.code() == Code::NotFound) return workNotFound(id);
      return entry.status();
    }
    auto record = decode(entry->value);
    if (!record) return workNotFound(id);
    if (record->isTerminal()) {
      return Status::conflict("Cannot cancel work in " + record->status + " state");
    }
    Json item = record->item;
    std::string nowIso = formatIso(ctx_.now());
    item.set("status", Json("cancelled"));
    item.set("cancelledAt", Json(nowIso));
    item.set("updatedAt", Json(nowIso));
    item.erase("leaseExpiresAt");
    appendTransition(item, "cancelled", nowIso, assigneeField(*record));
    std::string value = item.dump();
    auto written = bucket->update(id, value, entry->revision);
    if (written) {
      view_->applyPut(id, value, *written);
      Json response = Json::object();
      response.set("success", Json(true));
      response.set("message", Json("Work item " + id + " cancelled"));
      return response;
    }
    if (written.code() != Code::Conflict) return written.status();
  }
  return Status::unavailable("too much contention on work item " + id);
}

}  // namespace weft


// ---------------------------------------------------------------------------
// The lifecycle: claims, fenced transitions, failures, the DLQ, the sweeper.

namespace weft {

namespace {

// The fields an assignment adds; cleared whenever the item returns to pending.
const char* const kAssignmentFields[] = {"assignedTo",      "assignedAt",     "startedAt",
                                         "leaseDurationMs", "leaseExpiresAt", "claimToken",
                                         "progress"};

void clearAssignment(Json& item) {
  for (const char* f : kAssignmentFields) item.erase(f);
}

void removeLease(Json& item) {
  item.erase("leaseExpiresAt");
  item.erase("leaseDurationMs");
}

// A list of strings from a claim body: absent → nullopt; otherwise it must be
// an array of strings.
Result<std::optional<std::vector<std::string>>> stringList(const Json& body, const char* field) {
  const Json& v = body.get(field);
  if (v.isNull()) return std::optional<std::vector<std::string>>{};
  std::string message = std::string(field) + " must be an array of strings";
  if (!v.isArray()) return Status::invalidArgument(message);
  std::vector<std::string> out;
  for (const auto& e : v.asArray()) {
    if (!e.isString()) return Status::invalidArgument(message);
    out.push_back(e.asString());
  }
  if (out.size() > 256) return Status::invalidArgument(std::string(field) + " exceeds 256 items");
  return std::optional<std::vector<std::string>>(std::move(out));
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

Status requiredString(const Json& body, const char* field) {
  const Json& v = body.get(field);
  if (!v.isString() || v.asString().empty()) {
    return Status::invalidArgument(std::string(field) + " is required");
  }
  return Status::ok();
}

Status tokenMismatch() {
  return Status::conflict("Claim token does not match current assignment");
}

// Appends an ErrorRecord to the item's history and mirrors it in `error`.
void appendError(Json& item, const Json& error) {
  Json* errors = item.find("errors");
  if (!errors || !errors->isArray()) errors = &item.set("errors", Json::array());
  errors->push(error);
  item.set("error", error);
}

}  // namespace

Result<std::pair<std::shared_ptr<const WorkRecord>, uint64_t>> WorkQueue::load(
    const std::string& id) const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  auto b = bucket();
  if (!b) return Status::unavailable("work bucket not open yet");
  if (!isUuid(id)) return workNotFound(id);
  auto entry = b->get(id);
  if (!entry) {
    if (entry.code() == Code::NotFound) return workNotFound(id);
    return entry.status();
  }
  auto record = decode(entry->value);
  if (!record) return workNotFound(id);
  return std::make_pair(record, entry->revision);
}

Result<uint64_t> WorkQueue::store(const std::string& id, const Json& item, uint64_t revision) {
  auto b = bucket();
  if (!b) return Status::unavailable("work bucket not open yet");
  std::string value = item.dump();
  auto written = b->update(id, value, revision);
  if (written) view_->applyPut(id, value, *written);
  return written;
}

Result<std::optional<Json>> WorkQueue::claim(const Json& body) {
  if (auto s = requiredString(body, "agentGuid"); !s) return s;
  auto capabilities = stringList(body, "capabilities");
  if (!capabilities) return capabilities.status();
  auto boundaries = stringList(body, "boundaries");
  if (!boundaries) return boundaries.status();
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  const Json& leaseMs = body.get("leaseMs");
  if (auto s = checkLeaseMsField(leaseMs); !s) return s;
  const std::string agentGuid = body.getString("agentGuid");
  if (auto s = ready(); !s) return s;
  auto agent = agents_.fetch(agentGuid);
  if (!agent) return agent.status();
  if ((*agent)->status == "offline") {
    return Status::conflict("Agent with GUID " + agentGuid + " is offline");
  }

  // The effective selection (§2.4): body values, else what the agent declared.
  const std::vector<std::string> caps =
      capabilities->has_value() ? **capabilities : (*agent)->capabilities;
  const bool anyBoundary = !boundaries->has_value() && !(*agent)->declaredBoundaries;
  const std::vector<std::string> bounds =
      boundaries->has_value() ? **boundaries
                              : ((*agent)->declaredBoundaries ? (*agent)->boundaries
                                                              : std::vector<std::string>{});
  const std::string project = projectId.isString() ? projectId.asString() : (*agent)->projectId;
  const std::string agentType = (*agent)->agentType;
  auto eligible = [&](const Candidate& c) {
    return (anyBoundary || contains(bounds, c.boundary)) &&
           (c.requiredAgentType.empty() || c.requiredAgentType == agentType);
  };

  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(ctx_.options.timeoutMs);
  std::set<std::string> tried;
  for (;;) {
    // Candidates in claim order from the watch-fed pending index: no backend
    // scan. The compare-and-set below is the only arbiter.
    // Each capability's list is in claim order, so the first 16 eligible of
    // each list contain the first 16 of their union.
    constexpr size_t kBatch = 16;
    std::vector<PendingKey> picked;
    view_->read([&] {
      for (const auto& cap : std::set<std::string>(caps.begin(), caps.end())) {
        auto it = pending_.find(pendingKeyOf(project, cap));
        if (it == pending_.end()) continue;
        size_t taken = 0;
        for (const auto& [key, candidate] : it->second) {
          if (tried.count(key.id) || !eligible(candidate)) continue;
          picked.push_back(key);
          if (++taken >= kBatch) break;
        }
      }
    });
    std::sort(picked.begin(), picked.end());
    if (picked.size() > kBatch) picked.resize(kBatch);
    std::vector<std::string> ids;
    for (const auto& key : picked) ids.push_back(key.id);
    if (ids.empty()) return std::optional<Json>{};
    for (const auto& id : ids) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status::timeout("claim did not finish within kv.timeoutMs");
      }
      tried.insert(id);
      auto [record, revision] = view_->findEntry(id);
      if (!record || record->status != "pending") continue;
      const int64_t now = ctx_.now();
      const int64_t lease = !leaseMs.isNull() ? leaseMs.asInt()
                                              : record->item.getInt("leaseMs", ctx_.options.leaseMs);
      const std::string token = newToken();
      const int64_t attempt = record->item.getInt("attempts", 0) + 1;
      Json item = record->item;
      item.set("status", Json("assigned"));
      item.set("attempts", Json(attempt));
      item.set("assignedTo", Json(agentGuid));
      item.set("assignedAt", Json(formatIso(now)));
      item.erase("startedAt");
      item.set("leaseDurationMs", Json(lease));
      item.set("leaseExpiresAt", Json(formatIso(now + lease)));
      item.set("claimToken", Json(token));
      item.erase("progress");
      item.set("updatedAt", Json(formatIso(now)));
      appendTransition(item, "assigned", formatIso(now),
                       {{"attempt", Json(attempt)},
                        {"agentGuid", Json(agentGuid)},
                        {"leaseExpiresAt", Json(formatIso(now + lease))}});
      auto written = store(id, item, revision);
      if (written) {
        auto claimed = decode(item.dump());
        Json response = render(*claimed);
        response.set("claimToken", Json(token));
        return std::optional<Json>(std::move(response));
      }
      if (written.code() != Code::Conflict) return written.status();
      // Lost the race for this item: take the next candidate.
    }
  }
}

Result<Json> WorkQueue::fenced(const std::string& id, const Json& body, const FencedStep& step) {
  const std::string agentGuid = body.getString("agentGuid");
  const std::string token = body.getString("claimToken");
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto loaded = load(id);
    if (!loaded) return loaded.status();
    const auto& [record, revision] = *loaded;
    const Json& held = record->item.get("claimToken");
    if (!held.isString() || record->assignedTo != agentGuid || held.asString() != token) {
      return tokenMismatch();
    }
    if (auto result = step(*record, revision)) return std::move(*result);
    // Lost a race with another writer: re-read and check the token again.
  }
  return Status::unavailable("too much contention on work item " + id);
}

Result<Json> WorkQueue::fenced(const std::string& id, const Json& body, const Mutation& mutate) {
  return fenced(id, body,
                [&](const WorkRecord& record, uint64_t revision) -> std::optional<Result<Json>> {
                  Json item = record.item;
                  if (auto stateError = mutate(record, item)) return Status::conflict(*stateError);
                  item.set("updatedAt", Json(formatIso(ctx_.now())));
                  auto written = store(id, item, revision);
                  if (written) return Result<Json>(render(*decode(item.dump())));
                  if (written.code() == Code::Conflict) return std::nullopt;
                  return Result<Json>(written.status());
                });
}

Result<Json> WorkQueue::start(const std::string& id, const Json& body) {
  if (auto s = requiredString(body, "agentGuid"); !s) return s;
  if (auto s = requiredString(body, "claimToken"); !s) return s;
  return fenced(id, body, [this](const WorkRecord& r, Json& item) -> std::optional<std::string> {
    if (!r.isActive()) return "Cannot start work in " + r.status + " state";
    const int64_t now = ctx_.now();
    if (r.status == "assigned") {
      item.set("status", Json("in-progress"));
      item.set("startedAt", Json(formatIso(now)));
      appendTransition(item, "started", formatIso(now), attemptFields(r));
    }
    item.set("leaseExpiresAt",
             Json(formatIso(now + r.item.getInt("leaseDurationMs", ctx_.options.leaseMs))));
    return std::nullopt;
  });
}

Result<Json> WorkQueue::progress(const std::string& id, const Json& body) {
  if (auto s = requiredString(body, "agentGuid"); !s) return s;
  if (auto s = requiredString(body, "claimToken"); !s) return s;
  const Json& value = body.get("progress");
  if (!value.isInteger() || value.asInt() < 0 || value.asInt() > 100) {
    return invalid("progress must be an integer between 0 and 100");
  }
  return fenced(id, body, [&](const WorkRecord& r, Json& item) -> std::optional<std::string> {
    if (!r.isActive()) return "Cannot report progress on work in " + r.status + " state";
    item.set("progress", Json(value.asInt()));
    item.set("leaseExpiresAt", Json(formatIso(ctx_.now() + r.item.getInt("leaseDurationMs",
                                                                         ctx_.options.leaseMs))));
    return std::nullopt;
  });
}

Result<Json> WorkQueue::complete(const std::string& id, const Json& body) {
  if (auto s = requiredString(body, "agentGuid"); !s) return s;
  if (auto s = requiredString(body, "claimToken"); !s) return s;
  const Json& result = body.get("result");
  if (!result.isNull()) {
    if (!result.isObject()) return invalid("result must be an object");
    const Json& summary = result.get("summary");
    if (!summary.isNull() && !summary.isString()) return invalid("result.summary must be a string");
    const Json& artifacts = result.get("artifacts");
    if (!artifacts.isNull() && !artifacts.isArray()) {
      return invalid("result.artifacts must be an array");
    }
    if (result.dump().size() > 256 * 1024) return invalid("result exceeds 262144 bytes");
  }
  return fenced(id, body, [&](const WorkRecord& r, Json& item) -> std::optional<std::string> {
    if (!r.isActive()) return "Cannot complete work in " + r.status + " state";
    const std::string nowIso = formatIso(ctx_.now());
    Json stored = Json::object();
    for (const char* f : {"summary", "output", "artifacts"}) {
      if (const Json* v = result.find(f); v && !v->isNull()) stored.set(f, *v);
    }
    stored.set("completedAt", Json(nowIso));
    item.set("status", Json("completed"));
    item.set("progress", Json(100));
    item.set("result", std::move(stored));
    item.set("completedAt", Json(nowIso));
    removeLease(item);
    appendTransition(item, "completed", nowIso, attemptFields(r));
    return std::nullopt;
  });
}

Result<WorkQueue::FailOutcome> WorkQueue::applyFailure(const WorkRecord& record,
                                                       uint64_t revision, Json error,
                                                       Json* updated) {
  const int64_t now = ctx_.now();
  const std::string nowIso = formatIso(now);
  const int64_t attempts = record.item.getInt("attempts", 0);
  const int64_t maxAttempts = record.item.getInt("maxAttempts", ctx_.options.maxAttempts);
  const bool recoverable = error.getBool("recoverable", true);
  Json item = record.item;
  appendError(item, error);
  item.set("updatedAt", Json(nowIso));
  const bool retrying = recoverable && attempts < maxAttempts;
  Json::Object logged{{"attempt", Json(attempts)}};
  if (const Json& guid = error.get("agentGuid"); guid.isString()) logged.emplace_back("agentGuid", guid);
  logged.emplace_back("error", Json(item.get("errors").size() - 1));
  logged.emplace_back("retrying", Json(retrying));
  logged.emplace_back("deadLettered", Json(!retrying));
  appendTransition(item, "failed", nowIso, std::move(logged));

  if (retrying) {
    item.set("status", Json("pending"));
    clearAssignment(item);
    auto written = store(record.id, item, revision);
    if (!written) return written.status();
    if (updated) *updated = item;
    return FailOutcome::Retried;
  }

  // For good: the dead-letter entry first (a put replaces any leftover), then
  // the item by compare-and-set; if that loses a race the entry is removed
  // again. After an outage of unknown outcome the entry stays, and the
  // sweeper removes it later if the item did not become failed.
  item.set("status", Json("failed"));
  item.set("failedAt", Json(nowIso));
  removeLease(item);
  Json snapshot = item;
  snapshot.erase("claimToken");
  Json entry = Json::object();
  entry.set("id", Json(record.id));
  entry.set("workItem", snapshot);
  entry.set("reason", Json(recoverable ? "max attempts exceeded" : "non-recoverable error"));
  entry.set("attempts", Json(attempts));
  entry.set("failedAt", Json(nowIso));
  entry.set("errors", item.get("errors"));
  auto dlqRevision = deadLetters_.write(record.id, entry);
  if (!dlqRevision) return dlqRevision.status();
  auto written = store(record.id, item, revision);
  if (!written) {
    if (written.code() == Code::Conflict) deadLetters_.remove(record.id, *dlqRevision);
    return written.status();
  }
  if (updated) *updated = item;
  return FailOutcome::DeadLettered;
}

Result<Json> WorkQueue::fail(const std::string& id, const Json& body) {
  if (auto s = requiredString(body, "agentGuid"); !s) return s;
  if (auto s = requiredString(body, "claimToken"); !s) return s;
  const Json& error = body.get("error");
  if (!error.isObject()) return invalid("error is required");
  const Json& message = error.get("message");
  if (!message.isString() || isBlank(message.asString())) return invalid("error.message is required");
  // Every failure is kept in the item's errors (and its dead-letter entry):
  // bounded, so maxAttempts of them still fit a backend value.
  if (message.asString().size() > kMaxErrorMessage) {
    return invalid("error.message exceeds " + std::to_string(kMaxErrorMessage) + " bytes");
  }
  const Json& code = error.get("code");
  if (!code.isNull() && !code.isString()) return invalid("error.code must be a string");
  if (code.isString() && code.asString().size() > kMaxShortString) {
    return invalid("error.code exceeds 256 bytes");
  }
  const Json& recoverable = error.get("recoverable");
  if (!recoverable.isNull() && !recoverable.isBool()) {
    return invalid("error.recoverable must be a boolean");
  }
  const std::string agentGuid = body.getString("agentGuid");
  return fenced(id, body,
                [&](const WorkRecord& record, uint64_t revision) -> std::optional<Result<Json>> {
                  if (!record.isActive()) {
                    return Status::conflict("Cannot fail work in " + record.status + " state");
                  }
                  Json rec = Json::object();
                  rec.set("message", message);
                  if (code.isString()) rec.set("code", code);
                  rec.set("recoverable", Json(recoverable.isBool() ? recoverable.asBool() : true));
                  rec.set("occurredAt", Json(formatIso(ctx_.now())));
                  rec.set("attempt", Json(record.item.getInt("attempts", 0)));
                  rec.set("agentGuid", Json(agentGuid));
                  Json updated;
                  auto outcome = applyFailure(record, revision, rec, &updated);
                  if (outcome) return Result<Json>(render(*decode(updated.dump())));
                  if (outcome.code() == Code::Conflict) return std::nullopt;
                  return Result<Json>(outcome.status());
                });
}

Result<Json> WorkQueue::retryDeadLetter(const std::string& id, const Json& body) {
  const Json& reset = body.get("resetAttempts");
  if (!reset.isNull() && !reset.isBool()) return invalid("resetAttempts must be a boolean");
  const bool resetAttempts = reset.isBool() ? reset.asBool() : true;
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto entry = deadLetters_.read(id);
    if (!entry) return entry.status();
    auto dead = DeadLetters::decode(entry->value);
    auto b = bucket();
    if (!b) return Status::unavailable("work bucket not open yet");
    auto current = b->get(id);
    if (!current && current.code() != Code::NotFound) return current.status();

    Json item;
    Result<uint64_t> written = Status::internal("unreachable");
    if (current) {
      auto record = decode(current->value);
      if (!record) return workNotFound(id);
      if (record->status != "failed") {
        return Status::conflict("Cannot retry work in " + record->status + " state");
      }
      item = record->item;
    } else {
      // Removed by retention: recreate it from the snapshot.
      item = dead->entry.get("workItem");
      if (!item.isObject()) return Status::internal("dead-letter entry without a snapshot");
    }
    item.set("status", Json("pending"));
    if (resetAttempts) item.set("attempts", Json(0));
    clearAssignment(item);
    item.erase("failedAt");
    const std::string nowIso = formatIso(ctx_.now());
    item.set("updatedAt", Json(nowIso));
    Json::Object logged{{"requeued", Json(true)}};
    if (!current) logged.emplace_back("recreated", Json(true));
    appendTransition(item, "submitted", nowIso, std::move(logged));
    std::string value = item.dump();
    written = current ? b->update(id, value, current->revision) : b->create(id, value);
    if (!written) {
      if (written.code() == Code::Conflict || written.code() == Code::AlreadyExists) continue;
      return written.status();
    }
    view_->applyPut(id, value, *written);
    // The item is pending again; the entry goes. If this removal fails the
    // sweeper removes the orphan later.
    deadLetters_.remove(id, entry->revision);
    return render(*decode(value));
  }
  return Status::unavailable("too much contention on work item " + id);
}

Result<Json> WorkQueue::cancelBatch(const Json& body) {
  const Json& filter = body.get("filter");
  const Json& ids = body.get("workItemIds");
  // The checks of §2.3 in order, with the truthiness the contract's wording
  // comes from: any value other than an empty list counts as "given".
  const bool idsGiven = !isFalsy(ids) && !(ids.isArray() && ids.asArray().empty());
  if (isFalsy(filter) && !idsGiven) {
    return invalid("Either filter or workItemIds must be provided");
  }
  if (!ids.isNull() && !ids.isArray()) return invalid("workItemIds must be an array");
  if (!isFalsy(filter) && !filter.isObject()) return invalid("filter must be an object");
  const bool haveIds = idsGiven;
  if (haveIds && ids.asArray().size() > 1000) return invalid("workItemIds exceeds 1000 items");
  for (const char* f : {"status", "boundary", "capability", "assignedTo"}) {
    const Json& v = filter.get(f);
    if (!v.isNull() && !v.isString()) return invalid(std::string("filter.") + f + " must be a string");
  }
  const Json& minPriority = filter.get("minPriority");
  if (!minPriority.isNull() && !minPriority.isNumber()) {
    return invalid("filter.minPriority must be a number");
  }
  const Json& reason = body.get("reason");
  if (!reason.isNull()) {
    static const char* kReasons[] = {"user-requested", "deadline-passed", "resource-constraint",
                                     "system-shutdown"};
    if (!reason.isString() || std::none_of(std::begin(kReasons), std::end(kReasons), [&](auto r) {
          return reason.asString() == r;
        })) {
      return invalid(
          "Invalid reason. Must be one of: user-requested, deadline-passed, resource-constraint, "
          "system-shutdown");
    }
  }
  const bool reassign = body.get("reassign").isBool() && body.get("reassign").asBool();
  if (auto s = ready(); !s) return s;

  std::vector<std::string> selected;
  if (haveIds) {
    for (const auto& v : ids.asArray()) selected.push_back(v.isString() ? v.asString() : v.dump());
  } else {
    const Json& projectId = body.get("projectId");
    std::vector<std::shared_ptr<const WorkRecord>> rows;
    view_->forEach([&](const std::string&, const std::shared_ptr<const WorkRecord>& r) {
      if (projectId.isString() && r->projectId != projectId.asString()) return;
      if (filter.get("status").isString() && r->status != filter.getString("status")) return;
      if (filter.get("boundary").isString() && r->boundary != filter.getString("boundary")) return;
      if (filter.get("capability").isString() && r->capability != filter.getString("capability")) {
        return;
      }
      if (filter.get("assignedTo").isString() && r->assignedTo != filter.getString("assignedTo")) {
        return;
      }
      if (minPriority.isNumber() && static_cast<double>(r->priority) < minPriority.asDouble()) {
        return;
      }
      rows.push_back(r);
    });
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
      if (a->priority != b->priority) return a->priority > b->priority;
      if (a->offeredAtMs != b->offeredAtMs) return a->offeredAtMs < b->offeredAtMs;
      return a->id < b->id;
    });
    for (const auto& r : rows) selected.push_back(r->id);
  }

  BatchResult batch;
  Json cancelledItems = Json::array(), reassignedItems = Json::array(),
       notCancellable = Json::array();
  for (const auto& id : selected) {
    bool done = false;
    for (int attempt = 0; attempt < kMaxCasAttempts && !done; ++attempt) {
      auto loaded = load(id);
      if (!loaded) {
        if (loaded.code() == Code::NotFound) {
          batch.fail(id, "Work item not found");
          done = true;
          break;
        }
        return loaded.status();  // stop at the first backend failure (§1.9)
      }
      const auto& [record, revision] = *loaded;
      if (record->isTerminal()) {
        batch.fail(id, "Cannot cancel work in " + record->status + " state");
        notCancellable.push(Json(id));
        done = true;
        break;
      }
      Json item = record->item;
      const std::string nowIso = formatIso(ctx_.now());
      bool requeue = reassign && record->isActive();
      if (requeue) {
        item.set("status", Json("pending"));
        clearAssignment(item);
        appendTransition(item, "submitted", nowIso, {{"requeued", Json(true)}});
      } else {
        item.set("status", Json("cancelled"));
        item.set("cancelledAt", Json(nowIso));
        item.erase("leaseExpiresAt");
        if (reason.isString()) item.set("cancelReason", reason);
        appendTransition(item, "cancelled", nowIso, assigneeField(*record));
      }
      item.set("updatedAt", Json(nowIso));
      auto written = store(id, item, revision);
      if (written) {
        batch.succeed(id);
        (requeue ? reassignedItems : cancelledItems).push(Json(id));
        done = true;
      } else if (written.code() != Code::Conflict) {
        return written.status();
      }
    }
    if (!done) return Status::unavailable("too much contention on work item " + id);
  }
  Json out = batch.toJson(ctx_.now());
  out.set("cancelledItems", std::move(cancelledItems));
  out.set("reassignedItems", std::move(reassignedItems));
  out.set("notCancellable", std::move(notCancellable));
  return out;
}

WorkQueue::SweepReport WorkQueue::sweepOnce() {
  SweepReport report;
  if (!ctx_.checkConnected() || !view_->ready() || !deadLetters_.view().ready()) return report;
  const int64_t now = ctx_.now();

  // Expired leases: a recoverable failure, by compare-and-set at the revision
  // this instance read, so two sweepers never both count one expiry.
  std::vector<std::string> expired;
  view_->forEach([&](const std::string& id, const std::shared_ptr<const WorkRecord>& r) {
    if (r->isActive() && r->leaseExpiresAtMs && *r->leaseExpiresAtMs <= now) expired.push_back(id);
  });
  for (const auto& id : expired) {
    auto loaded = load(id);
    if (!loaded) {
      if (loaded.code() != Code::NotFound) ++report.errors;
      continue;
    }
    const auto& [record, revision] = *loaded;
    if (!record->isActive() || !record->leaseExpiresAtMs || *record->leaseExpiresAtMs > now) {
      continue;  // renewed or finished meanwhile
    }
    Json error = Json::object();
    error.set("message", Json("lease expired"));
    error.set("code", Json("LEASE_EXPIRED"));
    error.set("recoverable", Json(true));
    error.set("occurredAt", Json(formatIso(now)));
    error.set("attempt", Json(record->item.getInt("attempts", 0)));
    if (!record->assignedTo.empty()) error.set("agentGuid", Json(record->assignedTo));
    auto outcome = applyFailure(*record, revision, error, nullptr);
    if (outcome) {
      ++report.leasesExpired;
      ++(*outcome == FailOutcome::Retried ? report.retried : report.deadLettered);
    } else if (outcome.code() != Code::Conflict) {
      ++report.errors;
    }
  }

  // Dead-letter entries whose item is no longer failed (a lost race or an
  // outage between the two writes), once old enough that no update of the
  // item can still be in flight; and retention.
  constexpr int64_t kOrphanMarginMs = 60000;
  std::vector<std::pair<std::string, int64_t>> dead;
  deadLetters_.view().forEach(
      [&](const std::string& id, const std::shared_ptr<const DeadLetterRecord>& r) {
        dead.emplace_back(id, r->failedAtMs);
      });
  for (const auto& [id, failedAtMs] : dead) {
    bool expiredByRetention =
        ctx_.options.dlqRetentionMs > 0 && now - failedAtMs >= ctx_.options.dlqRetentionMs;
    bool orphanCandidate = false;
    if (!expiredByRetention) {
      if (now - failedAtMs < kOrphanMarginMs) continue;
      auto item = view_->find(id);
      orphanCandidate = item && item->status != "failed";
      if (!orphanCandidate) continue;
    }
    auto entry = deadLetters_.read(id);
    if (!entry) continue;
    if (orphanCandidate) {
      auto loaded = load(id);
      if (!loaded || loaded->first->status == "failed") continue;
    }
    if (deadLetters_.remove(id, entry->revision)) {
      ++(orphanCandidate ? report.orphansRemoved : report.deadLettersPurged);
    }
  }

  // Terminal items past work.retentionMs.
  std::vector<std::pair<std::string, uint64_t>> old;
  view_->forEachEntry([&](const std::string& id, const std::shared_ptr<const WorkRecord>& r,
                          uint64_t revision) {
    if (r->isTerminal() && now - r->updatedAtMs >= ctx_.options.retentionMs) {
      old.emplace_back(id, revision);
    }
  });
  for (const auto& [id, revision] : old) {
    auto b = bucket();
    if (b && b->erase(id, revision)) {
      view_->applyErase(id, revision);
      ++report.itemsPurged;
    }
  }
  return report;
}

void WorkQueue::sweeperLoop(int64_t intervalMs) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(sweeperMutex_);
      if (sweeperCv_.wait_for(lock, std::chrono::milliseconds(intervalMs),
                              [this] { return stopping_; })) {
        return;
      }
    }
    try {
      SweepReport r = sweepOnce();
      if (r.leasesExpired || r.orphansRemoved || r.itemsPurged || r.deadLettersPurged || r.errors) {
        log::info("sweep", {{"leasesExpired", r.leasesExpired},
                            {"retried", r.retried},
                            {"deadLettered", r.deadLettered},
                            {"orphansRemoved", r.orphansRemoved},
                            {"itemsPurged", r.itemsPurged},
                            {"deadLettersPurged", r.deadLettersPurged},
                            {"errors", r.errors}});
      }
    } catch (const std::exception& e) {
      log::error("sweep failed", {{"error", e.what()}});
    }
  }
}

}  // namespace weft
