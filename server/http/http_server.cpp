#include "http/http_server.h"

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

namespace weft::http {

namespace {

using SteadyClock = std::chrono::steady_clock;

// epoll keys below this are not connections.
constexpr uint64_t kListenKey = 1;
constexpr uint64_t kWakeKey = 2;
constexpr uint64_t kFirstConnKey = 16;

constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one connection per readiness event, so one fast sender
// cannot starve the others.
constexpr size_t kReadPerEvent = 256 * 1024;
constexpr int kAcceptPerEvent = 512;
// Past maxConnections, this many more connections are accepted as probes:
// each may ask for one inline route (/health) within kProbeDeadlineMs of
// connecting, and anything else is answered 503. A health checker therefore
// still gets its answer while the limit is hit; a flood of new connections
// is refused at once once the probe slots are taken too.
constexpr int64_t kProbeSlots = 64;
constexpr int64_t kProbeDeadlineMs = 2000;
// How long a closing connection is given to take our last response before
// the socket is closed (reading and dropping what it still sends), so the
// kernel does not reset the response away (see closeGracefully).
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr int kTickMs = 100;

const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

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

void HttpServer::Impl::start() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  spareFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (epoll_ < 0 || wakeFd_ < 0) {
    throw std::runtime_error(std::string("cannot set up the HTTP event loop: ") +
                             std::strerror(errno));
  }
  const int flags = ::fcntl(listenFd_, F_GETFL, 0);
  ::fcntl(listenFd_, F_SETFL, flags | O_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenKey;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, listenFd_, &ev) != 0) {
    throw std::runtime_error(std::string("cannot watch the listening socket: ") +
                             std::strerror(errno));
  }
  ev.data.u64 = kWakeKey;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wakeFd_, &ev);

  running_ = true;
  const int threads = std::max(1, options_.threads);
  workers_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  io_ = std::thread([this] { run(); });
}

bool HttpServer::Impl::stop(std::chrono::milliseconds grace) {
  if (io_.joinable()) {
    running_ = false;
    wake();
    io_.join();
  }
  auto abandonLateUpgrades = [this] {
    std::vector<Handback> late;
    {
      std::lock_guard<std::mutex> lock(handbacksMutex_);
      late.swap(handbacks_);
    }
    for (Handback& h : late) {
      if (h.reply.upgrade) h.reply.upgrade->abandon();
    }
  };
  abandonLateUpgrades();
  const auto deadline = SteadyClock::now() + grace;
  while (busy_.load() > 0 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    std::lock_guard<std::mutex> lock(jobsMutex_);
    stopWorkers_ = true;
    jobs_.clear();
  }
  jobsCv_.notify_all();
  const bool idle = busy_.load() == 0;
  abandonLateUpgrades();
  for (std::thread& t : workers_) {
    if (!t.joinable()) continue;
    if (idle) {
      t.join();
    } else {
      t.detach();
    }
  }
  workers_.clear();
  return idle;
}

void HttpServer::Impl::wake() {
  if (wakePending_.exchange(true)) return;
  const uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;
}

template <typename F>
void HttpServer::Impl::forEachConn(F f) {
  std::vector<ConnPtr> all;
  all.reserve(conns_.size());
  for (auto& [key, c] : conns_) all.push_back(c);
  for (ConnPtr& c : all) {
    std::lock_guard<std::mutex> lock(c->mu);
    if (!c->closed) f(*c);
  }
}

void HttpServer::Impl::run() {
  log::debug("http I/O thread started");
  while (running_) {
    try {
      loopOnce();
    } catch (const std::exception& e) {
      // A bug, not a client: log it and keep serving the other connections.
      log::error("http I/O loop failed", {{"error", e.what()}});
    }
  }
  // Whatever is still open closes with the loop.
  forEachConn([this](Conn& c) { closeNow(c); });
  log::debug("http I/O thread stopped");
}

