#include "rest_workloads.h"

#include "scaleout.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "http_client.h"
#include "load_driver.h"
#include "scaleout.h"

namespace weft::bench {
namespace {

using Clients = std::vector<std::unique_ptr<HttpClient>>;

Clients makeClients(const RestOptions& o) {
  Clients clients;
  for (int t = 0; t < o.threads; ++t) {
    clients.push_back(std::make_unique<HttpClient>(o.host, o.port, o.timeoutMs));
  }
  return clients;
}

OpResult fromHttp(const HttpResult& r, int expected) {
  OpResult op;
  op.outcome = r.outcome();
  op.ok = r.answered() && r.status == expected;
  return op;
}

std::string agentGuid(const RestOptions& o, int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05d", i);
  return "bench-" + o.runId + "-a" + buf;
}

Json describe(const char* name, const char* request, const LoadResult& r) {
  Json j = Json::object();
  j.set("name", Json(name));
  j.set("request", Json(request));
  Json measured = r.toJson();  // named: a range-for over a temporary's member would dangle
  for (auto& member : measured.asObject()) j.set(member.first, std::move(member.second));
  return j;
}

Json failed(const char* name, const std::string& error) {
  Json j = Json::object();
  j.set("name", Json(name));
  j.set("error", Json(error));
  return j;
}

Json submitBody(const std::string& capability, const std::string& taskId,
                const std::string& projectId = std::string()) {
  Json b = Json::object();
  if (!projectId.empty()) b.set("projectId", Json(projectId));
  b.set("boundary", Json("default"));
  b.set("capability", Json(capability));
  b.set("description", Json("weft-bench work item"));
  b.set("taskId", Json(taskId));
  return b;
}

// A closed- or open-loop run of `request` built per call; header, when
// given, adds one header per call (name, value for the call).
LoadResult runPlain(
    const RestOptions& o, Clients& clients, double rate, int expected,
    const std::function<std::pair<std::string, std::string>(int, uint64_t)>& path,
    const std::string& method,
    const std::function<std::pair<std::string, std::string>(int, uint64_t)>& header = {}) {
  LoadOptions lo;
  lo.threads = o.threads;
  lo.warmupMs = o.warmupMs;
  lo.durationMs = o.durationMs;
  lo.openRate = rate;
  return runLoad(lo, [&](int t, uint64_t seq) {
    auto [p, body] = path(t, seq);
    if (!header) return fromHttp(clients[t]->request(method, p, body), expected);
    return fromHttp(clients[t]->request(method, p, body, {header(t, seq)}), expected);
  });
}

}  // namespace

Json runRestWorkloads(const RestOptions& o) {
  Json out = Json::object();
  Json workloads = Json::array();
  Clients clients = makeClients(o);
  HttpClient control(o.host, o.port, o.timeoutMs);

  // --- agent-register: exactly o.agents registrations, bounded in time too.
  {
    LoadOptions lo;
    lo.threads = o.threads;
    lo.warmupMs = 0;
    lo.durationMs = 60000;
    lo.maxOps = static_cast<uint64_t>(o.agents);
    std::atomic<int> next{0};
    LoadResult r = runLoad(lo, [&](int t, uint64_t) {
      const int i = next.fetch_add(1);
      Json b = Json::object();
      b.set("guid", Json(agentGuid(o, i)));
      b.set("handle", Json("bench-agent-" + std::to_string(i)));
      b.set("capabilities", Json(Json::Array{Json("bench")}));
      b.set("hostname", Json("weft-bench"));
      return fromHttp(clients[t]->request("POST", "/api/agents", b.dump()), 201);
    });
    workloads.push(describe("agent-register", "POST /api/agents", r));
  }

  // --- agent-list over (at least) o.agents agents.
  const bool listed = waitForTotal(control, "/api/agents?limit=1", o.agents, 10000);
  out.set("agentsListed", Json(static_cast<long long>(listTotal(control, "/api/agents?limit=1"))));
  if (!listed) {
    workloads.push(failed("agent-list", "the registered agents did not all appear in the list"));
  } else {
    // What one response carries, so the reader can tell a real full list.
    HttpResult sample = control.request("GET", "/api/agents");
    Result<Json> listed = Json::parse(sample.body, 64);
    LoadResult r = runPlain(
        o, clients, 0, 200,
        [](int, uint64_t) { return std::make_pair(std::string("/api/agents"), std::string()); },
        "GET");
    Json j = describe("agent-list", "GET /api/agents (full list)", r);
    j.set("responseBytes", Json(static_cast<long long>(sample.body.size())));
    j.set("agentsPerResponse",
          Json(static_cast<long long>(listed.isOk() ? listed->get("agents").size() : 0)));
    workloads.push(std::move(j));
  }

  // --- heartbeat: thread t beats agent t, so there is no CAS contention.
  auto heartbeat = [&](int t, uint64_t) {
    return std::make_pair("/api/agents/" + agentGuid(o, t % o.agents) + "/heartbeat",
                          std::string("{\"status\":\"online\"}"));
  };
  workloads.push(describe("heartbeat", "POST /api/agents/{guid}/heartbeat",
                          runPlain(o, clients, 0, 200, heartbeat, "POST")));
  if (o.openRate > 0) {
    workloads.push(describe("heartbeat", "POST /api/agents/{guid}/heartbeat",
                            runPlain(o, clients, o.openRate, 200, heartbeat, "POST")));
  }

  // --- submit: capability "bench", which the registered agents have, so the
  // routing finds eligible workers and requests no spin-up.
  auto submit = [&](const char* mode) {
    return [&, mode](int t, uint64_t seq) {
      const std::string tag =
          "bench-" + o.runId + "-" + mode + std::to_string(t) + "-" + std::to_string(seq);
      return std::make_pair(std::string("/api/work"), submitBody("bench", tag).dump());
    };
  };
  workloads.push(
      describe("submit", "POST /api/work", runPlain(o, clients, 0, 201, submit("c"), "POST")));
  if (o.openRate > 0) {
    workloads.push(describe("submit", "POST /api/work",
                            runPlain(o, clients, o.openRate, 201, submit("o"), "POST")));
  }
  // --- the delivery variants of submit, closed loop, beside the plain one:
  // a fresh Idempotency-Key per request (the record written before the
  // item), the same key and body again (a replay: reads only), and delayed
  // items (delayMs: kept apart from the claimable ones until due).
  workloads.push(describe(
      "submit-idempotent", "POST /api/work (Idempotency-Key, new key)",
      runPlain(o, clients, 0, 201, submit("i"), "POST", [&](int t, uint64_t seq) {
        return std::make_pair(std::string("Idempotency-Key"),
                              o.runId + "-i" + std::to_string(t) + "-" + std::to_string(seq));
      })));
  workloads.push(describe(
      "submit-replay", "POST /api/work (Idempotency-Key, a key already used)",
      runPlain(
          o, clients, 0, 201,
          [&](int t, uint64_t) {
            return std::make_pair(std::string("/api/work"),
                                  submitBody("bench", o.runId + "-replayed-" + std::to_string(t))
                                      .dump());
          },
          "POST",
          [&](int t, uint64_t) {
            return std::make_pair(std::string("Idempotency-Key"),
                                  o.runId + "-replayed-" + std::to_string(t));
          })));
  workloads.push(describe("submit-delayed", "POST /api/work (delayMs 3600000)",
                          runPlain(
                              o, clients, 0, 201,
                              [&](int t, uint64_t seq) {
                                Json b = submitBody("bench", o.runId + "-d" + std::to_string(t) +
                                                                 "-" + std::to_string(seq));
                                b.set("delayMs", Json(int64_t{3600000}));
                                return std::make_pair(std::string("/api/work"), b.dump());
                              },
                              "POST")));

  // --- claim-complete on items submitted for it, one capability per thread.
  {
    const int perThread = std::max(1, o.cycleItems / o.threads);
    auto capability = [&](int t) { return "bench-cycle-" + o.runId + "-" + std::to_string(t); };
    // A project of its own: weftd's claim walks the pending items of the
    // claimer's project, so the items the other workloads left pending would
    // otherwise slow it down by an amount that depends on how fast each
    // backend took the submits before.
    const std::string project = "bench-cycle-" + o.runId;
    std::atomic<int> submitFailures{0};
    {
      std::vector<std::thread> fill;
      for (int t = 0; t < o.threads; ++t) {
        fill.emplace_back([&, t] {
          for (int i = 0; i < perThread; ++i) {
            HttpResult r = clients[t]->request(
                "POST", "/api/work",
                submitBody(capability(t), "cycle-" + std::to_string(i), project).dump());
            if (r.status != 201) ++submitFailures;
          }
        });
      }
      for (auto& f : fill) f.join();
    }
    bool visible = submitFailures == 0;
    for (int t = 0; visible && t < o.threads; ++t) {
      visible = waitForTotal(
          control,
          "/api/work?status=pending&limit=1&projectId=" + project + "&capability=" + capability(t),
          perThread, 10000);
    }
    if (!visible) {
      workloads.push(
          failed("claim-complete", "set-up failed: " + std::to_string(submitFailures.load()) +
                                       " submits failed, or the items did not become pending"));
    } else {
      std::vector<std::vector<int64_t>> claimNs(o.threads), completeNs(o.threads);
      LoadOptions lo;
      lo.threads = o.threads;
      lo.warmupMs = o.warmupMs;
      lo.durationMs = o.durationMs;
      const auto measuredFrom =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(o.warmupMs);
      Json result = Json::object();
      result.set("summary", Json("done by weft-bench"));
      LoadResult r = runLoad(lo, [&](int t, uint64_t) {
        Json claim = Json::object();
        claim.set("agentGuid", Json(agentGuid(o, t)));
        claim.set("capabilities", Json(Json::Array{Json(capability(t))}));
        claim.set("projectId", Json(project));
        return claimAndComplete(*clients[t], agentGuid(o, t), claim, result, measuredFrom,
                                claimNs[t], completeNs[t]);
      });
      Json j = describe("claim-complete", "POST /api/work/claim + POST /api/work/{id}/complete", r);
      j.set("itemsPrepared", Json(perThread * o.threads));
      for (auto [name, per] :
           {std::make_pair("claim", &claimNs), std::make_pair("complete", &completeNs)}) {
        std::vector<int64_t> all;
        for (auto& v : *per) all.insert(all.end(), v.begin(), v.end());
        LatencySummary s = summarize(all, r.latency.seconds);
        Json part = Json::object();
        part.set("p50Us", Json(s.p50Us));
        part.set("p99Us", Json(s.p99Us));
        part.set("maxUs", Json(s.maxUs));
        j.set(std::string(name) + "Step", std::move(part));
      }
      workloads.push(std::move(j));
    }
  }

  out.set("workloads", std::move(workloads));
  return out;
}

}  // namespace weft::bench
