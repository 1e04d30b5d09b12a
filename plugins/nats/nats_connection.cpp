#include "nats_connection.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "nats_common.h"

namespace weft::nats_plugin {
namespace {

// Core publish target used to occupy nats.c's reconnect buffer during an
// outage (see the header). It lands on the server after the reconnect, where
// nothing listens to it; _INBOX subjects are not captured by streams in
// normal setups.
constexpr const char* kFillerSubject = "_INBOX.weft.reconnect-buffer-filler";

// How often the client pings the server, and how many unanswered pings mark
// the connection stale. The nats.c default (2 min x 2) would leave a stalled
// server looking "connected" for minutes; this notices it in 10-15 s, after
// which calls fail fast instead of each waiting out kv.timeoutMs.
constexpr int64_t kPingIntervalMs = 5000;
constexpr int kMaxPingsOut = 2;
constexpr int64_t kMaxPendingAsync = 1 << 20;

const char* stateName(ConnectionState s) {
  switch (s) {
    case ConnectionState::Connecting:
      return "connecting";
    case ConnectionState::Connected:
      return "connected";
    case ConnectionState::Disconnected:
      return "disconnected";
    case ConnectionState::Closed:
      return "closed";
  }
  return "unknown";
}

}  // namespace

// The closure handed to every nats.c callback. nats.c may invoke the
// callbacks on its own threads until the closed callback has run, so this
// object is freed only after that (or leaked if that never happens).
// nats.c hands the acknowledgement of an asynchronous publish to one
// handler per JetStream context, with the message that was published; the
// message's address finds the caller's continuation. An entry is erased
// before its continuation runs, so a second call for the same message (a
// timeout racing a late answer, or close() failing what is left) finds
// nothing and does nothing.
struct NatsConnection::PendingAcks {
  std::mutex mu;
  std::unordered_map<const natsMsg*, AckFn> byMsg;

  AckFn take(const natsMsg* msg) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = byMsg.find(msg);
    if (it == byMsg.end()) return nullptr;
    AckFn fn = std::move(it->second);
    byMsg.erase(it);
    return fn;
  }

  // nats.c owns pa and pae (valid during the call); the handler owns msg.
  static void onAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    AckFn fn = static_cast<PendingAcks*>(closure)->take(msg);
    if (fn) {
      try {
        if (pae == nullptr) {
          fn(NATS_OK, static_cast<jsErrCode>(0), pa != nullptr ? pa->Sequence : 0, std::string());
        } else {
          fn(pae->Err == NATS_OK ? NATS_ERR : pae->Err, pae->ErrCode, 0,
             pae->ErrText != nullptr ? pae->ErrText : natsStatus_GetText(pae->Err));
        }
      } catch (...) {
        // No exception may unwind into nats.c.
      }
    }
    natsMsg_Destroy(msg);
  }

  void failAll() {
    std::unordered_map<const natsMsg*, AckFn> left;
    {
      std::lock_guard<std::mutex> lock(mu);
      left.swap(byMsg);
    }
    for (auto& [msg, fn] : left) {
      try {
        // Sent, never answered: the outcome is unknown, as after a timeout.
        fn(NATS_CONNECTION_DISCONNECTED, static_cast<jsErrCode>(0), 0,
           "connection closed before the acknowledgement");
      } catch (...) {
      }
    }
  }
};

struct NatsConnection::Events {
  std::atomic<ConnectionState> state{ConnectionState::Connecting};
  std::atomic<bool> closing{false};
  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> heartbeatAlarms{0};
  LogFn log;
  std::string servers;  // redacted
  int64_t reconnectWaitMs = 2000;

  std::mutex mu;
  std::condition_variable cv;
  bool closedSeen = false;

  void emit(LogLevel level, const std::string& message) noexcept {
    try {
      if (log) log(level, message);
    } catch (...) {
      // A throwing logger must not unwind into nats.c.
    }
  }

  void setState(ConnectionState next, LogLevel level, const std::string& message) noexcept {
    ConnectionState prev = state.load();
    do {
      if (prev == ConnectionState::Closed && next != ConnectionState::Closed) return;  // final
    } while (!state.compare_exchange_weak(prev, next));
    try {  // the message concatenation may throw
      emit(level,
           std::string("NATS ") + stateName(prev) + " -> " + stateName(next) + ": " + message);
    } catch (...) {
    }
  }
};

