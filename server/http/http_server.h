// The HTTP front end of weftd: one event-loop thread owns every socket, a
// pool of workers runs the route handlers.
//
// WHY. A thread per connection (Poco's HTTPServer, used before) lets 64 idle
// keep-alive clients, or one script opening connections and sending nothing,
// take every thread and make the whole API unreachable. Here a connection
// costs a file descriptor and a few KB of buffers, whatever it does.
//
// HOW. The I/O thread (epoll, level-triggered) accepts, reads and parses
// requests (request_parser.h) under a header deadline and a body deadline,
// and hands only complete requests to the workers. A worker runs the request
// pipeline (request_handler.h) and gives the encoded response back; the I/O
// thread writes it without ever blocking, under a write deadline. One request
// per connection is in flight at a time; pipelined requests wait in the
// connection's buffer. Cheap routes marked RouteOptions::inlined (/health)
// and the pipeline's own refusals (413, 400, 503) are answered on the I/O
// thread, so /health stays fast even when every worker waits on the backend.
//
// LIMITS (all configurable, all answered at once rather than by hanging):
//  * maxConnections open connections. Past it, 64 more are accepted as
//    probes: each may send one request within 2 s, and only an inline route
//    (/health) is served to it; anything else, or silence, gets 503 with
//    Retry-After and a close. With the probe slots taken too, a new
//    connection is answered 503 at once and closed. The process's open-file
//    limit is raised at start() towards what that needs.
//  * idleTimeoutMs: a keep-alive connection with no request in progress is
//    closed after this long.
//  * headerTimeoutMs: from the first byte of a request to the end of its
//    headers -> 408 and close. bodyTimeoutMs: from the end of the headers to
//    the end of the body -> 408 and close; also the time a response may take
//    to be written (a client that does not read is closed).
//  * maxQueued complete requests waiting for a worker; beyond it, 503.
//
// WebSocket upgrades: a route may return an Upgrade (router.h); once the 101
// is written the connection leaves this loop and is handed over as a socket,
// with any bytes that arrived after the handshake.
//
// Thread-safety: listen(), start() and shutdown() from one controlling
// thread; port() and currentConnections() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "http/request_handler.h"
#include "http/router.h"

namespace weft::http {

struct HttpServerOptions {
  std::string host = "0.0.0.0";  // http.host
  uint16_t port = 3000;          // http.port; 0 = any free port (tests)
  int threads = 64;              // http.threads: workers running handlers
  int maxQueued = 4096;          // complete requests waiting for a worker
  int64_t maxConnections = 16384;  // http.maxConnections
  int64_t idleTimeoutMs = 60000;   // http.idleTimeoutMs
  int64_t headerTimeoutMs = 10000;  // http.headerTimeoutMs
  int64_t bodyTimeoutMs = 30000;    // http.bodyTimeoutMs
  size_t maxHeaderBytes = 32 * 1024;
  HttpSettings settings;
};

// Raises the soft RLIMIT_NOFILE towards `wanted` (never above the hard
// limit, never lowering it) and logs what it did; warns when the hard limit
// is below `wanted`. Returns the soft limit in force afterwards.
uint64_t raiseOpenFileLimit(uint64_t wanted);

class HttpServer {
 public:
  // The router must outlive the server and be complete before start().
  HttpServer(const Router& router, HttpServerOptions options, RequestObserver observer = {});
  // Aborts whatever is still running (call shutdown() for a graceful stop).
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Replaces the observer given to the constructor. Only before start().
  void setRequestObserver(RequestObserver observer) { observer_ = std::move(observer); }

  // Binds and listens on host:port without accepting yet: clients wait in
  // the backlog until start(). Lets start-up fail early (the address is in
  // use: Poco::Exception) before anything else is started. Idempotent.
  void listen();

  // Starts the I/O thread and the workers (calls listen() first if needed).
  // Throws Poco::Exception when binding fails, std::runtime_error when epoll
  // cannot be set up.
  void start();

  // The bound port (useful with port 0); 0 before listen().
  uint16_t port() const { return boundPort_; }

  // Open HTTP connections plus handlers still running for connections that
  // are already gone (after an aborted shutdown).
  int currentConnections() const;

  // Graceful stop: closes the listening socket at once, closes idle
  // keep-alive connections, lets requests in flight finish (answered with
  // Connection: close), waiting up to `drain`; then closes what remains.
  // Returns true when everything finished within `drain`. Idempotent.
  bool shutdown(std::chrono::milliseconds drain);

  class Impl;

 private:
  const Router& router_;
  HttpServerOptions options_;
  RequestObserver observer_;
  std::unique_ptr<Impl> impl_;
  int listenFd_ = -1;
  uint16_t boundPort_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  bool handlersStuck_ = false;  // shutdown() left a handler running
};

}  // namespace weft::http
