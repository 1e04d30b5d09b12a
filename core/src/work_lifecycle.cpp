// The lifecycle of a work item (docs/api.md §2.4): claims, the fenced
// transitions an agent reports (start, progress, complete, fail), failure
// handling with retries and the move to the dead-letter queue, and a DLQ
// retry.
#include "weft/work_queue.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/ids.h"
#include "weft/log.h"
#include "weft/work_transitions.h"
#include "work_rules.h"

namespace weft {

using namespace work_rules;

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
  // Read-through: a fresh read also corrects the view, which ignores it
  // unless it is newer than what the view holds. A view that missed a
  // change to this key (its claims then lose every compare-and-set on it,
  // and its sweeper cannot see the lease) heals on the next read.
  applyStored(id, entry->value, entry->revision);
  return std::make_pair(record, entry->revision);
}

Result<uint64_t> WorkQueue::store(const std::string& id, const WorkItem& item, uint64_t revision) {
  auto b = bucket();
  if (!b) return Status::unavailable("work bucket not open yet");
  std::string value = item.encode();
  auto written = b->update(id, value, revision);
  if (written) applyStored(id, value, *written);
  return written;
}

void WorkQueue::applyStored(const std::string& id, const std::string& value,
                            uint64_t revision) const {
  values_.put(id, revision, value);
  view_->applyPut(id, value, revision);
}

bool WorkQueue::Selection::eligible(const Candidate& c) const {
  return (anyBoundary || contains(bounds, c.boundary)) &&
         (c.requiredAgentType.empty() || c.requiredAgentType == agentType);
}

Result<WorkQueue::Selection> WorkQueue::selectionFor(const ClaimRequest& request) {
  const std::string& agentGuid = request.agentGuid;
  auto agent = agents_.fetch(agentGuid);
  if (!agent) return agent.status();
  if ((*agent)->status == "offline") {
    return Status::conflict("Agent with GUID " + agentGuid + " is offline");
  }
  // The effective selection (§2.4): request values, else what the agent declared.
  Selection sel;
  sel.agentGuid = agentGuid;
  const std::vector<std::string>& caps =
      request.capabilities ? *request.capabilities : (*agent)->capabilities;
  for (const auto& cap : std::set<std::string>(caps.begin(), caps.end())) sel.caps.push_back(cap);
  sel.anyBoundary = !request.boundaries && !(*agent)->declaredBoundaries;
  sel.bounds = request.boundaries ? *request.boundaries
                                  : ((*agent)->declaredBoundaries ? (*agent)->boundaries
                                                                  : std::vector<std::string>{});
  sel.project = request.projectId.value_or((*agent)->projectId);
  sel.agentType = (*agent)->agentType;
  return sel;
}

Result<std::optional<ClaimedItem>> WorkQueue::claim(const ClaimRequest& request) {
  if (auto s = ready(); !s) return s;
  auto sel = selectionFor(request);
  if (!sel) return sel.status();
  return claimSelected(*sel, request);
}