void HttpServer::Impl::loopOnce() {
  epoll_event events[256];
  const int n = ::epoll_wait(epoll_, events, 256, kTickMs);
  if (n < 0 && errno != EINTR) {
    throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t key = events[i].data.u64;
    if (key == kListenKey) {
      acceptAll();
    } else if (key == kWakeKey) {
      uint64_t value;
      ssize_t ignored = ::read(wakeFd_, &value, sizeof value);
      (void)ignored;
      wakePending_ = false;
    } else {
      auto it = conns_.find(key);
      if (it == conns_.end()) continue;
      ConnPtr c = it->second;  // keeps it alive if it is closed meanwhile
      std::lock_guard<std::mutex> lock(c->mu);
      if (!c->closed) onEvent(*c);
    }
  }
  collectHandbacks();
  while (!toParse_.empty()) {
    std::vector<uint64_t> keys;
    keys.swap(toParse_);
    for (uint64_t key : keys) {
      auto it = conns_.find(key);
      if (it == conns_.end()) continue;
      ConnPtr c = it->second;
      std::lock_guard<std::mutex> lock(c->mu);
      if (!c->closed && c->phase == Phase::Reading) parse(*c);
    }
  }
  if (draining_ && !drainApplied_) applyDrain();
  if (abort_ && !abortApplied_) {
    abortApplied_ = true;
    forEachConn([this](Conn& c) { closeNow(c); });
  }
  if (SteadyClock::now() >= nextSweep_) {
    sweep();
    nextSweep_ = SteadyClock::now() + std::chrono::milliseconds(kTickMs);
  }
}

void HttpServer::Impl::acceptAll() {
  for (int i = 0; i < kAcceptPerEvent; ++i) {
    const int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      if ((errno == EMFILE || errno == ENFILE) && spareFd_ >= 0) {
        // Out of descriptors: the listener stays readable, so refuse the
        // waiting client instead of spinning on it.
        ::close(spareFd_);
        const int victim = ::accept(listenFd_, nullptr, nullptr);
        if (victim >= 0) ::close(victim);
        spareFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        log::warn("out of file descriptors: refusing an HTTP connection",
                  {{"connections", open_.load()}});
        return;
      }
      if (errno == ECONNABORTED) continue;
      log::warn("accept failed", {{"error", std::string(std::strerror(errno))}});
      return;
    }
    const bool overLimit =
        static_cast<int64_t>(conns_.size()) - probes_ >= options_.maxConnections;
    if (overLimit && probes_ >= kProbeSlots) {
      // Over the limit: answer at once and close, never hang.
      const EncodedReply reply = refuseOverLimit("-");
      ssize_t ignored = ::send(fd, reply.bytes.data(), reply.bytes.size(), MSG_NOSIGNAL);
      (void)ignored;
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ParserLimits limits;
    limits.maxHeaderBytes = options_.maxHeaderBytes;
    limits.maxBodyBytes = options_.settings.maxBodyBytes;
    auto c = std::make_shared<Conn>(limits);
    c->key = nextKey_++;
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = c->key;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log::warn("cannot watch an HTTP connection", {{"error", std::string(std::strerror(errno))}});
      ::close(fd);
      continue;
    }
    if (overLimit) {
      c->probe = true;
      ++probes_;
      setTimer(*c, Timer::Header, std::min(kProbeDeadlineMs, options_.headerTimeoutMs));
    } else {
      setTimer(*c, Timer::Idle, options_.idleTimeoutMs);
    }
    ++open_;
    conns_.emplace(c->key, std::move(c));
  }
}

void HttpServer::Impl::arm(Conn& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events | EPOLLONESHOT;
  ev.data.u64 = c.key;
  ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
}

void HttpServer::Impl::setTimer(Conn& c, Timer timer, int64_t ms) {
  c.timer = timer;
  c.deadline = SteadyClock::now() + std::chrono::milliseconds(ms);
}

void HttpServer::Impl::onEvent(Conn& c) {
  switch (c.phase) {
    case Phase::Writing:
      flush(c);
      return;
    case Phase::Lingering: {
      char buf[kReadChunk];
      while (true) {
        const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
        if (got > 0) continue;
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          arm(c, EPOLLIN);
          return;
        }
        closeNow(c);  // EOF or error: the client has everything it will read
        return;
      }
    }
    case Phase::Reading:
      readFrom(c);
      return;
    case Phase::Busy:
      return;  // not armed while a worker has it
  }
}

