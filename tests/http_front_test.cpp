// The event-loop HTTP front end (server/http/http_server.h) and its request
// parser (request_parser.h): connections that cost no thread, the timeouts
// and limits that bound what a client can hold, and HTTP/1.1 framing per
// RFC 9112. Every socket test talks raw TCP on 127.0.0.1, so it controls
// exactly which bytes arrive when.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/health.h"
#include "http/http_server.h"
#include "http/request_parser.h"
#include "http/router.h"
#include "weft/json.h"
#include "weft/json_list_stream.h"
#include "weft/memory_kv.h"

using namespace weft;
using namespace weft::http;

namespace {

using Clock = std::chrono::steady_clock;

// A blocking TCP client with a receive timeout; the descriptor closes with it.
class RawClient {
 public:
  explicit RawClient(uint16_t port, int timeoutMs = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{timeoutMs / 1000, (timeoutMs % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  void shutdownSend() { ::shutdown(fd_, SHUT_WR); }

  // Reads one response: status line, headers and a Content-Length body.
  // Empty when the connection closed (or timed out) before a whole one came.
  std::string response() {
    while (true) {
      const size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const std::string head = lower(buffer_.substr(0, end));
        const size_t cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos) length = std::stoul(head.substr(cl + 17));
        if (buffer_.size() >= end + 4 + length) {
          std::string out = buffer_.substr(0, end + 4 + length);
          buffer_.erase(0, end + 4 + length);
          return out;
        }
      }
      if (!fill()) return "";
    }
  }
  // Reads a response head only (the reply to HEAD has no body).
  std::string headOnly() {
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!fill()) return "";
    }
    const size_t end = buffer_.find("\r\n\r\n") + 4;
    std::string out = buffer_.substr(0, end);
    buffer_.erase(0, end);
    return out;
  }
  // What arrived after the first `n` bytes already returned by headOnly().
  std::string unreadAfter(size_t) {
    std::string out;
    out.swap(buffer_);
    return out;
  }
  // One receive: empty on close or timeout.
  std::string receiveSome() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  // Reads until the server closes; true when it did (not a timeout).
  bool closedByServer() {
    while (true) {
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }
  const std::string& unread() const { return buffer_; }

  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

 private:
  bool fill() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

int statusOf(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}

Json bodyOf(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) return Json();
  auto parsed = Json::parse(response.substr(end + 4));
  return parsed ? std::move(parsed.value()) : Json();
}

std::string get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n";
}

