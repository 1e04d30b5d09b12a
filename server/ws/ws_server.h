// WsServer: the live event stream of weftd (docs/api.md §5) - the connections
// behind `GET /api/ws`, their subscriptions, heartbeats, stats and events.
//
// HOW A CONNECTION GETS HERE. The HTTP front end (http/http_server.h) parses
// the upgrade request like any other; the /api/ws route (ws_handshake.h)
// reserves a place (admit()) and answers 101 with an Upgrade hand-over. Once
// the front end has written the 101 it removes the socket from its own event
// loop and calls adopt() with it and with any bytes the client sent after the
// handshake; if the 101 cannot be written, release() gives the place back.
// All WebSocket connections are then served by ONE thread: non-blocking
// sockets in epoll (level-triggered), framing by ws_frame.h, an eventfd to
// wake it when events or new connections arrive. Everything per connection
// (subscriptions, queues, timers) is touched only by that thread, so it needs
// no locks.
//
// SLOW CLIENTS. Each connection has a bounded outbound queue (maxQueuedMessages
// frames or maxQueuedBytes bytes beyond what the kernel socket buffer holds).
// Writes are non-blocking; a client that lets its queue overflow loses its
// unsent frames and is closed with 1008 "client too slow" (terminated if it
// does not complete the close within closeTimeoutMs). Neither the threads that
// publish events nor other clients ever wait for it.
//
// EVENTS arrive through publish() (an EventHub subscriber, called on the
// thread that applied a change): the event is queued and the I/O thread
// matches it against every subscription (ws_filter.h) and encodes its frame
// once for all receivers.
#pragma once

#include <Poco/Net/StreamSocket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "weft/clock.h"
#include "weft/events.h"
#include "weft/json.h"

namespace weft::ws {

struct WsSettings {
  int64_t pingIntervalMs = 30000;      // ws.pingIntervalMs
  int64_t statsIntervalMs = 30000;     // ws.statsIntervalMs
  size_t maxMessageBytes = 64 * 1024;  // inbound limit (§5.1): over it -> close 1009
  // A connection's outbound queue limit (frames not yet accepted by the kernel).
  size_t maxQueuedMessages = 1000;
  size_t maxQueuedBytes = 8 * 1024 * 1024;
  // How long a closing handshake may take (our close sent, peer's not yet
  // received); also the shutdown deadline (§7.3: terminate after 5 s).
  int64_t closeTimeoutMs = 5000;
  // Open connections (ws.maxConnections); a handshake beyond it gets 503.
  int64_t maxConnections = 10000;
  // Events waiting for the I/O thread; beyond this they are dropped (logged),
  // so a stalled I/O thread cannot exhaust memory.
  size_t maxPendingEvents = 100000;
};

// {agents, work, targets} of the stats message for a scope (nullopt = all
// projects); see ws_stats.h. Called on the I/O thread.
using StatsProvider = std::function<Json(const std::optional<std::string>& projectId)>;

class WsServer {
 public:
  // clock: for message timestamps. gauge: incremented and decremented with
  // the open connections (AppContext::websocketConnections, /health); may be
  // nullptr.
  WsServer(WsSettings settings, const Clock* clock, StatsProvider stats,
           std::atomic<int64_t>* gauge);
  // Calls stop().
  ~WsServer();
  WsServer(const WsServer&) = delete;
  WsServer& operator=(const WsServer&) = delete;

  // Starts the I/O thread. Throws std::runtime_error when epoll or eventfd
  // cannot be created.
  void start();

  // Reserves a place for one more connection before the 101 is sent; false
  // when maxConnections are open or being handed over. A reservation is
  // released when its connection ends (or adopt() finds the server stopped),
  // so every true must be followed by adopt().
  bool admit();
  // Gives back a reservation that will not be followed by adopt().
  void release() { --admitted_; }

  // Takes over an upgraded connection (the 101 already sent). `buffered`:
  // bytes already read from the socket after the handshake. Thread-safe and
  // quick; the socket is registered by the I/O thread. After shutdown began
  // the connection is closed with 1001 at once.
  void adopt(Poco::Net::StreamSocket socket, std::string buffered);

  // Queues an event for the subscribers. Thread-safe, never blocks on a
  // client; suitable as an EventHub subscriber.
  void publish(const Event& event);

  // Shutdown step 1 (§7.3): no new connections; every open one gets close
  // 1001 "Server shutting down". Returns at once.
  void beginShutdown();
  // Shutdown step 2: waits until every connection closed, at most until
  // closeTimeoutMs after beginShutdown() (called here if it was not), then
  // terminates the rest and joins the I/O thread. Idempotent.
  void stop();

  // Open connections and subscriptions (for stats and tests). Thread-safe.
  int64_t connections() const { return connections_.load(); }
  int64_t subscriptions() const { return subscriptions_.load(); }
  // Connections closed because their outbound queue overflowed.
  uint64_t slowClientsDropped() const { return slowDropped_.load(); }

 private:
  struct Conn;
  using Clock = std::chrono::steady_clock;
  using Frame = std::shared_ptr<const std::string>;

  void run();
  void loopOnce();
  void wake();
  void registerPending();
  void dispatchEvents();
  void onReadable(Conn& c);
  void processInput(Conn& c);
  void onFrame(Conn& c, int opcode, bool fin, std::string& payload);
  void onMessage(Conn& c, const std::string& text);
  void onSubscribe(Conn& c, const Json& message);
  void onUnsubscribe(Conn& c, const Json& message);
  void sendText(Conn& c, std::string text);
  void sendError(Conn& c, const std::string& error);
  void sendStats(Conn& c, const Json& filter);
  Frame statsFrame(const Json& filter);
  void enqueue(Conn& c, Frame frame, bool force = false);
  void flush(Conn& c);
  void setWriteInterest(Conn& c, bool on);
  void beginClose(Conn& c, uint16_t code, const std::string& reason);
  void terminate(Conn& c, const std::string& why);
  void timers();
  void reap();
  std::string now() const;

  const WsSettings settings_;
  const weft::Clock* clock_;
  const StatsProvider stats_;
  std::atomic<int64_t>* gauge_;

  int epoll_ = -1;
  int wakeFd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> shuttingDown_{false};
  std::atomic<bool> stopRequested_{false};
  std::mutex stopMutex_;  // serialises stop()

  // Handed over by other threads, guarded by mutex_.
  std::mutex mutex_;
  std::vector<std::pair<Poco::Net::StreamSocket, std::string>> pendingSockets_;
  std::deque<std::shared_ptr<const Event>> pendingEvents_;
  uint64_t droppedEvents_ = 0;
  Clock::time_point shutdownDeadline_{};
  std::atomic<bool> wakePending_{false};

  // I/O thread only.
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  uint64_t nextKey_ = 1;
  bool shutdownApplied_ = false;
  Clock::time_point nextPing_{};

  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> admitted_{0};  // connections_ plus those being handed over
  std::atomic<int64_t> subscriptions_{0};
  std::atomic<uint64_t> slowDropped_{0};
};

}  // namespace weft::ws
