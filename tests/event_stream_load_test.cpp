// The event stream under load: two weftd instances share one
// backend, a WebSocket client is subscribed to `work` on each, and 400 items
// go through submit -> claim -> start -> complete as fast as the agents can
// drive them, through both instances, while three busy loops compete for the
// CPU. Every client must see, for every item, exactly work:submitted,
// work:assigned, work:started and work:completed, once each and in that order:
// whatever the change feed coalesced under load, no transition is lost and no
// event is invented. WEFT_TEST_BACKEND selects nats, redis or sqlite; the
// servers are the test's own.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.h"
#include "support/servers.h"
#include "support/temp_dir.h"
#include "support/test_util.h"
#include "support/weftd.h"
#include "support/ws_client.h"

using namespace weft;
using namespace weft::testing;
using namespace std::chrono_literals;

namespace {

constexpr int kItems = 400;
constexpr int kAgents = 8;
constexpr int kBusyLoops = 3;

// Three processes spinning on the CPU for as long as the object lives.
class CpuPressure {
 public:
  CpuPressure() {
    for (int i = 0; i < kBusyLoops; ++i) {
      ChildOptions options;
      options.argv = {"sh", "-c", "while :; do :; done"};
      loops_.emplace_back(options);
    }
  }
  ~CpuPressure() {
    for (auto& loop : loops_) loop.killAndWait();
  }

 private:
  std::vector<ChildProcess> loops_;
};

// The shared backend: the test's own server, or one SQLite file.
struct SharedBackend {
  std::string name = backendName();
  std::unique_ptr<NatsServer> nats;
  std::unique_ptr<RedisServer> redis;
  std::unique_ptr<TempDir> dir;

  SharedBackend() {
    if (name == "nats") {
      nats = std::make_unique<NatsServer>();
    } else if (name == "redis") {
      redis = std::make_unique<RedisServer>();
    } else if (name == "sqlite") {
      dir = std::make_unique<TempDir>("weft-events-load-");
    } else {
      FAIL("unknown WEFT_TEST_BACKEND '" << name << "': use nats, redis or sqlite");
    }
  }

  WeftdOptions weftdOptions() const {
    WeftdOptions o;
    o.settings["kv.backend"] = name;
    // Generous bounds: the point is what the feed delivers on a starved
    // machine, not how fast a starved backend answers.
    o.settings["kv.timeoutMs"] = "15000";
    o.settings["kv.reconnectWaitMs"] = "200";
    if (nats) o.settings["nats.url"] = nats->url();
    if (redis) o.settings["redis.url"] = redis->url();
    if (dir) o.settings["sqlite.path"] = dir->file("weft.db");
    return o;
  }
};

// Reads a WebSocket client's messages on its own thread and keeps every
// work event, per item, in arrival order.
class EventCollector {
 public:
  explicit EventCollector(int port) : client_(port) {
    client_.subscribe("work");
    thread_ = std::thread([this] { run(); });
  }
  ~EventCollector() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::map<std::string, std::vector<Json>> byItem() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return byItem_;
  }
  int completed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return completed_;
  }
  int total() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return total_;
  }

 private:
  void run() {
    while (!stopping_) {
      auto message = client_.next(200);
      if (!message) continue;
      if (message->getString("type") != "event") continue;
      std::lock_guard<std::mutex> lock(mutex_);
      ++total_;
      const Json& data = message->get("data");
      byItem_[data.getString("workId")].push_back(*message);
      if (message->getString("event") == "work:completed") ++completed_;
    }
  }

  WsClient client_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Json>> byItem_;
  int completed_ = 0;
  int total_ = 0;
};

// What the worker threads saw go wrong; checked on the test thread (Catch2
// assertions are not thread-safe).
class Problems {
 public:
  void add(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (list_.size() < 20) list_.push_back(what);
    ++count_;
  }
  std::vector<std::string> list() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return list_;
  }
  int count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> list_;
  int count_ = 0;
};

Json agentBody(const std::string& guid) {
  Json body = Json::object();
  body.set("guid", Json(guid));
  body.set("handle", Json(guid + "-handle"));
  Json caps = Json::array();
  caps.push(Json("load"));
  body.set("capabilities", std::move(caps));
  return body;
}

Json workBody(int n) {
  Json body = Json::object();
  body.set("capability", Json("load"));
  body.set("boundary", Json("b1"));
  body.set("description", Json("item " + std::to_string(n)));
  return body;
}

Json fenced(const std::string& agent, const std::string& token) {
  Json body = Json::object();
  body.set("agentGuid", Json(agent));
  body.set("claimToken", Json(token));
  return body;
}

}  // namespace

