#include "redis_watch.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "redis_store.h"

namespace weft::redis_plugin {
namespace {

// Silence on the subscription after which the thread sends a PING.
constexpr std::chrono::milliseconds kIdlePing{1000};

int remainingMs(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (ms <= 0) return 0;
  return ms > 3600000 ? 3600000 : static_cast<int>(ms);
}

bool replyIs(const redisReply* r, const char* text) {
  return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
         r->len == std::strlen(text) && strncasecmp(r->str, text, r->len) == 0;
}

// One connection in subscribe mode. Every wait polls the socket together with
// the watch's eventfd, so stop() interrupts connect, reads and backoff alike.
class Subscriber {
 public:
  Subscriber(const RedisConfig& config, int wakeFd) : config_(config), wakeFd_(wakeFd) {}
  ~Subscriber() { close(); }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Connect, AUTH, SELECT, SUBSCRIBE channel, and wait for the confirmation,
  // all within kv.timeoutMs.
  Status open(const std::string& channel) {
    close();
    auto deadline = Clock::now() + std::chrono::milliseconds(config_.timeoutMs);
    int fd = -1;
    Status st = connectSocket(deadline, &fd);
    if (!st) return st;
    ctx_ = redisConnectFd(fd);
    if (ctx_ == nullptr) {
      ::close(fd);
      return Status::internal("redis: cannot allocate a context");
    }
    auto cmds = handshakeCommands(config_.url);
    cmds.push_back({"SUBSCRIBE", channel});
    for (const auto& cmd : cmds) {
      st = send(cmd);
      if (!st) return st;
    }
    for (const auto& cmd : cmds) {
      Reply reply;
      st = read(deadline, &reply);
      if (!st) return st;
      if (reply->type == REDIS_REPLY_ERROR) {
        return statusFromErrorReply(std::string(reply->str, reply->len), cmd[0]);
      }
      if (cmd[0] == "SUBSCRIBE" && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
                                    !replyIs(reply->element[0], "subscribe"))) {
        return Status::internal("redis: unexpected reply to SUBSCRIBE");
      }
    }
    return Status::ok();
  }

  Status send(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
    int done = 0;
    // The socket has SO_SNDTIMEO = kv.timeoutMs, so a stuck write ends too.
    while (!done) {
      errno = 0;
      if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
        return statusFromContext(ctx_, errno, "subscriber " + args[0]);
      }
    }
    return Status::ok();
  }

  // The next reply, waiting until deadline. Timeout when none came; an
  // Unavailable "stopped" status when the eventfd was signalled.
  Status read(Clock::time_point deadline, Reply* out) {
    while (true) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) {
        return statusFromContext(ctx_, 0, "subscriber read");
      }
      if (raw != nullptr) {
        out->reset(static_cast<redisReply*>(raw));
        return Status::ok();
      }
      int wait = remainingMs(deadline);
      if (wait == 0) return Status::timeout("redis: no reply on the subscription");
      pollfd fds[2] = {{ctx_->fd, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
      int n = ::poll(fds, 2, wait);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::internal(std::string("redis: poll failed: ") + std::strerror(errno));
      }
      if (fds[1].revents != 0) return Status::unavailable("watch stopped");
      if (fds[0].revents != 0) {
        // Readable: this read returns at once (data or EOF), never blocks.
        errno = 0;
        if (redisBufferRead(ctx_) != REDIS_OK) {
          return statusFromContext(ctx_, errno, "subscriber read");
        }
      }
    }
  }

  void close() {
    if (ctx_ != nullptr) redisFree(ctx_);  // closes the socket
    ctx_ = nullptr;
  }

 private:
  // A non-blocking connect polled with the eventfd; the socket is switched to
  // blocking afterwards because hiredis' blocking context expects it.
  Status connectSocket(Clock::time_point deadline, int* fdOut) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(config_.url.port);
    int rc = ::getaddrinfo(config_.url.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      return Status::unavailable("redis: cannot resolve '" + config_.url.host +
                                 "': " + ::gai_strerror(rc));
    }
    Status last = Status::unavailable("redis: no address for '" + config_.url.host + "'");
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      int fd =
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        last = Status::unavailable(std::string("redis: socket: ") + std::strerror(errno));
        continue;
      }
      Status st = waitConnected(fd, ai, deadline);
      if (st) {
        ::freeaddrinfo(res);
        *fdOut = fd;
        return Status::ok();
      }
      ::close(fd);
      last = st;
      if (st.message() == "watch stopped" || Clock::now() >= deadline) break;
    }
    ::freeaddrinfo(res);
    return last;
  }

  Status waitConnected(int fd, const addrinfo* ai, Clock::time_point deadline) {
    const std::string where = "redis: connect to " + redactedUrl(config_.url) + ": ";
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) return Status::unavailable(where + std::strerror(errno));
      while (true) {
        int wait = remainingMs(deadline);
        if (wait == 0) return Status::timeout(where + "timed out");
        pollfd fds[2] = {{fd, POLLOUT, 0}, {wakeFd_, POLLIN, 0}};
        int n = ::poll(fds, 2, wait);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Status::internal(where + std::strerror(errno));
        if (fds[1].revents != 0) return Status::unavailable("watch stopped");
        if (fds[0].revents != 0) break;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) return Status::unavailable(where + std::strerror(err));
    }
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    timeval tv{};
    tv.tv_sec = config_.timeoutMs / 1000;
    tv.tv_usec = (config_.timeoutMs % 1000) * 1000;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return Status::ok();
  }

  const RedisConfig& config_;
  const int wakeFd_;
  redisContext* ctx_ = nullptr;
};