// A front end on 127.0.0.1:<ephemeral> with /health (inlined), a worker
// route /api/ping, an echo route and a route that blocks until released.
struct FrontServer {
  explicit FrontServer(HttpServerOptions options = {}) {
    store = createMemoryStore();
    addHealthRoutes(router, {store, &websocketConnections, 3, {}});
    router.add("GET", "/api/ping",
               [](const ApiRequest&) { return ApiResponse::jsonBody(200, Json::object()); });
    RouteOptions readsBody;
    readsBody.readsBody = true;
    router.add(
        "POST", "/api/echo",
        [](const ApiRequest& req) {
          Json out = Json::object();
          out.set("raw", Json(req.rawBody));
          return ApiResponse::jsonBody(200, std::move(out));
        },
        readsBody);
    // 5,000 elements rendered while they are sent.
    router.add("GET", "/api/long", [](const ApiRequest&) {
      JsonListStream list;
      list.head = "{\"items\":[";
      list.count = 5000;
      list.element = [](size_t i, std::string& out) {
        out += "{\"i\":" + std::to_string(i) + ",\"pad\":\"" + std::string(40, 'x') + "\"}";
      };
      list.tail = "],\"total\":5000}";
      return ApiResponse::jsonList(200, std::move(list));
    });
    router.add("GET", "/api/block", [this](const ApiRequest&) {
      std::unique_lock<std::mutex> lock(mutex);
      ++blocked;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(20), [this] { return released; });
      return ApiResponse::jsonBody(200, Json::object());
    });
    // Answered later (ApiResponse::later): the PendingResponse waits in
    // `parked` until the test completes it from its own thread.
    router.add("GET", "/api/later", [this](const ApiRequest&) {
      auto pending = std::make_shared<PendingResponse>();
      {
        std::lock_guard<std::mutex> lock(mutex);
        parked.push_back(pending);
      }
      cv.notify_all();
      return ApiResponse::later(std::move(pending));
    });
    // Completed before the handler even returns.
    router.add("GET", "/api/later-at-once", [](const ApiRequest&) {
      auto pending = std::make_shared<PendingResponse>();
      Json body = Json::object();
      body.set("early", Json(true));
      pending->complete(ApiResponse::jsonBody(201, std::move(body)));
      return ApiResponse::later(std::move(pending));
    });
    // Like /api/later, and it counts the clients that went away while
    // waiting (PendingResponse::onClientGone), answering them 204.
    router.add("GET", "/api/later-watched", [this](const ApiRequest&) {
      auto pending = std::make_shared<PendingResponse>();
      std::weak_ptr<PendingResponse> weak = pending;
      pending->onClientGone([this, weak] {
        ++clientsGone;
        if (auto p = weak.lock()) p->complete(ApiResponse::noContent());
      });
      {
        std::lock_guard<std::mutex> lock(mutex);
        parked.push_back(pending);
      }
      cv.notify_all();
      return ApiResponse::later(std::move(pending));
    });
    // Forgotten: the handler drops its PendingResponse without completing it.
    router.add("GET", "/api/later-forgotten", [](const ApiRequest&) {
      return ApiResponse::later(std::make_shared<PendingResponse>());
    });
    options.host = "127.0.0.1";
    options.port = 0;
    server = std::make_unique<HttpServer>(router, options);
    server->start();
  }
  ~FrontServer() {
    release();
    server->shutdown(std::chrono::milliseconds(2000));
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
    cv.notify_all();
  }
  // Waits for n parked deferred responses; takes the oldest.
  std::shared_ptr<PendingResponse> takeParked() {
    std::unique_lock<std::mutex> lock(mutex);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return !parked.empty(); })) {
      return nullptr;
    }
    auto p = parked.front();
    parked.erase(parked.begin());
    return p;
  }
  bool waitBlocked(int n) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return blocked >= n; });
  }
  // Polls until the server counts `n` open connections (it notices closes
  // on its own thread), at most 10 s.
  bool waitConnections(int n) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (server->currentConnections() != n) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }
  uint16_t port() const { return server->port(); }

  std::shared_ptr<MemoryStore> store;
  std::atomic<int64_t> websocketConnections{0};
  Router router;
  std::unique_ptr<HttpServer> server;
  std::mutex mutex;
  std::condition_variable cv;
  int blocked = 0;
  bool released = false;
  std::vector<std::shared_ptr<PendingResponse>> parked;
  std::atomic<int> clientsGone{0};
};

HttpServerOptions small() {
  HttpServerOptions o;
  o.threads = 2;
  return o;
}

}  // namespace

// ---- connections that hold no thread ---------------------------------------

TEST_CASE("front end: 300 idle connections leave every route reachable", "[front]") {
  // Before the event loop, 128 idle connections (64 threads + 64 queue
  // slots) made weftd unreachable for as long as they stayed open.
  FrontServer ts(small());
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 300; ++i) {
    idle.push_back(std::make_unique<RawClient>(ts.port()));
    REQUIRE(idle.back()->connected());
  }
  REQUIRE(ts.waitConnections(300));
  RawClient probe(ts.port());
  REQUIRE(probe.send(get("/health")));
  CHECK(statusOf(probe.response()) == 200);
  REQUIRE(probe.send(get("/api/ping")));
  CHECK(statusOf(probe.response()) == 200);
  // The idle ones are served too, whenever they speak.
  for (int i = 0; i < 300; i += 30) {
    REQUIRE(idle[i]->send(get("/api/ping")));
    CHECK(statusOf(idle[i]->response()) == 200);
  }
}