namespace {

std::string connectedUrl(natsConnection* nc, const std::string& fallback) {
  char buf[512];
  if (nc != nullptr && natsConnection_GetConnectedUrl(nc, buf, sizeof buf) == NATS_OK &&
      buf[0] != '\0') {
    // Credentials were stripped before the URL reached nats.c; redact anyway
    // in case a server-announced URL ever carries some.
    return redactNatsUrl(buf);
  }
  return fallback;
}

std::string lastConnectionError(natsConnection* nc) {
  const char* text = nullptr;
  natsStatus s = natsConnection_GetLastError(nc, &text);
  if (s == NATS_OK || text == nullptr || text[0] == '\0') return "connection lost";
  return text;
}

}  // namespace

// nats.c callbacks. Each one catches everything: an exception must never
// unwind through C frames.
static void onConnected(natsConnection* nc, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  try {
    ev->setState(ConnectionState::Connected, LogLevel::Info,
                 "connected to " + connectedUrl(nc, ev->servers));
  } catch (...) {
  }
}

static void onDisconnected(natsConnection* nc, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  try {
    if (ev->closing.load()) {
      ev->setState(ConnectionState::Disconnected, LogLevel::Info, "closing");
      return;
    }
    // Occupy the (minimal) reconnect buffer so no later publish can be parked
    // there and replayed after the reconnect. Failure is fine: it means the
    // buffer is already occupied.
    natsConnection_Publish(nc, kFillerSubject, nullptr, 0);
    ev->setState(ConnectionState::Disconnected, LogLevel::Warn,
                 "lost " + ev->servers + " (" + lastConnectionError(nc) +
                     "); reconnecting, operations fail with Unavailable meanwhile");
  } catch (...) {
  }
}

static void onReconnected(natsConnection* nc, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  ev->reconnects.fetch_add(1);
  try {
    ev->setState(ConnectionState::Connected, LogLevel::Info,
                 "reconnected to " + connectedUrl(nc, ev->servers));
  } catch (...) {
  }
}

static void onClosed(natsConnection*, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  try {
    ev->setState(ConnectionState::Closed, LogLevel::Info,
                 "connection to " + ev->servers + " closed");
  } catch (...) {
  }
  std::lock_guard<std::mutex> lock(ev->mu);
  ev->closedSeen = true;
  ev->cv.notify_all();
}

static void onAsyncError(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  if (err == NATS_MISSED_HEARTBEAT) ev->heartbeatAlarms.fetch_add(1);
  try {
    ev->emit(LogLevel::Warn, std::string("NATS asynchronous error: ") + natsStatus_GetText(err));
  } catch (...) {
  }
}

// Called by nats.c after each failed round over the server list. The wait
// doubles from kv.reconnectWaitMs up to 5x that, with a little jitter below
// the cap so many clients do not reconnect in lockstep.
static int64_t reconnectDelay(natsConnection*, int attempts, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  int64_t base = std::max<int64_t>(1, ev->reconnectWaitMs);
  int64_t factor = attempts <= 1 ? 1 : attempts == 2 ? 2 : attempts == 3 ? 4 : 5;
  int64_t wait = base * factor;
  // Jitter in [-10%, 0]: never above the 5x cap, never below 90% of the step.
  thread_local uint64_t seed =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  int64_t span = wait / 10;
  if (span > 0) wait -= static_cast<int64_t>((seed >> 33) % static_cast<uint64_t>(span + 1));
  try {
    ev->emit(LogLevel::Debug, "NATS reconnect attempt " + std::to_string(attempts) +
                                  " failed; next attempt in " + std::to_string(wait) + " ms");
  } catch (...) {
  }
  return wait;
}

