// Work delivery through a real weftd over HTTP, on every backend
// (WEFT_TEST_BACKEND; ctest runs delivery_http.<backend>): delayed work,
// retry backoff and long-poll claims (waitMs): the item submitted while a
// claim waits, 204 when waitMs runs out, one item waking one waiter among
// several, a client that disconnects, shutdown, and a claim waiting on one
// instance woken by a submit through another (two weftd on one backend; on
// sqlite two processes on one database file).
//
// Every case starts its own backend server (nats, redis) or database file
// (sqlite) and weftd; a server that cannot start fails the case, it never
// skips. The number of parked claims is read from /metrics
// (weft_claims_waiting), so no case sleeps to synchronise.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/net.h"
#include "support/servers.h"
#include "support/temp_dir.h"
#include "support/test_util.h"
#include "support/weftd.h"
#include "weft/clock.h"
#include "weft/json.h"

namespace {

using namespace std::chrono_literals;
using weft::Json;
using weft::testing::backendName;
using weft::testing::eventually;
using weft::testing::HttpClient;
using weft::testing::HttpResponse;
using weft::testing::Weftd;
using weft::testing::WeftdOptions;
using Settings = std::map<std::string, std::string>;
using SteadyClock = std::chrono::steady_clock;

struct Backend {
  std::string name;
  std::unique_ptr<weft::testing::NatsServer> nats;
  std::unique_ptr<weft::testing::RedisServer> redis;
  std::unique_ptr<weft::testing::TempDir> dir;

  Settings settings() const {
    Settings s{{"kv.backend", name}, {"kv.reconnectWaitMs", "200"},
               {"work.sweepIntervalMs", "200"}};
    if (nats) s["nats.url"] = nats->url();
    if (redis) s["redis.url"] = redis->url();
    if (dir) s["sqlite.path"] = dir->file("weft.db");
    return s;
  }
};

std::unique_ptr<Backend> startBackend() {
  auto b = std::make_unique<Backend>();
  b->name = backendName();
  if (b->name == "nats") {
    b->nats = std::make_unique<weft::testing::NatsServer>();
  } else if (b->name == "redis") {
    b->redis = std::make_unique<weft::testing::RedisServer>();
  } else if (b->name == "sqlite") {
    b->dir = std::make_unique<weft::testing::TempDir>("weft-delivery-sqlite-");
  } else {
    FAIL("unknown WEFT_TEST_BACKEND '" << b->name << "': use nats, redis or sqlite");
  }
  return b;
}

std::unique_ptr<Weftd> startWeftd(const Backend& b, const Settings& extra = {}) {
  WeftdOptions options;
  options.settings = b.settings();
  for (const auto& [k, v] : extra) options.settings[k] = v;
  auto weftd = std::make_unique<Weftd>(options);
  if (!weftd->waitServing(30s)) FAIL("weftd did not serve GET /api/stats within 30 s");
  return weftd;
}

Json parse(const std::string& text) { return Json::parse(text).value(); }

void registerAgent(Weftd& w, const std::string& guid, const std::string& capability = "cpp") {
  HttpResponse r = w.post("/api/agents", parse(R"({"guid":")" + guid + R"(","handle":")" + guid +
                                               R"(","capabilities":[")" + capability + R"("]})"));
  INFO(r.describe());
  REQUIRE((r.status == 201 || r.status == 200));
}

std::string submit(Weftd& w, const std::string& extra = "", const std::string& capability = "cpp") {
  HttpResponse r = w.post("/api/work", parse(R"({"boundary":"b","capability":")" + capability +
                                             R"(","description":"d")" +
                                             (extra.empty() ? "" : "," + extra) + "}"));
  REQUIRE_STATUS(r, 201);
  return r.json.getString("id");
}

Json getWork(Weftd& w, const std::string& id) {
  HttpResponse r = w.get("/api/work/" + id);
  REQUIRE_STATUS(r, 200);
  return r.json;
}