void HttpServer::Impl::readFrom(Conn& c) {
  char buf[kReadChunk];
  size_t total = 0;
  while (total < kReadPerEvent) {
    const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
    if (got > 0) {
      c.in.append(buf, static_cast<size_t>(got));
      total += static_cast<size_t>(got);
      continue;
    }
    if (got == 0) {
      c.peerEof = true;
      break;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    closeNow(c);  // reset by the peer
    return;
  }
  parse(c);
}

void HttpServer::Impl::parse(Conn& c) {
  while (c.phase == Phase::Reading && !c.closed) {
    size_t used = 0;
    const RequestParser::Event event =
        c.parser.advance(std::string_view(c.in).substr(c.inPos), used);
    // Parsed bytes are dropped in one go, not per request, so many small
    // pipelined requests in one read cost linear time.
    c.inPos += used;
    if (c.inPos == c.in.size()) {
      c.in.clear();
      c.inPos = 0;
    } else if (c.inPos >= kReadChunk) {
      c.in.erase(0, c.inPos);
      c.inPos = 0;
    }
    switch (event) {
      case RequestParser::Event::NeedMore: {
        if (c.peerEof) {
          closeNow(c);
          return;
        }
        if (c.probe) {
          // The deadline set at accept stands, whatever arrives.
        } else if (c.parser.inBody()) {
          if (c.timer != Timer::Body) setTimer(c, Timer::Body, options_.bodyTimeoutMs);
        } else if (c.parser.headerStarted()) {
          if (c.timer != Timer::Header) setTimer(c, Timer::Header, options_.headerTimeoutMs);
        } else if (c.timer != Timer::Idle) {
          if (draining_) {
            closeNow(c);
            return;
          }
          setTimer(c, Timer::Idle, options_.idleTimeoutMs);
        }
        arm(c, EPOLLIN);
        return;
      }
      case RequestParser::Event::ContinueWanted: {
        const ssize_t sent = ::send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL);
        if (sent != static_cast<ssize_t>(sizeof kContinue - 1)) {
          closeNow(c);  // 25 bytes that do not fit: the client is gone
          return;
        }
        continue;
      }
      case RequestParser::Event::Error: {
        const ParseError& error = c.parser.error();
        if (error.status == 0) {
          closeNow(c);
          return;
        }
        startWrite(c, pipeline_.refuse(error.status, error.kind, error.message,
                                       error.close || draining_));
        break;
      }
      case RequestParser::Event::Request:
        dispatch(c, c.parser.take());
        break;
    }
  }
}

void HttpServer::Impl::dispatch(Conn& c, ParsedRequest request) {
  if (c.probe) {
    if (pipeline_.runsInline(request)) {
      startWrite(c, pipeline_.handle(std::move(request), true));
    } else {
      startWrite(c, refuseOverLimit(request.method));
    }
    return;
  }
  if (pipeline_.runsInline(request)) {
    startWrite(c, pipeline_.handle(std::move(request), draining_));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(jobsMutex_);
    if (jobs_.size() < static_cast<size_t>(std::max(1, options_.maxQueued))) {
      c.phase = Phase::Busy;
      c.timer = Timer::None;
      jobs_.push_back(Job{conns_.at(c.key), std::move(request), draining_.load()});
      jobsCv_.notify_one();
      return;
    }
  }
  startWrite(c, pipeline_.refuse(503, "ServiceUnavailable",
                                 "Too many requests waiting for a worker; retry later",
                                 draining_, request.method, {{"Retry-After", "1"}}));
}