Result<std::optional<ClaimedItem>> WorkQueue::claimSelected(const Selection& sel,
                                                            const ClaimRequest& request) {
  if (auto s = ready(); !s) return s;
  promoteDue();
  const std::string& agentGuid = sel.agentGuid;
  const std::string& project = sel.project;
  const std::vector<std::string>& caps = sel.caps;
  auto eligible = [&](const Candidate& c) { return sel.eligible(c); };

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
      for (const auto& cap : caps) {
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
    if (ids.empty()) return std::optional<ClaimedItem>{};
    for (const auto& id : ids) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status::timeout("claim did not finish within kv.timeoutMs");
      }
      tried.insert(id);
      auto [entry, revision] = view_->findEntry(id);
      const int64_t now = ctx_.now();
      if (!entry || entry->status != WorkStatus::Pending || entry->dueAtMs > now) continue;
      // The value: from the cache when this instance wrote or read it at
      // that revision (an item submitted here), else one read.
      auto bucket = view_->bucket();
      if (!bucket) return Status::unavailable("work bucket not open yet");
      auto values = values_.read(*bucket, {{id, revision}});
      if (!values) return values.status();
      if (values->empty() || !values->front()) continue;  // gone meanwhile
      auto record = decode(*values->front());
      if (!record) continue;
      const int64_t lease = request.leaseMs ? *request.leaseMs
                            : record->has(WorkField::LeaseMs) ? record->leaseMs
                                                              : ctx_.options.leaseMs;
      const int64_t attempt = record->attempts + 1;
      const std::string nowIso = formatIso(now), expiresIso = formatIso(now + lease);
      auto item = std::make_shared<WorkItem>(*record);
      item->setStatus(WorkStatus::Assigned);
      item->set(WorkField::Attempts, attempt);
      item->set(WorkField::AssignedTo, agentGuid);
      item->set(WorkField::AssignedAt, nowIso);
      item->erase(WorkField::StartedAt);
      item->set(WorkField::LeaseDurationMs, lease);
      item->set(WorkField::LeaseExpiresAt, expiresIso);
      item->set(WorkField::ClaimToken, newToken());
      item->erase(WorkField::Progress);
      item->erase(WorkField::NextAttemptAt);
      item->set(WorkField::UpdatedAt, nowIso);
      appendTransition(*item, "assigned", nowIso,
                       {{"attempt", Json(attempt)},
                        {"agentGuid", Json(agentGuid)},
                        {"leaseExpiresAt", Json(expiresIso)}});
      auto written = store(id, *item, revision);
      if (written) return std::optional<ClaimedItem>(ClaimedItem{viewOf(std::move(item))});
      if (written.code() != Code::Conflict) return written.status();
      // Lost the race for this item: take the next candidate. The view was
      // behind on it; read it so the view catches up (load() refreshes it)
      // instead of offering the same stale candidate to every later claim.
      (void)load(id);
    }
  }
}

Result<WorkItemView> WorkQueue::fenced(const std::string& id, const ClaimHolder& holder,
                                       const FencedStep& step) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto loaded = load(id);
    if (!loaded) return loaded.status();
    const auto& [record, revision] = *loaded;
    if (!record->has(WorkField::ClaimToken) || record->assignedTo != holder.agentGuid ||
        record->claimToken != holder.claimToken) {
      return tokenMismatch();
    }
    if (auto result = step(*record, revision)) return std::move(*result);
    // Lost a race with another writer: re-read and check the token again.
  }
  return Status::unavailable("too much contention on work item " + id);
}

Result<WorkItemView> WorkQueue::fenced(const std::string& id, const ClaimHolder& holder,
                                       const Mutation& mutate) {
  return fenced(id, holder,
                [&](const WorkRecord& record,
                    uint64_t revision) -> std::optional<Result<WorkItemView>> {
                  auto item = std::make_shared<WorkItem>(record);
                  if (auto stateError = mutate(record, *item)) return Status::conflict(*stateError);
                  item->set(WorkField::UpdatedAt, formatIso(ctx_.now()));
                  auto written = store(id, *item, revision);
                  if (written) return Result<WorkItemView>(viewOf(std::move(item)));
                  if (written.code() == Code::Conflict) return std::nullopt;
                  return Result<WorkItemView>(written.status());
                });
}

namespace {

int64_t leaseDurationOf(const WorkItem& item, int64_t fallback) {
  return item.has(WorkField::LeaseDurationMs) ? item.leaseDurationMs : fallback;
}

}  // namespace

Result<WorkItemView> WorkQueue::start(const std::string& id, const ClaimHolder& holder) {
  return fenced(id, holder, [this](const WorkRecord& r, WorkItem& item) -> std::optional<std::string> {
    if (!r.isActive()) return "Cannot start work in " + r.statusText() + " state";
    const int64_t now = ctx_.now();
    if (r.status == WorkStatus::Assigned) {
      item.setStatus(WorkStatus::InProgress);
      item.set(WorkField::StartedAt, formatIso(now));
      appendTransition(item, "started", formatIso(now), attemptFields(r));
    }
    item.set(WorkField::LeaseExpiresAt, formatIso(now + leaseDurationOf(r, ctx_.options.leaseMs)));
    return std::nullopt;
  });
}

