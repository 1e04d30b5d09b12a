#include "weft/dead_letters.h"

#include <algorithm>

#include "weft/ids.h"

namespace weft {

Status DeadLetters::notFound(const std::string& id) {
  return Status::notFound("Dead-letter entry with ID " + id + " not found");
}

std::shared_ptr<const DeadLetterRecord> DeadLetters::decode(const std::string& value) {
  auto parsed = Json::parse(value, 64);
  if (!parsed || !parsed->isObject()) return nullptr;
  const Json& id = parsed->get("id");
  if (!id.isString() || id.asString().empty()) return nullptr;
  auto r = std::make_shared<DeadLetterRecord>();
  r->entry = std::move(*parsed);
  r->id = id.asString();
  const Json& item = r->entry.get("workItem");
  r->projectId = item.getString("projectId");
  r->capability = item.getString("capability");
  r->failedAtMs = parseIso(r->entry.getString("failedAt")).value_or(0);
  return r;
}

DeadLetters::DeadLetters(ServiceContext context) : ctx_(std::move(context)) {
  view_ = std::make_unique<View>(kDlqBucket, View::Options{},
                                 [](const std::string&, const std::string& value) {
                                   return decode(value);
                                 });
}

DeadLetters::~DeadLetters() { stop(); }
void DeadLetters::start() { view_->start(ctx_.store); }
void DeadLetters::stop() { view_->stop(); }

Result<Json> DeadLetters::list(const DeadLetterFilter& f, const PageRequest& page) const {
  Json filters = Json::object();
  if (f.capability) filters.set("capability", Json(*f.capability));
  if (f.projectId) filters.set("projectId", Json(*f.projectId));
  auto pager = Pager::make("dlq", filters, page);
  if (!pager) return pager.status();
  if (auto s = ctx_.checkConnected(); !s) return s;
  if (!view_->ready()) return Status::unavailable("dead-letter entries not loaded yet");
  std::vector<std::shared_ptr<const DeadLetterRecord>> rows;
  view_->forEach([&](const std::string&, const std::shared_ptr<const DeadLetterRecord>& r) {
    if (f.capability && r->capability != *f.capability) return;
    if (f.projectId && r->projectId != *f.projectId) return;
    rows.push_back(r);
  });
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    if (a->failedAtMs != b->failedAtMs) return a->failedAtMs < b->failedAtMs;
    return a->id < b->id;
  });
  Json items = Json::array();
  for (size_t i = pager->begin(rows.size()), e = pager->end(rows.size()); i < e; ++i) {
    items.push(rows[i]->entry);
  }
  Json body = Json::object();
  body.set("items", std::move(items));
  pager->writeMetadata(body, rows.size());
  return body;
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
  if (!decode(entry->value)) return notFound(id);
  return entry;
}

Result<Json> DeadLetters::get(const std::string& id) const {
  auto entry = read(id);
  if (!entry) return entry.status();
  return decode(entry->value)->entry;
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

Result<uint64_t> DeadLetters::write(const std::string& id, const Json& entry) {
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("dead-letter bucket not open yet");
  std::string value = entry.dump();
  auto written = bucket->put(id, value);
  if (written) view_->applyPut(id, value, *written);
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
