// The Poco HTTPServer of weftd, with its own worker pool and a bounded,
// draining shutdown.
//
// Sizing: Poco holds one worker thread per open connection (keep-alive and
// WebSocket included), so `threads` bounds concurrent connections, not CPU
// use; up to `maxQueued` accepted connections wait for a worker, later ones
// are closed at once.
//
// Thread-safety: start() and shutdown() from one controlling thread;
// port() and currentConnections() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "http/request_handler.h"
#include "http/router.h"

namespace Poco {
class ThreadPool;
namespace Net {
class HTTPServer;
class ServerSocket;
}  // namespace Net
}  // namespace Poco

namespace weft::http {

struct HttpServerOptions {
  std::string host = "0.0.0.0";  // http.host
  uint16_t port = 3000;          // http.port; 0 = any free port (tests)
  int threads = 64;              // http.threads
  int maxQueued = 64;            // accepted connections waiting for a worker
  HttpSettings settings;
};

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
  // the backlog until start(). Lets start-up fail early (e.g. the address is
  // in use: Poco::Exception) before anything else is started. Idempotent.
  void listen();

  // Starts accepting (calls listen() first if needed). Throws Poco::Exception
  // when binding fails.
  void start();

  // The bound port (useful with port 0); 0 before listen().
  uint16_t port() const { return boundPort_; }

  // Connections currently being served (not the queued ones).
  int currentConnections() const;

  // Graceful stop: closes the listening socket at once, lets requests in
  // flight finish and idle keep-alive connections close, waiting up to
  // `drain`; then aborts the connections that remain. Returns true when
  // everything finished within `drain`. Idempotent.
  bool shutdown(std::chrono::milliseconds drain);

 private:
  const Router& router_;
  HttpServerOptions options_;
  RequestObserver observer_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::ServerSocket> socket_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  uint16_t boundPort_ = 0;
  bool stopped_ = false;
};

}  // namespace weft::http
