#include "weft/memory_kv.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace weft {
namespace {

bool hasPrefix(const std::string& key, const std::string& prefix) {
  return key.compare(0, prefix.size(), prefix) == 0;
}

// State every bucket of a store consults on each call.
struct StoreShared {
  std::atomic<bool> available{true};
  std::function<int64_t()> nowMs;
};

// A token per bucket ever made: a new store's bucket never passes for an
// older one, in this process or another (a saved view outlives both).
std::string nextToken() {
  static std::atomic<uint64_t> made{0};
  static const std::string process =
      std::to_string(::getpid()) + "-" +
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  return "memory@" + process + "-" + std::to_string(++made);
}

Status outage() {
  return Status::unavailable("memory store is unavailable (simulated outage)");
}

// The delivery side of one watch: an event queue drained by one thread that
// runs the callback without any lock held. The thread holds a reference to
// the feed, so a feed is never freed under a running callback.
class WatchFeed : public std::enable_shared_from_this<WatchFeed> {
 public:
  WatchFeed(std::string prefix, WatchCallback callback)
      : prefix_(std::move(prefix)), callback_(std::move(callback)) {}

  const std::string& prefix() const { return prefix_; }

  void start() {
    auto self = shared_from_this();
    thread_ = std::thread([self] { self->run(); });
  }

  void push(WatchEvent event) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      queue_.push_back(std::move(event));
    }
    cv_.notify_one();
  }

  // After stop() returns the callback is not running and never runs again,
  // except when called from the callback itself (forbidden by kv.h): then the
  // thread is detached and ends after the callback returns.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      queue_.clear();
    }
    cv_.notify_one();
    std::lock_guard<std::mutex> joinLock(joinMu_);
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

 private:
  void run() {
    for (;;) {
      WatchEvent event;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        event = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        callback_(event);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "memory kv: watch callback threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "memory kv: watch callback threw a non-standard exception\n");
      }
    }
  }

  const std::string prefix_;
  const WatchCallback callback_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WatchEvent> queue_;
  bool stopping_ = false;
  std::mutex joinMu_;  // serializes concurrent stop() calls around join()
  std::thread thread_;
};

class MemoryBucket;

class MemoryWatch : public KvWatch {
 public:
  MemoryWatch(std::shared_ptr<MemoryBucket> bucket, std::shared_ptr<WatchFeed> feed)
      : bucket_(std::move(bucket)), feed_(std::move(feed)) {}
  ~MemoryWatch() override { stop(); }
  void stop() override;

 private:
  std::shared_ptr<MemoryBucket> bucket_;
  std::shared_ptr<WatchFeed> feed_;
};

class MemoryBucket : public KvBucket, public std::enable_shared_from_this<MemoryBucket> {
 public:
  MemoryBucket(std::string name, const BucketOptions& options, std::shared_ptr<StoreShared> shared)
      : name_(std::move(name)), maxAgeMs_(options.maxAgeMs), shared_(std::move(shared)) {}

  const std::string& name() const override { return name_; }

  Result<KvEntry> get(const std::string& key) override {
    if (!shared_->available) return outage();
    std::lock_guard<std::mutex> lock(mu_);
    const Item* item = findLiveLocked(key, nowMs());
    if (!item) return Status::notFound("key '" + key + "' not found in bucket '" + name_ + "'");
    return KvEntry{key, item->value, item->revision};
  }

  Result<uint64_t> put(const std::string& key, const std::string& value) override {
    if (!shared_->available) return outage();
    std::lock_guard<std::mutex> lock(mu_);
    return writeLocked(key, value, nowMs());
  }

  Result<uint64_t> create(const std::string& key, const std::string& value) override {
    if (!shared_->available) return outage();
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = nowMs();
    if (findLiveLocked(key, now)) {
      return Status::alreadyExists("key '" + key + "' already exists in bucket '" + name_ + "'");
    }
    return writeLocked(key, value, now);
  }

  Result<uint64_t> update(const std::string& key, const std::string& value,
                          uint64_t expectedRevision) override {
    if (!shared_->available) return outage();
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = nowMs();
    const Item* item = findLiveLocked(key, now);
    if (!item || item->revision != expectedRevision) return conflict(key, expectedRevision, item);
    return writeLocked(key, value, now);
  }

