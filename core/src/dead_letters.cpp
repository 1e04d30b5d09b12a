#include "weft/dead_letters.h"

#include <algorithm>

#include "weft/ids.h"

namespace weft {

Status DeadLetters::notFound(const std::string& id) {
  return Status::notFound("Dead-letter entry with ID " + id + " not found");
}

const char* deadLetterReasonText(DeadLetterReason reason) {
  return reason == DeadLetterReason::NonRecoverable ? "non-recoverable error"
                                                    : "max attempts exceeded";
}

Json DeadLetter::workItemJson() const {
  return workItem ? workItem->toJson() : workItemVerbatim;
}

Json DeadLetter::errorsJson() const {
  if (errorsVerbatim) return *errorsVerbatim;
  Json::Array out;
  out.reserve(errors.size());
  for (const auto& e : errors) out.push_back(e.toJson());
  return Json(std::move(out));
}

std::string DeadLetter::encode() const {
  Json entry = Json::object();
  entry.set("id", Json(id));
  entry.set("workItem", workItemJson());
  entry.set("reason", Json(deadLetterReasonText(reason)));
  entry.set("attempts", Json(attempts));
  entry.set("failedAt", Json(failedAt));
  entry.set("errors", errorsJson());
  return entry.dump();
}

std::shared_ptr<const DeadLetter> DeadLetter::decode(const std::string& stored) {
  auto parsed = Json::parse(stored, 64);
  if (!parsed || !parsed->isObject()) return nullptr;
  const Json& id = parsed->get("id");
  if (!id.isString() || id.asString().empty()) return nullptr;
  auto d = std::make_shared<DeadLetter>();
  d->id = id.asString();
  const Json& snapshot = parsed->get("workItem");
  d->workItem = WorkItem::fromObject(snapshot);
  if (!d->workItem) d->workItemVerbatim = snapshot;
  d->reason = parsed->getString("reason") == deadLetterReasonText(DeadLetterReason::NonRecoverable)
                  ? DeadLetterReason::NonRecoverable
                  : DeadLetterReason::MaxAttemptsExceeded;
  d->attempts = parsed->getInt("attempts", 0);
  d->failedAt = parsed->getString("failedAt");
  const Json& errors = parsed->get("errors");
  if (errors.isArray()) {
    for (const auto& e : errors.asArray()) d->errors.push_back(ErrorRecord::fromJson(e));
  } else {
    d->errorsVerbatim = errors;
  }
  d->projectId = snapshot.getString("projectId");
  d->capability = snapshot.getString("capability");
  d->failedAtMs = parseIso(d->failedAt).value_or(0);
  return d;
}

DeadLetters::DeadLetters(ServiceContext context)
    : ctx_(std::move(context)),
      listIndex_(std::make_unique<ListIndex<DeadLetterListTraits>>()) {
  view_ = std::make_unique<View>(
      kDlqBucket, View::Options{},
      [](const std::string&, const std::string& value) { return DeadLetter::decode(value); },
      [](const std::shared_ptr<const DeadLetter>& d, const std::string&) {
        auto e = std::make_shared<DeadLetterEntry>();
        e->id = d->id;
        e->projectId = d->projectId;
        e->capability = d->capability;
        e->failedAtMs = d->failedAtMs;
        return std::shared_ptr<const DeadLetterEntry>(std::move(e));
      });
  view_->addIndexer([this](const std::string&, const std::shared_ptr<const DeadLetterEntry>& before,
                           const std::shared_ptr<const DeadLetterEntry>& after) {
    listIndex_->update(before.get(), after.get());
  });
  loadInBulk(*view_, *listIndex_);
  // The saved copy (saved_view.h): an entry's four fields, the id left out
  // when it is the key.
  saver_ = std::make_unique<ViewSaver<DeadLetterEntry, DeadLetter>>(
      *view_, "dead-letter-entry/1",
      [](const std::string& key, const DeadLetterEntry& e, ByteSink& out) {
        putKeyedId(out, key, e.id);
        out.str(e.projectId);
        out.str(e.capability);
        out.i64(e.failedAtMs);
      },
      [](const std::string& key, ByteSource& in) -> std::shared_ptr<const DeadLetterEntry> {
        auto e = std::make_shared<DeadLetterEntry>();
        if (!getKeyedId(in, key, &e->id)) return nullptr;
        e->projectId = in.str();
        e->capability = in.str();
        e->failedAtMs = in.i64();
        if (!in.ok()) return nullptr;
        return e;
      });
}

DeadLetters::~DeadLetters() { stop(); }
void DeadLetters::start() {
  saver_->start(ctx_.options.viewSaveDir, ctx_.options.viewSaveIntervalMs);
  view_->start(ctx_.store);
}
void DeadLetters::stop() {
  saver_->stop();
  view_->stop();
}

Result<DeadLetterPage> DeadLetters::list(const DeadLetterFilter& f,
                                         const PageRequest& page) const {
  Json filters = Json::object();
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("dlq", filters, page);
  if (!pager) return pager.status();
  if (auto s = ctx_.checkConnected(); !s) return s;
  if (!view_->ready()) return Status::unavailable("dead-letter entries not loaded yet");
  DeadLetterPage out{{}, *pager, 0};
  const ListIndex<DeadLetterListTraits>::Filter filter{f.capability, f.projectId};
  auto query = pageQuery<ListIndex<DeadLetterListTraits>>(*pager);
  if (!query) return query.status();
  std::vector<std::shared_ptr<const DeadLetterEntry>> entries;
  fillPage(*view_, *listIndex_, filter, *query, entries, out.total, out.pager);
  // The entries whole: from the cache when it has the revision the view
  // holds, else from the backend, a batch at a time.
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("dead-letter bucket not open yet");
  constexpr size_t kBatch = 256;
  size_t leftOut = 0;
  out.items.reserve(entries.size());
  for (size_t from = 0; from < entries.size(); from += kBatch) {
    std::vector<std::pair<std::string, uint64_t>> wanted;  // id, the view's revision
    for (size_t i = from; i < entries.size() && i < from + kBatch; ++i) {
      wanted.emplace_back(entries[i]->id, view_->findEntry(entries[i]->id).second);
    }
    auto values = pageValues_.read(*bucket, wanted);
    if (!values) return values.status();
    for (const auto& value : *values) {
      auto decoded = value ? DeadLetter::decode(*value) : nullptr;
      if (decoded) {
        out.items.push_back(std::move(decoded));
      } else {
        ++leftOut;  // deleted (retried, discarded) since the index was read
      }
    }
  }
  if (out.pager.all()) {
    out.total -= std::min(leftOut, out.total);
  } else {
    out.pager.leaveOut(leftOut);
  }
  return out;
}

size_t DeadLetters::count(const DeadLetterFilter& f) const {
  return view_->read([&] { return listIndex_->count({f.capability, f.projectId}); });
}

Result<KvEntry> DeadLetters::read(const std::string& id) const {
  if (auto s = ctx_.checkConnected(); !s) return s;
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("dead-letter bucket not open yet");
  if (!isUuid(id)) return notFound(id);
  auto entry = bucket->get(id);
  if (!entry) {
    if (entry.code() == Code::NotFound) return notFound(id);
    return entry.status();
  }
  if (!DeadLetter::decode(entry->value)) return notFound(id);
  return entry;
}

Result<std::shared_ptr<const DeadLetter>> DeadLetters::get(const std::string& id) const {
  auto entry = read(id);
  if (!entry) return entry.status();
  return DeadLetter::decode(entry->value);
}

Status DeadLetters::discard(const std::string& id) {
  auto entry = read(id);
  if (!entry) return entry.status();
  auto status = view_->bucket()->erase(id, entry->revision);
  if (status.code() == Code::Conflict) {
    // Changed meanwhile (retried, or rewritten): discard what is there now.
    auto again = read(id);
    if (!again) return again.status();
    status = view_->bucket()->erase(id, again->revision);
    if (status) view_->applyErase(id, again->revision);
    return status.code() == Code::Conflict ? Status::unavailable("dead-letter entry busy")
                                           : status;
  }
  if (status) view_->applyErase(id, entry->revision);
  return status;
}

Result<uint64_t> DeadLetters::write(const DeadLetter& entry) {
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("dead-letter bucket not open yet");
  std::string value = entry.encode();
  auto written = bucket->put(entry.id, value);
  if (written) view_->applyPut(entry.id, value, *written);
  return written;
}

Status DeadLetters::remove(const std::string& id, uint64_t revision) {
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("dead-letter bucket not open yet");
  auto status = bucket->erase(id, revision);
  if (status) view_->applyErase(id, revision);
  return status;
}

}  // namespace weft
