// The HTTP front end's loop: start and stop, the epoll loop, accepting (with
// the connection limit and its probe slots), draining, the timer sweep, and
// the public HttpServer. One connection's I/O is in http_connection.cpp.
#include "http/http_server_impl.h"

namespace weft::http {

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
      std::shared_ptr<PendingResponse> gone;
      {
        std::lock_guard<std::mutex> lock(c->mu);
        if (c->closed) continue;
        if (c->phase == Phase::Busy) {
          // Armed for hang-up while a deferred response is outstanding: the
          // client went away (or half-closed). Told outside the lock: the
          // route's reaction completes the response, which takes it.
          gone = c->deferred.lock();
          c->deferred.reset();
        } else {
          onEvent(*c);
        }
      }
      if (gone) gone->clientGone();
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
