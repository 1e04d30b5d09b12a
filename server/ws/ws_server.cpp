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

namespace weft::ws {

namespace {

constexpr uint64_t kWakeKey = 0;
constexpr size_t kReadChunk = 64 * 1024;
// Bytes read from one connection per wake-up, so one busy client cannot
// starve the others (epoll is level-triggered: the rest is read next round).
constexpr size_t kReadBudget = 256 * 1024;
constexpr const char* kTopics[] = {"work", "agents", "targets", "stats"};

bool isTopic(const std::string& t) {
  return std::find(std::begin(kTopics), std::end(kTopics), t) != std::end(kTopics);
}

// How a JSON value reads inside an error text, the way the original
// JavaScript server interpolated it (`${value}`): strings raw, a missing
// value "undefined".
std::string shown(const Json* v) {
  if (!v) return "undefined";
  if (v->isString()) return v->asString();
  return v->dump();
}

}  // namespace

struct WsServer::Conn {
  uint64_t key = 0;
  std::string id;  // UUID, for logs
  Poco::Net::StreamSocket socket;
  int fd = -1;
  std::string in;       // inbound bytes not parsed yet
  std::string message;  // a fragmented message being assembled
  bool inMessage = false;
  std::deque<Frame> out;
  size_t outOffset = 0;  // bytes of out.front() already written
  size_t outBytes = 0;
  bool writeInterest = false;
  bool awaitingPong = false;
  bool closing = false;       // our close frame is queued: nothing else is sent
  bool closeFlushed = false;  // ... and written (then SHUT_WR)
  bool peerClosed = false;    // the peer's close frame arrived
  bool discardInput = false;  // after a protocol violation: read and drop
  bool dead = false;          // terminated; erased by reap()
  Clock::time_point closeDeadline{};
  Clock::time_point nextStats{};     // while subscribed to stats
  std::map<std::string, Json> subs;  // topic -> filter (an object)
};

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

void WsServer::onFrame(Conn& c, int opcode, bool fin, std::string& payload) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::Close: {
      c.peerClosed = true;
      c.discardInput = true;  // nothing may follow a close frame
      if (c.closing) {
        // The answer to our close: the handshake is complete.
        if (c.closeFlushed) terminate(c, "closed");
        return;
      }
      // Echo the peer's status code (RFC 6455 §5.5.1) when it is one that may
      // be sent; a malformed close is answered with 1002.
      uint16_t code = kCloseNormal;
      if (payload.size() == 1) {
        code = kCloseProtocolError;
      } else if (payload.size() >= 2) {
        code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                     static_cast<uint8_t>(payload[1]));
        const bool sendable = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                              (code >= 3000 && code <= 4999);
        if (!sendable) code = kCloseProtocolError;
      }
      beginClose(c, code, "");
      return;
    }
    case Opcode::Ping:
      if (!c.closing)
        enqueue(c, std::make_shared<const std::string>(encodeFrame(Opcode::Pong, payload)));
      return;
    case Opcode::Pong:
      c.awaitingPong = false;
      return;
    case Opcode::Text:
    case Opcode::Binary:
      if (c.inMessage) {
        beginClose(c, kCloseProtocolError, "expected a continuation frame");
        c.discardInput = true;
        return;
      }
      if (fin) {
        if (!c.closing) onMessage(c, payload);
      } else {
        c.inMessage = true;
        c.message = std::move(payload);
      }
      return;
    case Opcode::Continuation:
      if (!c.inMessage) {
        beginClose(c, kCloseProtocolError, "unexpected continuation frame");
        c.discardInput = true;
        return;
      }
      c.message += payload;
      if (fin) {
        c.inMessage = false;
        std::string message = std::move(c.message);
        c.message.clear();
        if (!c.closing) onMessage(c, message);
      }
      return;
  }
}

void WsServer::onMessage(Conn& c, const std::string& text) {
  auto parsed = Json::parse(text);
  if (!parsed || !parsed->isObject()) {
    sendError(c, "Invalid message format");
    return;
  }
  const Json* type = parsed->find("type");
  const std::string typeName = type && type->isString() ? type->asString() : "";
  if (typeName == "subscribe") {
    onSubscribe(c, *parsed);
  } else if (typeName == "unsubscribe") {
    onUnsubscribe(c, *parsed);
  } else if (typeName == "ping") {
    std::string reply = "{\"type\":\"pong\",\"timestamp\":";
    appendJsonString(reply, now());
    reply += '}';
    sendText(c, std::move(reply));
  } else {
    sendError(c, "Unknown message type: " + shown(type));
  }
}

