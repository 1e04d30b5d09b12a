#include "nats_watch.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <optional>
#include <thread>

#include "nats_bucket.h"
#include "nats_common.h"
#include "nats_feed.h"

namespace weft::nats_plugin {

namespace {
// How long one wait for the next message lasts; bounds how late stop() notices.
constexpr int64_t kPollMs = 100;
// Pause between attempts to re-open a failed feed.
constexpr int64_t kRetryMs = 500;
// A replay that delivers nothing for this long (and at least 3 x kv.timeoutMs)
// without reaching its end is re-opened. Seen on a replicated stream right
// after its leader was killed: the new consumer reported messages pending,
// the server kept sending heartbeats, and nothing was ever delivered, so the
// view never loaded and weftd never became ready.
constexpr int64_t kReplayStallFloorMs = 5000;
// A live feed that has delivered nothing for the same time (or that nats.c
// reported a missed heartbeat for) asks the server whether its stream moved
// on meanwhile; if it did, the feed stalled and is replaced by one that
// resumes after the last message read, so nothing is lost or repeated. Seen
// on a replicated stream after a weftd restart during leader changes: the
// consumer stayed silent, heartbeats and all, while the stream kept growing,
// and the view fell behind for good.
//
// "Behind" is confirmed before anything is replaced: right after a server
// pause the stream is ahead of the feed only because its backlog is still on
// the wire. A feed found behind is looked at again kConfirmStallMs later and
// replaced only when it read nothing in between.
constexpr int64_t kConfirmStallMs = 1000;
// How long opening a watch's feed may take (creating its consumer, reading
// its first state).
constexpr int64_t kOpenFeedMs = 60000;
}  // namespace

class WatchWorker : public std::enable_shared_from_this<WatchWorker> {
 public:
  WatchWorker(std::shared_ptr<NatsKvBucket> bucket, std::string prefix, WatchCallback callback,
              uint64_t resumeAfter)
      : bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        callback_(std::move(callback)),
        catchingUp_(resumeAfter > 0),
        resumeAfter_(resumeAfter) {}

  ~WatchWorker() {
    // Joinable only when the last reference was the thread's own (a callback
    // stopped its own watch): the thread is finishing and cannot join itself.
    if (thread_.joinable()) thread_.detach();
  }

  Status start() {
    if (Status st = bucket_->connection()->checkAvailable(); !st) return st;
    Result<std::unique_ptr<KeyFeed>> feed = openFeed();
    if (!feed) return feed.status();
    feed_ = std::move(feed.value());
    // The thread keeps the worker alive even if stop() had to detach it.
    thread_ = std::thread([self = shared_from_this()] { self->run(); });
    return Status::ok();
  }