void HttpServer::Impl::work() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(jobsMutex_);
      jobsCv_.wait(lock, [this] { return stopWorkers_ || !jobs_.empty(); });
      if (stopWorkers_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++busy_;
    }
    // busy_ counts requests being handled, including responses a handler
    // completes later (ApiResponse::later): stop() waits for those too.
    std::optional<EncodedReply> reply =
        pipeline_.handleOrDefer(std::move(job.request), job.closing, [&] {
          return RequestPipeline::ReplySink([this, conn = job.conn](EncodedReply later) {
            finish(conn, std::move(later));
            --busy_;
          });
        });
    if (reply) {
      finish(job.conn, std::move(*reply));
      --busy_;
    }
  }
}

void HttpServer::Impl::finish(const ConnPtr& conn, EncodedReply reply) {
  Handback handback;
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    Conn& c = *conn;
    if (c.closed) {
      // Closed under the handler (aborted shutdown): nobody to answer.
      if (reply.upgrade) reply.upgrade->abandon();
      return;
    }
    const bool simple = !reply.close && !reply.upgrade && !reply.stream && !draining_ &&
                        !c.hasInput() && !c.peerEof && !c.parser.discarding();
    if (simple) {
      // The common case, done here: write, and arm the connection for the
      // next request.
      size_t sent = 0;
      bool broken = false;
      while (sent < reply.bytes.size()) {
        const ssize_t n = ::send(c.fd, reply.bytes.data() + sent, reply.bytes.size() - sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          broken = !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
          break;
        }
      }
      if (sent == reply.bytes.size()) {
        c.phase = Phase::Reading;
        setTimer(c, Timer::Idle, options_.idleTimeoutMs);
        arm(c, EPOLLIN);
        return;
      }
      reply.bytes.erase(0, sent);
      handback.broken = broken;
    }
    handback.conn = conn;
    handback.reply = std::move(reply);
  }
  {
    std::lock_guard<std::mutex> lock(handbacksMutex_);
    handbacks_.push_back(std::move(handback));
  }
  wake();
}

void HttpServer::Impl::collectHandbacks() {
  std::vector<Handback> ready;
  {
    std::lock_guard<std::mutex> lock(handbacksMutex_);
    ready.swap(handbacks_);
  }
  for (Handback& h : ready) {
    std::lock_guard<std::mutex> lock(h.conn->mu);
    if (h.conn->closed) {
      if (h.reply.upgrade) h.reply.upgrade->abandon();
      continue;
    }
    if (h.broken) {
      closeNow(*h.conn);
      continue;
    }
    startWrite(*h.conn, std::move(h.reply));
  }
}

void HttpServer::Impl::startWrite(Conn& c, EncodedReply reply) {
  c.out = std::move(reply.bytes);
  c.outPos = 0;
  c.closeAfterWrite = reply.close || draining_;
  c.upgrade = std::move(reply.upgrade);
  c.stream = std::move(reply.stream);
  c.chunked = reply.chunked;
  c.phase = Phase::Writing;
  setTimer(c, Timer::Write, options_.bodyTimeoutMs);
  flush(c);
}

void HttpServer::Impl::flush(Conn& c) {
  while (true) {
    while (c.outPos < c.out.size()) {
      const ssize_t sent =
          ::send(c.fd, c.out.data() + c.outPos, c.out.size() - c.outPos, MSG_NOSIGNAL);
      if (sent > 0) {
        c.outPos += static_cast<size_t>(sent);
        // The write deadline bounds a stall, not a long body read steadily.
        if (c.stream) setTimer(c, Timer::Write, options_.bodyTimeoutMs);
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        arm(c, EPOLLOUT);
        return;
      }
      closeNow(c);  // the peer went away
      return;
    }
    if (!c.stream) break;
    // The socket took everything: render the next piece of a streamed body.
    std::string piece;
    bool done = false;
    try {
      done = c.stream(piece);
    } catch (const std::exception& e) {
      log::error("rendering a streamed response failed", {{"error", e.what()}});
      closeNow(c);  // the client sees a truncated body, not a wrong one
      return;
    }
    c.out.clear();
    c.outPos = 0;
    if (!c.chunked) {
      c.out = std::move(piece);
    } else {
      if (!piece.empty()) {
        char size[24];
        std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
        c.out.reserve(piece.size() + 32);
        c.out += size;
        c.out += piece;
        c.out += "\r\n";
      }
      if (done) c.out += "0\r\n\r\n";
    }
    if (done) c.stream = nullptr;
  }
  afterWrite(c);
}

