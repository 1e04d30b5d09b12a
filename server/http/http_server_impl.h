// The inside of the HTTP front end (http_server.h): the Impl class, its
// connections and constants, shared by http_server.cpp (the loop, accepting,
// draining, timers, the public HttpServer) and http_connection.cpp (reading,
// parsing, dispatching to workers, writing and closing one connection).
// Private to server/http.
#pragma once

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocketImpl.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include "weft/log.h"

#include "http/http_server.h"

namespace weft::http {

using SteadyClock = std::chrono::steady_clock;

using SteadyClock = std::chrono::steady_clock;

// epoll keys below this are not connections.
inline constexpr uint64_t kListenKey = 1;
inline constexpr uint64_t kWakeKey = 2;
inline constexpr uint64_t kFirstConnKey = 16;

inline constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one connection per readiness event, so one fast sender
// cannot starve the others.
inline constexpr size_t kReadPerEvent = 256 * 1024;
inline constexpr int kAcceptPerEvent = 512;
// Past maxConnections, this many more connections are accepted as probes:
// each may ask for one inline route (/health) within kProbeDeadlineMs of
// connecting, and anything else is answered 503. A health checker therefore
// still gets its answer while the limit is hit; a flood of new connections
// is refused at once once the probe slots are taken too.
inline constexpr int64_t kProbeSlots = 64;
inline constexpr int64_t kProbeDeadlineMs = 2000;
// How long a closing connection is given to take our last response before
// the socket is closed (reading and dropping what it still sends), so the
// kernel does not reset the response away (see closeGracefully).
inline constexpr auto kLingerTime = std::chrono::seconds(2);
inline constexpr int kTickMs = 100;

inline constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

// ---------------------------------------------------------------------------
//
// Ownership. Every connection is registered with EPOLLONESHOT: once an event
// is reported the descriptor is disarmed, and whoever handles it owns the
// connection until it arms it again. The I/O thread owns a connection while
// it reads, parses, writes or lingers; a worker owns it while the handler
// runs. On the common path the worker writes the response itself and re-arms
// the connection for reading, so a request costs one hand-off (I/O thread to
// worker) and no wake-up of the I/O thread. Anything else (a partial write,
// closing, an upgrade, pipelined input) goes back to the I/O thread.
// Each connection's mutex orders these hand-overs and keeps the descriptor
// from being closed under a worker that is writing to it; it is never
// contended for long (a worker holds it for one send and one epoll_ctl).

class HttpServer::Impl {
 public:
  Impl(int listenFd, const Router& router, HttpServerOptions options, RequestObserver observer)
      : options_(std::move(options)),
        pipeline_(router, options_.settings, std::move(observer)),
        listenFd_(listenFd) {}

  ~Impl() {
    if (epoll_ >= 0) ::close(epoll_);
    if (wakeFd_ >= 0) ::close(wakeFd_);
    if (spareFd_ >= 0) ::close(spareFd_);
    if (listenFd_ >= 0) ::close(listenFd_);
  }

  void start();
  void beginDrain() {
    draining_ = true;
    wake();
  }
  void abortAll() {
    abort_ = true;
    wake();
  }
  // Stops the I/O thread, then waits up to `grace` for running handlers.
  // False when a handler is still running (the workers are then detached).
  bool stop(std::chrono::milliseconds grace);

  int64_t openConnections() const { return open_.load(); }
  int64_t busyWorkers() const { return busy_.load(); }
  int64_t lingering() const { return lingering_.load(); }

 private:
  enum class Phase { Reading, Busy, Writing, Lingering };
  enum class Timer { None, Idle, Header, Body, Write, Linger };

  struct Conn {
    explicit Conn(const ParserLimits& limits) : parser(limits) {}
    std::mutex mu;  // see "Ownership" above
    uint64_t key = 0;
    int fd = -1;
    bool closed = false;  // the descriptor is closed; nothing may touch it
    RequestParser parser;
    std::string in;  // read; bytes before inPos are parsed already
    size_t inPos = 0;
    bool hasInput() const { return in.size() > inPos; }
    std::string out;  // to write
    size_t outPos = 0;
    ApiResponse::Producer stream;  // the rest of a streamed body
    bool chunked = false;
    Phase phase = Phase::Reading;
    Timer timer = Timer::None;
    SteadyClock::time_point deadline{};
    bool closeAfterWrite = false;
    bool peerEof = false;
    bool probe = false;  // accepted past maxConnections: one inline route only
    std::shared_ptr<Upgrade> upgrade;
    // While a deferred response is outstanding (phase Busy), the connection
    // is armed for hang-up only, and this is told when the client goes.
    std::weak_ptr<PendingResponse> deferred;
  };
  using ConnPtr = std::shared_ptr<Conn>;

  struct Job {
    ConnPtr conn;
    ParsedRequest request;
    bool closing;
  };

  // A worker's reply that the I/O thread must finish: the unsent rest, or a
  // close (broken: the peer went away while it was written).
  struct Handback {
    ConnPtr conn;
    EncodedReply reply;
    bool broken = false;
  };

  // I/O thread; the ones taking a Conn& expect its mutex held.
  void run();
  void loopOnce();
  void acceptAll();
  void onEvent(Conn& c);
  void readFrom(Conn& c);
  void parse(Conn& c);
  void dispatch(Conn& c, ParsedRequest request);
  void startWrite(Conn& c, EncodedReply reply);
  void flush(Conn& c);
  void afterWrite(Conn& c);
  void handOver(Conn& c);
  void closeGracefully(Conn& c);
  void closeNow(Conn& c);
  void collectHandbacks();
  void applyDrain();
  void sweep();
  void wake();
  template <typename F>
  void forEachConn(F f);

  EncodedReply refuseOverLimit(const std::string& method) const {
    return pipeline_.refuse(503, "ServiceUnavailable", "Too many open connections; retry later",
                            true, method, {{"Retry-After", "1"}});
  }

  // Any thread owning the connection.
  void arm(Conn& c, uint32_t events);
  static void setTimer(Conn& c, Timer timer, int64_t ms);

  // Workers.
  void work();
  void finish(const ConnPtr& conn, EncodedReply reply);

  HttpServerOptions options_;
  RequestPipeline pipeline_;
  int listenFd_;
  int epoll_ = -1;
  int wakeFd_ = -1;
  int spareFd_ = -1;  // given up to accept-and-close when out of descriptors

  std::thread io_;
  std::vector<std::thread> workers_;
  std::atomic<bool> running_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> abort_{false};
  std::atomic<bool> wakePending_{false};
  std::atomic<int64_t> open_{0};
  std::atomic<int64_t> busy_{0};
  std::atomic<int64_t> lingering_{0};  // answered, waiting for the client to close

  // I/O thread only.
  std::unordered_map<uint64_t, ConnPtr> conns_;
  int64_t probes_ = 0;  // connections in conns_ with probe set
  uint64_t nextKey_ = kFirstConnKey;
  bool drainApplied_ = false;
  bool abortApplied_ = false;
  std::vector<uint64_t> toParse_;  // connections whose buffered input is due
  SteadyClock::time_point nextSweep_{};

  // I/O thread -> workers.
  std::mutex jobsMutex_;
  std::condition_variable jobsCv_;
  std::deque<Job> jobs_;
  bool stopWorkers_ = false;

  // Workers -> I/O thread.
  std::mutex handbacksMutex_;
  std::vector<Handback> handbacks_;
};

}  // namespace weft::http