// The fields a subscription filter may have (§5.2 defines at most 6 per topic).
constexpr size_t kMaxFilterFields = 16;

void WsServer::onSubscribe(Conn& c, const Json& message) {
  const Json* topic = message.find("topic");
  if (!topic || !topic->isString() || !isTopic(topic->asString())) {
    sendError(c, "Invalid topic: " + shown(topic));
    return;
  }
  const Json* filter = message.find("filter");
  if (filter && !filter->isNull() && !filter->isObject()) {
    sendError(c, "Invalid filter");
    return;
  }
  // Every field of a filter is compared for every event sent to this client:
  // a bounded filter keeps one client from multiplying the I/O thread's work.
  // (Subscriptions themselves are bounded by construction: one per topic.)
  if (filter && filter->isObject() && filter->size() > kMaxFilterFields) {
    sendError(c, "Invalid filter: more than " + std::to_string(kMaxFilterFields) + " fields");
    return;
  }
  const std::string& name = topic->asString();
  const bool added = c.subs.find(name) == c.subs.end();
  c.subs[name] = filter && filter->isObject() ? *filter : Json::object();
  if (added) ++subscriptions_;
  std::string reply = "{\"type\":\"ack\",\"subscribed\":";
  appendJsonString(reply, name);
  reply += ",\"timestamp\":";
  appendJsonString(reply, now());
  reply += '}';
  sendText(c, std::move(reply));
  if (name == "stats") {
    // Right after the ack, then every statsIntervalMs from now (§5.3).
    sendStats(c, c.subs[name]);
    c.nextStats = Clock::now() + std::chrono::milliseconds(settings_.statsIntervalMs);
  }
}

void WsServer::onUnsubscribe(Conn& c, const Json& message) {
  const Json* topic = message.find("topic");
  auto it = topic && topic->isString() ? c.subs.find(topic->asString()) : c.subs.end();
  if (it == c.subs.end()) {
    sendError(c, "Not subscribed to topic: " + shown(topic));
    return;
  }
  c.subs.erase(it);
  --subscriptions_;
  std::string reply = "{\"type\":\"ack\",\"unsubscribed\":";
  appendJsonString(reply, topic->asString());
  reply += ",\"timestamp\":";
  appendJsonString(reply, now());
  reply += '}';
  sendText(c, std::move(reply));
}

void WsServer::sendText(Conn& c, std::string text) {
  enqueue(c, std::make_shared<const std::string>(encodeFrame(Opcode::Text, text)));
}

void WsServer::sendError(Conn& c, const std::string& error) {
  std::string text = "{\"type\":\"error\",\"error\":";
  appendJsonString(text, error);
  text += ",\"timestamp\":";
  appendJsonString(text, now());
  text += '}';
  sendText(c, std::move(text));
}

WsServer::Frame WsServer::statsFrame(const Json& filter) {
  // Only projectId filters stats (§5.5). A non-string value selects a
  // project that cannot exist: zero counts, echoed as given.
  const Json* project = filter.find("projectId");
  const bool scoped = project && !project->isNull();
  std::optional<std::string> scope;
  if (scoped) scope = project->isString() ? project->asString() : "\x01" + project->dump();
  Json data = stats_ ? stats_(scope) : Json::object();
  if (!data.isObject()) data = Json::object();
  Json websocket = Json::object();
  websocket.set("connections", Json(connections_.load()));
  websocket.set("subscriptions", Json(subscriptions_.load()));
  data.set("websocket", std::move(websocket));
  std::string text = "{\"type\":\"stats\",\"data\":";
  data.dumpTo(text);
  text += ",\"timestamp\":";
  appendJsonString(text, now());
  text += ",\"projectId\":";
  text += scoped ? project->dump() : "null";
  text += '}';
  return std::make_shared<const std::string>(encodeFrame(Opcode::Text, text));
}

void WsServer::sendStats(Conn& c, const Json& filter) {
  enqueue(c, statsFrame(filter));
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