Result<WorkItemView> WorkQueue::progress(const std::string& id, const ProgressReport& report) {
  return fenced(id, report.holder,
                [&](const WorkRecord& r, WorkItem& item) -> std::optional<std::string> {
                  if (!r.isActive()) {
                    return "Cannot report progress on work in " + r.statusText() + " state";
                  }
                  item.set(WorkField::Progress, report.progress);
                  item.set(WorkField::LeaseExpiresAt,
                           formatIso(ctx_.now() + leaseDurationOf(r, ctx_.options.leaseMs)));
                  return std::nullopt;
                });
}

Result<WorkItemView> WorkQueue::complete(const std::string& id, const CompleteReport& report) {
  return fenced(id, report.holder,
                [&](const WorkRecord& r, WorkItem& item) -> std::optional<std::string> {
                  if (!r.isActive()) return "Cannot complete work in " + r.statusText() + " state";
                  const std::string nowIso = formatIso(ctx_.now());
                  Json stored = Json::object();
                  for (const char* f : {"summary", "output", "artifacts"}) {
                    if (const Json* v = report.result.find(f); v && !v->isNull()) stored.set(f, *v);
                  }
                  stored.set("completedAt", Json(nowIso));
                  item.setStatus(WorkStatus::Completed);
                  item.set(WorkField::Progress, int64_t{100});
                  item.setJson(WorkField::Result, std::move(stored));
                  item.set(WorkField::CompletedAt, nowIso);
                  removeLease(item);
                  appendTransition(item, "completed", nowIso, attemptFields(r));
                  return std::nullopt;
                });
}

Result<WorkQueue::FailOutcome> WorkQueue::applyFailure(const WorkRecord& record,
                                                       uint64_t revision, ErrorRecord error,
                                                       std::shared_ptr<const WorkRecord>* updated) {
  const int64_t now = ctx_.now();
  const std::string nowIso = formatIso(now);
  const int64_t attempts = record.attempts;
  const int64_t maxAttempts =
      record.has(WorkField::MaxAttempts) ? record.maxAttempts : ctx_.options.maxAttempts;
  const bool recoverable = error.recoverable;
  auto item = std::make_shared<WorkRecord>(record);
  const std::optional<std::string> agentGuid = error.agentGuid;
  appendError(*item, std::move(error));
  item->set(WorkField::UpdatedAt, nowIso);
  const bool retrying = recoverable && attempts < maxAttempts;
  // The retry's backoff (the item's own policy over the server's): the item
  // is pending again but not claimable before nextAttemptAt.
  const int64_t delay =
      retrying ? ctx_.options.retry.overriddenBy(record.retry).delayMs(std::max<int64_t>(attempts, 1),
                                                                      jitterRandom())
               : 0;
  const std::string nextAttemptIso = delay > 0 ? formatIso(now + delay) : std::string();
  Json::Object logged{{"attempt", Json(attempts)}};
  if (agentGuid) logged.emplace_back("agentGuid", Json(*agentGuid));
  logged.emplace_back("error", Json(static_cast<int64_t>(item->errors.size()) - 1));
  logged.emplace_back("retrying", Json(retrying));
  logged.emplace_back("deadLettered", Json(!retrying));
  if (delay > 0) logged.emplace_back("nextAttemptAt", Json(nextAttemptIso));
  appendTransition(*item, "failed", nowIso, std::move(logged));

  if (retrying) {
    item->setStatus(WorkStatus::Pending);
    clearAssignment(*item);
    if (delay > 0) {
      item->set(WorkField::NextAttemptAt, nextAttemptIso);
      item->dueAtMs = now + delay;
    } else {
      item->erase(WorkField::NextAttemptAt);
      item->dueAtMs = 0;
    }
    auto written = store(record.id, *item, revision);
    if (!written) return written.status();
    if (updated) *updated = std::move(item);
    return FailOutcome::Retried;
  }

  // For good: the dead-letter entry first (a put replaces any leftover), then
  // the item by compare-and-set; if that loses a race the entry is removed
  // again. After an outage of unknown outcome the entry stays, and the
  // sweeper removes it later if the item did not become failed.
  item->setStatus(WorkStatus::Failed);
  item->set(WorkField::FailedAt, nowIso);
  removeLease(*item);
  auto snapshot = std::make_shared<WorkItem>(*item);
  snapshot->erase(WorkField::ClaimToken);
  DeadLetter entry;
  entry.id = record.id;
  entry.workItem = std::move(snapshot);
  entry.reason =
      recoverable ? DeadLetterReason::MaxAttemptsExceeded : DeadLetterReason::NonRecoverable;
  entry.attempts = attempts;
  entry.failedAt = nowIso;
  entry.errors = item->errors;
  auto dlqRevision = deadLetters_.write(entry);
  if (!dlqRevision) return dlqRevision.status();
  auto written = store(record.id, *item, revision);
  if (!written) {
    if (written.code() == Code::Conflict) deadLetters_.remove(record.id, *dlqRevision);
    return written.status();
  }
  if (updated) *updated = std::move(item);
  return FailOutcome::DeadLettered;
}

