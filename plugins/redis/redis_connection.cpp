#include "redis_connection.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace weft::redis_plugin {
namespace {

// Idle contexts kept for reuse; more are freed on return. A burst beyond this
// only costs extra connects.
constexpr size_t kMaxIdle = 16;
// Period of the monitor's PING while connected: how soon an idle store notices
// an outage (and logs it) without any traffic.
constexpr std::chrono::milliseconds kPingInterval{1000};
// Period of the persistence-settings check (also done after every outage).
constexpr std::chrono::minutes kDurabilityRecheck{5};

timeval toTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool parsePositive(const std::map<std::string, std::string>& settings, const std::string& key,
                   int* out, std::string* error) {
  auto it = settings.find(key);
  if (it == settings.end() || it->second.empty()) return true;
  const std::string& s = it->second;
  bool digits = s.size() <= 10 &&
                std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  long long v = digits ? std::stoll(s) : 0;
  if (!digits || v < 1 || v > INT32_MAX) {
    *error = key + " = '" + s + "' must be an integer number of milliseconds in 1.." +
             std::to_string(INT32_MAX);
    return false;
  }
  *out = static_cast<int>(v);
  return true;
}

// True when an idle context can be reused: no error recorded and the server
// did not close it while idle (a closed socket polls readable; an idle one
// has nothing to read). Catches a server restart before a command is lost on
// a stale socket.
bool idleContextAlive(redisContext* c) {
  if (c->err != 0 || c->fd < 0) return false;
  pollfd p{c->fd, POLLIN, 0};
  int n = ::poll(&p, 1, 0);
  return n == 0;
}

bool startsWith(const std::string& s, const char* prefix) {
  return s.compare(0, std::strlen(prefix), prefix) == 0;
}

}  // namespace

bool parseConfig(const std::map<std::string, std::string>& settings, RedisConfig* out,
                 std::string* error) {
  RedisConfig cfg;
  auto it = settings.find("redis.url");
  std::string url =
      it == settings.end() || it->second.empty() ? "redis://localhost:6379/0" : it->second;
  if (!parseRedisUrl(url, &cfg.url, error)) return false;
  if (!parsePositive(settings, "kv.timeoutMs", &cfg.timeoutMs, error)) return false;
  if (!parsePositive(settings, "kv.reconnectWaitMs", &cfg.reconnectWaitMs, error)) return false;
  *out = cfg;
  return true;
}

Status statusFromContext(const redisContext* c, int savedErrno, const std::string& what) {
  std::string detail = c == nullptr ? "no context" : c->errstr;
  if (detail.empty()) detail = "error " + std::to_string(c == nullptr ? -1 : c->err);
  std::string message = "redis " + what + ": " + detail;
  // 0.14.1 reports a socket timeout as REDIS_ERR_IO with EAGAIN (read/write)
  // or ETIMEDOUT (connect); the text is the only other trace of it.
  bool timedOut = savedErrno == EAGAIN || savedErrno == EWOULDBLOCK || savedErrno == ETIMEDOUT ||
                  detail.find("timed out") != std::string::npos ||
                  detail.find("temporarily unavailable") != std::string::npos;
  if (c != nullptr && c->err == REDIS_ERR_IO && timedOut) return Status::timeout(message);
  if (c != nullptr && (c->err == REDIS_ERR_PROTOCOL || c->err == REDIS_ERR_OOM)) {
    return Status::internal(message);
  }
  return Status::unavailable(message);
}

bool isPersistenceRefusal(const redisReply* reply) {
  return reply != nullptr && reply->type == REDIS_REPLY_ERROR &&
         startsWith(std::string(reply->str, reply->len), "MISCONF");
}

