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
  DeadLetter entry;
  entry.id = record.id;
  entry.workItem = std::move(snapshot);
  entry.reason =
      recoverable ? DeadLetterReason::MaxAttemptsExceeded : DeadLetterReason::NonRecoverable;
  entry.attempts = attempts;
  entry.failedAt = nowIso;
  entry.errors = item.get("errors");
  auto dlqRevision = deadLetters_.write(entry);
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

Result<Json> WorkQueue::retryDeadLetter(const std::string& id, bool resetAttempts) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto entry = deadLetters_.read(id);
    if (!entry) return entry.status();
    auto dead = DeadLetter::decode(entry->value);
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
      item = dead->workItem;
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

}  // namespace weft