// A claim on its own connection (for requests that wait).
HttpResponse claimOn(HttpClient& client, const std::string& agent, int waitMs) {
  return client.post("/api/work/claim",
                     parse(R"({"agentGuid":")" + agent + R"(","waitMs":)" +
                           std::to_string(waitMs) + "}"));
}

// weft_claims_waiting from /metrics; -1 when it cannot be read.
int parkedClaims(Weftd& w) {
  HttpResponse r = w.get("/metrics");
  if (r.status != 200) return -1;
  const std::string name = "\nweft_claims_waiting ";
  const size_t at = r.body.find(name);
  if (at == std::string::npos) return -1;
  return std::atoi(r.body.c_str() + at + name.size());
}

void requireParked(Weftd& w, int n) {
  INFO("waiting for " << n << " parked claims");
  REQUIRE(eventually([&] { return parkedClaims(w) == n; }, 30s));
}

int64_t nowMs() { return weft::SystemClock::instance().nowMs(); }

// A long-poll claim (waitMs 30000) by agent on its own connection to w:
// once it is parked, runs act (which makes an item claimable); returns the
// claim's response and the ms from act's start to the response.
std::pair<HttpResponse, double> longPollAround(Weftd& w, const std::string& agent,
                                               const std::function<void()>& act) {
  HttpClient client(w.port(), 60s);
  auto waiting = std::async(std::launch::async, [&] { return claimOn(client, agent, 30000); });
  requireParked(w, 1);
  const auto start = SteadyClock::now();
  act();
  REQUIRE(waiting.wait_for(30s) == std::future_status::ready);
  HttpResponse r = waiting.get();
  return {r, std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count()};
}

// Claims (without waiting) until an item comes: every answer before that
// must be 204, and the 200 must not come before dueMs. Returns the 200.
HttpResponse claimWhenDue(Weftd& w, const std::string& agent, int64_t dueMs) {
  HttpResponse claimed;
  REQUIRE(eventually(
      [&] {
        claimed = w.post("/api/work/claim", parse(R"({"agentGuid":")" + agent + "\"}"));
        if (claimed.status == 200) return true;
        CHECK(claimed.status == 204);
        return false;
      },
      30s));
  CHECK(nowMs() >= dueMs);
  return claimed;
}

}  // namespace

TEST_CASE("delayed work: not claimable before nextAttemptAt, claimable after", "[delayed]") {
  auto backend = startBackend();
  auto weftd = startWeftd(*backend);
  registerAgent(*weftd, "a1");
  const int64_t submittedAt = nowMs();
  const std::string id = submit(*weftd, R"("delayMs":1500)");
  Json item = getWork(*weftd, id);
  CHECK(item.getString("status") == "pending");
  const auto due = weft::parseIso(item.getString("nextAttemptAt"));
  REQUIRE(due.has_value());
  CHECK(*due >= submittedAt + 1500);
  CHECK(*due <= nowMs() + 1500);
  // Listed with the time.
  HttpResponse list = weftd->get("/api/work?status=pending");
  REQUIRE_STATUS(list, 200);
  REQUIRE(list.json.get("workItems").asArray().size() == 1);
  CHECK(list.json.get("workItems").asArray()[0].getString("nextAttemptAt") ==
        item.getString("nextAttemptAt"));

  // Every claim before the due time is a 204; the first 200 comes at or after it.
  HttpResponse claimed = claimWhenDue(*weftd, "a1", *due);
  CHECK(claimed.json.getString("id") == id);
  CHECK(claimed.json.find("nextAttemptAt") == nullptr);

  // Field rules.
  HttpResponse bad = weftd->post(
      "/api/work", parse(R"({"boundary":"b","capability":"cpp","description":"d","notBefore":"soon"})"));
  CHECK(bad.status == 400);
  CHECK(bad.message() ==
        "notBefore must be an ISO 8601 date-time string (e.g. 2026-12-04T10:00:00Z)");
}

