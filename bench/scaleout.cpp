#include "scaleout.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "http_client.h"
#include "latency.h"
#include "load_driver.h"

namespace weft::bench {

namespace {

Json step(const std::vector<std::vector<int64_t>>& perThread, double seconds) {
  std::vector<int64_t> all;
  for (const auto& v : perThread) all.insert(all.end(), v.begin(), v.end());
  LatencySummary s = summarize(all, seconds);
  Json j = Json::object();
  j.set("p50Us", Json(s.p50Us));
  j.set("p99Us", Json(s.p99Us));
  return j;
}

Json failure(const std::string& what) {
  Json j = Json::object();
  j.set("error", Json(what));
  return j;
}

}  // namespace

OpResult claimAndComplete(HttpClient& client, const std::string& agentGuid, const Json& claimBody,
                          const Json& result, std::chrono::steady_clock::time_point measuredFrom,
                          std::vector<int64_t>& claimNs, std::vector<int64_t>& completeNs) {
  OpResult op;
  const auto c0 = std::chrono::steady_clock::now();
  HttpResult c = client.request("POST", "/api/work/claim", claimBody.dump());
  const auto c1 = std::chrono::steady_clock::now();
  if (c.status == 204) {
    op.exhausted = true;
    return op;
  }
  if (c.status != 200) {
    op.ok = false;
    op.outcome = c.outcome();
    return op;
  }
  Result<Json> item = Json::parse(c.body, 64);
  if (!item.isOk()) {
    op.ok = false;
    op.outcome = "bad-claim-body";
    return op;
  }
  Json done = Json::object();
  done.set("agentGuid", Json(agentGuid));
  done.set("claimToken", Json(item->getString("claimToken")));
  if (result.isObject()) done.set("result", result);
  HttpResult d =
      client.request("POST", "/api/work/" + item->getString("id") + "/complete", done.dump());
  const auto d1 = std::chrono::steady_clock::now();
  if (c0 >= measuredFrom) {
    claimNs.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(c1 - c0).count());
    completeNs.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(d1 - c1).count());
  }
  op.ok = d.answered() && d.status == 200;
  op.outcome = d.outcome();
  return op;
}

Json runCycles(const CycleOptions& o) {
  const size_t n = o.endpoints.size();
  if (n == 0 || o.threads < 1) return failure("no instances or no threads");
  const std::string project = "scaleout-" + o.runId;
  const std::string capability = "scaleout";
  auto client = [&](size_t i) {
    return std::make_unique<HttpClient>(o.endpoints[i % n].first, o.endpoints[i % n].second,
                                        o.timeoutMs);
  };
  auto guid = [&](int t) { return "scaleout-" + o.runId + "-a" + std::to_string(t); };

  // Agents, through the first instance.
  auto control = client(0);
  for (int t = 0; t < o.threads; ++t) {
    Json a = Json::object();
    a.set("guid", Json(guid(t)));
    a.set("handle", Json(guid(t)));
    a.set("projectId", Json(project));
    a.set("capabilities", Json(Json::Array{Json(capability)}));
    // A fresh cluster elects its stream leaders for a few seconds after
    // weftd reports ready: 503 then is worth waiting out.
    HttpResult r;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      r = control->request("POST", "/api/agents", a.dump());
      if (r.is2xx() || r.status != 503 || std::chrono::steady_clock::now() > until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!r.is2xx()) return failure("agent registration: " + r.outcome());
  }
  // Items, spread over the instances (one submitting thread per instance).
  std::atomic<int> submitFailures{0};
  {
    std::vector<std::thread> fill;
    for (size_t i = 0; i < n; ++i) {
      fill.emplace_back([&, i] {
        auto c = client(i);
        for (int k = static_cast<int>(i); k < o.items; k += static_cast<int>(n)) {
          Json b = Json::object();
          b.set("projectId", Json(project));
          b.set("boundary", Json("default"));
          b.set("capability", Json(capability));
          b.set("description", Json("scale-out item"));
          b.set("taskId", Json("s" + std::to_string(k)));
          int status = 0;
          for (int attempt = 0; attempt < 50; ++attempt) {
            status = c->request("POST", "/api/work", b.dump()).status;
            if (status != 503) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
          }
          if (status != 201) ++submitFailures;
        }
      });
    }
    for (auto& f : fill) f.join();
  }
  if (submitFailures > 0) {
    return failure(std::to_string(submitFailures.load()) + " submits failed");
  }
  // Every instance's view holds the items before the clock starts.
  for (size_t i = 0; i < n; ++i) {
    auto c = client(i);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      HttpResult r = c->request("GET", "/api/work?status=pending&limit=1&projectId=" + project);
      Result<Json> j = r.is2xx() ? Json::parse(r.body, 64) : Result<Json>(Status::internal("x"));
      if (j.isOk() && j->getInt("total", 0) >= o.items) break;
      if (std::chrono::steady_clock::now() > deadline) return failure("items never became visible");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int t = 0; t < o.threads; ++t) clients.push_back(client(static_cast<size_t>(t)));
  std::vector<std::vector<int64_t>> claimNs(o.threads), completeNs(o.threads);
  LoadOptions lo;
  lo.threads = o.threads;
  lo.warmupMs = o.warmupMs;
  lo.durationMs = o.durationMs;
  const auto measuredFrom =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(o.warmupMs);
  LoadResult r = runLoad(lo, [&](int t, uint64_t) {
    Json claim = Json::object();
    claim.set("agentGuid", Json(guid(t)));
    return claimAndComplete(*clients[t], guid(t), claim, Json(), measuredFrom, claimNs[t],
                            completeNs[t]);
  });
  Json out = r.toJson();
  out.set("instances", Json(static_cast<int64_t>(n)));
  out.set("cyclesPerSecond", Json(r.latency.opsPerSec));
  out.set("claim", step(claimNs, r.latency.seconds));
  out.set("complete", step(completeNs, r.latency.seconds));
  return out;
}

}  // namespace weft::bench
