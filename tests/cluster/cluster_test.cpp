// Scale-out on a replicated NATS cluster, under faults.
//
// Three nats-server nodes form one JetStream cluster on loopback; two weftd
// instances use it with three-replica buckets; eight agents claim, start and
// complete (or now and then fail) work through both instances while a
// submitter feeds items. A nemesis injects one fault at a time, in a seeded
// random order (WEFT_TEST_SEED): kill -9 and restart of a nats node (the
// work bucket's stream leader half of the time), SIGSTOP/SIGCONT of a node,
// a network partition that cuts one node off from the others and from its
// clients, kill -9 and restart of a weftd. Every request and its answer go into a
// history, which the checker (history.h) reads afterwards: no double grant, no
// stale-token transition, no completion accepted twice, no acknowledged
// submit lost, every item completed or dead-lettered; and the longest write
// unavailability per fault kind is printed.
//
// The positive control runs the same workload, without faults, with
// nats.casGuard=off (the server's native compare-and-set, not exclusive on
// replicated buckets of nats-server 2.9.10): the checker must find double
// grants there, which shows it can.
#include <nats/nats.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cluster/history.h"
#include "support/net.h"
#include "support/servers.h"
#include "support/tcp_proxy.h"
#include "support/temp_dir.h"
#include "support/test_util.h"
#include "support/weftd.h"
#include "support/ws_client.h"

using namespace weft;
using namespace weft::testing;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr int kNodes = 3;
constexpr int kAgents = 8;

// Three clustered nats-server nodes n1..n3 on loopback, wired through TCP
// proxies (tests/support/tcp_proxy.h) so that one node can be cut off:
//  * every client reaches node i through clientProxy[i], and clients are told
//    only the URLs they are given (--no_advertise);
//  * node i dials node j's route port through its own proxy route[i][j], and
//    every node advertises a dead route address, so no node ever connects to
//    another except through these proxies (no implicit routes).
// isolate(k) refuses and resets every proxy to, from and for clients of k;
// heal(k) lets connections through again (explicit routes are retried).
class NatsCluster {
 public:
  NatsCluster() {
    std::set<int> taken;
    auto fresh = [&] {
      for (;;) {
        int p = findFreePort();
        if (taken.insert(p).second) return p;
      }
    };
    std::vector<int> ports, routes;
    for (int i = 0; i < kNodes; ++i) ports.push_back(fresh());
    for (int i = 0; i < kNodes; ++i) routes.push_back(fresh());
    for (int i = 0; i < kNodes; ++i) {
      clientProxy_.push_back(std::make_unique<TcpProxy>(ports[i]));
      for (int j = 0; j < kNodes; ++j) {
        routeProxy_[{i, j}] = i == j ? nullptr : std::make_unique<TcpProxy>(routes[j]);
      }
    }
    for (int i = 0; i < kNodes; ++i) {
      std::string routeList;
      for (int j = 0; j < kNodes; ++j) {
        if (j != i) routeList += (routeList.empty() ? "" : ",") + url(routeProxy_[{i, j}]->port());
      }
      ServerOptions o;
      o.port = ports[i];
      o.extraArgs = {"-n", "n" + std::to_string(i + 1), "--cluster_name", "weft",
                     "--cluster", url(routes[i]), "--routes", routeList,
                     "--cluster_advertise", "127.0.0.1:1", "--no_advertise"};
      nodes_.push_back(std::make_unique<NatsServer>(o));
    }
  }

  static std::string url(int port) { return "nats://127.0.0.1:" + std::to_string(port); }
  NatsServer& node(int i) { return *nodes_[static_cast<size_t>(i)]; }
  // Every node's client proxy, starting with `first`.
  std::string urls(int first) const {
    std::string out;
    for (int k = 0; k < kNodes; ++k) {
      out += (out.empty() ? "" : ",") +
             url(clientProxy_[static_cast<size_t>((first + k) % kNodes)]->port());
    }
    return out;
  }

  void isolate(int k) { cut(k, true); }
  void heal(int k) { cut(k, false); }

