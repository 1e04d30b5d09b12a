#include "spinup/poco_http_caller.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/URI.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <istream>
#include <memory>

namespace weft {

namespace {

using SteadyClock = std::chrono::steady_clock;

// One TLS client context for all calls: verification of the peer chain
// against the system CAs, and (Poco's extended verification, on by default)
// of the host name against the certificate.
Poco::Net::Context::Ptr clientContext() {
  static Poco::Net::Context::Ptr context = [] {
    Poco::Net::initializeSSL();
    return Poco::Net::Context::Ptr(new Poco::Net::Context(
        Poco::Net::Context::TLS_CLIENT_USE, "", "", "", Poco::Net::Context::VERIFY_RELAXED, 9,
        true /* load the default CAs */, "ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH"));
  }();
  return context;
}

}  // namespace

PocoHttpCaller::PocoHttpCaller() : watchdog_([this] { watchdogLoop(); }) {}

PocoHttpCaller::~PocoHttpCaller() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

uint64_t PocoHttpCaller::watch(SteadyClock::time_point deadline, std::function<void()> onExpiry) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t id = ++nextId_;
  watched_.emplace(id, Watched{deadline, std::move(onExpiry)});
  cv_.notify_all();
  return id;
}

void PocoHttpCaller::unwatch(uint64_t id) {
  // Under the lock: after this returns, the expiry callback is not running
  // and never will, so the caller may destroy what it points to.
  std::lock_guard<std::mutex> lock(mutex_);
  watched_.erase(id);
}

void PocoHttpCaller::watchdogLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    auto now = SteadyClock::now();
    auto next = now + std::chrono::seconds(1);
    for (auto it = watched_.begin(); it != watched_.end();) {
      if (it->second.deadline <= now) {
        try {
          it->second.onExpiry();
        } catch (...) {
          // Aborting a session only shuts its socket down; nothing to report.
        }
        it = watched_.erase(it);
      } else {
        next = std::min(next, it->second.deadline);
        ++it;
      }
    }
    cv_.wait_until(lock, next);
  }
}

Result<HttpReply> PocoHttpCaller::call(const HttpCall& c, const CancelToken& cancel) {
  Poco::URI uri;
  try {
    uri = Poco::URI(c.url);
  } catch (const Poco::Exception& e) {
    return Status::invalidArgument("invalid URL: " + e.message());
  }
  const std::string scheme = uri.getScheme();
  if (scheme != "http" && scheme != "https") {
    return Status::invalidArgument("unsupported URL scheme: " + scheme);
  }
  if (uri.getHost().empty()) return Status::invalidArgument("invalid URL: no host");

  // Bounded on both sides: a huge timeout would overflow the microseconds
  // below (and hold the caller for days).
  constexpr int64_t kMaxCallTimeoutMs = 10 * 60 * 1000;
  const int64_t timeoutMs = std::clamp<int64_t>(c.timeoutMs, 1, kMaxCallTimeoutMs);
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeoutMs);
  const Poco::Timespan perOperation(timeoutMs * 1000);
  if (cancel.cancelled()) return Status::unavailable("cancelled");
  auto timedOut = [&] {
    return Status::timeout("timed out after " + std::to_string(timeoutMs) + " ms");
  };

  // Connected here, not by the session, so the descriptor is known before
  // any byte is exchanged: the watchdog shuts it down (never closes it, so
  // the number cannot be reused while this thread still uses it) at the
  // deadline or on cancel, which ends any blocked read or write at once.
  Poco::Net::StreamSocket plain;
  try {
    plain.connect(Poco::Net::SocketAddress(uri.getHost(), uri.getPort()), perOperation);
  } catch (const Poco::TimeoutException&) {
    return timedOut();
  } catch (const Poco::Exception& e) {
    return Status::unavailable(e.displayText());
  }
  plain.setReceiveTimeout(perOperation);
  plain.setSendTimeout(perOperation);
  const int fd = plain.impl()->sockfd();
  // `expired` is only touched by the watchdog before unwatch() returns; the
  // cancel flag is shared because a cancel() running on another thread may
  // still call its callback after this call returned.
  std::atomic<bool> expired{false};
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  uint64_t watchId = watch(deadline, [fd, &expired] {
    expired = true;
    ::shutdown(fd, SHUT_RDWR);
  });
  uint64_t cancelId = cancel.onCancel([this, watchId, cancelled] {
    *cancelled = true;
    // Hand the shutdown to the watchdog, which serialises it with unwatch().
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = watched_.find(watchId);
    if (it != watched_.end()) {
      it->second.deadline = SteadyClock::now();
      cv_.notify_all();
    }
  });

  Result<HttpReply> result = Status::internal("unreachable");
  // Outlives the try: destroying it closes the descriptor, which must not
  // happen before unwatch() below.
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  try {
    if (scheme == "https") {
      // The handshake verifies the chain and, for this host name, the
      // certificate (and sends it as SNI).
      session = std::make_unique<Poco::Net::HTTPSClientSession>(
          Poco::Net::SecureStreamSocket::attach(plain, uri.getHost(), clientContext()));
    } else {
      session = std::make_unique<Poco::Net::HTTPClientSession>(plain);
    }
    session->setKeepAlive(false);
    session->setTimeout(perOperation, perOperation, perOperation);
    std::string target = uri.getPathAndQuery();
    if (target.empty()) target = "/";
    Poco::Net::HTTPRequest request(c.method, target, Poco::Net::HTTPMessage::HTTP_1_1);
    // A session made from a socket knows no host: the Host header is ours.
    request.setHost(uri.getHost(), uri.getPort());
    for (const auto& [name, value] : c.headers) request.set(name, value);
    const bool withBody = c.method == "POST" || c.method == "PUT";
    if (withBody) request.setContentLength(static_cast<std::streamsize>(c.body.size()));
    std::ostream& os = session->sendRequest(request);
    if (withBody) os << c.body;
    Poco::Net::HTTPResponse response;
    std::istream& is = session->receiveResponse(response);
    HttpReply reply;
    reply.status = static_cast<int>(response.getStatus());
    if (c.method != "HEAD") {
      char buf[8192];
      while (is.read(buf, sizeof buf) || is.gcount() > 0) {
        size_t room = reply.body.size() < c.bodyLimit ? c.bodyLimit - reply.body.size() : 0;
        reply.body.append(buf, std::min(room, static_cast<size_t>(is.gcount())));
        if (room == 0) break;  // enough: the rest is never read
      }
    }
    result = reply;
  } catch (const Poco::TimeoutException&) {
    result = timedOut();
  } catch (const Poco::Exception& e) {
    result = Status::unavailable(e.displayText());
  } catch (const std::exception& e) {
    result = Status::unavailable(e.what());
  }
  if (cancelId != 0) cancel.removeCallback(cancelId);
  unwatch(watchId);
  session.reset();
  if (*cancelled) return Status::unavailable("cancelled");
  if (expired) return timedOut();
  return result;
}

}  // namespace weft