Result<std::shared_ptr<NatsConnection>> NatsConnection::open(ConnectionSettings settings) {
  std::shared_ptr<NatsConnection> conn(new NatsConnection());
  conn->timeoutMs_ = settings.timeoutMs;
  conn->events_ = new Events();
  Events* ev = conn->events_;
  ev->log = settings.log;
  ev->servers = settings.servers.redactedList();
  ev->reconnectWaitMs = settings.reconnectWaitMs;

  auto fail = [&](natsStatus s, const std::string& what) -> Status {
    return Status::invalidArgument("cannot configure the NATS connection (" + what +
                                   "): " + natsStatus_GetText(s));
  };

  natsStatus s = natsOptions_Create(&conn->opts_);
  if (s != NATS_OK) return fail(s, "natsOptions_Create");
  natsOptions* o = conn->opts_;

  std::vector<const char*> urls;
  for (const auto& u : settings.servers.urls) urls.push_back(u.c_str());
  s = natsOptions_SetServers(o, urls.data(), static_cast<int>(urls.size()));
  if (s != NATS_OK) return fail(s, "nats.url " + ev->servers);

  if (settings.servers.secure) {
    // Fails when libnats was built without TLS: refuse rather than downgrade.
    s = natsOptions_SetSecure(o, true);
    if (s != NATS_OK) {
      return Status::invalidArgument(
          "nats.url " + ev->servers +
          " requires TLS, which this libnats cannot provide: " + natsStatus_GetText(s));
    }
  }

  const NatsServerSpec& spec = settings.servers;
  if (spec.hasCredentials) {
    s = spec.token.empty() ? natsOptions_SetUserInfo(o, spec.user.c_str(), spec.password.c_str())
                           : natsOptions_SetToken(o, spec.token.c_str());
    if (s != NATS_OK) return fail(s, "credentials from nats.url");
  } else if (!settings.user.empty()) {
    s = natsOptions_SetUserInfo(o, settings.user.c_str(), settings.password.c_str());
    if (s != NATS_OK) return fail(s, "nats.user/nats.pass");
  } else if (!settings.password.empty()) {
    ev->emit(LogLevel::Warn, "nats.pass is set but nats.user is empty: the password is ignored");
  }

  const int64_t timeout = settings.timeoutMs;
  if ((s = natsOptions_SetName(o, "weft")) != NATS_OK ||
      (s = natsOptions_SetTimeout(o, timeout)) != NATS_OK ||
      (s = natsOptions_SetMaxReconnect(o, -1)) != NATS_OK ||
      (s = natsOptions_SetCustomReconnectDelay(o, reconnectDelay, ev)) != NATS_OK ||
      // 1 byte is the smallest buffer nats.c accepts (0 means the 8 MiB default).
      (s = natsOptions_SetReconnectBufSize(o, 1)) != NATS_OK ||
      (s = natsOptions_SetFailRequestsOnDisconnect(o, true)) != NATS_OK ||
      (s = natsOptions_SetPingInterval(o, kPingIntervalMs)) != NATS_OK ||
      (s = natsOptions_SetMaxPingsOut(o, kMaxPingsOut)) != NATS_OK ||
      (s = natsOptions_SetRetryOnFailedConnect(o, true, onConnected, ev)) != NATS_OK ||
      (s = natsOptions_SetDisconnectedCB(o, onDisconnected, ev)) != NATS_OK ||
      (s = natsOptions_SetReconnectedCB(o, onReconnected, ev)) != NATS_OK ||
      (s = natsOptions_SetClosedCB(o, onClosed, ev)) != NATS_OK ||
      (s = natsOptions_SetErrorHandler(o, onAsyncError, ev)) != NATS_OK) {
    return fail(s, "options");
  }

  s = natsConnection_Connect(&conn->nc_, o);
  if (s == NATS_OK) {
    ev->setState(ConnectionState::Connected, LogLevel::Info,
                 "connected to " + connectedUrl(conn->nc_, ev->servers));
  } else if (s == NATS_NOT_YET_CONNECTED) {
    ev->emit(LogLevel::Warn,
             "NATS server " + ev->servers + " not reachable yet; retrying in the background");
  } else {
    conn->nc_ = nullptr;
    return Status::unavailable("cannot create the NATS connection to " + ev->servers + ": " +
                               natsStatus_GetText(s));
  }

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = timeout;  // bounds every JetStream and KV call
  s = natsConnection_JetStream(&conn->js_, conn->nc_, &jo);
  if (s != NATS_OK) {
    conn->js_ = nullptr;
    return fail(s, "JetStream context");
  }
  // Asynchronous publishes get a context of their own, so their settings
  // (and the reply subscription nats.c makes for them) leave the one every
  // other call uses exactly as it was.
  jsOptions ajo;
  jsOptions_Init(&ajo);
  ajo.Wait = timeout;
  conn->acks_ = new PendingAcks();
  ajo.PublishAsync.AckHandler = &PendingAcks::onAck;
  ajo.PublishAsync.AckHandlerClosure = conn->acks_;
  // Callers bound what they have in flight (the HTTP front end's limits);
  // nats.c's own bound would park a publisher for StallWait instead.
  ajo.PublishAsync.MaxPending = kMaxPendingAsync;
  s = natsConnection_JetStream(&conn->asyncJs_, conn->nc_, &ajo);
  if (s != NATS_OK) {
    conn->asyncJs_ = nullptr;
    return fail(s, "JetStream context for asynchronous publishes");
  }
  return conn;
}

