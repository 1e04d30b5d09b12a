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
#include "work_index.h"
#include "work_rules.h"

namespace weft {

using namespace work_rules;

std::shared_ptr<const WorkEntry> WorkEntry::of(const WorkRecord& r) {
  auto e = std::make_shared<WorkEntry>();
  e->id = r.id;
  e->projectId = r.projectId;
  e->capability = r.capability;
  e->boundary = r.boundary;
  e->requiredAgentType = r.requiredAgentType;
  e->assignedTo = r.assignedTo;
  e->status = r.status;
  if (r.status == WorkStatus::Unknown) e->unknownStatus = r.statusText();
  e->priority = r.priority;
  e->attempts = r.attempts;
  e->offeredAtMs = r.offeredAtMs;
  e->updatedAtMs = r.updatedAtMs;
  e->dueAtMs = r.dueAtMs;
  e->leaseExpiresAtMs = r.leaseExpiresAtMs;
  if (r.has(WorkField::Progress)) e->progress = r.progress;
  e->lastTransitionSeq = weft::lastTransitionSeq(r.transitions);
  e->errorCount = r.errors.size();
  return e;
}

namespace {

// The members WorkEntry::read builds; the others it only checks (the
// transition log and the errors too: it reads their shape from their text).
bool entryMember(std::string_view key) {
  static constexpr std::string_view kMembers[] = {
      "id",       "projectId",  "capability",     "boundary",      "requiredAgentType",
      "assignedTo", "status",   "priority",       "attempts",      "offeredAt",
      "updatedAt", "leaseExpiresAt", "nextAttemptAt", "progress"};
  for (std::string_view m : kMembers) {
    if (m == key) return true;
  }
  return false;
}

}  // namespace

std::shared_ptr<const WorkEntry> WorkEntry::read(const std::string& stored) {
  thread_local Json::Spans others;
  auto parsed = Json::parseMembers(stored, entryMember, 64, &others);
  if (!parsed || !parsed->isObject()) return nullptr;
  Json& v = *parsed;
  // As WorkItem::decodeInto and WorkItem::setTyped read them.
  const Json& id = v.get("id");
  const Json& status = v.get("status");
  if (!id.isString() || id.asString().empty() || !status.isString()) return nullptr;
  // A text member, moved out of the parsed value (each is read once).
  auto text = [&](const char* name) {
    Json* m = v.find(name);
    return m && m->isString() ? std::move(m->asString()) : std::string();
  };
  auto number = [&](const char* name, int64_t fallback) {
    const Json& m = v.get(name);
    return m.isInteger() ? m.asInt() : fallback;
  };
  auto e = std::make_shared<WorkEntry>();
  e->id = text("id");
  e->projectId = text("projectId");
  e->capability = text("capability");
  e->boundary = text("boundary");
  e->requiredAgentType = text("requiredAgentType");
  e->assignedTo = text("assignedTo");
  e->status = parseWorkStatus(status.asString()).value_or(WorkStatus::Unknown);
  if (e->status == WorkStatus::Unknown) e->unknownStatus = text("status");
  e->priority = number("priority", 5);
  e->attempts = number("attempts", 0);
  e->offeredAtMs = parseIso(text("offeredAt")).value_or(0);
  e->updatedAtMs = parseIso(text("updatedAt")).value_or(e->offeredAtMs);
  if (const Json& m = v.get("leaseExpiresAt"); m.isString()) e->leaseExpiresAtMs = parseIso(m.asString());
  if (const Json& m = v.get("nextAttemptAt"); m.isString()) e->dueAtMs = parseIso(m.asString()).value_or(0);
  if (const Json& m = v.get("progress"); m.isInteger()) e->progress = m.asInt();
  // The last of each (a member given twice: the last one counts).
  std::string_view transitions, errors;
  for (const auto& [key, text] : others) {
    if (key == "transitions") transitions = text;
    if (key == "errors") errors = text;
  }
  // As lastTransitionSeq reads the log: the seq of its last entry.
  std::string_view last;
  if (!transitions.empty() && transitions[0] == '[' && Json::arrayShape(transitions, &last) > 0) {
    auto entry = Json::parse(last, 64);
    e->lastTransitionSeq = entry ? entry->getInt("seq", 0) : 0;
  }
  if (!errors.empty() && errors[0] == '[') e->errorCount = Json::arrayShape(errors, &last);
  return e;
}

std::shared_ptr<const WorkRecord> WorkQueue::decode(const std::string& value) {
  auto parsed = Json::parse(value, 64);
  if (!parsed) return nullptr;
  auto r = std::make_shared<WorkRecord>();
  if (!WorkItem::decodeInto(*parsed, *r)) return nullptr;
  r->offeredAtMs = parseIso(r->offeredAt).value_or(0);
  r->updatedAtMs = parseIso(r->updatedAt).value_or(r->offeredAtMs);
  if (r->has(WorkField::LeaseExpiresAt)) r->leaseExpiresAtMs = parseIso(r->leaseExpiresAt);
  if (r->has(WorkField::NextAttemptAt)) r->dueAtMs = parseIso(r->nextAttemptAt).value_or(0);
  return r;
}

WorkQueue::WorkQueue(ServiceContext context, AgentRegistry& agents, DeadLetters& deadLetters)
    : ctx_(std::move(context)),
      agents_(agents),
      deadLetters_(deadLetters),
      listIndex_(std::make_unique<WorkIndex>()) {
  view_ = std::make_unique<View>(
      kWorkBucket, View::Options{},
      [](const std::string&, const std::string& value) { return decode(value); },
      [](const std::shared_ptr<const WorkRecord>& record, const std::string&) {
        return WorkEntry::of(*record);
      });
  view_->addIndexer([this](const std::string& key, const std::shared_ptr<const WorkEntry>& b,
                           const std::shared_ptr<const WorkEntry>& a) { index(key, b, a); });
  view_->setReplayDecoder(
      [](const std::string&, const std::string& value) { return WorkEntry::read(value); });
  loadInBulk(*view_, *listIndex_);
  view_->addLoadedHook([this] {
    loading_ = false;
    finished_.settle();
  });
  saver_ = std::make_unique<ViewSaver<WorkEntry, WorkRecord>>(*view_, kSavedKind, encodeSaved,
                                                              decodeSaved);
}

WorkQueue::~WorkQueue() { stop(); }

void WorkQueue::start(int64_t sweepIntervalMs) {
  saver_->start(ctx_.options.viewSaveDir, ctx_.options.viewSaveIntervalMs);
  view_->start(ctx_.store);
  timer_ = std::thread([this] { timerLoop(); });
  constexpr int kClaimThreads = 4;
  for (int i = 0; i < kClaimThreads; ++i) claimWorkers_.emplace_back([this] { claimWorkerLoop(); });
  if (sweepIntervalMs > 0) {
    sweeper_ = std::thread([this, sweepIntervalMs] { sweeperLoop(sweepIntervalMs); });
  }
}

void WorkQueue::stop() {
  endClaimWaits();
  {
    std::lock_guard<std::mutex> lock(waitersMutex_);
    workersStopping_ = true;
  }
  runCv_.notify_all();
  for (auto& t : claimWorkers_) {
    if (t.joinable()) t.join();
  }
  {
    std::lock_guard<std::mutex> lock(timerMutex_);
    timerStopping_ = true;
  }
  timerCv_.notify_all();
  if (timer_.joinable()) timer_.join();
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
  saver_->stop();  // the last state, so the next start reads only what follows
  view_->stop();
}

void WorkQueue::index(const std::string& key, const std::shared_ptr<const WorkEntry>& before,
                      const std::shared_ptr<const WorkEntry>& after) {
  bool wasClaimable = false;
  if (before && before->status == WorkStatus::Pending) {
    auto it = pending_.find(pendingKeyOf(before->projectId, before->capability));
    if (it != pending_.end()) {
      wasClaimable = it->second.erase(PendingKey{before->priority, before->offeredAtMs, key}) > 0;
      if (it->second.empty()) pending_.erase(it);
    }
    if (before->dueAtMs > 0) delayed_.erase({before->dueAtMs, key});
  }
  if (before && before->isActive() && !before->assignedTo.empty()) {
    auto it = activeByAgent_.find(before->assignedTo);
    if (it != activeByAgent_.end() && --it->second <= 0) activeByAgent_.erase(it);
  }
  if (after && after->status == WorkStatus::Pending) {
    PendingKey pendingKey{after->priority, after->offeredAtMs, key};
    Candidate candidate{after->capability, after->boundary, after->requiredAgentType};
    if (after->dueAtMs > ctx_.now()) {
      // Not claimable yet: kept by due time, moved over by promoteDue().
      std::pair<int64_t, std::string> dueKey{after->dueAtMs, key};
      const bool earliest = delayed_.empty() || dueKey < delayed_.begin()->first;
      delayed_.emplace(std::move(dueKey),
                       DelayedEntry{after->projectId, std::move(pendingKey), std::move(candidate)});
      if (earliest) kickTimer();
    } else {
      const std::string k = pendingKeyOf(after->projectId, after->capability);
      pending_[k].emplace(std::move(pendingKey), candidate);
      if (!wasClaimable) onClaimable(k, candidate);
    }
  }
  if (after && after->isActive() && !after->assignedTo.empty()) {
    ++activeByAgent_[after->assignedTo];
  }
  if (before && before->isActive() && before->leaseExpiresAtMs) {
    leases_.erase({*before->leaseExpiresAtMs, key});
  }
  if (after && after->isActive() && after->leaseExpiresAtMs) {
    leases_.emplace(*after->leaseExpiresAtMs, key);
  }
  if (before && before->isTerminal()) {
    finished_.eraseKey(Finished{before->updatedAtMs, before.get()});
  }
  if (after && after->isTerminal()) {
    const Finished entry{after->updatedAtMs, after.get()};
    if (loading_) {
      finished_.defer(entry);  // put in order once loaded
    } else {
      finished_.insert(entry);
    }
  }
  listIndex_->update(before.get(), after.get());
}

void WorkQueue::promoteDue() {
  const int64_t now = ctx_.now();
  const bool due =
      view_->read([&] { return !delayed_.empty() && delayed_.begin()->first.first <= now; });
  if (!due) return;
  view_->write([&] {
    while (!delayed_.empty() && delayed_.begin()->first.first <= now) {
      auto node = delayed_.extract(delayed_.begin());
      DelayedEntry& e = node.mapped();
      const std::string k = pendingKeyOf(e.project, e.candidate.capability);
      pending_[k].emplace(e.key, e.candidate);
      onClaimable(k, e.candidate);
    }
  });
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

WorkItemView WorkQueue::viewOf(std::shared_ptr<const WorkItem> item) const {
  WorkItemView view{std::move(item), Json()};
  if (!view.item->assignedTo.empty()) view.assignedToAgent = agents_.summary(view.item->assignedTo);
  return view;
}

Result<WorkItemView> WorkQueue::get(const std::string& id) const {
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
  return viewOf(record);
}

Result<std::vector<std::shared_ptr<const WorkItem>>> WorkQueue::readItems(
    const std::vector<std::shared_ptr<const WorkEntry>>& entries, size_t from,
    size_t count) const {
  const size_t end = std::min(entries.size(), from + count);
  std::vector<std::shared_ptr<const WorkItem>> out(end > from ? end - from : 0);
  // Each id with the revision the view holds now (0: deleted since the page
  // was read; left out).
  std::vector<std::pair<std::string, uint64_t>> wanted;
  for (size_t i = from; i < end; ++i) {
    wanted.emplace_back(entries[i]->id, view_->findEntry(entries[i]->id).second);
  }
  if (wanted.empty()) return out;
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("work bucket not open yet");
  auto values = values_.read(*bucket, wanted);
  if (!values) return values.status();
  for (size_t k = 0; k < out.size(); ++k) {
    if ((*values)[k]) out[k] = decode(*(*values)[k]);
  }
  return out;
}

namespace {

bool listOrder(const std::shared_ptr<const WorkEntry>& a, const std::shared_ptr<const WorkEntry>& b) {
  if (a->priority != b->priority) return a->priority > b->priority;
  if (a->offeredAtMs != b->offeredAtMs) return a->offeredAtMs < b->offeredAtMs;
  return a->id < b->id;
}

}  // namespace

Result<WorkPage> WorkQueue::list(const WorkFilter& f, const PageRequest& page) const {
  Json filters = Json::object();
  if (f.status) filters.set("status", Json(*f.status));
  if (f.boundary) filters.set("boundary", Json(*f.boundary));
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.assignedTo) filters.set("assignedTo", Json(*f.assignedTo));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("work", filters, page);
  if (!pager) return pager.status();
  auto query = pageQuery<WorkIndex>(*pager);
  if (!query) return query.status();
  if (auto s = ready(); !s) return s;
  WorkPage out{{}, *pager, 0, {}, {}, {}};
  fillPage(*view_, *listIndex_, WorkIndex::filterOf(f), *query, out.entries, out.total, out.pager);
  // The entries are immutable snapshots; the summaries are read as the page
  // is rendered.
  out.agentSummary = [this](const std::string& guid) { return agents_.summary(guid); };
  out.read = [this](const std::vector<std::shared_ptr<const WorkEntry>>& entries, size_t from,
                    size_t count) { return readItems(entries, from, count); };
  if (!out.pager.all()) {
    // A bounded page (at most 100) is read now, on the request's thread.
    auto items = readItems(out.entries, 0, out.entries.size());
    if (!items) return items.status();
    // An item deleted since the index was read is left out of the page.
    size_t kept = 0;
    for (size_t i = 0; i < items->size(); ++i) {
      if (!(*items)[i]) continue;
      out.entries[kept] = std::move(out.entries[i]);
      (*items)[kept++] = std::move((*items)[i]);
    }
    out.pager.leaveOut(items->size() - kept);
    out.entries.resize(kept);
    items->resize(kept);
    out.items = std::move(*items);
  }
  return out;
}

size_t WorkQueue::count(const WorkFilter& filter) const {
  return view_->read([&] { return listIndex_->count(filter); });
}

Result<std::shared_ptr<const WorkItem>> WorkQueue::cancel(const std::string& id) {
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
      return Status::conflict("Cannot cancel work in " + record->statusText() + " state");
    }
    auto item = std::make_shared<WorkItem>(*record);
    std::string nowIso = formatIso(ctx_.now());
    item->setStatus(WorkStatus::Cancelled);
    item->set(WorkField::CancelledAt, nowIso);
    item->set(WorkField::UpdatedAt, nowIso);
    item->erase(WorkField::LeaseExpiresAt);
    appendTransition(*item, "cancelled", nowIso, assigneeField(*record));
    std::string value = item->encode();
    auto written = bucket->update(id, value, entry->revision);
    if (written) {
      applyStored(id, value, *written);
      return std::shared_ptr<const WorkItem>(std::move(item));
    }
    if (written.code() != Code::Conflict) return written.status();
  }
  return Status::unavailable("too much contention on work item " + id);
}