  Status erase(const std::string& key, uint64_t expectedRevision) override {
    if (!shared_->available) return outage();
    std::lock_guard<std::mutex> lock(mu_);
    const Item* item = findLiveLocked(key, nowMs());
    if (expectedRevision != 0 && (!item || item->revision != expectedRevision)) {
      return conflict(key, expectedRevision, item);
    }
    if (!item) return Status::ok();
    items_.erase(key);
    WatchEvent event;
    event.type = WatchEvent::Type::Delete;
    event.key = key;
    event.revision = ++lastRevision_;
    deleted_[key] = event.revision;
    publishLocked(event);
    return Status::ok();
  }

  Result<std::vector<std::string>> keys(const std::string& prefix) override {
    if (!shared_->available) return outage();
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    forEachLiveLocked(prefix, nowMs(),
                      [&](const std::string& key, const Item&) { out.push_back(key); });
    return out;
  }

  Result<std::vector<KvEntry>> scan(const std::string& prefix) override {
    if (!shared_->available) return outage();
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<KvEntry> out;
    forEachLiveLocked(prefix, nowMs(), [&](const std::string& key, const Item& item) {
      out.push_back(KvEntry{key, item.value, item.revision});
    });
    return out;
  }

  Result<std::unique_ptr<KvWatch>> watch(const std::string& prefix,
                                         WatchCallback callback) override {
    if (!shared_->available) return outage();
    if (!callback) return Status::invalidArgument("watch needs a callback");
    auto feed = std::make_shared<WatchFeed>(prefix, std::move(callback));
    {
      // Replay and registration under one lock: no write can fall between
      // the snapshot and the first live event, nor appear in both.
      std::lock_guard<std::mutex> lock(mu_);
      replayLocked(*feed, nowMs());
      feeds_.push_back(feed);
    }
    feed->start();
    return std::unique_ptr<KvWatch>(new MemoryWatch(shared_from_this(), feed));
  }

  // Resumable unless values expire (expiry leaves no trace to resume from).
  // Deleted keys are remembered for this: tests only, nothing is trimmed.
  Result<std::string> resumeToken() override {
    if (!shared_->available) return outage();
    return maxAgeMs_ > 0 ? std::string() : token_;
  }

