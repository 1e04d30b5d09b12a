// Connections to redis-server for the weft-kv-redis plugin: settings, the
// context pool, the connection state with its circuit breaker, and the
// background monitor that reconnects with backoff.
//
// hiredis 0.14.1 rules this file enforces (docs/pitfalls.md):
//  * a context is used by one thread at a time: callers check one out of the
//    pool and give it back;
//  * the connect timeout is not a command timeout: redisSetTimeout is called on
//    every new context;
//  * after any I/O error or timeout a context is dead: it is freed, never
//    reused, and every new context sends AUTH and SELECT again.
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redis_scripts.h"
#include "redis_url.h"
#include "weft/kv.h"
#include "weft/plugin.h"
#include "weft/status.h"

namespace weft::redis_plugin {

using Clock = std::chrono::steady_clock;
using Logger = std::function<void(LogLevel, const std::string&)>;

struct RedisConfig {
  RedisUrl url;
  int timeoutMs = 2000;        // kv.timeoutMs: connect and command timeout
  int reconnectWaitMs = 2000;  // kv.reconnectWaitMs: first backoff, at most 5x
};

// Reads redis.url, kv.timeoutMs and kv.reconnectWaitMs (defaults when absent).
// False with a readable *error for a bad value.
bool parseConfig(const std::map<std::string, std::string>& settings, RedisConfig* out,
                 std::string* error);

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// The Status for a failed hiredis call on c (c->err set). savedErrno is errno
// right after the call: a read timeout in 0.14.1 is a REDIS_ERR_IO with EAGAIN.
Status statusFromContext(const redisContext* c, int savedErrno, const std::string& what);
// The Status for a Redis error reply (the context stays usable). Replies
// that mean the server cannot serve now (LOADING, MISCONF, OOM, ...) are
// Unavailable; a MISCONF caused by ENOSPC says "disk full".
Status statusFromErrorReply(const std::string& message, const std::string& what);
// True for the error reply Redis gives while it cannot persist (-MISCONF,
// e.g. the AOF write failed on a full disk). Redis then refuses writes AND
// PING, but still serves reads, so a PING answered this way means "up,
// read-only": the store stays connected and each write reports the reason.
bool isPersistenceRefusal(const redisReply* reply);

// The commands every new connection sends before anything else: AUTH (when
// the URL has a password) and SELECT.
std::vector<std::vector<std::string>> handshakeCommands(const RedisUrl& url);

class ConnectionManager;

// A context checked out of the pool. Returned to the pool on destruction when
// still healthy; freed when any I/O error or timeout happened on it. Use from
// one thread only.
class Connection {
 public:
  Connection(ConnectionManager* manager, redisContext* ctx, uint64_t generation);
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&&) = delete;
  Connection(const Connection&) = delete;
  ~Connection();

  // One command, binary-safe arguments. A Redis error reply becomes a Status.
  // An I/O failure before the command was fully sent is Unavailable (it did
  // not run); after it was sent, Timeout (its outcome is unknown). Either way
  // the context is dead and freed on return.
  Result<Reply> command(const std::vector<std::string>& args);
  // EVALSHA, falling back to EVAL when the server does not know the script
  // (after a restart or SCRIPT FLUSH); NOSCRIPT means nothing ran.
  Result<Reply> script(const Script& s, const std::vector<std::string>& keys,
                       const std::vector<std::string>& args);
  // Shortens the socket timeout so the next command ends by deadline (for
  // multi-round-trip calls). Timeout when the deadline has passed. The pool
  // restores the full timeout on return.
  Status limitTo(Clock::time_point deadline);
  // command() without turning an error reply into a Status: for callers that
  // tell error replies apart (isPersistenceRefusal). I/O failures as above.
  Result<Reply> raw(const std::vector<std::string>& args);

 private:

  ConnectionManager* manager_;
  redisContext* ctx_;
  uint64_t generation_;
  bool broken_ = false;
  bool timeoutChanged_ = false;
};

// Owns the pool, the connection state and the monitor thread. Thread-safe.
class ConnectionManager {
 public:
  ConnectionManager(RedisConfig config, Logger log);
  ~ConnectionManager();

  // Starts the monitor thread (first connect attempt at once).
  void start();
  // Stops the monitor, frees idle contexts; later acquire() calls fail with
  // Unavailable and returned contexts are freed. Idempotent.
  void close();

  // A healthy connection: an idle one, else a new one (connect, timeout, AUTH,
  // SELECT, PING in one round trip). While the server is known down
  // (a connect failed and the backoff window has not passed), fails at once
  // with Unavailable unless honourBreaker is false: the monitor and the
  // watches run their own backoff and pass false.
  Result<Connection> acquire(bool honourBreaker = true);

  // Unavailable while the server is known down (within the backoff window
  // after a failed connect), without I/O; Ok otherwise.
  Status knownDown();

  ConnectionState state() const { return state_.load(); }
  const RedisConfig& config() const { return config_; }
  void log(LogLevel level, const std::string& message) const;

  // The backoff before reconnect attempt number `failures` (1-based):
  // reconnectWaitMs doubling up to 5x.
  std::chrono::milliseconds backoff(int failures) const;

 private:
  // A new context with the handshake done; on failure nullptr and *status.
  // Records the outcome in the connection state.
  redisContext* connect(Status* status);

  friend class Connection;
  struct Idle {
    redisContext* ctx;
    uint64_t generation;
  };

  // From Connection: a context comes back (healthy or not).
  void release(redisContext* ctx, uint64_t generation, bool broken, bool timeoutChanged);
  // An I/O error or timeout on an established connection: the server may be
  // gone, so drop every idle context (they would fail the same way) and let
  // the monitor check at once.
  void noteIoFailure(const Status& status);
  // configProblem: the server refused AUTH or SELECT (logged as an error).
  void connectFailed(const Status& status, bool configProblem = false);
  void connectSucceeded();
  // Logs the change (with the redacted URL) when the state changes.
  void setState(ConnectionState next, const std::string& reason, LogLevel level = LogLevel::Info);
  void freeIdleLocked();
  void monitorLoop();
  // Reads appendonly/appendfsync (after the first connect, after every
  // outage and every few minutes) and warns, once per change, when the
  // server's configuration lets a crash of redis-server lose acknowledged
  // writes. Monitor thread only.
  void checkDurability(Connection& conn);

  const RedisConfig config_;
  const Logger log_;
  const std::string redacted_;

  std::atomic<ConnectionState> state_{ConnectionState::Connecting};
  std::atomic<bool> closed_{false};
  std::thread monitor_;
  std::atomic<bool> durabilityChecked_{false};  // reset by every connect failure
  std::string durabilityNote_;                  // the last note logged (monitor thread)

  std::mutex mu_;  // guards everything below
  std::condition_variable wake_;
  std::vector<Idle> idle_;
  uint64_t generation_ = 0;
  int failures_ = 0;              // consecutive failed connects / pings
  Clock::time_point retryAt_{};   // breaker window end
  bool attemptInFlight_ = false;  // one caller probes after the window
  bool checkNow_ = false;         // the monitor should ping at once
  Status lastError_;
};

}  // namespace weft::redis_plugin