  // Idempotent; joins the thread unless called from it (a callback must not
  // stop its own watch, but if it does we must not deadlock).
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> joinLock(joinMu_);
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
      return;
    }
    thread_.join();
  }

 private:
  // Opens a feed and remembers which incarnation of the stream it reads.
  Result<std::unique_ptr<KeyFeed>> openFeed() {
    const auto& conn = bucket_->connection();
    seenReconnects_ = conn->reconnects();
    seenAlarms_ = conn->heartbeatAlarms();
    // Taken before subscribing: a stream re-created in between makes the
    // next check fail, which costs a needless replay but loses nothing.
    Result<NatsKvBucket::Incarnation> now = bucket_->incarnation();
    if (!now) return now.status();
    streamCreated_ = now->created;
    resumeToken_ = now->token;
    // No request waits on this: the server may take its time setting up a
    // consumer on a large stream, and giving up early only makes it start
    // over (with the abandoned one still being set up).
    const Deadline deadline(std::max<int64_t>(conn->timeoutMs(), kOpenFeedMs));
    if (catchingUp_) {
      return KeyFeed::catchUp(conn, bucket_->ref(), keyFilterForPrefix(prefix_), resumeAfter_,
                              deadline);
    }
    return KeyFeed::open(conn, bucket_->ref(), keyFilterForPrefix(prefix_), false, deadline);
  }

  // After a reconnect or a heartbeat alarm: false when the feed must be
  // replaced because its stream is gone or is a new one. Either event also
  // makes the next idle moment check whether a live feed is behind.
  bool feedStillValid() {
    const auto& conn = bucket_->connection();
    uint64_t reconnects = conn->reconnects();
    uint64_t alarms = conn->heartbeatAlarms();
    if (reconnects == seenReconnects_ && alarms == seenAlarms_) return true;
    checkLiveSoon_ = true;
    if (!conn->checkAvailable().isOk()) return true;  // look again once connected
    Result<NatsKvBucket::Incarnation> now = bucket_->incarnation();
    if (!now && now.code() != Code::NotFound) return true;  // transient: retry later
    seenReconnects_ = reconnects;
    seenAlarms_ = alarms;
    if (now.isOk() && now->created == streamCreated_) return true;
    conn->log(LogLevel::Warn, "stream of bucket " + bucket_->name() +
                                  " was deleted or re-created; the watch replays (Reset)");
    return false;
  }

  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  // Sleeps up to ms, returning early (true) when stop() was called.
  bool pause(int64_t ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
  }

  void deliver(const WatchEvent& event) {
    try {
      callback_(event);
    } catch (const std::exception& ex) {
      bucket_->connection()->log(
          LogLevel::Error, "watch callback on bucket " + bucket_->name() + " threw: " + ex.what());
    } catch (...) {
      bucket_->connection()->log(LogLevel::Error,
                                 "watch callback on bucket " + bucket_->name() + " threw");
    }
  }

  void run() {
    try {
      loop();
    } catch (const std::exception& ex) {
      bucket_->connection()->log(LogLevel::Error,
                                 "watch on bucket " + bucket_->name() + " stopped: " + ex.what());
    } catch (...) {
      bucket_->connection()->log(LogLevel::Error,
                                 "watch on bucket " + bucket_->name() + " stopped");
    }
    feed_.reset();  // unsubscribes: the server drops the consumer
  }

  void loop() {
    bool replaying = true;
    bool failedBefore = false;
    FeedEntry entry;
    const auto stallLimit = std::chrono::milliseconds(
        std::max<int64_t>(kReplayStallFloorMs, 3 * bucket_->connection()->timeoutMs()));
    auto lastProgress = std::chrono::steady_clock::now();
    auto lastLiveCheck = lastProgress;
    while (!stopping()) {
      if (!feed_) {
        if (!bucket_->connection()->checkAvailable().isOk()) {
          pause(kRetryMs);
          continue;
        }
        catchingUp_ = false;  // a re-opened feed replays everything
        Result<std::unique_ptr<KeyFeed>> feed = openFeed();
        if (!feed) {
          if (!failedBefore) {
            bucket_->connection()->log(LogLevel::Warn,
                                       "re-opening the watch on bucket " + bucket_->name() +
                                           " failed: " + feed.status().toString() + "; retrying");
            failedBefore = true;
          }
          pause(kRetryMs);
          continue;
        }
        feed_ = std::move(feed.value());
        suspectRead_.reset();
        failedBefore = false;
        bucket_->connection()->log(
            LogLevel::Info, "watch on bucket " + bucket_->name() + " re-opened; replaying (Reset)");
        WatchEvent reset;
        reset.type = WatchEvent::Type::Reset;
        deliver(reset);
        replaying = true;
        lastProgress = std::chrono::steady_clock::now();
      }
      if (!feedStillValid()) {
        feed_.reset();
        continue;
      }
      Result<KeyFeed::Event> ev = feed_->next(kPollMs, &entry);
      if (!ev) {
        if (stopping()) break;
        bucket_->connection()->log(LogLevel::Warn, "watch on bucket " + bucket_->name() +
                                                       " failed: " + ev.status().toString() +
                                                       "; re-opening it");
        feed_.reset();
        continue;
      }
      if (*ev == KeyFeed::Event::Idle) {
        const auto now = std::chrono::steady_clock::now();
        if (replaying && now - lastProgress > stallLimit) {
          bucket_->connection()->log(
              LogLevel::Warn, "the replay of bucket " + bucket_->name() + " delivered nothing for " +
                                  std::to_string(stallLimit.count()) + " ms; re-opening the watch");
          feed_.reset();
        } else if (!replaying &&
                   (checkLiveSoon_ || (suspectRead_ && now >= recheckAt_) ||
                    (now - lastProgress > stallLimit && now - lastLiveCheck > stallLimit))) {
          checkLiveSoon_ = false;
          lastLiveCheck = now;
          resumeIfStalled();
        }
        continue;
      }
      lastProgress = std::chrono::steady_clock::now();
      if (*ev == KeyFeed::Event::CaughtUp) {
        replaying = false;
        WatchEvent caughtUp;
        caughtUp.type = WatchEvent::Type::CaughtUp;
        caughtUp.value = resumeToken_;
        deliver(caughtUp);
        continue;
      }
      if (!hasPrefix(entry.key, prefix_)) continue;
      // A replay's delete markers are not current values; a catch-up's are
      // deletions the watcher has not seen.
      if (entry.isDelete && replaying && !catchingUp_) continue;
      WatchEvent event;
      event.type = entry.isDelete ? WatchEvent::Type::Delete : WatchEvent::Type::Put;
      event.key = std::move(entry.key);
      event.value = std::move(entry.value);
      event.revision = entry.revision;
      deliver(event);
    }
  }

  // A live feed that is behind its stream, twice kConfirmStallMs apart with
  // nothing read in between, is replaced by one resuming after the last
  // message it delivered. When the server cannot answer now, the feed stays
  // and is checked again later.
  void resumeIfStalled() {
    const auto& conn = bucket_->connection();
    if (!conn->checkAvailable().isOk()) return;
    Result<bool> behind = feed_->behind(Deadline(conn->timeoutMs()));
    if (!behind) return;
    if (!*behind) {
      suspectRead_.reset();
      return;
    }
    const uint64_t after = feed_->lastStreamSeq();
    if (!suspectRead_ || *suspectRead_ != after) {
      // First sighting, or it read something since: look again later.
      suspectRead_ = after;
      recheckAt_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(kConfirmStallMs);
      return;
    }
    suspectRead_.reset();
    if (after == 0) {
      feed_.reset();  // nothing read yet: a new feed replays (Reset)
      return;
    }
    Result<std::unique_ptr<KeyFeed>> fresh = KeyFeed::resume(
        conn, bucket_->ref(), keyFilterForPrefix(prefix_), after, Deadline(conn->timeoutMs()));
    if (!fresh) {
      conn->log(LogLevel::Warn, "the watch on bucket " + bucket_->name() +
                                    " stalled and could not be resumed yet: " +
                                    fresh.status().toString());
      checkLiveSoon_ = true;
      return;
    }
    conn->log(LogLevel::Warn, "the watch on bucket " + bucket_->name() +
                                  " stopped receiving while its stream moved on; resumed after "
                                  "revision " + std::to_string(after));
    feed_ = std::move(*fresh);
  }

  std::shared_ptr<NatsKvBucket> bucket_;
  std::string prefix_;
  WatchCallback callback_;
  // Used by the thread only, once it runs.
  bool catchingUp_;  // the current feed is the first, a catch-up after resumeAfter_
  const uint64_t resumeAfter_;
  std::unique_ptr<KeyFeed> feed_;
  int64_t streamCreated_ = 0;
  std::string resumeToken_;  // of the stream the feed reads, sent with CaughtUp
  uint64_t seenReconnects_ = 0;
  uint64_t seenAlarms_ = 0;
  bool checkLiveSoon_ = false;  // a reconnect or alarm since the last check
  // Set when the live feed was found behind: what it had read then, and
  // when to look again (resumeIfStalled).
  std::optional<uint64_t> suspectRead_;
  std::chrono::steady_clock::time_point recheckAt_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;

  std::mutex joinMu_;
  std::thread thread_;
};

