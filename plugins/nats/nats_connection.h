// NatsConnection: the one nats.c connection (and JetStream context) of a
// store, its reconnect policy, and its connection state.
//
// nats.c traps handled here (docs/pitfalls.md):
//  * RetryOnFailedConnect, so a store can be created while no server answers;
//    the connection then keeps trying in the background.
//  * Unlimited reconnects with a backoff from kv.reconnectWaitMs up to 5x.
//  * The reconnect buffer: nats.c keeps publishes made while reconnecting and
//    replays them after the reconnect, long after the caller gave up: a silent
//    late write. The buffer is shrunk to its minimum, and because nats.c still
//    accepts one message into an empty buffer, the disconnected callback parks
//    a harmless filler message there. On top of that every operation checks
//    the state first (checkAvailable) and never publishes while disconnected.
//    What remains is a race of microseconds between that check and the
//    library noticing a dead socket.
//  * Requests in flight fail at once on a disconnect instead of waiting out
//    their timeout (natsOptions_SetFailRequestsOnDisconnect).
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "nats_url.h"
#include "weft/kv.h"
#include "weft/plugin.h"

namespace weft::nats_plugin {

using LogFn = std::function<void(LogLevel, const std::string&)>;

struct ConnectionSettings {
  NatsServerSpec servers;
  std::string user;      // nats.user, used only when the URL has no credentials
  std::string password;  // nats.pass, same
  int64_t timeoutMs = 2000;
  int64_t reconnectWaitMs = 2000;
  LogFn log;
};

class NatsConnection {
 public:
  // Creates the connection. Fails only for configuration problems (e.g. TLS
  // requested but libnats built without it); an unreachable server is not a
  // failure, the connection starts in state Connecting and retries.
  static Result<std::shared_ptr<NatsConnection>> open(ConnectionSettings settings);

  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  // Closes the connection: no reconnect, every later call gets Unavailable.
  // Idempotent; waits (bounded) for nats.c's closed callback.
  void close();

  // The last known state, from the connection callbacks. Never blocks.
  ConnectionState state() const;

  // Ok when operations may be sent now; Unavailable at once when the
  // connection is known to be down, so callers fail fast and never publish
  // into nats.c's reconnect buffer.
  Status checkAvailable() const;

  // Counters that move when a feed may have lost track of its stream: each
  // reconnect, and each "missed heartbeat" nats.c reports for a JetStream
  // consumer. Watches compare them to decide when to verify their stream.
  uint64_t reconnects() const;
  uint64_t heartbeatAlarms() const;

  // An asynchronous JetStream publish: sends *msg (which nats.c then owns)
  // and returns; `ack` runs once with the outcome, on nats.c's thread for
  // publish acknowledgements, or here when the send itself fails. Outcomes:
  // NATS_OK with the stream sequence; a server refusal (status and jsErrCode
  // with its text); NATS_TIMEOUT after po->MaxWait without an answer;
  // NATS_CONNECTION_DISCONNECTED for publishes still unanswered when
  // close() returns (outcome unknown). `ack` must not block.
  using AckFn = std::function<void(natsStatus, jsErrCode, uint64_t sequence, const std::string& text)>;
  void publishAsync(natsMsg** msg, jsPubOptions* po, AckFn ack);

  natsConnection* nc() const { return nc_; }
  jsCtx* js() const { return js_; }
  int64_t timeoutMs() const { return timeoutMs_; }
  void log(LogLevel level, const std::string& message) const;

  // The closure of the nats.c callbacks (defined in nats_connection.cpp).
  struct Events;
  // Unanswered asynchronous publishes, by message (nats_connection.cpp).
  struct PendingAcks;

 private:
  NatsConnection() = default;

  Events* events_ = nullptr;
  PendingAcks* acks_ = nullptr;
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  jsCtx* asyncJs_ = nullptr;  // publishAsync only (its ack handler and limits)
  int64_t timeoutMs_ = 2000;
  std::atomic<bool> closed_{false};
};

}  // namespace weft::nats_plugin