TEST_CASE("retry backoff: a failed item shows nextAttemptAt and is not claimable before it",
          "[backoff]") {
  auto backend = startBackend();
  auto weftd = startWeftd(*backend);
  registerAgent(*weftd, "a1");
  const std::string id =
      submit(*weftd, R"("retry":{"backoff":"fixed","baseDelayMs":1500,"jitterPercent":0})");
  HttpResponse first = weftd->post("/api/work/claim", parse(R"({"agentGuid":"a1"})"));
  REQUIRE_STATUS(first, 200);
  const int64_t failedAt = nowMs();
  HttpResponse failed = weftd->post(
      "/api/work/" + id + "/fail",
      parse(R"({"agentGuid":"a1","claimToken":")" + first.json.getString("claimToken") +
            R"(","error":{"message":"dependency down","recoverable":true}})"));
  REQUIRE_STATUS(failed, 200);
  CHECK(failed.json.getString("status") == "pending");
  const auto due = weft::parseIso(failed.json.getString("nextAttemptAt"));
  REQUIRE(due.has_value());
  CHECK(*due >= failedAt + 1500);
  CHECK(*due <= nowMs() + 1500);
  CHECK(getWork(*weftd, id).getString("nextAttemptAt") == failed.json.getString("nextAttemptAt"));

  HttpResponse again = claimWhenDue(*weftd, "a1", *due);
  CHECK(again.json.getString("id") == id);
  CHECK(again.json.getInt("attempts") == 2);
}

TEST_CASE("long poll: returns the item submitted while it waits, 204 after waitMs", "[longpoll]") {
  auto backend = startBackend();
  auto weftd = startWeftd(*backend);
  registerAgent(*weftd, "a1");

  HttpResponse bad = weftd->post("/api/work/claim", parse(R"({"agentGuid":"a1","waitMs":30001})"));
  CHECK(bad.status == 400);
  CHECK(bad.message() == "waitMs must be an integer between 0 and 30000");

  // Nothing comes: 204 once waitMs passed, not before.
  {
    HttpClient client(weftd->port(), 60s);
    const auto start = SteadyClock::now();
    HttpResponse r = claimOn(client, "a1", 700);
    CHECK(r.status == 204);
    CHECK(SteadyClock::now() - start >= 700ms);
  }

  std::string id;
  auto [r, latencyMs] = longPollAround(*weftd, "a1", [&] { id = submit(*weftd); });
  REQUIRE_STATUS(r, 200);
  CHECK(r.json.getString("id") == id);
  CHECK(r.json.getString("claimToken") != "");
  CHECK(getWork(*weftd, id).getString("assignedTo") == "a1");
  CHECK(parkedClaims(*weftd) == 0);
  std::printf("[delivery_http.%s] submit -> long-poll claim response: %.1f ms\n",
              backend->name.c_str(), latencyMs);
}

TEST_CASE("long poll: one item wakes one waiter among several", "[longpoll]") {
  auto backend = startBackend();
  auto weftd = startWeftd(*backend);
  constexpr int kWaiters = 5;
  std::vector<std::unique_ptr<HttpClient>> clients;
  std::vector<std::future<HttpResponse>> waits;
  for (int i = 0; i < kWaiters; ++i) {
    const std::string agent = "a" + std::to_string(i);
    registerAgent(*weftd, agent);
    clients.push_back(std::make_unique<HttpClient>(weftd->port(), 60s));
    HttpClient* c = clients.back().get();
    waits.push_back(std::async(std::launch::async, [c, agent] { return claimOn(*c, agent, 30000); }));
  }
  requireParked(*weftd, kWaiters);
  const std::string first = submit(*weftd);
  // Exactly one waiter is answered; the others stay parked.
  int answered = -1;
  REQUIRE(eventually(
      [&] {
        for (int i = 0; i < kWaiters; ++i) {
          if (waits[i].valid() && waits[i].wait_for(0s) == std::future_status::ready) {
            answered = i;
            return true;
          }
        }
        return false;
      },
      30s));
  HttpResponse r = waits[answered].get();
  REQUIRE_STATUS(r, 200);
  CHECK(r.json.getString("id") == first);
  requireParked(*weftd, kWaiters - 1);
  for (int i = 0; i < kWaiters; ++i) {
    if (i != answered) CHECK(waits[i].wait_for(0s) == std::future_status::timeout);
  }
  // The rest get one item each.
  std::set<std::string> submitted;
  for (int i = 1; i < kWaiters; ++i) submitted.insert(submit(*weftd));
  std::set<std::string> got;
  for (int i = 0; i < kWaiters; ++i) {
    if (i == answered) continue;
    REQUIRE(waits[i].wait_for(30s) == std::future_status::ready);
    HttpResponse w = waits[i].get();
    REQUIRE_STATUS(w, 200);
    got.insert(w.json.getString("id"));
  }
  CHECK(got == submitted);
}

