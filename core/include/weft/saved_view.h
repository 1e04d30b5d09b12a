// A view saved to a local file, so that a restart loads it and reads only
// the changes made since, instead of replaying the whole bucket
// (docs/architecture.md, "Restart: a saved view").
//
// The file: a header (format, the record kind, the bucket's resume token,
// the feed revision the copy stands at, the record count), the records, and
// a checksum of everything before it. It is written to a temporary file
// and renamed, so a reader sees a whole file or the previous one; a torn or
// damaged file fails its checksum and is ignored (the view then replays).
// Nothing in it is trusted more than that: a file of another kind or token
// is ignored too.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "weft/bucket_view.h"
#include "weft/status.h"

namespace weft {

// The little-endian encoding of records.
class ByteSink {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 8);
  }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void str(std::string_view v) {
    u64(v.size());
    out_.append(v.data(), v.size());
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

// Reads what ByteSink wrote. Reading past the end yields zeros and makes
// ok() false, so a decoder can read a whole record and check once.
class ByteSource {
 public:
  ByteSource(const char* begin, const char* end) : p_(begin), end_(end) {}
  uint8_t u8() {
    if (end_ - p_ < 1) return fail();
    return static_cast<uint8_t>(*p_++);
  }
  uint64_t u64() {
    if (end_ - p_ < 8) return fail();
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_ += 8;
    return v;
  }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  std::string_view str() {
    const uint64_t n = u64();
    if (!ok_ || static_cast<uint64_t>(end_ - p_) < n) {
      fail();
      return {};
    }
    std::string_view v(p_, n);
    p_ += n;
    return v;
  }
  bool ok() const { return ok_; }
  bool atEnd() const { return p_ == end_; }

 private:
  uint8_t fail() {
    ok_ = false;
    p_ = end_;
    return 0;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// An entry's id, which is nearly always its key: one byte when it is.
inline void putKeyedId(ByteSink& out, const std::string& key, const std::string& id) {
  out.u8(id == key ? 1 : 0);
  if (id != key) out.str(id);
}
// False for a damaged record.
inline bool getKeyedId(ByteSource& in, const std::string& key, std::string* id) {
  const uint8_t isKey = in.u8();
  if (isKey > 1) return false;
  *id = isKey ? key : std::string(in.str());
  return in.ok();
}

class SavedViewFile {
 public:
  // kind names the record encoding (e.g. "work-entry/1"): a file of another
  // kind is ignored, so changing the encoding means changing the kind.
  SavedViewFile(std::string path, std::string kind);
  ~SavedViewFile();
  SavedViewFile(const SavedViewFile&) = delete;
  SavedViewFile& operator=(const SavedViewFile&) = delete;

  const std::string& path() const { return path_; }

  // Takes the file for this process (an advisory lock on path + ".lock",
  // held until destruction), creating its directory. Fails when another
  // process holds it: two weftd sharing one file would overwrite each
  // other's copies.
  Status lock();

  // Writes count records (encode(i, sink) appends record i) under token and
  // revision: to path + ".tmp", flushed to disk, then renamed over path.
  Status write(const std::string& token, uint64_t revision, size_t count,
               const std::function<void(size_t i, ByteSink& sink)>& encode);

  // Reads the file if it was saved under token: checks its checksum and
  // header, then hands each record to decode (which returns false for a
  // record it cannot read). NotFound when there is no file; InvalidArgument
  // (with the reason) when it is damaged, of another kind or another token,
  // or a record did not decode. *revision and *count come from the header.
  Status read(const std::string& token, uint64_t* revision, uint64_t* count,
              const std::function<bool(ByteSource& source)>& decode);

 private:
  const std::string path_;
  const std::string kind_;
  int lockFd_ = -1;
};

// A view's copy, written as (key, revision, record) triples.
template <typename T, typename Full>
Status saveView(const typename BucketView<T, Full>::Saved& saved, SavedViewFile& file,
                const std::function<void(const std::string& key, const T& value, ByteSink&)>& encode) {
  return file.write(saved.token, saved.revision, saved.entries.size(),
                    [&](size_t i, ByteSink& sink) {
                      const auto& e = saved.entries[i];
                      sink.str(e.key);
                      sink.u64(e.revision);
                      encode(e.key, *e.value, sink);
                    });
}

// The loader a view takes (BucketView::setSavedLoader): nullopt when the
// file is absent, damaged or of another bucket (logged).
template <typename T, typename Full>
typename BucketView<T, Full>::SavedLoader savedViewLoader(
    std::shared_ptr<SavedViewFile> file,
    std::function<std::shared_ptr<const T>(const std::string& key, ByteSource&)> decode) {
  using View = BucketView<T, Full>;
  return [file, decode](const std::string& token, const typename View::SavedBatch& batch)
             -> std::optional<typename View::SavedHeader> {
    constexpr size_t kBatch = 4096;
    typename View::SavedHeader header;
    std::vector<typename View::SavedEntry> entries;
    Status st = file->read(token, &header.revision, &header.count, [&](ByteSource& in) {
      if (entries.empty()) entries.reserve(kBatch);
      typename View::SavedEntry e;
      e.key = std::string(in.str());
      e.revision = in.u64();
      if (!in.ok() || e.revision == 0) return false;
      e.value = decode(e.key, in);
      if (!e.value || !in.ok()) return false;
      entries.push_back(std::move(e));
      if (entries.size() == kBatch) {
        batch(std::move(entries), header.count);
        entries.clear();
      }
      return true;
    });
    if (st && !entries.empty()) batch(std::move(entries), header.count);
    if (!st) {
      if (st.code() != Code::NotFound) {
        log::warn("saved view not used", {{"path", file->path()}, {"reason", st.message()}});
      }
      return std::nullopt;
    }
    return header;
  };
}

// Keeps a view's saved copy: `<dir>/<bucket>.view`, loaded by the view at
// start (when it fits the bucket), written every intervalMs while the view
// moves and once more at stop. A service owns one per view it saves.
template <typename T, typename Full>
class ViewSaver {
 public:
  using View = BucketView<T, Full>;
  using Encode = std::function<void(const std::string& key, const T& value, ByteSink& out)>;
  using Decode = std::function<std::shared_ptr<const T>(const std::string& key, ByteSource& in)>;

  // kind names the record encoding (SavedViewFile).
  ViewSaver(View& view, std::string kind, Encode encode, Decode decode)
      : view_(view), kind_(std::move(kind)), encode_(std::move(encode)), decode_(std::move(decode)) {}
  ~ViewSaver() { stopThread(); }
  ViewSaver(const ViewSaver&) = delete;
  ViewSaver& operator=(const ViewSaver&) = delete;

  // Before the view starts. dir "": saving is off. A file another process
  // holds is logged and not used.
  void start(const std::string& dir, int64_t intervalMs) {
    if (dir.empty()) return;
    auto file = std::make_shared<SavedViewFile>(dir + "/" + view_.name() + ".view", kind_);
    if (Status st = file->lock(); !st) {
      log::warn("a view will not be saved or loaded from a file",
                {{"bucket", view_.name()}, {"path", file->path()}, {"reason", st.message()}});
      return;
    }
    view_.setSavedLoader(savedViewLoader<T, Full>(file, decode_));
    {
      std::lock_guard<std::mutex> lock(saveMutex_);
      file_ = std::move(file);
    }
    if (intervalMs > 0) thread_ = std::thread([this, intervalMs] { loop(intervalMs); });
  }

  // Before the view stops: ends the periodic saves, lets the feed deliver
  // this instance's own writes (they reach the view first), so the copy's
  // revision covers them, and saves once more. It waits while the feed
  // moves, 2 s at most, and not at all for a feed that stands still (the
  // backend is away): the copy is then only older, not wrong. Idempotent.
  void stop() {
    stopThread();
    if (!file() || stopped_.exchange(true)) return;
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    uint64_t last = view_.feedRevision();
    auto moved = Clock::now();
    while (Clock::now() < deadline && Clock::now() - moved < std::chrono::milliseconds(300)) {
      const uint64_t fed = view_.feedRevision();
      if (fed == 0 || fed >= view_.appliedRevision()) break;
      if (fed != last) {
        last = fed;
        moved = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    saveNow();
  }

  // Saves if the view moved since the last save and can be saved; true when
  // a copy was written.
  bool saveNow() {
    std::lock_guard<std::mutex> lock(saveMutex_);
    if (!file_) return false;
    const uint64_t at = view_.feedRevision();
    if (at == 0 || at == savedRevision_) return false;
    const auto started = std::chrono::steady_clock::now();
    // Shares the entries (no copy) under the view's read lock; encoding and
    // writing happen outside it.
    std::optional<typename View::Saved> cut = view_.cut();
    if (!cut) return false;
    Status st = saveView<T, Full>(*cut, *file_, encode_);
    if (!st) {
      log::warn("saving a view failed", {{"path", file_->path()}, {"error", st.message()}});
      return false;
    }
    savedRevision_ = cut->revision;
    log::info("view saved",
              {{"path", file_->path()},
               {"entries", std::to_string(cut->entries.size())},
               {"revision", std::to_string(cut->revision)},
               {"ms", msSince(started)}});
    return true;
  }

 private:
  std::shared_ptr<SavedViewFile> file() {
    std::lock_guard<std::mutex> lock(saveMutex_);
    return file_;
  }

  void loop(int64_t intervalMs) {
    std::unique_lock<std::mutex> lock(threadMutex_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(intervalMs), [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      saveNow();
      lock.lock();
    }
  }

  void stopThread() {
    {
      std::lock_guard<std::mutex> lock(threadMutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  View& view_;
  const std::string kind_;
  const Encode encode_;
  const Decode decode_;
  std::mutex saveMutex_;
  std::shared_ptr<SavedViewFile> file_;  // null: saving is off
  uint64_t savedRevision_ = 0;
  std::atomic<bool> stopped_{false};
  std::mutex threadMutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace weft