Status statusFromErrorReply(const std::string& message, const std::string& what) {
  // Replies that mean "the server cannot serve this now" rather than "this
  // request is wrong": loading after a restart, a long script, a replica,
  // failed persistence (disk full), memory limit, missing or bad credentials.
  static const char* kOutage[] = {"LOADING", "BUSY",     "MASTERDOWN", "READONLY",
                                  "MISCONF", "OOM",      "NOAUTH",     "WRONGPASS",
                                  "NOPERM",  "TRYAGAIN", "CLUSTERDOWN"};
  for (const char* prefix : kOutage) {
    if (startsWith(message, prefix)) {
      // MISCONF: the server refuses writes after persistence failed (an AOF
      // write or an RDB save). Name the common cause plainly when it is one.
      const bool diskFull = startsWith(message, "MISCONF") &&
                            message.find("No space left on device") != std::string::npos;
      return Status::unavailable("redis refused " + what + ": " + message +
                                 (diskFull ? " (disk full on the redis server)" : ""));
    }
  }
  return Status::internal("redis error on " + what + ": " + message);
}

std::vector<std::vector<std::string>> handshakeCommands(const RedisUrl& url) {
  std::vector<std::vector<std::string>> cmds;
  if (!url.password.empty()) {
    if (url.user.empty()) {
      cmds.push_back({"AUTH", url.password});
    } else {
      cmds.push_back({"AUTH", url.user, url.password});
    }
  }
  cmds.push_back({"SELECT", std::to_string(url.db)});
  return cmds;
}

// --- Connection -------------------------------------------------------------

Connection::Connection(ConnectionManager* manager, redisContext* ctx, uint64_t generation)
    : manager_(manager), ctx_(ctx), generation_(generation) {}

Connection::Connection(Connection&& other) noexcept
    : manager_(other.manager_),
      ctx_(other.ctx_),
      generation_(other.generation_),
      broken_(other.broken_),
      timeoutChanged_(other.timeoutChanged_) {
  other.ctx_ = nullptr;
}

Connection::~Connection() {
  if (ctx_ != nullptr) manager_->release(ctx_, generation_, broken_, timeoutChanged_);
}

Result<Reply> Connection::raw(const std::vector<std::string>& args) {
  if (broken_) return Status::internal("redis connection reused after an error");
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  const std::string what = args.empty() ? "command" : args[0];
  auto fail = [&](Status st) -> Result<Reply> {
    broken_ = true;
    manager_->noteIoFailure(st);
    return st;
  };
  // Send and receive as two steps (redisCommandArgv does both) to know
  // whether a failure happened before the command was fully sent (then the
  // server cannot have run it) or after (then it may have).
  if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
      REDIS_OK) {
    return fail(Status::internal("redis: cannot format " + what));
  }
  int done = 0;
  while (!done) {
    errno = 0;
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
      return fail(statusFromContext(ctx_, errno, what));
    }
  }
  void* r = nullptr;
  errno = 0;
  if (redisGetReply(ctx_, &r) != REDIS_OK || r == nullptr) {
    Status st = statusFromContext(ctx_, errno, what);
    // The command was sent and the reply was lost (e.g. the server was killed
    // after appending it to its AOF): the outcome is unknown, as after a
    // timeout. Unavailable is kept for calls that certainly did not run.
    if (st.code() == Code::Unavailable) {
      st = Status::timeout(st.message() + " (connection lost after " + what +
                           " was sent: its outcome is unknown)");
    }
    return fail(st);
  }
  return Reply(static_cast<redisReply*>(r));
}

Result<Reply> Connection::command(const std::vector<std::string>& args) {
  auto r = raw(args);
  if (r && (*r)->type == REDIS_REPLY_ERROR) {
    return statusFromErrorReply(std::string((*r)->str, (*r)->len), args[0]);
  }
  return r;
}

Result<Reply> Connection::script(const Script& s, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(s.sha);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = raw(argv);
  if (r && (*r)->type == REDIS_REPLY_ERROR &&
      startsWith(std::string((*r)->str, (*r)->len), "NOSCRIPT")) {
    argv[0] = "EVAL";
    argv[1] = s.text;
    r = raw(argv);
  }
  if (r && (*r)->type == REDIS_REPLY_ERROR) {
    return statusFromErrorReply(std::string((*r)->str, (*r)->len), std::string("script ") + s.name);
  }
  return r;
}