  // What each running node says about the stream: its leader, sequences and
  // replicas (for the report of a run that did not drain).
  std::string describe(const std::string& stream) {
    std::string out;
    for (int i = 0; i < kNodes; ++i) {
      out += "\n  node n" + std::to_string(i + 1) + ": ";
      if (!node(i).running()) {
        out += "not running";
        continue;
      }
      jsErrCode ec = static_cast<jsErrCode>(0);
      const natsStatus s = withStreamInfo(i, stream, 2000, &ec, [&](const jsStreamInfo& si) {
        out += "last seq " + std::to_string(si.State.LastSeq) + ", msgs " +
               std::to_string(si.State.Msgs);
        if (!si.Cluster) return;
        out += std::string(", leader ") + (si.Cluster->Leader ? si.Cluster->Leader : "none");
        for (int r = 0; r < si.Cluster->ReplicasLen; ++r) {
          const jsPeerInfo* peer = si.Cluster->Replicas[r];
          out += std::string("; replica ") + peer->Name +
                 (peer->Current ? " current" : " NOT current") + (peer->Offline ? " offline" : "") +
                 " lag " + std::to_string(peer->Lag) + " active " +
                 std::to_string(peer->Active / 1000000) + " ms ago";
        }
      });
      if (s != NATS_OK) {
        out += std::string("stream info failed: ") + natsStatus_GetText(s) + " (" +
               std::to_string(static_cast<int>(ec)) + ")";
      }
    }
    return out;
  }

  // The node index leading stream's Raft group, -1 when unknown now.
  int leaderOf(const std::string& stream) {
    for (int i = 0; i < kNodes; ++i) {
      if (!node(i).running()) continue;
      int leader = -1;
      withStreamInfo(i, stream, 1000, nullptr, [&](const jsStreamInfo& si) {
        if (!si.Cluster || !si.Cluster->Leader) return;
        const std::string name = si.Cluster->Leader;
        if (name.size() == 2 && name[0] == 'n') leader = name[1] - '1';
      });
      if (leader >= 0) return leader;
    }
    return -1;
  }

  // Asks node i (directly, not through its proxy) for the stream's info and
  // calls f with it; returns the request's status.
  template <typename F>
  natsStatus withStreamInfo(int i, const std::string& stream, int64_t waitMs, jsErrCode* ec, F&& f) {
    natsOptions* opts = nullptr;
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    jsStreamInfo* si = nullptr;
    natsStatus s = NATS_ERR;
    if (natsOptions_Create(&opts) == NATS_OK &&
        natsOptions_SetURL(opts, url(node(i).port()).c_str()) == NATS_OK &&
        natsOptions_SetTimeout(opts, 1000) == NATS_OK &&
        (s = natsConnection_Connect(&nc, opts)) == NATS_OK &&
        (s = natsConnection_JetStream(&js, nc, nullptr)) == NATS_OK) {
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.Wait = waitMs;
      s = js_GetStreamInfo(&si, js, stream.c_str(), &jo, ec);
      if (s == NATS_OK && si) f(*si);
    }
    if (si) jsStreamInfo_Destroy(si);
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
    if (opts) natsOptions_Destroy(opts);
    return s;
  }

 private:
  void cut(int k, bool on) {
    std::vector<TcpProxy*> proxies{clientProxy_[static_cast<size_t>(k)].get()};
    for (int j = 0; j < kNodes; ++j) {
      if (j == k) continue;
      proxies.push_back(routeProxy_[{k, j}].get());
      proxies.push_back(routeProxy_[{j, k}].get());
    }
    for (TcpProxy* p : proxies) {
      p->refuse(on);
      if (on) p->resetAll();
    }
  }

  // Declared before the nodes, so the servers stop before their proxies.
  std::vector<std::unique_ptr<TcpProxy>> clientProxy_;
  std::map<std::pair<int, int>, std::unique_ptr<TcpProxy>> routeProxy_;
  std::vector<std::unique_ptr<NatsServer>> nodes_;
};

int64_t nowMs(SteadyClock::time_point origin) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - origin).count();
}

// The shared state of one run: the history and the instances' ports.
struct Run {
  SteadyClock::time_point origin = SteadyClock::now();
  std::vector<int> ports;
  std::mutex mu;
  std::vector<Op> history;
  std::atomic<bool> stopSubmitting{false}, stopAgents{false};
  std::atomic<int> submitted{0};

  void record(Op op) {
    std::lock_guard<std::mutex> lock(mu);
    history.push_back(std::move(op));
  }
  std::vector<Op> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return history;
  }
};

HttpResponse call(HttpClient& http, const std::string& path, const Json& body, Run& run, Op& op) {
  op.sentMs = nowMs(run.origin);
  HttpResponse r = http.post(path, body);
  op.answeredMs = nowMs(run.origin);
  op.status = r.status;
  return r;
}