Result<CancelBatchResult> WorkQueue::cancelBatch(const CancelBatchRequest& request) {
  const auto& filter = request.filter;
  if (auto s = ready(); !s) return s;

  std::vector<std::string> selected;
  if (request.ids) {
    selected = *request.ids;
  } else {
    std::vector<std::shared_ptr<const WorkEntry>> rows;
    view_->forEach([&](const std::string&, const std::shared_ptr<const WorkEntry>& r) {
      if (request.projectId && r->projectId != *request.projectId) return;
      if (filter.status && r->statusText() != *filter.status) return;
      if (filter.boundary && r->boundary != *filter.boundary) return;
      if (filter.capability && r->capability != *filter.capability) return;
      if (filter.assignedTo && r->assignedTo != *filter.assignedTo) return;
      if (filter.minPriority && static_cast<double>(r->priority) < *filter.minPriority) return;
      rows.push_back(r);
    });
    std::sort(rows.begin(), rows.end(), listOrder);
    for (const auto& r : rows) selected.push_back(r->id);
  }

  CancelBatchResult out;
  for (const auto& id : selected) {
    bool done = false;
    for (int attempt = 0; attempt < kMaxCasAttempts && !done; ++attempt) {
      auto loaded = load(id);
      if (!loaded) {
        if (loaded.code() == Code::NotFound) {
          out.batch.fail(id, "Work item not found");
          done = true;
          break;
        }
        return loaded.status();  // stop at the first backend failure (§1.9)
      }
      const auto& [record, revision] = *loaded;
      if (record->isTerminal()) {
        out.batch.fail(id, "Cannot cancel work in " + record->statusText() + " state");
        out.notCancellable.push_back(id);
        done = true;
        break;
      }
      WorkItem item = *record;
      const std::string nowIso = formatIso(ctx_.now());
      bool requeue = request.reassign && record->isActive();
      if (requeue) {
        item.setStatus(WorkStatus::Pending);
        clearAssignment(item);
        item.erase(WorkField::NextAttemptAt);  // claimable at once
        appendTransition(item, "submitted", nowIso, {{"requeued", Json(true)}});
      } else {
        item.setStatus(WorkStatus::Cancelled);
        item.set(WorkField::CancelledAt, nowIso);
        item.erase(WorkField::LeaseExpiresAt);
        if (request.reason) item.set(WorkField::CancelReason, *request.reason);
        appendTransition(item, "cancelled", nowIso, assigneeField(*record));
      }
      item.set(WorkField::UpdatedAt, nowIso);
      auto written = store(id, item, revision);
      if (written) {
        out.batch.succeed(id);
        (requeue ? out.reassignedItems : out.cancelledItems).push_back(id);
        done = true;
      } else if (written.code() != Code::Conflict) {
        return written.status();
      }
    }
    if (!done) return Status::unavailable("too much contention on work item " + id);
  }
  out.completedAtMs = ctx_.now();
  return out;
}

}  // namespace weft
