// BucketView<T, Full>: a watch-fed, in-memory copy of one bucket, decoded
// into T. Lists, routing and stats read it, so they cost no backend round
// trip.
//
// A view may keep less than a whole value: each change is decoded once into
// Full, handed whole to the full listeners, and then reduced by the view's
// compactor to the T it keeps (the work view keeps a finished item's index
// fields only; docs/architecture.md, "Memory"). With Full = T (the default)
// the view keeps the decoded value itself.
//
// Freshness: every change reaches the view through the backend's watch
// (≤ 1 s). A service that has just written a key also applies the write
// itself (applyPut / applyErase), so a client reads its own writes at once.
// Both paths carry the revision, and a change at or below the revision
// already held for a key is ignored, so each change is seen exactly once
// whichever path delivers it first.
//
// Backends may expire values without a watch event (NATS max age, Redis TTL),
// so a view with resyncIntervalMs > 0 re-lists the bucket periodically and
// drops what two listings in a row did not contain.
#pragma once

#include <algorithm>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEFT_SANITIZED_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define WEFT_SANITIZED_ALLOCATOR 1
#endif
#endif
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "weft/kv.h"
#include "weft/log.h"

namespace weft {

// Milliseconds since t, as text (for the log lines of loading and saving).
inline std::string msSince(std::chrono::steady_clock::time_point t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
          .count());
}

template <typename T, typename Full = T>
class BucketView {
 public:
  using Ptr = std::shared_ptr<const T>;
  using FullPtr = std::shared_ptr<const Full>;
  // Returns nullptr for a value that is invalid (it is then skipped and counted).
  using Decoder = std::function<FullPtr(const std::string& key, const std::string& value)>;
  // What the view keeps of a decoded value (`stored` is its stored text).
  // Needed when T is not Full; must not return nullptr.
  using Compactor = std::function<Ptr(const FullPtr& decoded, const std::string& stored)>;
  // Called after each applied change, outside the view's read/write lock but
  // in the order the changes were applied (one at a time per view). A
  // listener must not write through this view.
  // before/after are nullptr for "absent". fromFeed is false during the
  // initial replay and resyncs (the change may be old news).
  using Listener = std::function<void(const std::string& key, const Ptr& before, const Ptr& after,
                                      bool live)>;
  // A listener that gets the change's whole decoded value as `after`
  // (nullptr for a deletion) next to what the view kept before it.
  using FullListener = std::function<void(const std::string& key, const Ptr& before,
                                          const FullPtr& after, bool live)>;

  struct Options {
    BucketOptions bucket;
    int64_t resyncIntervalMs = 0;   // 0 = never re-list
    int64_t retryInitialMs = 200;   // open/watch retry backoff
    int64_t retryMaxMs = 5000;
    // How long the revision of a deleted key is remembered, so that an older
    // write applied late (a writer's own apply overtaken by the deletion)
    // cannot bring it back; then it is forgotten, and deleted keys do not
    // accumulate with history.
    int64_t rememberDeletedMs = 600000;
  };

  BucketView(std::string name, Options options, Decoder decoder, Compactor compactor = {})
      : name_(std::move(name)),
        options_(options),
        decoder_(std::move(decoder)),
        compactor_(std::move(compactor)) {}
  ~BucketView() { stop(); }
  BucketView(const BucketView&) = delete;
  BucketView& operator=(const BucketView&) = delete;

  const std::string& name() const { return name_; }

  // Decodes a value straight into the T the view keeps. When set, the first
  // replay uses it instead of the decoder and compactor: nothing live needs
  // the whole values of a restart's replay, and skipping them is most of its
  // cost. Full listeners do not see those changes (plain listeners do, with
  // live = false). It must keep what compactor(decoder(value)) keeps, and
  // reject exactly what the decoder rejects. Call before start().
  using ReplayDecoder = std::function<Ptr(const std::string& key, const std::string& value)>;
  void setReplayDecoder(ReplayDecoder decoder) { replayDecoder_ = std::move(decoder); }

