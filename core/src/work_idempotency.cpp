// Idempotent submits (docs/api.md §4.7): one item per
// (scope, key) within the window, whatever fails between the writes and
// however many instances answer the retries.
//
// The record. `weft-idempotency` holds one value per key, under
// "work." + sha256(scope, key): a one-line JSON header (the request's
// fingerprint, the planned item id, when it was recorded, the 201 outcome)
// then '\n' then the planned item exactly as it will be stored. The bucket's
// max age is the window, so records expire on every backend without a sweep.
//
// The writes. The record is written first, with create(): the backend lets
// exactly one request per key win it. Only then is the item written, also
// with create() and under the id the record names. Every later request with
// the key reads the record and, if the item is still missing (the first
// request failed with a 503 whose write may or may not have landed, or its
// instance died between the two writes), writes the recorded item itself with
// create(). Both writers use the same id and value, so whichever create()
// lands first makes the item and the other gets AlreadyExists, which here
// means "done". No path ever writes an item under another id for the key.
//
// Why the window is capped at work.retentionMs: a recorded item that is
// missing must mean "not written yet", never "written, finished and purged"
// (re-creating it then would run the work twice). A finished item is purged
// retentionMs after its last change, which is after the record was made.
#include <algorithm>
#include <chrono>

#include "weft/ids.h"
#include "weft/log.h"
#include "weft/work_queue.h"

