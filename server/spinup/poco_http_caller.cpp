#include "spinup/poco_http_caller.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>

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

  const int64_t timeoutMs = std::max<int64_t>(c.timeoutMs, 1);
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeoutMs);
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  try {
    if (scheme == "https") {
      session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(),
                                                                clientContext());
    } else {
      session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    }
  } catch (const Poco::Exception& e) {
    return Status::unavailable(e.displayText());
  }
  session->setKeepAlive(false);
  const Poco::Timespan perOperation(timeoutMs * 1000);
  session->setTimeout(perOperation, perOperation, perOperation);

  // The session is aborted at the deadline (expired) or on cancel.
  if (cancel.cancelled()) return Status::unavailable("cancelled");
  // `expired` is only touched by the watchdog before unwatch() returns; the
  // cancel flag is shared because a cancel() running on another thread may
  // still call its callback after this call returned.
  std::atomic<bool> expired{false};
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  Poco::Net::HTTPClientSession* raw = session.get();
  uint64_t watchId = watch(deadline, [raw, &expired] {
    expired = true;
    raw->abort();
  });
  uint64_t cancelId = cancel.onCancel([this, watchId, cancelled] {
    *cancelled = true;
    // Hand the abort to the watchdog, which serialises it with unwatch().
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = watched_.find(watchId);
    if (it != watched_.end()) {
      it->second.deadline = SteadyClock::now();
      cv_.notify_all();
    }
  });

  Result<HttpReply> result = Status::internal("unreachable");
  try {
    std::string target = uri.getPathAndQuery();
    if (target.empty()) target = "/";
    Poco::Net::HTTPRequest request(c.method, target, Poco::Net::HTTPMessage::HTTP_1_1);
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
    result = Status::timeout("timed out after " + std::to_string(timeoutMs) + " ms");
  } catch (const Poco::Exception& e) {
    result = Status::unavailable(e.displayText());
  } catch (const std::exception& e) {
    result = Status::unavailable(e.what());
  }
  if (cancelId != 0) cancel.removeCallback(cancelId);
  unwatch(watchId);
  if (*cancelled) return Status::unavailable("cancelled");
  if (expired) return Status::timeout("timed out after " + std::to_string(timeoutMs) + " ms");
  return result;
}

}  // namespace weft
