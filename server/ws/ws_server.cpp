// The WebSocket server's event loop: adopting upgraded sockets, publishing
// events, reading and writing frames under backpressure, pings and close
// timers. The client protocol (subscribe, unsubscribe, stats) is in
// ws_protocol.cpp.
#include "ws/ws_server.h"

#include <Poco/Exception.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "weft/ids.h"
#include "weft/log.h"
#include "ws/ws_filter.h"
#include "ws/ws_frame.h"
#include "ws/ws_connection.h"

namespace weft::ws {

namespace {

constexpr uint64_t kWakeKey = 0;
constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one connection per wake-up, so one busy client cannot
// starve the others (epoll is level-triggered: the rest is read next round).
constexpr size_t kReadBudget = 256 * 1024;

}  // namespace

WsServer::WsServer(WsSettings settings, const weft::Clock* clock, StatsProvider stats,
                   std::atomic<int64_t>* gauge)
    : settings_(settings), clock_(clock), stats_(std::move(stats)), gauge_(gauge) {}

WsServer::~WsServer() {
  stop();
  if (epoll_ >= 0) ::close(epoll_);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void WsServer::start() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + strerror(errno));
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) {
    throw std::runtime_error(std::string("epoll_ctl: ") + strerror(errno));
  }
  const auto now = Clock::now();
  nextPing_ = now + std::chrono::milliseconds(settings_.pingIntervalMs);
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void WsServer::wake() {
  if (wakePending_.exchange(true)) return;  // a wake-up is already on its way
  const uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;
}

bool WsServer::admit() {
  if (admitted_.fetch_add(1) >= settings_.maxConnections) {
    --admitted_;
    return false;
  }
  return true;
}

void WsServer::adopt(Poco::Net::StreamSocket socket, std::string buffered) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (running_) {
      pendingSockets_.emplace_back(std::move(socket), std::move(buffered));
      wake();
      return;
    }
  }
  // The I/O thread is gone (stopped): say goodbye on this thread.
  --admitted_;
  try {
    const std::string frame = encodeClose(kCloseGoingAway, "Server shutting down");
    socket.sendBytes(frame.data(), static_cast<int>(frame.size()));
    socket.shutdownSend();
    socket.close();
  } catch (...) {
    // The peer went away; nothing else to do.
  }
}

void WsServer::publish(const Event& event) {
  if (connections_.load() == 0) return;  // nobody listens: skip the copy
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!running_) return;
    if (pendingEvents_.size() >= settings_.maxPendingEvents) {
      if (droppedEvents_++ % 1000 == 0) {
        log::warn("websocket event queue full, dropping events",
                  {{"dropped", Json(droppedEvents_)}, {"event", event.name}});
      }
      return;
    }
    pendingEvents_.push_back(std::make_shared<const Event>(event));
  }
  wake();
}

void WsServer::beginShutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shuttingDown_) return;
    shutdownDeadline_ = Clock::now() + std::chrono::milliseconds(settings_.closeTimeoutMs);
    shuttingDown_ = true;
  }
  if (running_) wake();
}

void WsServer::stop() {
  std::lock_guard<std::mutex> stopLock(stopMutex_);
  if (!thread_.joinable()) return;
  beginShutdown();
  stopRequested_ = true;
  wake();
  thread_.join();
}

std::string WsServer::now() const {
  return formatIso(clock_->nowMs());
}

// ---------------------------------------------------------------------------
// The I/O thread.

void WsServer::run() {
  log::debug("websocket I/O thread started");
  for (;;) {
    try {
      loopOnce();
    } catch (const Poco::Exception& e) {
      log::error("websocket I/O loop failed", {{"error", e.displayText()}});
    } catch (const std::exception& e) {
      log::error("websocket I/O loop failed", {{"error", e.what()}});
    } catch (...) {
      log::error("websocket I/O loop failed", {{"error", "unknown exception"}});
    }
    if (!stopRequested_) continue;
    Clock::time_point deadline;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      deadline = shutdownDeadline_;
    }
    if (conns_.empty() || Clock::now() >= deadline) break;
  }
  if (!conns_.empty()) {
    log::warn("terminating websocket connections that did not close in time",
              {{"connections", Json(static_cast<int64_t>(conns_.size()))}});
  }
  for (auto& [key, c] : conns_) {
    if (!c->dead) terminate(*c, "shutdown deadline");
  }
  reap();
  std::vector<std::pair<Poco::Net::StreamSocket, std::string>> late;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
    late.swap(pendingSockets_);
    pendingEvents_.clear();
  }
  for (auto& [socket, ignored] : late) {
    try {
      socket.close();
    } catch (...) {
    }
  }
  log::debug("websocket I/O thread stopped");
}