TEST_CASE("front end: slow headers do not block others and end in 408", "[front]") {
  HttpServerOptions o = small();
  o.headerTimeoutMs = 800;
  FrontServer ts(o);
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 200; ++i) {
    slow.push_back(std::make_unique<RawClient>(ts.port()));
    REQUIRE(slow.back()->send("GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: "));
  }
  RawClient probe(ts.port());
  REQUIRE(probe.send(get("/health")));
  CHECK(statusOf(probe.response()) == 200);
  // After the header deadline every slow client gets 408 and a close.
  for (int i = 0; i < 200; i += 20) {
    const std::string r = slow[i]->response();
    CHECK(statusOf(r) == 408);
    CHECK(bodyOf(r).getString("error") == "RequestTimeout");
    CHECK(RawClient::lower(r).find("connection: close") != std::string::npos);
    CHECK(slow[i]->closedByServer());
  }
}

TEST_CASE("front end: idle keep-alive connections are closed after the idle timeout",
          "[front]") {
  HttpServerOptions o = small();
  o.idleTimeoutMs = 300;
  FrontServer ts(o);
  RawClient silent(ts.port());
  RawClient used(ts.port());
  REQUIRE(used.send(get("/health")));
  REQUIRE(statusOf(used.response()) == 200);
  CHECK(silent.closedByServer());
  CHECK(used.closedByServer());
  CHECK(ts.waitConnections(0));
}