  // A saved copy of the view (docs/architecture.md, "Restart: a saved
  // view"): what it held once the feed had delivered every change up to
  // `revision` of the bucket incarnation `token` (KvBucket::resumeToken).
  struct SavedEntry {
    std::string key;
    uint64_t revision = 0;
    Ptr value;
  };
  struct Saved {
    std::string token;
    uint64_t revision = 0;
    std::vector<SavedEntry> entries;
  };
  // What a saved copy's header says.
  struct SavedHeader {
    uint64_t revision = 0;
    uint64_t count = 0;  // entries
  };
  // total: the entries the copy holds in all (for reserving room).
  using SavedBatch = std::function<void(std::vector<SavedEntry>&& entries, uint64_t total)>;
  // Reads what an earlier run saved, if it was saved under `token`, handing
  // its entries to `batch` a few thousand at a time (on the loader's
  // thread): the header, or nullopt when there is none, it belongs to
  // another token or it is unreadable (checked before any batch is handed
  // over, except a record that fails to decode: the batches handed over
  // before it are then to be dropped).
  using SavedLoader =
      std::function<std::optional<SavedHeader>(const std::string& token, const SavedBatch& batch)>;
  // Before start(): once the bucket is open, the view asks it for its
  // token, loads what `loader` returns as if replayed (indexers and
  // listeners see it with live = false) and asks the bucket for the changes
  // after its revision only (KvBucket::watchFrom), instead of a full replay.
  // When the bucket cannot resume from there, the loaded entries are
  // dropped again and the view replays in full.
  void setSavedLoader(SavedLoader loader) { savedLoader_ = std::move(loader); }