void WsServer::loopOnce() {
  // Sleep until the next timer (capped, so a missed wake-up costs at most 1 s).
  auto now = Clock::now();
  auto next = nextPing_;
  for (const auto& [key, c] : conns_) {
    if (c->closing) {
      next = std::min(next, c->closeDeadline);
    } else if (c->subs.count("stats")) {
      next = std::min(next, c->nextStats);
    }
  }
  if (stopRequested_) next = std::min(next, now + std::chrono::milliseconds(50));
  int64_t waitMs = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1;
  waitMs = std::clamp<int64_t>(waitMs, 0, 1000);

  epoll_event events[64];
  const int n = ::epoll_wait(epoll_, events, 64, static_cast<int>(waitMs));
  if (n < 0 && errno != EINTR) {
    throw std::runtime_error(std::string("epoll_wait: ") + strerror(errno));
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t key = events[i].data.u64;
    if (key == kWakeKey) {
      uint64_t count;
      while (::read(wakeFd_, &count, sizeof count) > 0) {
      }
      wakePending_ = false;
      continue;
    }
    auto it = conns_.find(key);
    if (it == conns_.end() || it->second->dead) continue;
    Conn& c = *it->second;
    if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) onReadable(c);
    if (!c.dead && (events[i].events & EPOLLOUT)) flush(c);
  }
  registerPending();
  if (shuttingDown_ && !shutdownApplied_) {
    shutdownApplied_ = true;
    for (auto& [key, c] : conns_) {
      if (!c->dead) beginClose(*c, kCloseGoingAway, "Server shutting down");
    }
  }
  dispatchEvents();
  timers();
  reap();
}

void WsServer::registerPending() {
  std::vector<std::pair<Poco::Net::StreamSocket, std::string>> sockets;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    sockets.swap(pendingSockets_);
  }
  for (auto& [socket, buffered] : sockets) {
    auto c = std::make_unique<Conn>();
    c->key = nextKey_++;
    c->id = newUuid();
    c->socket = socket;
    c->fd = socket.impl()->sockfd();
    try {
      // Frames are small and latency matters more than packet count.
      c->socket.setNoDelay(true);
    } catch (...) {
    }
    const int flags = ::fcntl(c->fd, F_GETFL, 0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c->key;
    if (flags < 0 || ::fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
      log::warn("cannot register websocket connection", {{"error", strerror(errno)}});
      try {
        c->socket.close();
      } catch (...) {
      }
      --admitted_;
      continue;
    }
    ++connections_;
    if (gauge_) ++*gauge_;
    log::info("websocket connected",
              {{"connection", c->id}, {"connections", Json(connections_.load())}});
    Conn& ref = *c;
    conns_.emplace(c->key, std::move(c));
    if (shuttingDown_) {
      beginClose(ref, kCloseGoingAway, "Server shutting down");
      continue;
    }
    if (!buffered.empty()) {
      ref.in = std::move(buffered);
      processInput(ref);
    }
  }
}

void WsServer::dispatchEvents() {
  std::deque<std::shared_ptr<const Event>> events;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events.swap(pendingEvents_);
  }
  for (const auto& e : events) {
    Frame frame;  // encoded once, on first match
    for (auto& [key, c] : conns_) {
      if (c->dead || c->closing) continue;
      auto sub = c->subs.find(e->topic);
      if (sub == c->subs.end() || !matchesFilter(e->topic, sub->second, *e)) continue;
      if (!frame) {
        std::string text = "{\"type\":\"event\",\"topic\":";
        appendJsonString(text, e->topic);
        text += ",\"event\":";
        appendJsonString(text, e->name);
        text += ",\"data\":";
        e->data.dumpTo(text);
        text += ",\"timestamp\":";
        e->data.get("timestamp").dumpTo(text);
        text += ",\"projectId\":";
        e->data.get("projectId").dumpTo(text);
        text += '}';
        frame = std::make_shared<const std::string>(encodeFrame(Opcode::Text, text));
      }
      enqueue(*c, frame);
    }
  }
}

void WsServer::onReadable(Conn& c) {
  char buf[kReadChunk];
  size_t budget = kReadBudget;
  while (budget > 0 && !c.dead) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (!c.discardInput) c.in.append(buf, static_cast<size_t>(n));
      budget -= std::min(budget, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < sizeof buf) break;
      continue;
    }
    if (n == 0) {
      terminate(c, c.closing ? "closed" : "peer closed the connection");
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    terminate(c, std::string("read failed: ") + strerror(errno));
    return;
  }
  processInput(c);
}

void WsServer::processInput(Conn& c) {
  size_t pos = 0;
  while (!c.dead && !c.discardInput && pos < c.in.size()) {
    ws::Frame frame;
    size_t used = 0;
    std::string error;
    const ParseStatus status =
        parseClientFrame(c.in.data() + pos, c.in.size() - pos, c.inMessage ? c.message.size() : 0,
                         settings_.maxMessageBytes, frame, used, error);
    if (status == ParseStatus::Incomplete) break;
    if (status == ParseStatus::TooBig) {
      log::info("websocket message too big", {{"connection", c.id}});
      beginClose(c, kCloseTooBig, "Message too big");
      c.discardInput = true;
      break;
    }
    if (status == ParseStatus::ProtocolError) {
      log::info("websocket protocol error", {{"connection", c.id}, {"error", error}});
      beginClose(c, kCloseProtocolError, error);
      c.discardInput = true;
      break;
    }
    pos += used;
    onFrame(c, static_cast<int>(frame.opcode), frame.fin, frame.payload);
  }
  if (c.discardInput) {
    c.in.clear();
  } else {
    c.in.erase(0, pos);
  }
}


