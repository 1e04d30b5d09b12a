// The work view's saved copy: a restart with a million stored items loads
// the entries from a local file and reads only the changes made since it
// was written, instead of reading and parsing every stored value
// (docs/architecture.md, "Restart: a saved view").
#include <thread>

#include "weft/log.h"
#include "weft/work_queue.h"

namespace weft {

namespace {
// The record encoding below; change it when the encoding changes (an older
// file is then ignored, and the view replays once).
constexpr const char* kRecordKind = "work-entry/1";

void putOptional(ByteSink& out, const std::optional<int64_t>& v) {
  out.u8(v ? 1 : 0);
  out.i64(v.value_or(0));
}

bool getOptional(ByteSource& in, std::optional<int64_t>* v) {
  const uint8_t has = in.u8();
  const int64_t value = in.i64();
  if (has > 1) return false;
  if (has) *v = value;
  return true;
}
}  // namespace

void WorkQueue::encodeSaved(const std::string& key, const WorkEntry& e, ByteSink& out) {
  // The id is the key unless a stored value says otherwise.
  out.u8(e.id == key ? 1 : 0);
  if (e.id != key) out.str(e.id);
  out.str(e.projectId);
  out.str(e.capability);
  out.str(e.boundary);
  out.str(e.requiredAgentType);
  out.str(e.assignedTo);
  out.str(e.unknownStatus);
  out.u8(static_cast<uint8_t>(e.status));
  out.i64(e.priority);
  out.i64(e.attempts);
  out.i64(e.offeredAtMs);
  out.i64(e.updatedAtMs);
  out.i64(e.dueAtMs);
  putOptional(out, e.leaseExpiresAtMs);
  putOptional(out, e.progress);
  out.i64(e.lastTransitionSeq);
  out.u64(e.errorCount);
}

std::shared_ptr<const WorkEntry> WorkQueue::decodeSaved(const std::string& key, ByteSource& in) {
  auto e = std::make_shared<WorkEntry>();
  const uint8_t idIsKey = in.u8();
  if (idIsKey > 1) return nullptr;
  e->id = idIsKey ? key : std::string(in.str());
  e->projectId = in.str();
  e->capability = in.str();
  e->boundary = in.str();
  e->requiredAgentType = in.str();
  e->assignedTo = in.str();
  e->unknownStatus = in.str();
  const uint8_t status = in.u8();
  if (status > static_cast<uint8_t>(WorkStatus::Unknown)) return nullptr;
  e->status = static_cast<WorkStatus>(status);
  e->priority = in.i64();
  e->attempts = in.i64();
  e->offeredAtMs = in.i64();
  e->updatedAtMs = in.i64();
  e->dueAtMs = in.i64();
  if (!getOptional(in, &e->leaseExpiresAtMs) || !getOptional(in, &e->progress)) return nullptr;
  e->lastTransitionSeq = in.i64();
  e->errorCount = static_cast<size_t>(in.u64());
  if (!in.ok()) return nullptr;
  return e;
}

void WorkQueue::openSavedView() {
  const std::string& path = ctx_.options.workSavedViewPath;
  if (path.empty()) return;
  auto file = std::make_shared<SavedViewFile>(path, kRecordKind);
  if (Status st = file->lock(); !st) {
    log::warn("the work view will not be saved or loaded from a file",
              {{"path", path}, {"reason", st.message()}});
    return;
  }
  view_->setSavedLoader(savedViewLoader<WorkEntry, WorkRecord>(file, decodeSaved));
  std::lock_guard<std::mutex> lock(saveMutex_);
  savedFile_ = std::move(file);
}

void WorkQueue::awaitOwnWritesInFeed(int64_t maxMs) {
  {
    std::lock_guard<std::mutex> lock(saveMutex_);
    if (!savedFile_) return;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(maxMs);
  while (std::chrono::steady_clock::now() < deadline) {
    const uint64_t fed = view_->feedRevision();
    if (fed == 0 || fed >= view_->appliedRevision()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool WorkQueue::saveView() {
  std::lock_guard<std::mutex> lock(saveMutex_);
  if (!savedFile_) return false;
  const uint64_t at = view_->feedRevision();
  if (at == 0 || at == savedRevision_) return false;
  const auto started = std::chrono::steady_clock::now();
  // Shares the entries (no copy) under the view's read lock; encoding and
  // writing happen outside it.
  std::optional<View::Saved> cut = view_->cut();
  if (!cut) return false;
  Status st = weft::saveView<WorkEntry, WorkRecord>(*cut, *savedFile_, encodeSaved);
  if (!st) {
    log::warn("saving the work view failed", {{"path", savedFile_->path()}, {"error", st.message()}});
    return false;
  }
  savedRevision_ = cut->revision;
  log::info("work view saved",
            {{"path", savedFile_->path()},
             {"entries", std::to_string(cut->entries.size())},
             {"revision", std::to_string(cut->revision)},
             {"ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - started)
                                       .count())}});
  return true;
}

void WorkQueue::saverLoop(int64_t intervalMs) {
  std::unique_lock<std::mutex> lock(sweeperMutex_);
  while (!stopping_) {
    sweeperCv_.wait_for(lock, std::chrono::milliseconds(intervalMs), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    saveView();
    lock.lock();
  }
}

}  // namespace weft