  Result<std::unique_ptr<KvWatch>> watchFrom(const std::string& prefix, const std::string& token,
                                             uint64_t after, WatchCallback callback) override {
    if (!shared_->available) return outage();
    if (!callback) return Status::invalidArgument("watch needs a callback");
    auto feed = std::make_shared<WatchFeed>(prefix, std::move(callback));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (maxAgeMs_ > 0 || token != token_ || after == 0 || after > lastRevision_) {
        return Status::notFound("bucket '" + name_ + "' cannot resume from revision " +
                                std::to_string(after) + " of " + token);
      }
      std::vector<WatchEvent> events;
      forEachLiveLocked(prefix, nowMs(), [&](const std::string& key, const Item& item) {
        if (item.revision <= after) return;
        WatchEvent event;
        event.key = key;
        event.value = item.value;
        event.revision = item.revision;
        events.push_back(std::move(event));
      });
      for (const auto& [key, revision] : deleted_) {
        if (revision <= after || !hasPrefix(key, prefix) || items_.count(key)) continue;
        WatchEvent event;
        event.type = WatchEvent::Type::Delete;
        event.key = key;
        event.revision = revision;
        events.push_back(std::move(event));
      }
      std::sort(events.begin(), events.end(),
                [](const WatchEvent& a, const WatchEvent& b) { return a.revision < b.revision; });
      for (auto& event : events) feed->push(std::move(event));
      WatchEvent caughtUp;
      caughtUp.type = WatchEvent::Type::CaughtUp;
      caughtUp.value = token_;
      feed->push(caughtUp);
      feeds_.push_back(feed);
    }
    feed->start();
    return std::unique_ptr<KvWatch>(new MemoryWatch(shared_from_this(), feed));
  }

  void unregister(const std::shared_ptr<WatchFeed>& feed) {
    std::lock_guard<std::mutex> lock(mu_);
    feeds_.erase(std::remove(feeds_.begin(), feeds_.end(), feed), feeds_.end());
  }

  void resetWatches() {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = nowMs();
    for (const auto& feed : feeds_) {
      WatchEvent reset;
      reset.type = WatchEvent::Type::Reset;
      feed->push(reset);
      replayLocked(*feed, now);
    }
  }

 private:
  struct Item {
    std::string value;
    uint64_t revision = 0;
    int64_t writtenMs = 0;
  };

  // The clock is read only for buckets that expire, so tests without expiry
  // never depend on it.
  int64_t nowMs() const { return maxAgeMs_ > 0 ? shared_->nowMs() : 0; }

  bool expired(const Item& item, int64_t now) const {
    return maxAgeMs_ > 0 && now - item.writtenMs >= maxAgeMs_;
  }

  // The live item for key or null; drops it first when it has expired.
  const Item* findLiveLocked(const std::string& key, int64_t now) {
    auto it = items_.find(key);
    if (it == items_.end()) return nullptr;
    if (expired(it->second, now)) {
      items_.erase(it);
      return nullptr;
    }
    return &it->second;
  }

  template <typename Fn>
  void forEachLiveLocked(const std::string& prefix, int64_t now, Fn&& fn) {
    auto it = items_.lower_bound(prefix);
    while (it != items_.end() && hasPrefix(it->first, prefix)) {
      if (expired(it->second, now)) {
        it = items_.erase(it);
        continue;
      }
      fn(it->first, it->second);
      ++it;
    }
  }

  uint64_t writeLocked(const std::string& key, const std::string& value, int64_t now) {
    uint64_t revision = ++lastRevision_;
    items_[key] = Item{value, revision, now};
    WatchEvent event;
    event.type = WatchEvent::Type::Put;
    event.key = key;
    event.value = value;
    event.revision = revision;
    publishLocked(event);
    return revision;
  }

  void publishLocked(const WatchEvent& event) {
    for (const auto& feed : feeds_) {
      if (hasPrefix(event.key, feed->prefix())) feed->push(event);
    }
  }

  // Current values in write order (like a NATS replay), then CaughtUp.
  void replayLocked(WatchFeed& feed, int64_t now) {
    std::vector<WatchEvent> events;
    forEachLiveLocked(feed.prefix(), now, [&](const std::string& key, const Item& item) {
      WatchEvent event;
      event.type = WatchEvent::Type::Put;
      event.key = key;
      event.value = item.value;
      event.revision = item.revision;
      events.push_back(std::move(event));
    });
    std::sort(events.begin(), events.end(),
              [](const WatchEvent& a, const WatchEvent& b) { return a.revision < b.revision; });
    for (auto& event : events) feed.push(std::move(event));
    WatchEvent caughtUp;
    caughtUp.type = WatchEvent::Type::CaughtUp;
    caughtUp.value = maxAgeMs_ > 0 ? std::string() : token_;
    feed.push(caughtUp);
  }

  Status conflict(const std::string& key, uint64_t expected, const Item* item) const {
    std::string actual = item ? "revision " + std::to_string(item->revision) : "absent";
    return Status::conflict("key '" + key + "' in bucket '" + name_ + "' is " + actual +
                            ", expected revision " + std::to_string(expected));
  }

  const std::string name_;
  const int64_t maxAgeMs_;
  const std::shared_ptr<StoreShared> shared_;

  std::mutex mu_;
  std::map<std::string, Item> items_;  // ordered, so a prefix is one contiguous range
  std::map<std::string, uint64_t> deleted_;  // key -> revision of its last deletion
  uint64_t lastRevision_ = 0;
  const std::string token_ = nextToken();
  std::vector<std::shared_ptr<WatchFeed>> feeds_;
};

void MemoryWatch::stop() {
  if (!feed_) return;
  // Unregister first so no new event is queued, then end the thread.
  bucket_->unregister(feed_);
  feed_->stop();
}

class MemoryStoreImpl : public MemoryStore {
 public:
  explicit MemoryStoreImpl(MemoryStoreOptions options) : shared_(std::make_shared<StoreShared>()) {
    shared_->nowMs = std::move(options.nowMs);
    if (!shared_->nowMs) {
      shared_->nowMs = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
      };
    }
  }

  const std::string& name() const override { return name_; }

  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& name,
                                               const BucketOptions& options) override {
    if (!shared_->available) return outage();
    if (name.empty()) return Status::invalidArgument("bucket name is empty");
    std::lock_guard<std::mutex> lock(mu_);
    auto& bucket = buckets_[name];
    if (!bucket) bucket = std::make_shared<MemoryBucket>(name, options, shared_);
    return std::shared_ptr<KvBucket>(bucket);
  }

  Status ping() override { return shared_->available ? Status::ok() : outage(); }

  ConnectionState state() const override {
    return shared_->available ? ConnectionState::Connected : ConnectionState::Disconnected;
  }

  void setAvailable(bool available) override { shared_->available = available; }

  void resetWatches() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& entry : buckets_) entry.second->resetWatches();
  }

 private:
  const std::string name_ = "memory";
  const std::shared_ptr<StoreShared> shared_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<MemoryBucket>> buckets_;
};

}  // namespace

std::shared_ptr<MemoryStore> createMemoryStore(MemoryStoreOptions options) {
  return std::make_shared<MemoryStoreImpl>(std::move(options));
}

}  // namespace weft