void submitter(Run& run, int maxItems) {
  std::vector<std::unique_ptr<HttpClient>> http;
  for (int port : run.ports) http.push_back(std::make_unique<HttpClient>(port, 5s));
  for (int n = 0; n < maxItems && !run.stopSubmitting; ++n) {
    Json body = Json::object();
    body.set("capability", Json("chaos"));
    body.set("boundary", Json("b1"));
    body.set("description", Json("item " + std::to_string(n)));
    body.set("maxAttempts", Json(20));
    Op op;
    op.kind = Op::Kind::Submit;
    op.instance = n % static_cast<int>(http.size());
    HttpResponse r = call(*http[static_cast<size_t>(op.instance)], "/api/work", body, run, op);
    if (r.status == 201) {
      op.itemId = r.json.getString("id");
      ++run.submitted;
    }
    run.record(op);
    std::this_thread::sleep_for(30ms);
  }
}

// One agent: claim on one instance, start on the other, complete (or fail
// one time in ten) on the first; an operation that gets no answer or a 503 is
// tried again on the other instance, a 409 gives the item up.
void agent(Run& run, int k, uint32_t seed) {
  const std::string guid = "agent-" + std::to_string(k);
  std::vector<std::unique_ptr<HttpClient>> http;
  for (int port : run.ports) http.push_back(std::make_unique<HttpClient>(port, 5s));
  std::mt19937 rng(seed);
  int side = k % 2;
  auto fenced = [&](const std::string& token) {
    Json b = Json::object();
    b.set("agentGuid", Json(guid));
    b.set("claimToken", Json(token));
    return b;
  };
  // Sends op until it is answered with something other than 503 / no answer.
  auto persist = [&](Op base, const std::string& path, const Json& body, int first) {
    for (int attempt = 0; attempt < 8 && !run.stopAgents; ++attempt) {
      Op op = base;
      op.instance = (first + attempt) % 2;
      HttpResponse r = call(*http[static_cast<size_t>(op.instance)], path, body, run, op);
      run.record(op);
      if (r.status != 0 && r.status != 503) return r.status;
      std::this_thread::sleep_for(200ms);
    }
    return 0;
  };
  while (!run.stopAgents) {
    Json claimBody = Json::object();
    claimBody.set("agentGuid", Json(guid));
    Op claim;
    claim.kind = Op::Kind::Claim;
    claim.agent = guid;
    claim.instance = side;
    HttpResponse c = call(*http[static_cast<size_t>(side)], "/api/work/claim", claimBody, run, claim);
    if (c.status == 200) {
      claim.itemId = c.json.getString("id");
      claim.token = c.json.getString("claimToken");
      claim.attempt = c.json.getInt("attempts", 0);
    }
    run.record(claim);
    if (c.status != 200) {
      side = 1 - side;
      std::this_thread::sleep_for(c.status == 204 ? 50ms : 200ms);
      continue;
    }
    Op base;
    base.agent = guid;
    base.itemId = claim.itemId;
    base.token = claim.token;
    base.kind = Op::Kind::Start;
    if (persist(base, "/api/work/" + claim.itemId + "/start", fenced(claim.token), 1 - side) == 200) {
      const bool failIt = rng() % 10 == 0;
      base.kind = failIt ? Op::Kind::Fail : Op::Kind::Complete;
      Json body = fenced(claim.token);
      if (failIt) {
        Json error = Json::object();
        error.set("message", Json("chaos says no"));
        error.set("recoverable", Json(true));
        body.set("error", std::move(error));
      }
      persist(base, "/api/work/" + claim.itemId + (failIt ? "/fail" : "/complete"), body, side);
    }
    side = 1 - side;
  }
}

// A WebSocket subscriber of one instance that reconnects whenever the
// instance goes away; every work event it hears is kept with the number of
// the connection (session) that carried it.
class EventWatcher {
 public:
  struct Heard {
    int session = 0;
    std::string event, itemId;
    int64_t attempts = 0;
  };
  explicit EventWatcher(int port) : port_(port), thread_([this] { run(); }) {}
  ~EventWatcher() {
    stop_ = true;
    thread_.join();
  }
  std::vector<Heard> heard() {
    std::lock_guard<std::mutex> lock(mu_);
    return heard_;
  }

