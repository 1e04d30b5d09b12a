#include "http/http_server.h"

#include <Poco/ErrorHandler.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "weft/log.h"

namespace weft::http {
namespace {

// Poco reports exceptions that escape a connection (e.g. a client that
// vanished mid-request) to the global ErrorHandler, which by default prints to
// std::cerr in its own format. Route them to our log instead.
class LoggingErrorHandler : public Poco::ErrorHandler {
 public:
  void exception(const Poco::Exception& e) override {
    log::warn("http connection error", {{"error", e.displayText()}});
  }
  void exception(const std::exception& e) override {
    log::warn("http connection error", {{"error", e.what()}});
  }
  void exception() override { log::warn("http connection error", {{"error", "unknown"}}); }
};

void installErrorHandler() {
  static LoggingErrorHandler handler;
  static std::once_flag once;
  std::call_once(once, [] { Poco::ErrorHandler::set(&handler); });
}

// Polls pred every few milliseconds until it holds or the deadline passes.
template <typename Pred>
bool waitUntil(std::chrono::steady_clock::time_point deadline, Pred pred) {
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

HttpServer::HttpServer(const Router& router, HttpServerOptions options, RequestObserver observer)
    : router_(router), options_(std::move(options)), observer_(std::move(observer)) {}

HttpServer::~HttpServer() {
  if (server_ && !stopped_) {
    try {
      server_->stopAll(true);
    } catch (...) {
      // Destructors must not throw; the process is going down anyway.
    }
  }
}

void HttpServer::listen() {
  if (socket_) return;
  socket_ = std::make_unique<Poco::Net::ServerSocket>();
  // SO_REUSEADDR (restart while old connections sit in TIME_WAIT) but never
  // SO_REUSEPORT: Poco's two-argument bind() sets both, which would let a
  // second weftd silently share the port instead of failing to start.
  socket_->bind(Poco::Net::SocketAddress(options_.host, options_.port), /*reuseAddress=*/true,
                /*reusePort=*/false);
  socket_->listen(256);
  boundPort_ = socket_->address().port();
}

void HttpServer::start() {
  installErrorHandler();
  listen();
  const int threads = std::max(1, options_.threads);
  // Our own pool: Poco's default pool caps at 16 threads, which would
  // silently cap http.threads.
  pool_ = std::make_unique<Poco::ThreadPool>("http", std::min(2, threads), threads, 60);

  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(threads);
  params->setMaxQueued(std::max(1, options_.maxQueued));
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(10, 0));
  params->setTimeout(Poco::Timespan(60, 0));

  server_ = std::make_unique<Poco::Net::HTTPServer>(
      new ApiRequestHandlerFactory(router_, options_.settings, observer_), *pool_, *socket_,
      params);
  server_->start();
}

int HttpServer::currentConnections() const {
  return server_ ? server_->currentConnections() : 0;
}

bool HttpServer::shutdown(std::chrono::milliseconds drain) {
  if (!server_ || stopped_) return true;
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + drain;

  // Stop the acceptor, then close the listening socket so new clients are
  // refused instead of waiting in the backlog of a server that will never
  // accept them.
  server_->stop();
  try {
    socket_->close();
  } catch (const std::exception& e) {
    log::debug("closing the listening socket failed", {{"error", e.what()}});
  }

  // stopAll(false) waits for each in-flight request to finish (it takes each
  // connection's lock) before closing that connection, and closes idle
  // keep-alive connections at once. It has no deadline of its own, so it runs
  // on a helper thread while this one keeps time.
  auto done = std::make_shared<std::atomic<bool>>(false);
  Poco::Net::HTTPServer* server = server_.get();
  std::thread stopper([server, done] {
    try {
      server->stopAll(false);
    } catch (...) {
      // Nothing to do: the abort below still runs if connections remain.
    }
    done->store(true);
  });

  const bool drained =
      waitUntil(deadline, [&] { return done->load() && server->currentConnections() == 0; });
  if (!drained) {
    log::warn("drain deadline passed, aborting the remaining connections",
              {{"connections", server->currentConnections()}});
    try {
      server->stopAll(true);  // shuts the sockets down under the handlers
    } catch (...) {
    }
  }
  // After an abort, a handler blocked on the backend still returns within
  // kv.timeoutMs; give it a few seconds more.
  const bool finished = waitUntil(std::chrono::steady_clock::now() + std::chrono::seconds(5), [&] {
    return done->load() && server->currentConnections() == 0;
  });
  if (done->load()) {
    stopper.join();
  } else {
    stopper.detach();
  }
  if (!finished) {
    // A handler is still running inside the server: destroying the server or
    // its pool now would pull them from under it. Leak both on purpose; the
    // process is about to exit.
    log::error("HTTP connections did not finish after abort; leaving them to process exit",
               {{"connections", server->currentConnections()}});
    (void)server_.release();
    (void)pool_.release();
  }
  return drained;
}

}  // namespace weft::http