TEST_CASE("front end: a body that stops arriving ends in 408", "[front]") {
  HttpServerOptions o = small();
  o.bodyTimeoutMs = 500;
  FrontServer ts(o);
  RawClient c(ts.port());
  REQUIRE(c.send("POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  const std::string r = c.response();
  CHECK(statusOf(r) == 408);
  CHECK(bodyOf(r).getString("message").find("body") != std::string::npos);
  CHECK(c.closedByServer());
}

TEST_CASE("front end: over maxConnections /health still answers and the rest gets 503",
          "[front]") {
  HttpServerOptions o = small();
  o.maxConnections = 20;
  FrontServer ts(o);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 20; ++i) held.push_back(std::make_unique<RawClient>(ts.port()));
  REQUIRE(ts.waitConnections(20));

  SECTION("a probe asking for /health gets its 200, then a close") {
    RawClient probe(ts.port());
    const auto t0 = Clock::now();
    REQUIRE(probe.send(get("/health")));
    const std::string r = probe.response();
    CHECK(statusOf(r) == 200);
    CHECK(Clock::now() - t0 < std::chrono::seconds(1));
    CHECK(RawClient::lower(r).find("connection: close") != std::string::npos);
    CHECK(probe.closedByServer());
  }
  SECTION("a probe asking for any other route gets 503 with Retry-After, then a close") {
    RawClient probe(ts.port());
    REQUIRE(probe.send(get("/api/ping")));
    const std::string r = probe.response();
    CHECK(statusOf(r) == 503);
    CHECK(RawClient::lower(r).find("retry-after: 1") != std::string::npos);
    CHECK(bodyOf(r).getString("error") == "ServiceUnavailable");
    CHECK(bodyOf(r).getString("message") == "Too many open connections; retry later");
    CHECK(probe.closedByServer());
  }
  SECTION("a silent probe gets 503 after its 2 s deadline") {
    RawClient probe(ts.port());
    const auto t0 = Clock::now();
    const std::string r = probe.response();
    const auto waited = Clock::now() - t0;
    CHECK(statusOf(r) == 503);
    CHECK(waited >= std::chrono::milliseconds(1500));
    CHECK(waited < std::chrono::milliseconds(4500));
    CHECK(probe.closedByServer());
  }
  SECTION("with the 64 probe slots taken, a new connection is refused at once") {
    std::vector<std::unique_ptr<RawClient>> probes;
    for (int i = 0; i < 64; ++i) probes.push_back(std::make_unique<RawClient>(ts.port()));
    REQUIRE(ts.waitConnections(84));
    RawClient extra(ts.port());
    const auto t0 = Clock::now();
    const std::string r = extra.response();
    CHECK(statusOf(r) == 503);
    CHECK(Clock::now() - t0 < std::chrono::milliseconds(1000));
    CHECK(bodyOf(r).getString("error") == "ServiceUnavailable");
    CHECK(extra.closedByServer());
    CHECK(ts.server->currentConnections() == 84);
  }
  // Below the limit again, a connection is an ordinary keep-alive one.
  held.resize(15);
  REQUIRE(ts.waitConnections(15));
  RawClient again(ts.port());
  REQUIRE(again.send(get("/health")));
  CHECK(statusOf(again.response()) == 200);
  REQUIRE(again.send(get("/api/ping")));
  CHECK(statusOf(again.response()) == 200);
}

TEST_CASE("front end: /health answers while every worker waits and the queue is full",
          "[front]") {
  HttpServerOptions o = small();  // 2 workers
  o.maxQueued = 1;
  FrontServer ts(o);
  RawClient a(ts.port()), b(ts.port()), queued(ts.port()), refused(ts.port());
  // One at a time: with one queue slot, a second request sent before a
  // worker took the first could be refused.
  REQUIRE(a.send(get("/api/block")));
  REQUIRE(ts.waitBlocked(1));
  REQUIRE(b.send(get("/api/block")));
  REQUIRE(ts.waitBlocked(2));
  REQUIRE(queued.send(get("/api/ping")));
  // The queue slot is taken once the server saw the request; retry until the
  // next one is refused (the order of arrival is the kernel's).
  std::string r;
  for (int i = 0; i < 50; ++i) {
    REQUIRE(refused.send(get("/api/ping")));
    r = refused.response();
    if (statusOf(r) == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(statusOf(r) == 503);
  CHECK(RawClient::lower(r).find("retry-after") != std::string::npos);
  RawClient health(ts.port());
  REQUIRE(health.send(get("/health")));
  CHECK(statusOf(health.response()) == 200);
  ts.release();
  CHECK(statusOf(a.response()) == 200);
  CHECK(statusOf(b.response()) == 200);
  CHECK(statusOf(queued.response()) == 200);
}

// ---- streamed bodies -------------------------------------------------------------

namespace {

// Decodes a chunked body; false when the framing is broken.
bool dechunk(const std::string& body, std::string& out) {
  size_t pos = 0;
  while (true) {
    const size_t lf = body.find("\r\n", pos);
    if (lf == std::string::npos) return false;
    const size_t size = std::stoul(body.substr(pos, lf - pos), nullptr, 16);
    pos = lf + 2;
    if (size == 0) return body.compare(pos, 2, "\r\n") == 0;
    if (pos + size + 2 > body.size()) return false;
    out.append(body, pos, size);
    pos += size + 2;
  }
}

}  // namespace

TEST_CASE("front end: a deferred response holds no worker and arrives when completed",
          "[front][deferred]") {
  HttpServerOptions o = small();
  o.threads = 1;  // one worker: a parked request must not occupy it
  FrontServer ts(o);
  RawClient a(ts.port()), b(ts.port());
  REQUIRE(a.send(get("/api/later")));
  auto pending = ts.takeParked();
  REQUIRE(pending);
  // The only worker is free again: another connection is served meanwhile.
  REQUIRE(b.send(get("/api/ping")));
  CHECK(statusOf(b.response()) == 200);

  SECTION("completed from another thread, then the connection is reused") {
    std::thread completer([pending] {
      Json body = Json::object();
      body.set("done", Json(true));
      pending->complete(ApiResponse::jsonBody(201, std::move(body)));
      pending->complete(ApiResponse::jsonBody(500, Json::object()));  // ignored
    });
    completer.join();
    const std::string r = a.response();
    CHECK(statusOf(r) == 201);
    CHECK(bodyOf(r).getBool("done"));
    REQUIRE(a.send(get("/api/ping")));
    CHECK(statusOf(a.response()) == 200);
  }
  SECTION("a request pipelined behind it waits its turn") {
    REQUIRE(a.send(get("/api/ping")));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    pending->complete(ApiResponse::jsonBody(202, Json::object()));
    CHECK(statusOf(a.response()) == 202);
    CHECK(statusOf(a.response()) == 200);
  }
  SECTION("dropped without completion: 500, not a hang") {
    pending.reset();
    std::lock_guard<std::mutex> lock(ts.mutex);
    ts.parked.clear();
  }
  if (!pending) {
    const std::string r = a.response();
    CHECK(statusOf(r) == 500);
    CHECK(bodyOf(r).getString("error") == "InternalError");
  }
}

TEST_CASE("front end: deferred responses completed early or forgotten", "[front][deferred]") {
  FrontServer ts(small());
  RawClient c(ts.port());
  REQUIRE(c.send(get("/api/later-at-once")));
  std::string r = c.response();
  CHECK(statusOf(r) == 201);
  CHECK(bodyOf(r).getBool("early"));
  REQUIRE(c.send(get("/api/later-forgotten")));
  r = c.response();
  CHECK(statusOf(r) == 500);
  CHECK(bodyOf(r).getString("error") == "InternalError");
  REQUIRE(c.send(get("/api/ping")));
  CHECK(statusOf(c.response()) == 200);
}

TEST_CASE("front end: a deferred response is told when its client goes away",
          "[front][deferred]") {
  FrontServer ts(small());
  SECTION("the client closes while waiting") {
    auto c = std::make_unique<RawClient>(ts.port());
    REQUIRE(c->send(get("/api/later-watched")));
    auto pending = ts.takeParked();
    REQUIRE(pending);
    CHECK(ts.clientsGone.load() == 0);
    c.reset();  // closes the socket
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (ts.clientsGone.load() == 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(ts.clientsGone.load() == 1);
    CHECK(ts.waitConnections(0));
    // A completion after that is ignored.
    pending->complete(ApiResponse::jsonBody(200, Json::object()));
  }
  SECTION("a client that stays is not told, and is answered when completed") {
    RawClient c(ts.port());
    REQUIRE(c.send(get("/api/later-watched")));
    auto pending = ts.takeParked();
    REQUIRE(pending);
    RawClient other(ts.port());
    REQUIRE(other.send(get("/api/ping")));
    CHECK(statusOf(other.response()) == 200);
    pending->complete(ApiResponse::jsonBody(201, Json::object()));
    CHECK(statusOf(c.response()) == 201);
    CHECK(ts.clientsGone.load() == 0);
    REQUIRE(c.send(get("/api/ping")));
    CHECK(statusOf(c.response()) == 200);
  }
}

TEST_CASE("front end: a graceful shutdown waits for a deferred response", "[front][deferred]") {
  FrontServer ts(small());
  RawClient c(ts.port());
  REQUIRE(c.send(get("/api/later")));
  auto pending = ts.takeParked();
  REQUIRE(pending);
  std::thread completer([pending] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    pending->complete(ApiResponse::jsonBody(201, Json::object()));
  });
  const auto t0 = Clock::now();
  const bool drained = ts.server->shutdown(std::chrono::milliseconds(5000));
  completer.join();
  CHECK(drained);
  CHECK(Clock::now() - t0 >= std::chrono::milliseconds(250));
  const std::string r = c.response();
  CHECK(statusOf(r) == 201);
  CHECK(c.closedByServer());
}

TEST_CASE("front end: a long list is streamed in chunks and reads back whole", "[front]") {
  FrontServer ts(small());
  RawClient c(ts.port());
  REQUIRE(c.send(get("/api/long")));
  const std::string head = c.headOnly();
  CHECK(statusOf(head) == 200);
  CHECK(RawClient::lower(head).find("transfer-encoding: chunked") != std::string::npos);
  CHECK(RawClient::lower(head).find("content-length") == std::string::npos);
  // Read until the terminating chunk, then check the document.
  std::string body = c.unreadAfter(head.size());
  std::string raw;
  while (!dechunk(body, raw)) {
    raw.clear();
    const std::string more = c.receiveSome();
    REQUIRE_FALSE(more.empty());
    body += more;
  }
  auto doc = Json::parse(raw);
  REQUIRE(doc);
  CHECK(doc->get("total").asInt() == 5000);
  REQUIRE(doc->get("items").size() == 5000);
  CHECK(doc->get("items").asArray().back().get("i").asInt() == 4999);
  // The connection is still in step for the next request.
  REQUIRE(c.send(get("/health")));
  CHECK(statusOf(c.response()) == 200);

  SECTION("HTTP/1.0 gets the body delimited by closing the connection") {
    RawClient old(ts.port());
    REQUIRE(old.send("GET /api/long HTTP/1.0\r\n\r\n"));
    CHECK(old.closedByServer());
    const std::string all = old.unread();
    const size_t end = all.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    CHECK(RawClient::lower(all.substr(0, end)).find("transfer-encoding") == std::string::npos);
    auto parsed = Json::parse(all.substr(end + 4));
    REQUIRE(parsed);
    CHECK(parsed->get("items").size() == 5000);
  }
}

// ---- framing (RFC 9112) --------------------------------------------------------

TEST_CASE("front end: a request with Content-Length and Transfer-Encoding is refused",
          "[front][framing]") {
  FrontServer ts(small());
  RawClient c(ts.port());
  // Behind a proxy that uses Content-Length, the "0\r\n\r\n" would be body and
  // the GET a second, smuggled request.
  REQUIRE(c.send("POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/ping HTTP/1.1\r\nHost: t\r\n\r\n"));
  const std::string r = c.response();
  CHECK(statusOf(r) == 400);
  CHECK(bodyOf(r).getString("error") == "BadRequest");
  CHECK(bodyOf(r).getString("message").find("Content-Length and Transfer-Encoding") !=
        std::string::npos);
  CHECK(c.closedByServer());
  CHECK(c.unread().empty());  // no second response
}

TEST_CASE("front end: Content-Length must be one decimal number", "[front][framing]") {
  FrontServer ts(small());
  for (const std::string header :
       {"Content-Length: 3\r\nContent-Length: 4", "Content-Length: 3, 4", "Content-Length: abc",
        "Content-Length: -5", "Content-Length: +3", "Content-Length: 0x10",
        "Content-Length: 99999999999999999999", "Content-Length: "}) {
    INFO(header);
    RawClient c(ts.port());
    REQUIRE(c.send("POST /api/echo HTTP/1.1\r\nHost: t\r\n" + header + "\r\n\r\nabcd"));
    const std::string r = c.response();
    CHECK(statusOf(r) == 400);
    CHECK(bodyOf(r).getString("error") == "BadRequest");
    CHECK(bodyOf(r).getString("message").find("Content-Length") != std::string::npos);
    CHECK(c.closedByServer());
  }
  // The same value twice is one length (RFC 9112 §6.3 allows accepting it).
  RawClient same(ts.port());
  REQUIRE(same.send("POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                    "Content-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"));
  CHECK(statusOf(same.response()) == 200);
}

TEST_CASE("front end: transfer codings, header syntax and versions", "[front][framing]") {
  FrontServer ts(small());
  struct Case {
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {"POST /api/echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      {"POST /api/echo HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"POST /api/echo HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400},
      {"POST /api/echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"GET /health HTTP/1.1\r\nHost : t\r\n\r\n", 400},
      {"GET /health HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400},
      {"GET /health HTTP/1.1\r\nNoColon\r\n\r\n", 400},
      {"GET /health HTTP/2.0\r\n\r\n", 505},
      {"GET /health FTP/1.1\r\n\r\n", 400},
      {"GET  /health HTTP/1.1\r\n\r\n", 400},
      {"GET /health HTTP/1.1\r\nX-Big: " + std::string(40 * 1024, 'a') + "\r\n\r\n", 431},
      {"POST /api/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"GET /health HTTP/1.1\r\nExpect: magic\r\n\r\n", 417},
  };
  for (const Case& k : cases) {
    INFO(k.request.substr(0, 120));
    RawClient c(ts.port());
    REQUIRE(c.send(k.request));
    const std::string r = c.response();
    CHECK(statusOf(r) == k.status);
    CHECK(!bodyOf(r).getString("message").empty());
    CHECK(c.closedByServer());
  }
}

TEST_CASE("front end: chunked bodies, pipelining, HEAD, 100-continue, half-close",
          "[front][framing]") {
  FrontServer ts(small());
  SECTION("a chunked body with extensions and trailers") {
    RawClient c(ts.port());
    REQUIRE(c.send("POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n"
                   "X-Trailer: 1\r\n\r\n"));
    const std::string r = c.response();
    CHECK(statusOf(r) == 200);
    CHECK(bodyOf(r).getString("raw") == "abcde");
  }
  SECTION("pipelined requests are answered in order on one connection") {
    RawClient c(ts.port());
    REQUIRE(c.send("POST /api/echo HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                   "\r\none" + get("/health") +
                   "POST /api/echo HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                   "\r\ntwo"));
    const std::string first = c.response();
    const std::string second = c.response();
    const std::string third = c.response();
    CHECK(bodyOf(first).getString("raw") == "one");
    CHECK(bodyOf(second).getString("status") == "ok");
    CHECK(bodyOf(third).getString("raw") == "two");
  }
  SECTION("HEAD gets headers without a body, and the connection stays in step") {
    RawClient c(ts.port());
    REQUIRE(c.send("HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    const std::string head = c.headOnly();
    CHECK(statusOf(head) == 405);  // /health is GET only
    CHECK(RawClient::lower(head).find("content-length: ") != std::string::npos);
    REQUIRE(c.send(get("/health")));
    const std::string r = c.response();
    CHECK(statusOf(r) == 200);  // no stray body bytes came first
    CHECK(bodyOf(r).getString("status") == "ok");
  }
  SECTION("Expect: 100-continue gets an interim 100, then the answer") {
    RawClient c(ts.port());
    REQUIRE(c.send("POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
    const std::string interim = c.response();
    CHECK(interim.rfind("HTTP/1.1 100 Continue\r\n", 0) == 0);
    REQUIRE(c.send("body"));
    const std::string r = c.response();
    CHECK(statusOf(r) == 200);
    CHECK(bodyOf(r).getString("raw") == "body");
  }
  SECTION("a client that half-closes after its request still gets the answer") {
    RawClient c(ts.port());
    REQUIRE(c.send("GET /api/ping HTTP/1.1\r\nHost: t\r\n\r\n"));
    c.shutdownSend();
    CHECK(statusOf(c.response()) == 200);
    CHECK(c.closedByServer());
  }
  SECTION("HTTP/1.0 closes unless keep-alive is asked for") {
    RawClient c(ts.port());
    REQUIRE(c.send("GET /api/ping HTTP/1.0\r\n\r\n"));
    const std::string r = c.response();
    CHECK(statusOf(r) == 200);
    CHECK(RawClient::lower(r).find("connection: close") != std::string::npos);
    CHECK(c.closedByServer());
    RawClient k(ts.port());
    REQUIRE(k.send("GET /api/ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(statusOf(k.response()) == 200);
    REQUIRE(k.send("GET /api/ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(statusOf(k.response()) == 200);
  }
}

// ---- the parser alone ----------------------------------------------------------

namespace {

struct Fed {
  std::vector<ParsedRequest> requests;
  std::vector<ParseError> errors;
};

// Feeds `bytes` in pieces of `step` bytes, collecting every event.
Fed feed(const std::string& bytes, size_t step, ParserLimits limits = {}) {
  RequestParser parser(limits);
  Fed out;
  std::string in;
  for (size_t pos = 0; pos < bytes.size(); pos += step) {
    in.append(bytes, pos, step);
    while (true) {
      const RequestParser::Event e = parser.advance(in);
      if (e == RequestParser::Event::Request) {
        out.requests.push_back(parser.take());
      } else if (e == RequestParser::Event::Error) {
        out.errors.push_back(parser.error());
        if (parser.error().close) return out;
      } else if (e == RequestParser::Event::NeedMore) {
        break;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("parser: the same requests whatever the read boundaries", "[front][parser]") {
  const std::string stream =
      "\r\nPOST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;e=1\r\npedia\r\n0\r\n\r\n"
      "GET /c HTTP/1.0\nConnection: keep-alive\n\n";
  for (size_t step : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, stream.size()}) {
    INFO("step " << step);
    const Fed fed = feed(stream, step);
    REQUIRE(fed.errors.empty());
    REQUIRE(fed.requests.size() == 3);
    CHECK(fed.requests[0].method == "POST");
    CHECK(fed.requests[0].target == "/a?x=1");
    CHECK(fed.requests[0].body == "hello");
    CHECK(fed.requests[0].headers.size() == 2);
    CHECK(fed.requests[1].body == "wikipedia");
    CHECK(fed.requests[1].keepAlive);
    CHECK(fed.requests[2].minorVersion == 0);
    CHECK(fed.requests[2].keepAlive);
    CHECK(fed.requests[2].body.empty());
  }
}

TEST_CASE("parser: 413 keeps the connection usable when the body can be thrown away",
          "[front][parser]") {
  ParserLimits limits;
  limits.maxBodyBytes = 4;
  const std::string over = "POST /a HTTP/1.1\r\nContent-Length: 6\r\n\r\n123456";
  const std::string chunkedOver =
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  const std::string next = "GET /next HTTP/1.1\r\n\r\n";
  for (const std::string& first : {over, chunkedOver}) {
    for (size_t step : {size_t{1}, size_t{5}, size_t{1000}}) {
      const Fed fed = feed(first + next, step, limits);
      REQUIRE(fed.errors.size() == 1);
      CHECK(fed.errors[0].status == 413);
      CHECK_FALSE(fed.errors[0].close);
      REQUIRE(fed.requests.size() == 1);
      CHECK(fed.requests[0].target == "/next");
    }
  }
  // Declared beyond what is worth reading, or with 100-continue: close.
  limits.maxDiscardBytes = 5;
  Fed fed = feed(over + next, 1000, limits);
  REQUIRE(fed.errors.size() == 1);
  CHECK(fed.errors[0].close);
  CHECK(fed.requests.empty());
}

TEST_CASE("parser: limits on the head", "[front][parser]") {
  ParserLimits limits;
  limits.maxHeaderBytes = 100;
  limits.maxHeaders = 3;
  Fed fed = feed("GET / HTTP/1.1\r\nA: " + std::string(200, 'a') + "\r\n\r\n", 10, limits);
  REQUIRE(fed.errors.size() == 1);
  CHECK(fed.errors[0].status == 431);
  fed = feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 1000, limits);
  REQUIRE(fed.errors.size() == 1);
  CHECK(fed.errors[0].status == 431);
  fed = feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 1000, limits);
  CHECK(fed.errors.empty());
  CHECK(fed.requests.size() == 1);
  // A header value with a NUL byte is refused.
  fed = feed(std::string("GET / HTTP/1.1\r\nA: x\0y\r\n\r\n", 27), 1000);
  REQUIRE(fed.errors.size() == 1);
  CHECK(fed.errors[0].status == 400);
}