TEST_CASE("long poll: a client that disconnects drops its wait and claims nothing",
          "[longpoll]") {
  auto backend = startBackend();
  auto weftd = startWeftd(*backend);
  registerAgent(*weftd, "gone");
  registerAgent(*weftd, "other");
  const int fd = weft::testing::connectLoopback(weftd->port());
  REQUIRE(fd >= 0);
  const std::string body = R"({"agentGuid":"gone","waitMs":30000})";
  const std::string request = "POST /api/work/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Content-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  requireParked(*weftd, 1);
  ::close(fd);
  requireParked(*weftd, 0);
  const std::string id = submit(*weftd);
  HttpResponse r = weftd->post("/api/work/claim", parse(R"({"agentGuid":"other"})"));
  REQUIRE_STATUS(r, 200);
  CHECK(r.json.getString("id") == id);
  CHECK(r.json.getString("assignedTo") == "other");
}

TEST_CASE("long poll: shutdown answers waiting claims 204 at once", "[longpoll]") {
  auto backend = startBackend();
  auto weftd = startWeftd(*backend);
  registerAgent(*weftd, "a1");
  HttpClient client(weftd->port(), 60s);
  auto waiting = std::async(std::launch::async, [&] { return claimOn(client, "a1", 30000); });
  requireParked(*weftd, 1);
  const auto start = SteadyClock::now();
  auto exit = weftd->terminate(20s);
  REQUIRE(waiting.wait_for(30s) == std::future_status::ready);
  HttpResponse r = waiting.get();
  CHECK(r.status == 204);
  // Well before the 30 s wait and the 10 s drain.
  CHECK(SteadyClock::now() - start < 8s);
  REQUIRE(exit.has_value());
  CHECK(exit->exited);
  CHECK(exit->code == 0);
}

TEST_CASE("long poll: a delayed item coming due wakes a waiting claim", "[longpoll][delayed]") {
  auto backend = startBackend();
  auto weftd = startWeftd(*backend);
  registerAgent(*weftd, "a1");
  const std::string id = submit(*weftd, R"("delayMs":1500)");
  const auto due = weft::parseIso(getWork(*weftd, id).getString("nextAttemptAt"));
  REQUIRE(due.has_value());
  HttpClient client(weftd->port(), 60s);
  HttpResponse r = claimOn(client, "a1", 30000);
  REQUIRE_STATUS(r, 200);
  CHECK(r.json.getString("id") == id);
  CHECK(nowMs() >= *due);
}

TEST_CASE("long poll: a claim waiting on one instance gets an item submitted through another",
          "[longpoll][multi]") {
  auto backend = startBackend();
  auto a = startWeftd(*backend);
  auto b = startWeftd(*backend);
  registerAgent(*a, "a1");
  std::string id;
  auto [r, latencyMs] = longPollAround(*a, "a1", [&] { id = submit(*b); });
  REQUIRE_STATUS(r, 200);
  CHECK(r.json.getString("id") == id);
  std::printf("[delivery_http.%s] submit on B -> long-poll claim response on A: %.1f ms\n",
              backend->name.c_str(), latencyMs);
}