TEST_CASE("two instances, a busy machine: every client hears every item's whole lifecycle") {
  SharedBackend backend;
  Weftd one(backend.weftdOptions());
  Weftd two(backend.weftdOptions());
  REQUIRE(one.waitServing(30s));
  REQUIRE(two.waitServing(30s));
  const int ports[2] = {one.port(), two.port()};

  for (int k = 0; k < kAgents; ++k) {
    HttpResponse r = (k % 2 ? two : one).post("/api/agents", agentBody("agent-" + std::to_string(k)));
    INFO(r.describe());
    REQUIRE((r.status == 201 || r.status == 200));
  }
  // Both instances know every agent before the run starts.
  for (Weftd* w : {&one, &two}) {
    REQUIRE(eventually(
        [&] {
          HttpResponse r = w->get("/api/agents");
          return r.status == 200 && r.json.get("agents").size() == static_cast<size_t>(kAgents);
        },
        30s));
  }

  EventCollector first(ports[0]);
  EventCollector second(ports[1]);

  CpuPressure pressure;
  const auto started = std::chrono::steady_clock::now();
  Problems problems;
  std::atomic<int> submitted{0}, done{0};
  std::mutex idsMutex;
  std::vector<std::string> ids;

  // One submitter per instance, 200 items each.
  std::vector<std::thread> threads;
  for (int s = 0; s < 2; ++s) {
    threads.emplace_back([&, s] {
      HttpClient http(ports[s], 30s);
      for (int n = s; n < kItems; n += 2) {
        HttpResponse r = http.post("/api/work", workBody(n));
        if (r.status != 201) {
          problems.add("submit: " + r.describe());
          continue;
        }
        std::lock_guard<std::mutex> lock(idsMutex);
        ids.push_back(r.json.getString("id"));
        ++submitted;
      }
    });
  }
  // Agents claim on one instance, start on the other, complete on the first,
  // and swap instances for the next item.
  const auto deadline = started + 240s;
  for (int k = 0; k < kAgents; ++k) {
    threads.emplace_back([&, k] {
      const std::string agent = "agent-" + std::to_string(k);
      HttpClient clients[2] = {HttpClient(ports[0], 30s), HttpClient(ports[1], 30s)};
      int side = k % 2;
      while (done < kItems && std::chrono::steady_clock::now() < deadline) {
        Json claimBody = Json::object();
        claimBody.set("agentGuid", Json(agent));
        HttpResponse c = clients[side].post("/api/work/claim", claimBody);
        if (c.status == 204) {
          std::this_thread::sleep_for(20ms);
          continue;
        }
        if (c.status != 200) {
          problems.add(agent + " claim: " + c.describe());
          std::this_thread::sleep_for(50ms);
          continue;
        }
        const std::string id = c.json.getString("id");
        const Json fence = fenced(agent, c.json.getString("claimToken"));
        HttpResponse st = clients[1 - side].post("/api/work/" + id + "/start", fence);
        if (st.status != 200) problems.add(agent + " start " + id + ": " + st.describe());
        HttpResponse co = clients[side].post("/api/work/" + id + "/complete", fence);
        if (co.status != 200) {
          problems.add(agent + " complete " + id + ": " + co.describe());
        } else {
          ++done;
        }
        side = 1 - side;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double driveMs = elapsedMs(started);

  for (const auto& p : problems.list()) UNSCOPED_INFO("problem: " << p);
  CHECK(problems.count() == 0);
  REQUIRE(submitted == kItems);
  REQUIRE(done == kItems);

  // Every client hears every completion.
  const bool heard = eventually(
      [&] { return first.completed() >= kItems && second.completed() >= kItems; }, 120s);
  const double heardMs = elapsedMs(started);
  INFO("completions heard: " << first.completed() << " and " << second.completed());
  CHECK(heard);

  const std::vector<std::string> lifecycle = {"work:submitted", "work:assigned", "work:started",
                                              "work:completed"};
  int clientNo = 0;
  for (const EventCollector* collector : {&first, &second}) {
    ++clientNo;
    const auto events = collector->byItem();
    INFO("client of instance " << clientNo);
    CHECK(events.size() == static_cast<size_t>(kItems));
    int wrong = 0;
    for (const auto& id : ids) {
      auto it = events.find(id);
      std::vector<std::string> names;
      if (it != events.end()) {
        for (const auto& e : it->second) names.push_back(e.getString("event"));
      }
      if (names != lifecycle) {
        if (++wrong <= 5) {
          std::string shown;
          for (auto& n : names) shown += n + " ";
          UNSCOPED_INFO("item " << id << " events: " << shown);
        }
        continue;
      }
      const Json& assigned = it->second[1].get("data");
      const Json& completed = it->second[3].get("data");
      if (assigned.getString("assignedTo").empty() ||
          assigned.getString("assignedTo") != completed.getString("assignedTo") ||
          assigned.getInt("attempts", 0) != 1) {
        if (++wrong <= 5) UNSCOPED_INFO("item " << id << ": " << assigned.dump() << " / " << completed.dump());
      }
    }
    CHECK(wrong == 0);
    // Nothing but these four events, for nothing but these items.
    CHECK(collector->total() == kItems * 4);
  }
  std::printf("[events_load.%s] %d items through 2 instances under %d busy loops: driven in %.0f ms, "
              "all completions heard after %.0f ms; events per client %d and %d\n",
              backend.name.c_str(), kItems, kBusyLoops, driveMs, heardMs, first.total(),
              second.total());
  std::fflush(stdout);
}