Status Connection::limitTo(Clock::time_point deadline) {
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (remaining.count() <= 0) return Status::timeout("redis: deadline of kv.timeoutMs exceeded");
  remaining = std::min(remaining, std::chrono::milliseconds(manager_->config().timeoutMs));
  if (redisSetTimeout(ctx_, toTimeval(remaining)) != REDIS_OK) {
    broken_ = true;
    return Status::internal("redis: cannot set the socket timeout");
  }
  timeoutChanged_ = true;
  return Status::ok();
}

// --- ConnectionManager ---------------------------------------------------------

ConnectionManager::ConnectionManager(RedisConfig config, Logger log)
    : config_(std::move(config)), log_(std::move(log)), redacted_(redactedUrl(config_.url)) {}

ConnectionManager::~ConnectionManager() {
  close();
}

void ConnectionManager::log(LogLevel level, const std::string& message) const {
  if (!log_) return;
  try {
    log_(level, message);
  } catch (...) {
    // A throwing host logger must not take the plugin down.
  }
}

void ConnectionManager::start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    checkNow_ = true;
  }
  log(LogLevel::Info, "redis: connecting to " + redacted_);
  monitor_ = std::thread([this] { monitorLoop(); });
}

void ConnectionManager::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.exchange(true)) return;
    freeIdleLocked();
  }
  wake_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  setState(ConnectionState::Closed, "store closed");
}

std::chrono::milliseconds ConnectionManager::backoff(int failures) const {
  long long wait = config_.reconnectWaitMs;
  long long cap = 5LL * config_.reconnectWaitMs;
  for (int i = 1; i < failures && wait < cap; ++i) wait *= 2;
  return std::chrono::milliseconds(std::min(wait, cap));
}

Status ConnectionManager::knownDown() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::unavailable("redis store is closed");
  if (failures_ > 0 && Clock::now() < retryAt_) {
    return Status::unavailable("redis at " + redacted_ + " is down (" + lastError_.message() + ")");
  }
  return Status::ok();
}

Result<Connection> ConnectionManager::acquire(bool honourBreaker) {
  bool probing = false;
  std::vector<redisContext*> stale;
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Status::unavailable("redis store is closed");
    if (honourBreaker && failures_ > 0) {
      auto now = Clock::now();
      if (now < retryAt_ || attemptInFlight_) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(retryAt_ - now).count();
        return Status::unavailable("redis at " + redacted_ + " is down (" + lastError_.message() +
                                   "); reconnecting" +
                                   (ms > 0 ? " in " + std::to_string(ms) + " ms" : ""));
      }
      // This caller is the probe for the whole store; the others keep failing
      // fast until it is done.
      attemptInFlight_ = true;
      probing = true;
    }
    while (!idle_.empty()) {
      Idle i = idle_.back();
      idle_.pop_back();
      if (i.generation == generation_ && idleContextAlive(i.ctx)) {
        if (probing) attemptInFlight_ = false;
        for (auto* c : stale) redisFree(c);
        return Connection(this, i.ctx, i.generation);
      }
      stale.push_back(i.ctx);
    }
  }
  for (auto* c : stale) redisFree(c);
  Status status;
  redisContext* ctx = connect(&status);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (probing) attemptInFlight_ = false;
    generation = generation_;
  }
  if (ctx == nullptr) return status;
  return Connection(this, ctx, generation);
}