namespace {

class NatsKvWatch : public KvWatch {
 public:
  explicit NatsKvWatch(std::shared_ptr<WatchWorker> worker) : worker_(std::move(worker)) {}
  ~NatsKvWatch() override { stop(); }
  void stop() override {
    try {
      worker_->stop();
    } catch (...) {
      // std::thread::join can throw system_error; nothing useful to do.
    }
  }

 private:
  std::shared_ptr<WatchWorker> worker_;
};

}  // namespace

void WatchRegistry::add(const std::shared_ptr<WatchWorker>& worker) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) {
      // Drop entries of watches that are gone, so the list stays short.
      std::vector<std::weak_ptr<WatchWorker>> alive;
      for (auto& w : workers_) {
        if (!w.expired()) alive.push_back(w);
      }
      alive.push_back(worker);
      workers_.swap(alive);
      return;
    }
  }
  worker->stop();
}

void WatchRegistry::stopAll() {
  std::vector<std::weak_ptr<WatchWorker>> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    workers.swap(workers_);
  }
  for (auto& w : workers) {
    if (auto worker = w.lock()) worker->stop();
  }
}

bool WatchRegistry::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

Result<std::unique_ptr<KvWatch>> startWatch(std::shared_ptr<NatsKvBucket> bucket,
                                            const std::string& prefix, WatchCallback callback,
                                            const std::shared_ptr<WatchRegistry>& registry,
                                            uint64_t resumeAfter) {
  if (registry->closed()) return Status::unavailable("the NATS store is shut down");
  if (!callback) return Status::invalidArgument("watch needs a callback");
  auto worker = std::make_shared<WatchWorker>(std::move(bucket), prefix, std::move(callback),
                                              resumeAfter);
  if (Status st = worker->start(); !st) return st;
  registry->add(worker);
  return std::unique_ptr<KvWatch>(new NatsKvWatch(worker));
}

}  // namespace weft::nats_plugin