 private:
  void run() {
    int session = 0;
    while (!stop_) {
      try {
        WsClient client(port_);
        Json m = Json::object();
        m.set("type", Json("subscribe"));
        m.set("topic", Json("work"));
        client.sendJson(m);
        ++session;
        while (!stop_) {
          WsClient::In in = client.read(200);
          if (in.kind == WsClient::In::Closed) break;
          if (in.kind != WsClient::In::Frame || in.opcode != Poco::Net::WebSocket::FRAME_OP_TEXT) {
            continue;
          }
          auto parsed = Json::parse(in.payload);
          if (!parsed || parsed->getString("type") != "event") continue;
          const Json& data = parsed->get("data");
          std::lock_guard<std::mutex> lock(mu_);
          heard_.push_back(Heard{session, parsed->getString("event"), data.getString("workId"),
                                 data.getInt("attempts", 0)});
        }
      } catch (const std::exception&) {
        // The instance is down or restarting: try again shortly.
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  const int port_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Heard> heard_;
  std::thread thread_;
};

// What the event streams said that the final states contradict: an event
// heard twice in one session, or an end state the item never reached.
std::vector<std::string> checkEvents(const std::vector<EventWatcher::Heard>& heard,
                                     const std::map<std::string, std::string>& finalStates) {
  std::vector<std::string> problems;
  std::set<std::tuple<int, std::string, std::string, int64_t>> seen;
  for (const auto& h : heard) {
    // started carries no attempt number, so a second attempt's start looks
    // like the first's: only the events that name their attempt (or happen
    // once per item) are checked for repeats.
    if (h.event == "work:progress" || h.event == "work:started") continue;
    if (!seen.insert({h.session, h.event, h.itemId, h.attempts}).second) {
      problems.push_back(h.event + " for " + h.itemId + " twice in session " +
                         std::to_string(h.session));
    }
    auto it = finalStates.find(h.itemId);
    if (h.event == "work:completed" && it != finalStates.end() && it->second != "completed") {
      problems.push_back("work:completed for " + h.itemId + ", which ended " + it->second);
    }
  }
  return problems;
}

WeftdOptions weftdOptions(const NatsCluster& cluster, int first, bool guarded) {
  WeftdOptions o;
  o.settings = {{"kv.backend", "nats"},
                {"nats.url", cluster.urls(first)},
                {"nats.replicas", "3"},
                {"nats.casGuard", guarded ? "auto" : "off"},
                {"kv.timeoutMs", "2000"},
                {"kv.reconnectWaitMs", "200"},
                {"work.sweepIntervalMs", "500"},
                {"work.leaseMs", "8000"},
                {"agents.staleAfterMs", "600000"}};
  return o;
}

void registerAgents(Weftd& w) {
  for (int k = 0; k < kAgents; ++k) {
    Json body = Json::object();
    body.set("guid", Json("agent-" + std::to_string(k)));
    body.set("handle", Json("agent-" + std::to_string(k)));
    Json caps = Json::array();
    caps.push(Json("chaos"));
    body.set("capabilities", std::move(caps));
    HttpResponse r;
    REQUIRE(eventually(
        [&] {
          r = w.post("/api/agents", body);
          return r.status == 201 || r.status == 200;
        },
        30s));
  }
}

// The items at the end, by id: status, found by either instance.
std::map<std::string, std::string> finalStates(Weftd& w, const std::vector<Op>& history) {
  std::map<std::string, std::string> out;
  for (const Op& op : history) {
    if (op.kind != Op::Kind::Submit || op.status != 201) continue;
    HttpResponse r;
    eventually(
        [&] {
          r = w.get("/api/work/" + op.itemId);
          return r.status == 200 || r.status == 404;
        },
        10s);
    if (r.status == 200) out[op.itemId] = r.json.getString("status");
  }
  return out;
}

uint32_t seedFromEnv() {
  if (const char* s = std::getenv("WEFT_TEST_SEED")) return static_cast<uint32_t>(std::stoul(s));
  return std::random_device{}();
}

}  // namespace

TEST_CASE("the checker finds double grants, stale tokens and lost submits", "[cluster-unit]") {
  auto op = [](Op::Kind kind, std::string item, std::string agent, std::string token,
               int64_t attempt, int64_t sent, int64_t answered, int status) {
    Op o;
    o.kind = kind;
    o.itemId = std::move(item);
    o.agent = std::move(agent);
    o.token = std::move(token);
    o.attempt = attempt;
    o.sentMs = sent;
    o.answeredMs = answered;
    o.status = status;
    return o;
  };
  std::vector<Op> h = {
      op(Op::Kind::Submit, "i1", "", "", 0, 0, 1, 201),
      op(Op::Kind::Submit, "i2", "", "", 0, 0, 1, 201),
      op(Op::Kind::Submit, "i3", "", "", 0, 0, 1, 201),
      // i1: two agents granted attempt 1.
      op(Op::Kind::Claim, "i1", "a", "t1", 1, 2, 3, 200),
      op(Op::Kind::Claim, "i1", "b", "t2", 1, 2, 4, 200),
      // i2: attempt 2 granted at 10, then attempt 1's token accepted at 12.
      op(Op::Kind::Claim, "i2", "a", "u1", 1, 2, 3, 200),
      op(Op::Kind::Claim, "i2", "b", "u2", 2, 9, 10, 200),
      op(Op::Kind::Complete, "i2", "a", "u1", 0, 12, 13, 200),
      op(Op::Kind::Complete, "i2", "b", "u2", 0, 14, 15, 200),
      // Clean: i3 claimed once, completed once; a 503 of unknown outcome.
      op(Op::Kind::Claim, "i3", "c", "v1", 1, 2, 3, 200),
      op(Op::Kind::Complete, "i3", "c", "v1", 0, 4, 5, 503),
      op(Op::Kind::Complete, "i3", "c", "v1", 0, 6, 7, 200),
  };
  Violations v = checkHistory(h, {"i1", "i2"});
  CHECK(v.doubleGrants.size() == 1);
  CHECK(v.staleTokens.size() == 1);
  CHECK(v.doubleCompletions.size() == 1);  // i2 completed by both
  CHECK(v.lostSubmits == std::vector<std::string>{"i3"});
  CHECK(longestWriteGapMs(h, 5, 8) == 3);  // 4 -> 7 and 7 -> 10 overlap [5, 8]
  Violations clean = checkHistory({h[2], h[9], h[11]}, {"i3"});
  CHECK(clean.total() == 0);
}

TEST_CASE("positive control: native compare-and-set on replicated buckets grants twice",
          "[cluster]") {
  NatsCluster cluster;
  Weftd one(weftdOptions(cluster, 0, false));
  Weftd two(weftdOptions(cluster, 1, false));
  REQUIRE(one.waitServing(60s));
  REQUIRE(two.waitServing(60s));
  registerAgents(one);
  Run run;
  run.ports = {one.port(), two.port()};
  std::vector<std::thread> threads;
  const uint32_t seed = seedFromEnv();
  for (int k = 0; k < kAgents; ++k) threads.emplace_back(agent, std::ref(run), k, seed + k);
  // Submissions in a burst, so the agents race for them.
  std::thread feed([&] { submitter(run, 400); });
  feed.join();
  eventually(
      [&] {
        int done = 0;
        for (const Op& op : run.snapshot()) {
          if (op.kind == Op::Kind::Complete && op.status == 200) ++done;
        }
        return done >= run.submitted.load() * 9 / 10;
      },
      120s);
  run.stopAgents = true;
  for (auto& t : threads) t.join();
  auto history = run.snapshot();
  std::set<std::string> existing;
  for (const auto& [id, status] : finalStates(one, history)) existing.insert(id);
  Violations v = checkHistory(history, existing);
  std::printf("[cluster] positive control (nats.casGuard=off): %d items, %zu double grants, "
              "%zu stale-token transitions, %zu double completions\n",
              run.submitted.load(), v.doubleGrants.size(), v.staleTokens.size(),
              v.doubleCompletions.size());
  std::fflush(stdout);
  CHECK(v.doubleGrants.size() > 0);
}

TEST_CASE("two instances on a three-node cluster under faults: claims stay exclusive",
          "[cluster]") {
  const uint32_t seed = seedFromEnv();
  std::printf("[cluster] nemesis seed %u (WEFT_TEST_SEED)\n", seed);
  std::mt19937 rng(seed);
  NatsCluster cluster;
  std::vector<std::unique_ptr<Weftd>> weftd;
  weftd.push_back(std::make_unique<Weftd>(weftdOptions(cluster, 0, true)));
  weftd.push_back(std::make_unique<Weftd>(weftdOptions(cluster, 1, true)));
  for (auto& w : weftd) REQUIRE(w->waitServing(60s));
  registerAgents(*weftd[0]);

  Run run;
  for (auto& w : weftd) run.ports.push_back(w->port());
  std::vector<std::unique_ptr<EventWatcher>> watchers;
  for (auto& w : weftd) watchers.push_back(std::make_unique<EventWatcher>(w->port()));
  std::vector<std::thread> threads;
  for (int k = 0; k < kAgents; ++k) threads.emplace_back(agent, std::ref(run), k, seed + k);
  std::thread feed([&] { submitter(run, 100000); });

  // The nemesis: one fault at a time, healed before the next.
  struct Fault {
    std::string kind;
    int64_t fromMs, toMs;
  };
  std::vector<Fault> faults;
  const int rounds = std::getenv("WEFT_TEST_NEMESIS_ROUNDS")
                         ? std::atoi(std::getenv("WEFT_TEST_NEMESIS_ROUNDS"))
                         : 21;
  std::this_thread::sleep_for(3s);
  for (int round = 0; round < rounds; ++round) {
    const int kind = static_cast<int>(rng() % 5);
    Fault f;
    f.fromMs = nowMs(run.origin);
    if (kind == 0 || kind == 1) {
      int target = static_cast<int>(rng() % kNodes);
      if (kind == 1) {
        const int leader = cluster.leaderOf("KV_weft-work");
        if (leader >= 0) target = leader;
      }
      f.kind = kind == 1 ? "kill -9 of the stream leader node" : "kill -9 of a nats node";
      cluster.node(target).kill9();
      std::this_thread::sleep_for(std::chrono::milliseconds(2000 + rng() % 2000));
      cluster.node(target).restart();
    } else if (kind == 2) {
      const int target = static_cast<int>(rng() % kNodes);
      f.kind = "SIGSTOP of a nats node";
      cluster.node(target).pause();
      std::this_thread::sleep_for(std::chrono::milliseconds(2000 + rng() % 2000));
      cluster.node(target).resume();
    } else if (kind == 3) {
      const int target = static_cast<int>(rng() % kNodes);
      f.kind = "partition of a nats node";
      cluster.isolate(target);
      std::this_thread::sleep_for(std::chrono::milliseconds(3000 + rng() % 3000));
      cluster.heal(target);
    } else {
      const size_t target = rng() % weftd.size();
      f.kind = "kill -9 of a weftd";
      weftd[target]->kill9();
      std::this_thread::sleep_for(std::chrono::milliseconds(1000 + rng() % 1000));
      weftd[target]->restart();
    }
    f.toMs = nowMs(run.origin);
    faults.push_back(f);
    std::printf("[cluster] round %d: %s (%lld ms)\n", round + 1, f.kind.c_str(),
                static_cast<long long>(f.toMs - f.fromMs));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(2000 + rng() % 1000));
  }

  // Heal and drain: no more submissions; the agents finish what is left.
  run.stopSubmitting = true;
  feed.join();
  bool serving = true;
  for (size_t i = 0; i < weftd.size(); ++i) {
    if (weftd[i]->waitServing(60s)) continue;
    serving = false;
    UNSCOPED_INFO("weftd " << i << " does not serve 60 s after the last fault; log tail:\n"
                           << weftd[i]->logTail(6000));
  }
  if (!serving) {
    run.stopAgents = true;
    for (auto& t : threads) t.join();
    FAIL("an instance did not recover");
  }
  auto settled = [&] {
    int terminal = 0;
    auto states = finalStates(*weftd[0], run.snapshot());
    for (const auto& [id, status] : states) {
      if (status == "completed" || status == "failed") ++terminal;
    }
    return terminal == run.submitted.load();
  };
  const bool drained = eventually(settled, 120s);
  if (!drained) {
    const std::string state = cluster.describe("KV_weft-work");
    std::printf("[cluster] did not drain; KV_weft-work as each node sees it:%s\n", state.c_str());
    UNSCOPED_INFO("KV_weft-work as each node sees it:" << state);
  }
  run.stopAgents = true;
  for (auto& t : threads) t.join();

  auto history = run.snapshot();
  auto states = finalStates(*weftd[0], history);
  std::set<std::string> existing;
  std::map<std::string, int> byStatus;
  for (const auto& [id, status] : states) {
    existing.insert(id);
    ++byStatus[status];
  }
  Violations v = checkHistory(history, existing);
  // An item that never finished: say where it is stuck, as the backend and
  // each instance's view see it, and what the agents did with it.
  int unfinishedShown = 0;
  for (const auto& [id, status] : states) {
    if (status == "completed" || status == "failed" || ++unfinishedShown > 5) continue;
    std::string report = "unfinished " + id + ": backend " + weftd[0]->get("/api/work/" + id).body;
    for (size_t i = 0; i < weftd.size(); ++i) {
      HttpResponse r = weftd[i]->get("/api/work?capability=chaos");
      if (r.status != 200) continue;
      for (const Json& item : r.json.get("workItems").asArray()) {
        if (item.getString("id") != id) continue;
        report += "\n  view of instance " + std::to_string(i) + ": status " +
                  item.getString("status") + ", attempts " +
                  std::to_string(item.getInt("attempts")) + ", updatedAt " +
                  item.getString("updatedAt");
      }
    }
    for (const Op& op : history) {
      if (op.itemId != id) continue;
      static const char* kinds[] = {"submit", "claim", "start", "complete", "fail"};
      report += "\n  " + std::to_string(op.sentMs) + "-" + std::to_string(op.answeredMs) +
                " ms " + kinds[static_cast<int>(op.kind)] + " via instance " +
                std::to_string(op.instance) + " by " + op.agent + " -> " +
                std::to_string(op.status);
    }
    UNSCOPED_INFO(report);
    std::printf("[cluster] %s\n", report.c_str());
  }
  std::fflush(stdout);
  // The watch-fed views survived the faults: each instance's list (served
  // from its view) agrees with the backend on every item's status.
  for (size_t i = 0; i < weftd.size(); ++i) {
    std::map<std::string, std::string> listed;
    const bool agrees = eventually(
        [&] {
          listed.clear();
          HttpResponse r = weftd[i]->get("/api/work?capability=chaos");
          if (r.status != 200) return false;
          for (const Json& item : r.json.get("workItems").asArray()) {
            listed[item.getString("id")] = item.getString("status");
          }
          // Only the acknowledged items: a submit whose outcome was unknown
          // may have stored one more, which the view rightly lists.
          for (const auto& [id, status] : states) {
            auto it = listed.find(id);
            if (it == listed.end() || it->second != status) return false;
          }
          return true;
        },
        30s);
    size_t differ = 0;
    for (const auto& [id, status] : states) differ += listed.count(id) && listed[id] == status ? 0 : 1;
    INFO("instance " << i << ": " << differ << " items differ between its view and the backend");
    CHECK(agrees);
  }
  // The event streams: nothing heard twice, no end state the item never had.
  size_t eventsHeard = 0;
  std::vector<std::string> eventProblems;
  for (auto& watcher : watchers) {
    auto heard = watcher->heard();
    eventsHeard += heard.size();
    for (auto& p : checkEvents(heard, states)) eventProblems.push_back(p);
  }
  watchers.clear();
  for (size_t i = 0; i < eventProblems.size() && i < 10; ++i) {
    UNSCOPED_INFO("event stream: " << eventProblems[i]);
  }
  std::printf("[cluster] %zu work events heard by the two WebSocket subscribers, %zu problems\n",
              eventsHeard, eventProblems.size());
  CHECK(eventsHeard > 0);
  CHECK(eventProblems.empty());
  for (const auto& s : v.doubleGrants) UNSCOPED_INFO("double grant: " << s);
  for (const auto& s : v.staleTokens) UNSCOPED_INFO("stale token: " << s);
  for (const auto& s : v.doubleCompletions) UNSCOPED_INFO("double completion: " << s);
  for (const auto& s : v.lostSubmits) UNSCOPED_INFO("lost submit: " << s);

  size_t requests = history.size(), ok = 0, unavailable = 0;
  for (const Op& op : history) {
    if (op.status >= 200 && op.status < 300) ++ok;
    if (op.status == 503 || op.status == 0) ++unavailable;
  }
  std::printf("[cluster] %zu rounds, %d items acknowledged, %zu requests (%zu 2xx, %zu 503 or "
              "unanswered); final: %d completed, %d failed, %d other; violations: %zu double "
              "grants, %zu stale tokens, %zu double completions, %zu lost submits\n",
              faults.size(), run.submitted.load(), requests, ok, unavailable,
              byStatus["completed"], byStatus["failed"],
              static_cast<int>(states.size()) - byStatus["completed"] - byStatus["failed"],
              v.doubleGrants.size(), v.staleTokens.size(), v.doubleCompletions.size(),
              v.lostSubmits.size());
  std::map<std::string, int64_t> worst;
  for (const Fault& f : faults) {
    worst[f.kind] = std::max(worst[f.kind], longestWriteGapMs(history, f.fromMs, f.toMs));
  }
  for (const auto& [kind, gap] : worst) {
    std::printf("[cluster] longest write unavailability, %s: %lld ms\n", kind.c_str(),
                static_cast<long long>(gap));
  }
  std::fflush(stdout);

  CHECK(faults.size() >= 20);
  CHECK(v.doubleGrants.empty());
  CHECK(v.staleTokens.empty());
  CHECK(v.doubleCompletions.empty());
  CHECK(v.lostSubmits.empty());
  CHECK(drained);  // every acknowledged item ended completed or dead-lettered
}

// Idempotent submits (docs/api.md §4.7) on the replicated cluster: every key
// is sent by four clients at once, two through each instance, retried on
// 503 and on dropped connections, while the leaders of the idempotency and
// work streams are killed in turn. Exactly one item per key must exist, and
// every 201 for a key must name it.
TEST_CASE("idempotent submits on a three-node cluster: one item per key through leader kills",
          "[cluster]") {
  constexpr int kKeys = 60;
  constexpr int kClients = 4;
  // Keys are paced so that the faults fall among them (about 15 s in all).
  constexpr auto kPace = 250ms;
  NatsCluster cluster;
  std::vector<std::unique_ptr<Weftd>> weftd;
  weftd.push_back(std::make_unique<Weftd>(weftdOptions(cluster, 0, true)));
  weftd.push_back(std::make_unique<Weftd>(weftdOptions(cluster, 1, true)));
  for (auto& w : weftd) REQUIRE(w->waitServing(60s));

  auto bodyOf = [](int k) {
    return Json(Json::Object{{"boundary", Json("cluster")},
                             {"capability", Json("keyed-cluster")},
                             {"description", Json("key-" + std::to_string(k))},
                             {"priority", Json(5)}});
  };
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, std::set<std::string>> idsByKey;  // every id a 201 named
  std::map<int, int> statuses;
  std::atomic<int> keysDone{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      HttpClient http(weftd[static_cast<size_t>(c % 2)]->port(), 5s);
      for (int k = 0; k < kKeys && !stop; ++k) {
        const std::string key = "cluster-key-" + std::to_string(k);
        const std::string body = bodyOf(k).dump();
        for (bool done = false; !done && !stop;) {
          HttpResponse r = http.request("POST", "/api/work", body, {{"Idempotency-Key", key}});
          std::lock_guard<std::mutex> lock(mu);
          ++statuses[r.status];
          if (r.status == 201) {
            idsByKey["key-" + std::to_string(k)].insert(r.json.getString("id"));
            done = true;
          } else if (r.status == 0) {
            http.reset();
          }
          if (!done) std::this_thread::sleep_for(50ms);
        }
        if (c == 0) ++keysDone;
        std::this_thread::sleep_for(kPace);
      }
    });
  }

  // The nemesis: kill -9 the leader of one stream, then the other, twice.
  int kills = 0;
  for (int round = 0; round < 4 && keysDone < kKeys; ++round) {
    std::this_thread::sleep_for(1500ms);
    const std::string stream = round % 2 == 0 ? "KV_weft-idempotency" : "KV_weft-work";
    const int leader = cluster.leaderOf(stream);
    if (leader < 0) continue;
    cluster.node(leader).kill9();
    ++kills;
    std::printf("[cluster] idempotency round %d: kill -9 of the %s leader (n%d)\n", round + 1,
                stream.c_str(), leader + 1);
    std::fflush(stdout);
    std::this_thread::sleep_for(2000ms);
    cluster.node(leader).restart();
  }
  const auto deadline = SteadyClock::now() + 90s;
  while (keysDone < kKeys && SteadyClock::now() < deadline) std::this_thread::sleep_for(100ms);
  stop = true;
  for (auto& t : clients) t.join();
  REQUIRE(keysDone == kKeys);

  // What the cluster holds: one item per key, the one every 201 named.
  std::map<std::string, std::vector<std::string>> stored;
  REQUIRE(eventually(
      [&] {
        HttpResponse page = weftd[0]->get("/api/work?capability=keyed-cluster&limit=200");
        if (page.status != 200) return false;
        stored.clear();
        for (const Json& item : page.json.get("workItems").asArray()) {
          stored[item.getString("description")].push_back(item.getString("id"));
        }
        return true;
      },
      30s));
  std::string histogram;
  for (const auto& [s, n] : statuses) histogram += " " + std::to_string(s) + "x" + std::to_string(n);
  std::printf("[cluster] idempotent submits: %d keys, %d leader kills, statuses%s\n", kKeys, kills,
              histogram.c_str());
  std::fflush(stdout);
  CHECK(kills >= 2);
  CHECK(stored.size() == static_cast<size_t>(kKeys));
  for (const auto& [status, n] : statuses) {
    INFO("POST /api/work answered " << status << " x" << n);
    CHECK((status == 201 || status == 503 || status == 0));
  }
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = "key-" + std::to_string(k);
    INFO(key);
    CHECK(stored[key].size() == 1);
    CHECK(idsByKey[key].size() == 1);
    if (stored[key].size() == 1 && idsByKey[key].size() == 1) {
      CHECK(*idsByKey[key].begin() == stored[key].front());
    }
  }
}