redisContext* ConnectionManager::connect(Status* status) {
  const auto timeout = std::chrono::milliseconds(config_.timeoutMs);
  const timeval tv = toTimeval(timeout);
  errno = 0;
  redisContext* c = redisConnectWithTimeout(config_.url.host.c_str(), config_.url.port, tv);
  int savedErrno = errno;
  bool configProblem = false;
  auto fail = [&](Status st) -> redisContext* {
    if (c != nullptr) redisFree(c);
    *status = st;
    connectFailed(st, configProblem);
    return nullptr;
  };
  if (c == nullptr) return fail(Status::internal("redis: cannot allocate a context"));
  if (c->err != 0) return fail(statusFromContext(c, savedErrno, "connect to " + redacted_));
  // The connect timeout does not bound commands (docs/pitfalls.md).
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    return fail(Status::internal("redis: cannot set the socket timeout"));
  }
  redisEnableKeepAlive(c);

  // AUTH, SELECT and PING in one round trip. PING proves the server serves
  // (it answers LOADING while it replays its AOF after a restart).
  auto cmds = handshakeCommands(config_.url);
  cmds.push_back({"PING"});
  for (const auto& cmd : cmds) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
  }
  for (const auto& cmd : cmds) {
    void* raw = nullptr;
    errno = 0;
    int rc = redisGetReply(c, &raw);
    savedErrno = errno;
    Reply reply(static_cast<redisReply*>(raw));
    if (rc != REDIS_OK || !reply) {
      return fail(statusFromContext(c, savedErrno, cmd[0] + " on " + redacted_));
    }
    // A server that cannot persist still serves reads (isPersistenceRefusal).
    if (cmd[0] == "PING" && isPersistenceRefusal(reply.get())) continue;
    if (reply->type == REDIS_REPLY_ERROR) {
      Status st =
          statusFromErrorReply(std::string(reply->str, reply->len), cmd[0] + " on " + redacted_);
      // Whatever the server refuses while we connect (e.g. "ERR DB index is
      // out of range", "ERR max number of clients reached"), the store is
      // not usable: that is an outage to the callers, not an internal error.
      if (st.code() == Code::Internal) st = Status::unavailable(st.message());
      // A refused AUTH or SELECT is a configuration problem: worth an error
      // line, once per outage (connectFailed logs the state change).
      if (cmd[0] != "PING") configProblem = true;
      return fail(st);
    }
  }
  connectSucceeded();
  *status = Status::ok();
  return c;
}

void ConnectionManager::release(redisContext* ctx, uint64_t generation, bool broken,
                                bool timeoutChanged) {
  if (!broken && timeoutChanged &&
      redisSetTimeout(ctx, toTimeval(std::chrono::milliseconds(config_.timeoutMs))) != REDIS_OK) {
    broken = true;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!broken && !closed_ && generation == generation_ && idle_.size() < kMaxIdle) {
      idle_.push_back({ctx, generation});
      return;
    }
  }
  redisFree(ctx);
}

void ConnectionManager::noteIoFailure(const Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    freeIdleLocked();
    checkNow_ = true;
  }
  wake_.notify_all();
  log(LogLevel::Debug, "redis: " + status.message() + "; checking the connection");
}

void ConnectionManager::connectFailed(const Status& status, bool configProblem) {
  std::lock_guard<std::mutex> lock(mu_);
  ++failures_;
  auto wait = backoff(failures_);
  retryAt_ = Clock::now() + wait;
  lastError_ = status;
  ++generation_;
  freeIdleLocked();
  // The server that comes back may be configured differently.
  durabilityChecked_ = false;
  if (closed_) return;
  if (state_.load() != ConnectionState::Disconnected) {
    setState(ConnectionState::Disconnected,
             status.message() + "; retrying in " + std::to_string(wait.count()) + " ms",
             configProblem ? LogLevel::Error : LogLevel::Warn);
  } else {
    log(LogLevel::Debug, "redis: reconnect attempt " + std::to_string(failures_) +
                             " failed: " + status.message() + "; next in " +
                             std::to_string(wait.count()) + " ms");
  }
}

void ConnectionManager::connectSucceeded() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  int failures = failures_;
  failures_ = 0;
  lastError_ = Status::ok();
  if (state_.load() != ConnectionState::Connected) {
    setState(ConnectionState::Connected,
             failures > 0 ? "after " + std::to_string(failures) + " failed attempt(s)" : "");
  }
}

void ConnectionManager::setState(ConnectionState next, const std::string& reason, LogLevel level) {
  ConnectionState prev = state_.exchange(next);
  if (prev == next) return;
  static const char* kNames[] = {"connecting", "connected", "disconnected", "closed"};
  std::string message = std::string("redis: ") + kNames[static_cast<int>(prev)] + " -> " +
                        kNames[static_cast<int>(next)] + " (" + redacted_ + ")" +
                        (reason.empty() ? "" : ": " + reason);
  log(level, message);
}