NatsConnection::~NatsConnection() {
  close();
  if (asyncJs_ != nullptr) jsCtx_Destroy(asyncJs_);
  if (js_ != nullptr) jsCtx_Destroy(js_);
  bool callbacksDone = true;
  if (nc_ != nullptr) {
    std::lock_guard<std::mutex> lock(events_->mu);
    callbacksDone = events_->closedSeen;
  }
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
  if (opts_ != nullptr) natsOptions_Destroy(opts_);
  if (acks_ != nullptr) {
    acks_->failAll();
    // Like events_: nats.c may still hold the closure if it never closed.
    if (callbacksDone) delete acks_;
  }
  // Without the closed callback nats.c may still call into events_: leak it
  // (a few hundred bytes) rather than risk a use after free.
  if (callbacksDone) delete events_;
}

void NatsConnection::close() {
  if (closed_.exchange(true) || nc_ == nullptr) return;
  events_->closing.store(true);
  natsConnection_Close(nc_);
  std::unique_lock<std::mutex> lock(events_->mu);
  bool seen = events_->cv.wait_for(lock, std::chrono::milliseconds(timeoutMs_ + 2000),
                                   [&] { return events_->closedSeen; });
  lock.unlock();
  if (!seen) {
    events_->emit(LogLevel::Warn, "NATS closed callback did not arrive in time");
    events_->state.store(ConnectionState::Closed);
  }
  if (acks_ != nullptr) acks_->failAll();
}

void NatsConnection::publishAsync(natsMsg** msg, jsPubOptions* po, AckFn ack) {
  const natsMsg* key = *msg;
  {
    std::lock_guard<std::mutex> lock(acks_->mu);
    acks_->byMsg.emplace(key, std::move(ack));
  }
  // Registered first: the acknowledgement may arrive before this returns.
  const natsStatus s = js_PublishMsgAsync(asyncJs_, msg, po);
  if (s == NATS_OK) return;
  if (AckFn fn = acks_->take(key)) {
    fn(s, static_cast<jsErrCode>(0), 0, nats_GetLastError(nullptr));
  }
}

ConnectionState NatsConnection::state() const {
  return events_->state.load();
}

uint64_t NatsConnection::reconnects() const {
  return events_->reconnects.load();
}

uint64_t NatsConnection::heartbeatAlarms() const {
  return events_->heartbeatAlarms.load();
}

Status NatsConnection::checkAvailable() const {
  ConnectionState st = events_->state.load();
  if (st == ConnectionState::Closed || closed_.load()) {
    return Status::unavailable("NATS connection is closed");
  }
  if (st != ConnectionState::Connected) {
    return Status::unavailable(std::string("NATS is ") + stateName(st) + " (" + events_->servers +
                               ")");
  }
  // The callback that updates `state` runs asynchronously; the library's own
  // status flips first, so ask it too before anything is published.
  if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) {
    return Status::unavailable("NATS is reconnecting (" + events_->servers + ")");
  }
  return Status::ok();
}

void NatsConnection::log(LogLevel level, const std::string& message) const {
  events_->emit(level, message);
}

}  // namespace weft::nats_plugin