void WsServer::enqueue(Conn& c, Frame frame, bool force) {
  if (c.dead || (c.closing && !force)) return;
  if (!force && (c.out.size() >= settings_.maxQueuedMessages ||
                 c.outBytes + frame->size() > settings_.maxQueuedBytes)) {
    // Too far behind: drop what it has not started to receive and close.
    ++slowDropped_;
    log::warn("websocket client too slow, disconnecting",
              {{"connection", c.id},
               {"queuedMessages", Json(static_cast<int64_t>(c.out.size()))},
               {"queuedBytes", Json(static_cast<int64_t>(c.outBytes))}});
    const size_t keep = c.outOffset > 0 ? 1 : 0;  // a frame half-written must be completed
    while (c.out.size() > keep) {
      c.outBytes -= c.out.back()->size();
      c.out.pop_back();
    }
    beginClose(c, kClosePolicyViolation, "client too slow");
    return;
  }
  c.outBytes += frame->size();
  c.out.push_back(std::move(frame));
  flush(c);
}

void WsServer::flush(Conn& c) {
  while (!c.dead && !c.out.empty()) {
    const std::string& f = *c.out.front();
    const ssize_t n =
        ::send(c.fd, f.data() + c.outOffset, f.size() - c.outOffset, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        setWriteInterest(c, true);
        return;
      }
      terminate(c, std::string("write failed: ") + strerror(errno));
      return;
    }
    c.outOffset += static_cast<size_t>(n);
    if (c.outOffset == f.size()) {
      c.outBytes -= f.size();
      c.out.pop_front();
      c.outOffset = 0;
    }
  }
  if (c.dead) return;
  setWriteInterest(c, false);
  if (c.closing && !c.closeFlushed) {
    // Our close frame was the last one queued, and it is out.
    c.closeFlushed = true;
    ::shutdown(c.fd, SHUT_WR);
    if (c.peerClosed) terminate(c, "closed");
  }
}

void WsServer::setWriteInterest(Conn& c, bool on) {
  if (c.writeInterest == on) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
  ev.data.u64 = c.key;
  if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev) == 0) c.writeInterest = on;
}

void WsServer::beginClose(Conn& c, uint16_t code, const std::string& reason) {
  if (c.dead || c.closing) return;
  log::info("websocket closing",
            {{"connection", c.id}, {"code", Json(static_cast<int64_t>(code))}, {"reason", reason}});
  // From here on nothing but this close frame is queued; flush() shuts the
  // sending side down once it is written.
  c.closing = true;
  c.closeDeadline = Clock::now() + std::chrono::milliseconds(settings_.closeTimeoutMs);
  enqueue(c, std::make_shared<const std::string>(encodeClose(code, reason)), true);
}

void WsServer::terminate(Conn& c, const std::string& why) {
  if (c.dead) return;
  c.dead = true;
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  try {
    c.socket.close();
  } catch (...) {
  }
  subscriptions_ -= static_cast<int64_t>(c.subs.size());
  c.subs.clear();
  c.out.clear();
  --connections_;
  --admitted_;
  if (gauge_) --*gauge_;
  log::info("websocket disconnected",
            {{"connection", c.id}, {"reason", why}, {"connections", Json(connections_.load())}});
}

void WsServer::timers() {
  const auto now = Clock::now();
  if (now >= nextPing_) {
    nextPing_ = now + std::chrono::milliseconds(settings_.pingIntervalMs);
    static const Frame kPing = std::make_shared<const std::string>(encodeFrame(Opcode::Ping, ""));
    for (auto& [key, c] : conns_) {
      if (c->dead || c->closing) continue;
      if (c->awaitingPong) {
        terminate(*c, "no pong to the previous ping");
        continue;
      }
      c->awaitingPong = true;
      enqueue(*c, kPing);
    }
  }
  // Stats are due per subscription; connections due in the same round share
  // one computation per distinct scope.
  std::map<std::string, Frame> byScope;
  for (auto& [key, c] : conns_) {
    if (c->dead || c->closing) continue;
    auto sub = c->subs.find("stats");
    if (sub == c->subs.end() || now < c->nextStats) continue;
    c->nextStats = now + std::chrono::milliseconds(settings_.statsIntervalMs);
    const Json* project = sub->second.find("projectId");
    const std::string scopeKey = project ? project->dump() : "null";
    auto it = byScope.find(scopeKey);
    if (it == byScope.end()) it = byScope.emplace(scopeKey, statsFrame(sub->second)).first;
    enqueue(*c, it->second);
  }
  for (auto& [key, c] : conns_) {
    if (!c->dead && c->closing && now >= c->closeDeadline) {
      terminate(*c, "close handshake timed out");
    }
  }
}

void WsServer::reap() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second->dead) {
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace weft::ws