namespace weft {

namespace {

constexpr const char* kRecordPrefix = "work.";
// Rounds of create/read/update before giving up on a key whose record keeps
// changing under us (only an expired record being replaced concurrently does
// that, and one round settles it).
constexpr int kMaxRounds = 4;

// A copy of v with every object's members sorted by name, so two bodies that
// differ only in member order have one fingerprint.
Json canonical(const Json& v) {
  if (v.isArray()) {
    Json::Array out;
    out.reserve(v.asArray().size());
    for (const auto& e : v.asArray()) out.push_back(canonical(e));
    return Json(std::move(out));
  }
  if (v.isObject()) {
    Json::Object out;
    out.reserve(v.asObject().size());
    for (const auto& [k, e] : v.asObject()) out.emplace_back(k, canonical(e));
    std::stable_sort(out.begin(), out.end(),
                     [](const Json::Member& a, const Json::Member& b) { return a.first < b.first; });
    return Json(std::move(out));
  }
  return v;
}

template <typename T>
Json optionalJson(const std::optional<T>& v) {
  return v ? Json(*v) : Json();
}

struct Record {
  std::string fingerprint;
  std::string itemId;
  int64_t recordedAtMs = 0;
  Submitted outcome;
  std::string itemValue;
};

std::string encodeRecord(const std::string& fingerprint, const std::string& itemValue,
                         int64_t recordedAtMs, const Submitted& outcome) {
  Json header = Json::object();
  header.set("fingerprint", Json(fingerprint));
  header.set("itemId", Json(outcome.id));
  header.set("recordedAtMs", Json(recordedAtMs));
  header.set("targetAgentType", Json(outcome.targetAgentType));
  header.set("spinUpTriggered", Json(outcome.spinUpTriggered));
  header.set("estimatedWaitSeconds", optionalJson(outcome.estimatedWaitSeconds));
  return header.dump() + '\n' + itemValue;
}

std::optional<Record> decodeRecord(const std::string& value) {
  size_t newline = value.find('\n');
  if (newline == std::string::npos) return std::nullopt;
  auto header = Json::parse(std::string_view(value).substr(0, newline));
  if (!header || !header->isObject()) return std::nullopt;
  Record r;
  r.fingerprint = header->getString("fingerprint");
  r.itemId = header->getString("itemId");
  r.recordedAtMs = header->getInt("recordedAtMs", 0);
  r.outcome.id = r.itemId;
  r.outcome.targetAgentType = header->getString("targetAgentType");
  r.outcome.spinUpTriggered = header->getBool("spinUpTriggered");
  const Json& wait = header->get("estimatedWaitSeconds");
  if (wait.isNumber()) r.outcome.estimatedWaitSeconds = wait.asInt();
  r.itemValue = value.substr(newline + 1);
  if (r.fingerprint.empty() || !isUuid(r.itemId) || r.itemValue.empty()) return std::nullopt;
  return r;
}

Status keyReused(const IdempotencyKey& key) {
  return Status(Code::Unprocessable,
                "Idempotency-Key '" + key.key +
                    "' was already used with a different request body; use a new key for a "
                    "different request");
}

}  // namespace

std::string WorkQueue::fingerprint(const SubmitRequest& r) {
  Json f = Json::object();
  f.set("boundary", Json(r.boundary));
  f.set("capability", Json(r.capability));
  f.set("description", Json(r.description));
  f.set("priority", optionalJson(r.priority));
  f.set("preferredAgentType", optionalJson(r.preferredAgentType));
  f.set("requiredAgentType", optionalJson(r.requiredAgentType));
  f.set("maxAttempts", optionalJson(r.maxAttempts));
  f.set("leaseMs", optionalJson(r.leaseMs));
  f.set("projectId", optionalJson(r.projectId));
  f.set("taskId", Json(r.taskId));
  f.set("deadline", canonical(r.deadline));
  f.set("contextData", canonical(r.contextData));
  return sha256Hex(f.dump());
}

int64_t WorkQueue::idempotencyWindowMs() const {
  return std::min(ctx_.options.idempotencyRetentionMs, ctx_.options.retentionMs);
}

Result<std::shared_ptr<KvBucket>> WorkQueue::idempotencyBucket() {
  std::lock_guard<std::mutex> lock(idempotencyMutex_);
  if (idempotency_) return idempotency_;
  BucketOptions options;
  // An existing bucket keeps the max age it was created with; the window is
  // also checked on read, so a shorter one applies at once (docs/api.md).
  options.maxAgeMs = std::max<int64_t>(idempotencyWindowMs(), 1000);
  auto opened = ctx_.store->openBucket(kIdempotencyBucket, options);
  if (!opened) return opened.status();
  idempotency_ = *opened;
  return idempotency_;
}

Result<Submitted> WorkQueue::submit(const SubmitRequest& request, const IdempotencyKey& key) {
  Result<NewItem> prepared = prepareSubmit(request);
  if (!prepared) return prepared.status();
  auto items = view_->bucket();
  if (!items) return Status::unavailable("work bucket not open yet");
  auto records = idempotencyBucket();
  if (!records) return records.status();

  const std::string recordKey = kRecordPrefix + sha256Hex(key.scope + '\0' + key.key);
  const std::string print = fingerprint(request);
  const int64_t now = ctx_.now();
  const std::string record = encodeRecord(print, prepared->value, now, plannedOutcome(*prepared));

  // The item of a record this request won: written like any submit.
  // AlreadyExists here: a request that read our record wrote the planned
  // item first (same id, same value), which is this request's outcome too.
  auto writeOwn = [&]() -> Result<Submitted> {
    auto written = items->create(prepared->id, prepared->value);
    if (!written && written.code() == Code::AlreadyExists) return plannedOutcome(*prepared);
    return finishSubmit(*prepared, std::move(written));
  };

  // The request's backend work is bounded by kv.timeoutMs (docs/api.md
  // §1.9): no further step starts after it. A retry with the key is safe.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(ctx_.options.timeoutMs);
  auto late = [&] { return std::chrono::steady_clock::now() >= deadline; };
  const Status overdue = Status::timeout("idempotent submit did not finish within kv.timeoutMs");

  for (int round = 0; round < kMaxRounds; ++round) {
    if (round > 0 && late()) return overdue;
    auto created = (*records)->create(recordKey, record);
    if (created && late()) return overdue;
    if (created) return writeOwn();
    if (created.code() != Code::AlreadyExists) return created.status();

    if (late()) return overdue;
    auto existing = (*records)->get(recordKey);
    if (!existing) {
      if (existing.code() == Code::NotFound) continue;  // expired meanwhile
      return existing.status();
    }
    std::optional<Record> found = decodeRecord(existing->value);
    if (!found || now - found->recordedAtMs >= idempotencyWindowMs()) {
      // Past the window (the bucket's max age may be longer than the current
      // window) or unusable: the key is free again. Compare-and-set, so one
      // of several requests takes it over.
      if (!found) {
        log::warn("replacing an unreadable idempotency record", {{"key", recordKey}});
      }
      if (late()) return overdue;
      auto replaced = (*records)->update(recordKey, record, existing->revision);
      if (replaced && late()) return overdue;
      if (replaced) return writeOwn();
      if (replaced.code() == Code::Conflict) continue;
      return replaced.status();
    }
    if (found->fingerprint != print) return keyReused(key);

    Submitted outcome = found->outcome;
    outcome.replayed = true;
    auto replay = [&] {
      ++idempotentReplays_;
      return outcome;
    };
    if (late()) return overdue;
    auto item = items->get(found->itemId);
    if (item) return replay();
    if (item.code() != Code::NotFound) return item.status();
    if (late()) return overdue;
    // The first request has not written the item (yet, or ever): write it
    // now, exactly as recorded. Whoever lands first makes it.
    auto written = items->create(found->itemId, found->itemValue);
    if (!written) {
      if (written.code() == Code::AlreadyExists) return replay();
      return written.status();
    }
    applyStored(found->itemId, found->itemValue, *written);
    log::info("idempotent submit completed the item of an earlier request",
              {{"workId", found->itemId}});
    if (outcome.spinUpTriggered && spinUp_) {
      if (auto r = decode(found->itemValue)) {
        spinUp_(SpinUpRequest{r->id, r->projectId, r->capability, r->boundary,
                              r->targetAgentType});
      }
    }
    return replay();
  }
  return Status::unavailable("idempotency record for this key kept changing; retry");
}

}  // namespace weft