  // The view as it stands, to be saved: nullopt while it cannot be resumed
  // from (not loaded, inside a Reset's replay, a backend that cannot
  // resume). Entries are shared, not copied: values are immutable.
  std::optional<Saved> cut() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    if (!caughtUp_ || resetting_ || feedToken_.empty() || feedRevision_ == 0) return std::nullopt;
    Saved out;
    out.token = feedToken_;
    out.revision = feedRevision_;
    out.entries.reserve(items_.size());
    for (const auto& [key, item] : items_) out.entries.push_back({key, item.revision, item.value});
    return out;
  }

  // The feed position cut() would save (0 when it would save nothing).
  uint64_t feedRevision() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return feedToken_.empty() ? 0 : feedRevision_;
  }

  // The highest revision the view applied, from its feed or its writers.
  uint64_t appliedRevision() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return maxRevision_;
  }

  // How the view started: "replay", "resumed" (from a saved copy) or
  // "replay (saved copy refused: ...)"; "" before it started watching.
  std::string startedBy() const {
    std::lock_guard<std::mutex> lock(runMutex_);
    return startedBy_;
  }

  // Must be called before start().
  void addListener(Listener listener) { listeners_.push_back(std::move(listener)); }
  void addFullListener(FullListener listener) { fullListeners_.push_back(std::move(listener)); }

  // An indexer sees every change under the view's exclusive lock, so an index
  // it maintains is always consistent with the view. It must be quick and
  // must not call back into the view. Read such an index inside read().
  // Indexers run in the order they were added; add them before start().
  using Indexer = std::function<void(const std::string& key, const Ptr& before, const Ptr& after)>;
  void addIndexer(Indexer indexer) { indexers_.push_back(std::move(indexer)); }

  // Runs under the view's exclusive lock once, when the first replay has
  // completed and before ready() turns true: an indexer that took the
  // replayed records in bulk puts them in order here (ListIndex::endBulk).
  // The hooks run at the same time, each on a thread of its own: a hook
  // must touch only data of its own. Add before start().
  void addLoadedHook(std::function<void()> hook) { loadedHooks_.push_back(std::move(hook)); }

  // Runs f() under the view's shared lock (for reading an indexer's index).
  template <typename F>
  auto read(F&& f) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return f();
  }

  // Runs f() under the view's exclusive lock: for an indexer's index that
  // also changes with time (items moved when they come due), so it stays
  // ordered with the indexer's own updates. Same rules as an indexer.
  template <typename F>
  auto write(F&& f) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    return f();
  }

  // The item and its revision, or {nullptr, 0}.
  std::pair<Ptr, uint64_t> findEntry(const std::string& key) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    auto it = items_.find(key);
    if (it == items_.end()) return {nullptr, 0};
    return {it->second.value, it->second.revision};
  }

  // Opens the bucket and starts the watch on a background thread, retrying
  // with backoff until it succeeds; then re-lists every resyncIntervalMs.
  void start(std::shared_ptr<KvStore> store) {
    store_ = std::move(store);
    thread_ = std::thread([this] { run(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(runMutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    runCv_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::unique_ptr<KvWatch> watch;
    {
      std::lock_guard<std::mutex> lock(runMutex_);
      watch = std::move(watch_);
    }
    if (watch) watch->stop();
  }

  // The open bucket, or nullptr while it could not be opened yet.
  std::shared_ptr<KvBucket> bucket() const {
    std::lock_guard<std::mutex> lock(runMutex_);
    return bucket_;
  }

  // True once the initial replay completed; stays true across reconnects.
  bool ready() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return caughtUp_;
  }

  Ptr find(const std::string& key) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    auto it = items_.find(key);
    return it == items_.end() ? nullptr : it->second.value;
  }

  // Calls f(key, value) for every item under a shared lock. f must be quick
  // and must not call back into this view.
  template <typename F>
  void forEach(F&& f) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (const auto& [key, item] : items_) f(key, item.value);
  }

  // forEach for a caller already inside read() (which holds the lock).
  template <typename F>
  void forEachLocked(F&& f) const {
    for (const auto& [key, item] : items_) f(key, item.value);
  }

  // Like forEach, with the revision: f(key, value, revision).
  template <typename F>
  void forEachEntry(F&& f) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (const auto& [key, item] : items_) f(key, item.value, item.revision);
  }

  std::vector<Ptr> snapshot() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    std::vector<Ptr> out;
    out.reserve(items_.size());
    for (const auto& kv : items_) out.push_back(kv.second.value);
    return out;
  }

  size_t size() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return items_.size();
  }

  // Deleted or invalid keys whose revision the view still remembers.
  size_t rememberedAbsent() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return absent_.size();
  }

  uint64_t invalidCount() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return invalid_.size();
  }

  // Read-your-writes: the caller wrote value at revision.
  void applyPut(const std::string& key, const std::string& value, uint64_t revision) {
    apply(key, &value, revision, true);
  }
  // The caller deleted key, whose value was at revision (0 if unknown).
  void applyErase(const std::string& key, uint64_t revision) {
    apply(key, nullptr, revision, true);
  }

 private:
  struct Item {
    Ptr value;
    uint64_t revision = 0;
  };

  // fromFeed: the change came from the watch, in feed order (it moves the
  // position cut() saves).
  void apply(const std::string& key, const std::string* value, uint64_t revision, bool live,
             bool fromFeed = false) {
    // Held across the update and the notification, so listeners see the
    // changes in the order the view applied them even when the writer's own
    // apply races the watch for one key. Readers only take mutex_.
    std::lock_guard<std::mutex> ordered(notifyMutex_);
    Ptr before, after;
    FullPtr full;
    {
      std::unique_lock<std::shared_mutex> lock(mutex_);
      if (resetting_) resetSeen_.insert(key);
      if (fromFeed && revision > feedRevision_) feedRevision_ = revision;
      // The highest revision seen for the key: the held item's, else the
      // one remembered for a deleted or invalid value (absent_).
      auto it = items_.find(key);
      auto gone = it == items_.end() ? absent_.find(key) : absent_.end();
      const uint64_t seen = it != items_.end()       ? it->second.revision
                            : gone != absent_.end() ? gone->second.revision
                                                    : 0;
      // A put at or below the held revision is old news. A delete names the
      // revision of the value it removed (local erase) or of its own marker
      // (feed), so it applies when it is not older than what is held.
      if (revision != 0 && (value ? revision <= seen : revision < seen)) return;
      const uint64_t newest = std::max(seen, revision);
      if (revision > maxRevision_) maxRevision_ = revision;
      if (it != items_.end()) before = it->second.value;
      if (value && !live && replayDecoder_) {
        after = replayDecodeSafely(key, *value);
      } else if (value) {
        full = decodeSafely(key, *value);
        after = full ? compact(full, *value) : nullptr;
      }
      if (after) {
        if (it != items_.end()) {
          it->second = Item{after, newest};
        } else {
          items_.emplace(key, Item{after, newest});
          if (gone != absent_.end()) absent_.erase(gone);
        }
        invalid_.erase(key);
      } else {
        if (it != items_.end()) items_.erase(it);
        rememberAbsent(key, newest);
        if (value) {
          invalid_.insert(key);
        } else {
          invalid_.erase(key);
        }
      }
      if (before || after) index(key, before, after);
    }
    if (before || after) notify(key, before, after, full, live);
  }

  Ptr compact(const FullPtr& full, const std::string& stored) {
    if constexpr (std::is_same_v<T, Full>) {
      if (!compactor_) return full;
    }
    return compactor_(full, stored);
  }

  void index(const std::string& key, const Ptr& before, const Ptr& after) {
    for (const auto& indexer : indexers_) indexer(key, before, after);
  }

  FullPtr decodeSafely(const std::string& key, const std::string& value) {
    try {
      return decoder_(key, value);
    } catch (...) {
      return nullptr;  // stored values are untrusted input
    }
  }

  Ptr replayDecodeSafely(const std::string& key, const std::string& value) {
    try {
      return replayDecoder_(key, value);
    } catch (...) {
      return nullptr;
    }
  }

  // full is nullptr for a deletion, and for a put the replay decoder read
  // (the full listeners do not see those).
  void notify(const std::string& key, const Ptr& before, const Ptr& after, const FullPtr& full,
              bool live) {
    for (auto& l : listeners_) {
      try {
        l(key, before, after, live);
      } catch (const std::exception& e) {
        log::warn("bucket view listener failed", {{"bucket", name_}, {"error", e.what()}});
      }
    }
    if (after && !full) return;
    for (auto& l : fullListeners_) {
      try {
        l(key, before, full, live);
      } catch (const std::exception& e) {
        log::warn("bucket view listener failed", {{"bucket", name_}, {"error", e.what()}});
      }
    }
  }

  void onEvent(const WatchEvent& ev) {
    switch (ev.type) {
      case WatchEvent::Type::Put:
        apply(ev.key, &ev.value, ev.revision, caughtUpOnce_, true);
        break;
      case WatchEvent::Type::Delete: {
        apply(ev.key, nullptr, ev.revision, caughtUpOnce_, true);
        break;
      }
      case WatchEvent::Type::Reset: {
        std::unique_lock<std::shared_mutex> lock(mutex_);
        resetting_ = true;
        resetSeen_.clear();
        // The replay may read another incarnation, whose revisions start
        // over: the position is the replay's own.
        feedRevision_ = 0;
        feedToken_.clear();
        break;
      }
      case WatchEvent::Type::CaughtUp: {
        std::vector<std::string> gone;
        {
          std::unique_lock<std::shared_mutex> lock(mutex_);
          feedToken_ = ev.value;  // the incarnation this replay read
          if (resetting_) {
            for (const auto& kv : items_) {
              if (!resetSeen_.count(kv.first)) gone.push_back(kv.first);
            }
            resetting_ = false;
            resetSeen_.clear();
          }
          if (!caughtUpOnce_) {
            const auto started = std::chrono::steady_clock::now();
            runLoadedHooks();
            log::info("bucket view loaded",
                      {{"bucket", name_},
                       {"entries", std::to_string(items_.size())},
                       {"hooksMs", msSince(started)}});
          }
          caughtUp_ = true;
        }
        const bool first = !caughtUpOnce_.exchange(true);
        for (const auto& key : gone) dropIfUnchanged(key, 0);
        // A replay allocates and frees far more than the view keeps (every
        // value is decoded whole once); glibc holds on to freed memory
        // unless asked, so a large bucket would leave weftd's RSS at the
        // replay's peak.
        if (first) releaseFreedMemory();
        break;
      }
    }
  }

  // Under mutex_: key is not held; its last revision was `revision`. Kept
  // options_.rememberDeletedMs (see Options), then forgotten: retention
  // deletes as many items as are submitted.
  void rememberAbsent(const std::string& key, uint64_t revision) {
    const auto now = std::chrono::steady_clock::now();
    const auto keep = std::chrono::milliseconds(options_.rememberDeletedMs);
    absent_[key] = Absent{revision, now};
    absentOrder_.emplace_back(now, key);
    while (!absentOrder_.empty() && now - absentOrder_.front().first > keep) {
      auto old = absent_.find(absentOrder_.front().second);
      if (old != absent_.end() && old->second.at == absentOrder_.front().first) absent_.erase(old);
      absentOrder_.pop_front();
    }
  }

  // Not under a sanitizer: its allocator replaces glibc's, whose arenas are
  // then never set up, and malloc_trim walked a null arena list (a SEGV in
  // mtrim seen in the ASan fuzz build).
  static void releaseFreedMemory() {
#if defined(__GLIBC__) && !defined(WEFT_SANITIZED_ALLOCATOR)
    malloc_trim(0);
#endif
  }

  // Hands the saved copy's batches from the thread that decodes the file to
  // the view's thread; holds a few batches at most.
  class BatchQueue {
   public:
    void push(std::vector<SavedEntry>&& batch) {
      std::unique_lock<std::mutex> lock(mu_);
      roomCv_.wait(lock, [this] { return batches_.size() < kMaxBatches; });
      batches_.push_back(std::move(batch));
      readyCv_.notify_one();
    }
    void expect(uint64_t total) { expected_ = total; }
    uint64_t expected() const { return expected_; }
    void close() {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      readyCv_.notify_one();
    }
    // False once closed and drained.
    bool pop(std::vector<SavedEntry>* out) {
      std::unique_lock<std::mutex> lock(mu_);
      readyCv_.wait(lock, [this] { return !batches_.empty() || closed_; });
      if (batches_.empty()) return false;
      *out = std::move(batches_.front());
      batches_.pop_front();
      roomCv_.notify_one();
      return true;
    }

   private:
    static constexpr size_t kMaxBatches = 8;
    std::mutex mu_;
    std::condition_variable readyCv_, roomCv_;
    std::deque<std::vector<SavedEntry>> batches_;
    bool closed_ = false;
    std::atomic<uint64_t> expected_{0};
  };

  // Under the exclusive lock. The hooks order data of their own (each its
  // index), so they run side by side: at a million entries each takes a
  // second or more, and the lock is held until the last one is done.
  void runLoadedHooks() {
    std::vector<std::thread> others;
    for (size_t i = 1; i < loadedHooks_.size(); ++i) others.emplace_back(loadedHooks_[i]);
    if (!loadedHooks_.empty()) loadedHooks_.front()();
    for (auto& t : others) t.join();
  }

  // What a saved copy held, applied as a replay would have (under the same
  // revision rules), without decoding anything: a batch under one lock.
  void preload(std::vector<SavedEntry>& entries) {
    struct Change {
      const std::string* key;
      Ptr before, after;
    };
    std::vector<Change> changed;  // for the listeners
    if (!listeners_.empty()) changed.reserve(entries.size());
    std::lock_guard<std::mutex> ordered(notifyMutex_);
    {
      std::unique_lock<std::shared_mutex> lock(mutex_);
      for (auto& e : entries) {
        if (!e.value) continue;
        auto it = items_.find(e.key);
        Ptr before;
        if (it != items_.end()) {
          if (e.revision <= it->second.revision) continue;
          before = it->second.value;
          it->second = Item{e.value, e.revision};
        } else {
          it = items_.emplace(std::move(e.key), Item{e.value, e.revision}).first;
        }
        if (e.revision > maxRevision_) maxRevision_ = e.revision;
        index(it->first, before, e.value);
        if (!listeners_.empty()) changed.push_back({&it->first, std::move(before), e.value});
      }
    }
    // The keys stay valid: nothing else changes the view while
    // notifyMutex_ is held.
    for (const auto& c : changed) notify(*c.key, c.before, c.after, nullptr, false);
  }

  // Drops every entry (a preloaded copy the bucket could not resume from).
  void dropAll() {
    std::vector<std::string> keys;
    {
      std::shared_lock<std::shared_mutex> lock(mutex_);
      keys.reserve(items_.size());
      for (const auto& kv : items_) keys.push_back(kv.first);
    }
    for (const auto& key : keys) {
      std::lock_guard<std::mutex> ordered(notifyMutex_);
      Ptr before;
      {
        std::unique_lock<std::shared_mutex> lock(mutex_);
        auto it = items_.find(key);
        if (it == items_.end()) continue;
        before = it->second.value;
        items_.erase(it);
        index(key, before, nullptr);
      }
      notify(key, before, nullptr, nullptr, false);
    }
    std::unique_lock<std::shared_mutex> lock(mutex_);
    maxRevision_ = 0;
    feedRevision_ = 0;
  }

  // With a saved loader: loads the saved copy (once) and resumes the feed
  // after it. Returns the watch, or nullptr when the view must watch from
  // the start instead; keeps the loaded copy across a failure that may pass
  // (backend unavailable), so the next attempt resumes again.
  std::unique_ptr<KvWatch> resume(const std::shared_ptr<KvBucket>& bucket, bool* retryLater) {
    *retryLater = false;
    if (!resumeFrom_) {
      SavedLoader loader = std::move(savedLoader_);
      savedLoader_ = nullptr;
      auto token = bucket->resumeToken();
      if (!token) {
        savedLoader_ = std::move(loader);  // ask again once the backend answers
        *retryLater = true;
        return nullptr;
      }
      if (token->empty()) {
        setStartedBy("replay (the backend cannot resume a watch)");
        return nullptr;
      }
      const auto started = std::chrono::steady_clock::now();
      // The file is decoded on a thread of its own while this one applies
      // what it decoded: on two cores the two halves overlap.
      BatchQueue queue;
      std::optional<SavedHeader> header;
      std::thread reader([&] {
        header = loader(*token, [&](std::vector<SavedEntry>&& entries, uint64_t total) {
          queue.expect(total);
          queue.push(std::move(entries));
        });
        queue.close();
      });
      size_t count = 0;
      std::vector<SavedEntry> batch;
      while (queue.pop(&batch)) {
        if (count == 0) {
          std::unique_lock<std::shared_mutex> lock(mutex_);
          items_.reserve(items_.size() + queue.expected());
        }
        count += batch.size();
        preload(batch);
      }
      reader.join();
      if (!header) {
        if (count > 0) dropAll();
        setStartedBy("replay (no saved copy of this bucket)");
        return nullptr;
      }
      resumeFrom_ = Resume{*token, header->revision};
      log::info("bucket view loaded its saved copy",
                {{"bucket", name_},
                 {"entries", std::to_string(count)},
                 {"revision", std::to_string(header->revision)},
                 {"ms", msSince(started)}});
    }
    auto watch = bucket->watchFrom("", resumeFrom_->token, resumeFrom_->revision,
                                   [this](const WatchEvent& ev) { onEvent(ev); });
    if (watch) {
      {
        std::unique_lock<std::shared_mutex> lock(mutex_);
        feedRevision_ = resumeFrom_->revision;
      }
      setStartedBy("resumed");
      resumeFrom_.reset();
      return std::move(*watch);
    }
    if (watch.code() != Code::NotFound) {
      *retryLater = true;
      return nullptr;
    }
    log::warn("bucket view cannot resume from its saved copy; replaying the bucket",
              {{"bucket", name_}, {"error", watch.status().toString()}});
    setStartedBy("replay (saved copy refused: " + watch.status().message() + ")");
    resumeFrom_.reset();
    dropAll();
    return nullptr;
  }

  void setStartedBy(std::string how) {
    std::lock_guard<std::mutex> lock(runMutex_);
    startedBy_ = std::move(how);
  }

  // Removes key when its revision is still at most maxRevision (0 = any).
  void dropIfUnchanged(const std::string& key, uint64_t maxRevision) {
    std::lock_guard<std::mutex> ordered(notifyMutex_);
    Ptr before;
    {
      std::unique_lock<std::shared_mutex> lock(mutex_);
      auto it = items_.find(key);
      if (it == items_.end()) return;
      if (maxRevision != 0 && it->second.revision > maxRevision) return;
      before = it->second.value;
      rememberAbsent(key, it->second.revision);
      items_.erase(it);
      index(key, before, nullptr);
    }
    notify(key, before, nullptr, nullptr, true);
  }

  // Re-lists the bucket and reconciles: picks up what the feed missed and
  // drops what expired silently.
  void resync(const std::shared_ptr<KvBucket>& bucket) {
    uint64_t before;
    {
      std::shared_lock<std::shared_mutex> lock(mutex_);
      before = maxRevision_;
    }
    auto entries = bucket->scan("");
    if (!entries) return;
    std::unordered_set<std::string> present;
    for (const auto& e : *entries) {
      present.insert(e.key);
      apply(e.key, &e.value, e.revision, true);
    }
    // A key is dropped only when two listings in a row miss it: a listing
    // served by a lagging replica (replicated NATS buckets) can miss a key
    // that exists, and dropping it would hide it until its next change.
    std::vector<std::string> gone;
    std::unordered_set<std::string> missing;
    {
      std::shared_lock<std::shared_mutex> lock(mutex_);
      for (const auto& kv : items_) {
        if (!present.count(kv.first) && kv.second.revision <= before) {
          missing.insert(kv.first);
          if (missingBefore_.count(kv.first)) gone.push_back(kv.first);
        }
      }
    }
    missingBefore_ = std::move(missing);
    for (const auto& key : gone) dropIfUnchanged(key, before);
  }

  void run() {
    int64_t backoff = options_.retryInitialMs;
    auto nextResync = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(runMutex_);
        if (stopping_) return;
      }
      std::shared_ptr<KvBucket> bucket = this->bucket();
      bool healthy = true;
      if (!bucket) {
        auto opened = store_->openBucket(name_, options_.bucket);
        if (opened) {
          std::lock_guard<std::mutex> lock(runMutex_);
          bucket_ = *opened;
          bucket = bucket_;
        } else {
          healthy = false;
          log::debug("bucket not open yet",
                     {{"bucket", name_}, {"error", opened.status().toString()}});
        }
      }
      bool watching;
      {
        std::lock_guard<std::mutex> lock(runMutex_);
        watching = watch_ != nullptr;
      }
      if (bucket && !watching && (savedLoader_ || resumeFrom_)) {
        bool retryLater = false;
        std::unique_ptr<KvWatch> resumed = resume(bucket, &retryLater);
        if (resumed) {
          std::lock_guard<std::mutex> lock(runMutex_);
          watch_ = std::move(resumed);
          watching = true;
          nextResync = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(options_.resyncIntervalMs);
        } else if (retryLater) {
          healthy = false;
          watching = true;  // not yet: try the resume again after the backoff
        }
      }
      if (bucket && !watching) {
        auto watch = bucket->watch("", [this](const WatchEvent& ev) { onEvent(ev); });
        if (watch) {
          std::lock_guard<std::mutex> lock(runMutex_);
          watch_ = std::move(*watch);
          if (startedBy_.empty()) startedBy_ = "replay";
          nextResync = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(options_.resyncIntervalMs);
        } else {
          healthy = false;
          log::debug("bucket watch not started yet",
                     {{"bucket", name_}, {"error", watch.status().toString()}});
        }
      }
      if (healthy && options_.resyncIntervalMs > 0 &&
          std::chrono::steady_clock::now() >= nextResync) {
        resync(bucket);
        nextResync = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(options_.resyncIntervalMs);
      }
      int64_t waitMs = healthy ? 200 : backoff;
      backoff = healthy ? options_.retryInitialMs : std::min(backoff * 2, options_.retryMaxMs);
      std::unique_lock<std::mutex> lock(runMutex_);
      runCv_.wait_for(lock, std::chrono::milliseconds(waitMs), [this] { return stopping_; });
    }
  }

  const std::string name_;
  const Options options_;
  const Decoder decoder_;
  const Compactor compactor_;
  ReplayDecoder replayDecoder_;
  // Run thread only: the saved copy still to load, and where a loaded one
  // resumes the feed until watchFrom succeeded.
  SavedLoader savedLoader_;
  struct Resume {
    std::string token;
    uint64_t revision = 0;
  };
  std::optional<Resume> resumeFrom_;
  std::string startedBy_;  // runMutex_
  std::vector<Listener> listeners_;
  std::vector<FullListener> fullListeners_;
  std::vector<Indexer> indexers_;
  std::vector<std::function<void()>> loadedHooks_;
  std::shared_ptr<KvStore> store_;

  mutable std::mutex runMutex_;
  std::condition_variable runCv_;
  bool stopping_ = false;
  std::thread thread_;
  std::shared_ptr<KvBucket> bucket_;
  std::unique_ptr<KvWatch> watch_;

  std::mutex notifyMutex_;  // orders apply+notify; taken before mutex_
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, Item> items_;
  // The highest revision seen of each key the view does not hold (deleted,
  // or its value invalid), for Options::rememberDeletedMs; a held key's is
  // in its Item.
  struct Absent {
    uint64_t revision = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::unordered_map<std::string, Absent> absent_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> absentOrder_;
  std::unordered_set<std::string> invalid_;
  uint64_t maxRevision_ = 0;
  // The revision of the last change the feed delivered (feed order: every
  // change at or below it has been applied), and the token of the bucket
  // incarnation the feed reads (from CaughtUp; "" = cannot resume).
  uint64_t feedRevision_ = 0;
  std::string feedToken_;
  bool caughtUp_ = false;
  bool resetting_ = false;
  std::unordered_set<std::string> resetSeen_;
  std::unordered_set<std::string> missingBefore_;  // resync thread only
  std::atomic<bool> caughtUpOnce_{false};
};

}  // namespace weft