void ConnectionManager::freeIdleLocked() {
  for (const auto& i : idle_) redisFree(i.ctx);
  idle_.clear();
}

void ConnectionManager::checkDurability(Connection& conn) {
  auto r = conn.command({"CONFIG", "GET", "append*"});
  if (!r) {
    // CONFIG is often renamed or denied on managed servers: not an error.
    log(LogLevel::Debug, "redis: cannot read the persistence settings: " + r.status().message());
    return;
  }
  std::map<std::string, std::string> config;
  const redisReply* reply = r->get();
  if (reply->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
      const redisReply* k = reply->element[i];
      const redisReply* v = reply->element[i + 1];
      if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING) {
        config[std::string(k->str, k->len)] = std::string(v->str, v->len);
      }
    }
  }
  const std::string appendonly = config["appendonly"];
  const std::string appendfsync = config["appendfsync"];
  LogLevel level = LogLevel::Warn;
  std::string note;
  if (appendonly == "no") {
    note =
        "has appendonly no: a crash of redis-server loses every write since its last RDB "
        "snapshot, acknowledged or not";
  } else if (appendonly == "yes" && appendfsync == "everysec") {
    // Redis 7.0 holds the AOF write back (up to 2 s) while a background fsync
    // is slow, yet replies: seen here as thousands of acked writes lost to a
    // kill -9 of the server on a busy disk.
    note =
        "has appendfsync everysec: while an fsync is slow, Redis delays its AOF write by up "
        "to 2 s but still acknowledges, so a crash of redis-server can lose acknowledged "
        "writes";
  } else if (appendonly == "yes" && appendfsync == "no") {
    note = "has appendfsync no: the kernel decides when acknowledged writes reach the disk";
  } else if (appendonly == "yes" && appendfsync == "always") {
    level = LogLevel::Info;
    note = "persists every write before acknowledging it (appendonly yes, appendfsync always)";
  } else {
    level = LogLevel::Debug;
    note = "reports appendonly '" + appendonly + "', appendfsync '" + appendfsync + "'";
  }
  if (level == LogLevel::Warn) {
    note += "; set appendonly yes and appendfsync always for Weft's no-loss promise";
  }
  if (note == durabilityNote_) return;
  durabilityNote_ = note;
  log(level, "redis: " + redacted_ + " " + note);
}

void ConnectionManager::monitorLoop() {
  try {
    Clock::time_point nextDurabilityCheck{};
    std::unique_lock<std::mutex> lock(mu_);
    while (!closed_) {
      auto next = failures_ > 0 ? retryAt_ : Clock::now() + kPingInterval;
      wake_.wait_until(lock, next, [&] { return closed_.load() || checkNow_; });
      if (closed_) break;
      checkNow_ = false;
      // Not due yet (woken early only by a spurious wakeup).
      if (Clock::now() < next && failures_ > 0) continue;
      lock.unlock();
      {
        auto conn = acquire(/*honourBreaker=*/false);
        if (conn) {
          // -MISCONF: up but read-only (isPersistenceRefusal); writes fail
          // one by one with Redis's reason, reads go on.
          auto pong = conn->raw({"PING"});
          if (pong && (*pong)->type == REDIS_REPLY_ERROR && !isPersistenceRefusal(pong->get())) {
            pong = statusFromErrorReply(std::string((*pong)->str, (*pong)->len), "PING");
          }
          if (pong) {
            connectSucceeded();
            // After every outage, and now and then (CONFIG SET at run time).
            auto now = Clock::now();
            if (!durabilityChecked_.exchange(true) || now >= nextDurabilityCheck) {
              nextDurabilityCheck = now + kDurabilityRecheck;
              checkDurability(*conn);
            }
          } else {
            connectFailed(pong.status());
          }
        }
        // A failed acquire already recorded the failure and the backoff.
      }
      lock.lock();
    }
  } catch (const std::exception& e) {
    log(LogLevel::Error, std::string("redis: monitor thread stopped: ") + e.what());
  } catch (...) {
    log(LogLevel::Error, "redis: monitor thread stopped by an unknown exception");
  }
}

}  // namespace weft::redis_plugin