Result<WorkItemView> WorkQueue::fail(const std::string& id, const FailReport& report) {
  return fenced(id, report.holder,
                [&](const WorkRecord& record,
                    uint64_t revision) -> std::optional<Result<WorkItemView>> {
                  if (!record.isActive()) {
                    return Status::conflict("Cannot fail work in " + record.statusText() + " state");
                  }
                  ErrorRecord rec;
                  rec.message = report.message;
                  rec.code = report.code;
                  rec.recoverable = report.recoverable;
                  rec.occurredAt = formatIso(ctx_.now());
                  rec.attempt = record.attempts;
                  rec.agentGuid = report.holder.agentGuid;
                  std::shared_ptr<const WorkRecord> updated;
                  auto outcome = applyFailure(record, revision, std::move(rec), &updated);
                  if (outcome) return Result<WorkItemView>(viewOf(std::move(updated)));
                  if (outcome.code() == Code::Conflict) return std::nullopt;
                  return Result<WorkItemView>(outcome.status());
                });
}

Result<WorkItemView> WorkQueue::retryDeadLetter(const std::string& id, bool resetAttempts) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto entry = deadLetters_.read(id);
    if (!entry) return entry.status();
    auto dead = DeadLetter::decode(entry->value);
    auto b = bucket();
    if (!b) return Status::unavailable("work bucket not open yet");
    auto current = b->get(id);
    if (!current && current.code() != Code::NotFound) return current.status();

    std::shared_ptr<WorkItem> item;
    Result<uint64_t> written = Status::internal("unreachable");
    if (current) {
      auto record = decode(current->value);
      if (!record) return workNotFound(id);
      if (record->status != WorkStatus::Failed) {
        return Status::conflict("Cannot retry work in " + record->statusText() + " state");
      }
      item = std::make_shared<WorkItem>(*record);
    } else {
      // Removed by retention: recreate it from the snapshot.
      if (!dead->workItem) return Status::internal("dead-letter entry without a snapshot");
      item = std::make_shared<WorkItem>(*dead->workItem);
    }
    item->setStatus(WorkStatus::Pending);
    if (resetAttempts) item->set(WorkField::Attempts, int64_t{0});
    clearAssignment(*item);
    item->erase(WorkField::FailedAt);
    item->erase(WorkField::NextAttemptAt);
    const std::string nowIso = formatIso(ctx_.now());
    item->set(WorkField::UpdatedAt, nowIso);
    Json::Object logged{{"requeued", Json(true)}};
    if (!current) logged.emplace_back("recreated", Json(true));
    appendTransition(*item, "submitted", nowIso, std::move(logged));
    std::string value = item->encode();
    written = current ? b->update(id, value, current->revision) : b->create(id, value);
    if (!written) {
      if (written.code() == Code::Conflict || written.code() == Code::AlreadyExists) continue;
      return written.status();
    }
    applyStored(id, value, *written);
    // The item is pending again; the entry goes. If this removal fails the
    // sweeper removes the orphan later.
    deadLetters_.remove(id, entry->revision);
    return viewOf(std::move(item));
  }
  return Status::unavailable("too much contention on work item " + id);
}

}  // namespace weft