void HttpServer::Impl::afterWrite(Conn& c) {
  c.out.clear();
  c.out.shrink_to_fit();  // an idle connection keeps no response buffer
  c.outPos = 0;
  if (c.upgrade) {
    handOver(c);
    return;
  }
  if (c.closeAfterWrite) {
    closeGracefully(c);
    return;
  }
  c.phase = Phase::Reading;
  setTimer(c, Timer::Idle, options_.idleTimeoutMs);
  if (c.hasInput() || c.parser.discarding() || c.peerEof) {
    // Parsed by the loop, not here: parse() may be what called us, and
    // pipelined requests must not recurse.
    toParse_.push_back(c.key);
  } else if (draining_) {
    closeNow(c);
  } else {
    arm(c, EPOLLIN);
  }
}

void HttpServer::Impl::handOver(Conn& c) {
  std::shared_ptr<Upgrade> upgrade = std::move(c.upgrade);
  const int fd = c.fd;
  std::string buffered = c.in.substr(c.inPos);
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  c.closed = true;  // for this loop; the descriptor lives on in the socket
  conns_.erase(c.key);
  --open_;
  try {
    // The SocketImpl takes ownership of the descriptor.
    upgrade->adopt(Poco::Net::StreamSocket(new Poco::Net::StreamSocketImpl(fd)),
                   std::move(buffered));
  } catch (const std::exception& e) {
    log::warn("connection hand-over failed", {{"error", e.what()}});
  }
}

void HttpServer::Impl::closeGracefully(Conn& c) {
  // Closing a socket that still has unread input makes the kernel send a
  // reset, which can destroy the response before the client read it. So:
  // send FIN, read and drop what the client still sends until it closes or
  // kLingerTime passes, then close.
  ::shutdown(c.fd, SHUT_WR);
  c.phase = Phase::Lingering;
  ++lingering_;
  c.upgrade.reset();
  c.in.clear();
  c.inPos = 0;
  c.timer = Timer::Linger;
  c.deadline = SteadyClock::now() + kLingerTime;
  arm(c, EPOLLIN);
}

void HttpServer::Impl::closeNow(Conn& c) {
  if (c.closed) return;
  if (c.upgrade) c.upgrade->abandon();
  c.upgrade.reset();
  c.stream = nullptr;
  if (c.phase == Phase::Lingering) --lingering_;
  if (c.probe) --probes_;
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.closed = true;
  --open_;
  conns_.erase(c.key);  // the caller's reference keeps c alive
}

void HttpServer::Impl::applyDrain() {
  drainApplied_ = true;
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listenFd_, nullptr);
  ::close(listenFd_);
  listenFd_ = -1;
  // Idle keep-alive connections close now; the others when their response
  // is written (Connection: close).
  forEachConn([this](Conn& c) {
    if (c.phase == Phase::Reading && !c.parser.headerStarted() && !c.parser.inBody() &&
        !c.hasInput()) {
      closeNow(c);
    }
  });
}

void HttpServer::Impl::sweep() {
  const auto now = SteadyClock::now();
  forEachConn([&](Conn& c) {
    if (c.timer == Timer::None || c.phase == Phase::Busy || now < c.deadline) return;
    if (c.probe && c.timer == Timer::Header) {
      startWrite(c, refuseOverLimit("-"));
      return;
    }
    switch (c.timer) {
      case Timer::Header:
      case Timer::Body: {
        const bool header = c.timer == Timer::Header;
        const int64_t ms = header ? options_.headerTimeoutMs : options_.bodyTimeoutMs;
        startWrite(c, pipeline_.refuse(408, "RequestTimeout",
                                       std::string("Request ") + (header ? "headers" : "body") +
                                           " not complete within " + std::to_string(ms) + " ms",
                                       true));
        break;
      }
      case Timer::Write:
        log::info("closing an HTTP connection that does not read its response");
        closeNow(c);
        break;
      case Timer::Idle:
      case Timer::Linger:
      case Timer::None:
        closeNow(c);
        break;
    }
  });
}

