// The WorkQueue service: decoding and rendering stored items, the view and
// its pending index, reads, cancel and the batch cancel. Submit, the
// lifecycle and the sweeper are in work_submit.cpp, work_lifecycle.cpp and
// work_sweeper.cpp.
#include "weft/work_queue.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/ids.h"
#include "weft/log.h"
#include "weft/work_transitions.h"
#include "work_rules.h"

namespace weft {

using namespace work_rules;

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
  view_->addIndexer([this](const std::string& key, const std::shared_ptr<const WorkRecord>& b,
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

}  // namespace weft