class WatchImpl : public WatchWorker {
 public:
  WatchImpl(std::shared_ptr<StoreCore> core, std::string bucket, BucketKeys keys,
            std::string prefix, WatchCallback callback)
      : core_(std::move(core)),
        bucket_(std::move(bucket)),
        keys_(std::move(keys)),
        prefix_(std::move(prefix)),
        callback_(std::move(callback)),
        wakeFd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        subscriber_(core_->connections.config(), wakeFd_),
        what_("redis: watch on bucket " + bucket_ + " prefix '" + prefix_ + "'") {}

  ~WatchImpl() override {
    if (thread_.joinable()) {
      // The last reference can be dropped by the watch thread itself (the
      // host destroyed the watch from its callback); it cannot join itself.
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        thread_.join();
      }
    }
    subscriber_.close();
    if (wakeFd_ >= 0) ::close(wakeFd_);
  }

  // The synchronous part of watch(): subscribe, so that a server that cannot
  // be reached now is reported to the caller.
  Status subscribe() {
    if (wakeFd_ < 0) return Status::internal(std::string("eventfd: ") + std::strerror(errno));
    return subscriber_.open(keys_.channel);
  }

  void startThread(std::shared_ptr<WatchImpl> self) {
    std::lock_guard<std::mutex> lock(stopMu_);
    // The thread holds a reference so the object outlives it in every case.
    thread_ = std::thread([self = std::move(self)] { self->run(); });
  }

  void stop() override {
    if (selfId_.load() == std::this_thread::get_id()) {
      // Called from the callback (kv.h forbids it, but a deadlock would be
      // worse): stop delivering; the destructor detaches.
      stopping_ = true;
      signal();
      return;
    }
    std::lock_guard<std::mutex> lock(stopMu_);
    stopping_ = true;
    signal();
    if (thread_.joinable()) thread_.join();
    core_->removeWatch(this);
  }

 private:
  void signal() {
    uint64_t one = 1;
    if (wakeFd_ >= 0) {
      ssize_t n = ::write(wakeFd_, &one, sizeof(one));
      (void)n;  // EAGAIN only when already signalled
    }
  }

  void log(LogLevel level, const std::string& message) {
    core_->connections.log(level, what_ + ": " + message);
  }

  void run() {
    selfId_.store(std::this_thread::get_id());
    try {
      loop();
    } catch (const std::exception& e) {
      log(LogLevel::Error, std::string("thread stopped by an exception: ") + e.what());
    } catch (...) {
      log(LogLevel::Error, "thread stopped by an unknown exception");
    }
    subscriber_.close();
  }

  void emit(const WatchEvent& event) {
    if (stopping_) return;
    try {
      callback_(event);
    } catch (const std::exception& e) {
      log(LogLevel::Error, std::string("callback threw: ") + e.what());
    } catch (...) {
      log(LogLevel::Error, "callback threw an unknown exception");
    }
  }

  // Sleeps for d unless stop() is called first.
  void sleepFor(std::chrono::milliseconds d) {
    pollfd p{wakeFd_, POLLIN, 0};
    auto until = Clock::now() + d;
    while (!stopping_) {
      int wait = remainingMs(until);
      if (wait == 0) return;
      ::poll(&p, 1, wait);
    }
  }

  void loop() {
    bool subscribed = true;  // subscribe() ran before the thread started
    bool everEmitted = false;
    bool lost = false;
    int failures = 0;
    while (!stopping_) {
      if (!subscribed) {
        if (failures > 0) sleepFor(core_->connections.backoff(failures));
        if (stopping_) break;
        Status st = subscriber_.open(keys_.channel);
        if (!st) {
          ++failures;
          log(LogLevel::Debug,
              "resubscribe attempt " + std::to_string(failures) + " failed: " + st.message());
          continue;
        }
        subscribed = true;
      }

      // The values are handed on batch by batch as they are listed: a bucket
      // of a million values is never held whole (held, it cost weftd a
      // gigabyte at the peak, and the view's entries, allocated in the holes
      // the freed values left, kept that memory fragmented). A listing that
      // fails after emitting is followed by one that starts with a Reset, so
      // a key emitted here and deleted meanwhile does not stay in a view.
      uint64_t listedRevision = 0;
      std::unordered_map<std::string, uint64_t> listed;
      bool begun = false;  // this listing emitted (after its Reset, when one is due)
      Status st = listEntries(
          core_->connections, keys_, prefix_, /*withValues=*/true, std::nullopt,
          /*honourBreaker=*/false, &stopping_,
          [&](KvEntry& e) {
            if (everEmitted && !begun) emit({WatchEvent::Type::Reset, "", "", 0});
            begun = true;
            everEmitted = true;
            listed[e.key] = e.revision;
            emit({WatchEvent::Type::Put, std::move(e.key), std::move(e.value), e.revision});
          },
          &listedRevision);
      if (!st) {
        if (stopping_) break;
        ++failures;
        log(failures == 1 ? LogLevel::Warn : LogLevel::Debug,
            "listing the current values failed: " + st.message() + "; retrying");
        subscriber_.close();
        subscribed = false;
        continue;
      }

      // An empty listing after a reset still says so.
      if (everEmitted && !begun) emit({WatchEvent::Type::Reset, "", "", 0});
      emit({WatchEvent::Type::CaughtUp, "", "", 0});
      everEmitted = true;
      if (lost)
        log(LogLevel::Info, "resumed after a reset (" + std::to_string(listed.size()) +
                                " current values replayed)");
      failures = 0;

      st = live(listedRevision, &listed);
      if (stopping_) break;
      log(LogLevel::Warn, "lost its subscription (" + st.message() + "); resubscribing");
      lost = true;
      subscriber_.close();
      subscribed = false;
      // The first resubscribe is immediate (failures == 0): a brief
      // disconnect heals at once; a dead server then backs off.
    }
  }

  // Delivers live changes until the subscription fails (returns why) or stop.
  //
  // Messages queued while the listing ran are dropped when they are not newer
  // than the listed revision of their key. The filter ends at the first PONG:
  // the PING is sent after the listing returned, so every change the listing
  // could have seen was published, and queued on this connection, before it.
  // (A message newer than the whole listing also ends it: all later ones are.)
  Status live(uint64_t listedRevision, std::unordered_map<std::string, uint64_t>* listed) {
    const auto pingTimeout = std::chrono::milliseconds(core_->connections.config().timeoutMs);
    bool filtering = true;
    uint64_t pingsSent = 0;
    uint64_t pongs = 0;
    auto lastActivity = Clock::now();
    Clock::time_point pingDeadline;
    auto sendPing = [&]() {
      Status st = subscriber_.send({"PING"});
      ++pingsSent;
      pingDeadline = Clock::now() + pingTimeout;
      return st;
    };
    if (Status st = sendPing(); !st) return st;
    auto stopFiltering = [&] {
      filtering = false;
      std::unordered_map<std::string, uint64_t>().swap(*listed);
    };
    while (!stopping_) {
      const bool awaitingPong = pingsSent > pongs;
      Reply reply;
      Status st = subscriber_.read(awaitingPong ? pingDeadline : lastActivity + kIdlePing, &reply);
      if (stopping_) return Status::ok();
      if (!st) {
        if (st.code() != Code::Timeout) return st;
        if (awaitingPong) return Status::timeout("no answer to PING within kv.timeoutMs");
        if (st = sendPing(); !st) return st;
        continue;
      }
      // Any traffic proves the connection alive.
      lastActivity = Clock::now();
      pingDeadline = lastActivity + pingTimeout;
      const redisReply* r = reply.get();
      // While Redis cannot persist it answers PING with -MISCONF even here;
      // the subscription itself is fine (isPersistenceRefusal).
      const bool refusedPing = awaitingPong && isPersistenceRefusal(r);
      if (r->type == REDIS_REPLY_ERROR && !refusedPing) {
        return statusFromErrorReply(std::string(r->str, r->len), "subscription");
      }
      if (refusedPing) {
        ++pongs;
        if (filtering) stopFiltering();
        continue;
      }
      if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) continue;
      if (replyIs(r->element[0], "pong")) {
        ++pongs;
        if (filtering) stopFiltering();
        continue;
      }
      if (r->elements < 3 || !replyIs(r->element[0], "message") ||
          r->element[2]->type != REDIS_REPLY_STRING) {
        continue;  // subscribe confirmations
      }
      Change change;
      if (!parseChange(std::string(r->element[2]->str, r->element[2]->len), &change)) {
        log(LogLevel::Warn, "skipped a malformed change message");
        continue;
      }
      if (change.key.compare(0, prefix_.size(), prefix_) != 0) continue;
      if (filtering) {
        if (change.revision > listedRevision) {
          stopFiltering();
        } else {
          auto it = listed->find(change.key);
          if (it != listed->end() && change.revision <= it->second) continue;
        }
      }
      if (change.isDelete) {
        emit({WatchEvent::Type::Delete, std::move(change.key), "", change.revision});
      } else {
        emit({WatchEvent::Type::Put, std::move(change.key), std::move(change.value),
              change.revision});
      }
    }
    return Status::ok();
  }

  const std::shared_ptr<StoreCore> core_;
  const std::string bucket_;
  const BucketKeys keys_;
  const std::string prefix_;
  const WatchCallback callback_;
  const int wakeFd_;
  Subscriber subscriber_;  // used by the thread only, once it runs
  const std::string what_;

  std::atomic<bool> stopping_{false};
  std::atomic<std::thread::id> selfId_{};
  std::mutex stopMu_;  // serialises stop() and guards thread_
  std::thread thread_;
};

// The handle the host owns; stopping and destroying it stops the thread.
class RedisWatch : public KvWatch {
 public:
  explicit RedisWatch(std::shared_ptr<WatchImpl> impl) : impl_(std::move(impl)) {}
  ~RedisWatch() override { stop(); }
  void stop() override { impl_->stop(); }

 private:
  std::shared_ptr<WatchImpl> impl_;
};

}  // namespace

Result<std::unique_ptr<KvWatch>> startWatch(const std::shared_ptr<StoreCore>& core,
                                            const std::string& bucket, const BucketKeys& keys,
                                            const std::string& prefix, WatchCallback callback) {
  Status st = core->connections.knownDown();
  if (!st) return st;
  auto impl = std::make_shared<WatchImpl>(core, bucket, keys, prefix, std::move(callback));
  st = impl->subscribe();
  if (!st) return st;
  impl->startThread(impl);
  if (!core->addWatch(impl)) {
    impl->stop();
    return Status::unavailable("redis store is closed");
  }
  return std::unique_ptr<KvWatch>(new RedisWatch(std::move(impl)));
}

}  // namespace weft::redis_plugin