// ---------------------------------------------------------------------------

uint64_t raiseOpenFileLimit(uint64_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  const uint64_t before = limit.rlim_cur;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    const uint64_t target =
        limit.rlim_max == RLIM_INFINITY ? wanted : std::min<uint64_t>(wanted, limit.rlim_max);
    limit.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
      log::info("raised the open-file limit", {{"from", before}, {"to", target}});
    }
  }
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    log::warn("the open-file limit is below what the connection limits need; connections "
              "beyond it are refused (raise the hard limit: ulimit -Hn, LimitNOFILE=)",
              {{"limit", static_cast<uint64_t>(limit.rlim_cur)}, {"wanted", wanted}});
  }
  return limit.rlim_cur;
}

HttpServer::HttpServer(const Router& router, HttpServerOptions options, RequestObserver observer)
    : router_(router), options_(std::move(options)), observer_(std::move(observer)) {}

HttpServer::~HttpServer() {
  if (impl_ && !stopped_) {
    impl_->abortAll();
    if (!impl_->stop(std::chrono::seconds(5))) handlersStuck_ = true;
  }
  // A handler still running uses the pipeline inside impl_: leak it on purpose.
  if (handlersStuck_) (void)impl_.release();
  if (listenFd_ >= 0) ::close(listenFd_);
}

void HttpServer::listen() {
  if (listenFd_ >= 0 || started_) return;
  Poco::Net::ServerSocket socket;
  // SO_REUSEADDR (restart while old connections sit in TIME_WAIT) but never
  // SO_REUSEPORT: Poco's two-argument bind() sets both, which would let a
  // second weftd silently share the port instead of failing to start.
  socket.bind(Poco::Net::SocketAddress(options_.host, options_.port), /*reuseAddress=*/true,
              /*reusePort=*/false);
  socket.listen(1024);
  boundPort_ = socket.address().port();
  // Keep the descriptor beyond the Poco object's life.
  listenFd_ = ::dup(socket.impl()->sockfd());
  if (listenFd_ < 0) throw std::runtime_error("dup of the listening socket failed");
  ::fcntl(listenFd_, F_SETFD, FD_CLOEXEC);
}

void HttpServer::start() {
  if (started_) return;
  listen();
  impl_ = std::make_unique<Impl>(listenFd_, router_, options_, observer_);
  listenFd_ = -1;  // owned by impl_ from here on
  impl_->start();
  started_ = true;
}

int HttpServer::currentConnections() const {
  if (!impl_) return 0;
  return static_cast<int>(std::max(impl_->openConnections(), impl_->busyWorkers()));
}

bool HttpServer::shutdown(std::chrono::milliseconds drain) {
  if (!impl_ || stopped_) return true;
  stopped_ = true;
  const auto deadline = SteadyClock::now() + drain;
  impl_->beginDrain();
  bool drained = false;
  while (true) {
    // A connection that got its last response and waits for the client to
    // close counts as finished.
    if (impl_->openConnections() - impl_->lingering() == 0 && impl_->busyWorkers() == 0) {
      drained = true;
      break;
    }
    if (SteadyClock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!drained) {
    log::warn("drain deadline passed, closing the remaining connections",
              {{"connections", impl_->openConnections()}});
    impl_->abortAll();
  }
  // After an abort a handler blocked on the backend still returns within
  // kv.timeoutMs; give it a few seconds more.
  if (!impl_->stop(std::chrono::seconds(5))) {
    // A handler is still running: destroying the server now would pull the
    // pipeline from under it. Leak it on purpose; the process is about to exit.
    log::error("HTTP handlers did not finish after abort; leaving them to process exit",
               {{"handlers", impl_->busyWorkers()}});
    handlersStuck_ = true;
  }
  return drained;
}

}  // namespace weft::http
