#include "restart_timing.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "http_client.h"
#include "store_access.h"
#include "weft/service_context.h"

namespace weft::bench {

Json measureServeTime(const std::string& host, int port, int64_t sinceNs, int64_t minItems,
                      int timeoutMs) {
  Json out = Json::object();
  out.set("minItems", Json(static_cast<long long>(minItems)));
  // Short timeouts: a poll must not sit on a connection that is not served yet.
  HttpClient client(host, port, 1000);
  // ... except for the list, which takes longer than that by itself once a
  // few hundred thousand items are stored (./scripts/bench --scale).
  HttpClient lister(host, port, std::max(1000, std::min(timeoutMs, 120000)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  const char* stages[] = {"/health", "/ready", "/api/work?limit=1"};
  const char* names[] = {"healthMs", "readyMs", "servingMs"};
  int stage = 0;
  int64_t lastTotal = -1;
  while (stage < 3 && std::chrono::steady_clock::now() < deadline) {
    HttpResult r = (stage == 2 ? lister : client).request("GET", stages[stage]);
    bool passed = r.status == 200;
    if (passed && stage == 2) {
      Result<Json> j = Json::parse(r.body, 64);
      lastTotal = j.isOk() ? j->getInt("total", -1) : -1;
      passed = lastTotal >= minItems;
    }
    if (passed) {
      out.set(names[stage], Json(std::round((r.doneAtNs - sinceNs) / 1e5) / 10.0));
      ++stage;
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  out.set("listedItems", Json(static_cast<long long>(lastTotal)));
  if (stage < 3) {
    out.set("error", Json(std::string("weftd did not pass ") + stages[stage] + " within " +
                          std::to_string(timeoutMs) + " ms"));
  }
  return out;
}

Json fillWork(const FillOptions& o) {
  Json out = Json::object();
  auto store = openStore(o.backend, o.pluginDir, o.settings, 15000);
  if (!store.isOk()) {
    out.set("error", Json(store.status().toString()));
    return out;
  }
  auto bucket = openBucketWithin(**store, kWorkBucket, 15000);
  if (!bucket.isOk()) {
    out.set("error", Json(bucket.status().toString()));
    return out;
  }
  auto count = [&]() -> int64_t {
    auto keys = (*bucket)->keys("");
    return keys.isOk() ? static_cast<int64_t>(keys->size()) : -1;
  };
  const int64_t before = count();
  if (before < 0) {
    out.set("error", Json("cannot list " + std::string(kWorkBucket)));
    return out;
  }
  const int64_t missing = std::max<int64_t>(0, o.minItems - before);
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client(o.host, o.port, 10000);
      for (int64_t i = next.fetch_add(1); i < missing; i = next.fetch_add(1)) {
        Json b = Json::object();
        b.set("boundary", Json("default"));
        b.set("capability", Json("bench-fill"));
        b.set("description", Json("weft-bench restart fill item"));
        b.set("taskId",
              Json("fill-" + o.runId + "-" + std::to_string(t) + "-" + std::to_string(i)));
        if (client.request("POST", "/api/work", b.dump()).status != 201) ++failures;
        // Bounded: stop when the server keeps failing.
        if (failures.load() > 100) break;
      }
    });
  }
  for (auto& th : threads) th.join();
  out.set("before", Json(static_cast<long long>(before)));
  out.set("submitted", Json(static_cast<long long>(missing - failures.load())));
  out.set("failures", Json(static_cast<long long>(failures.load())));
  out.set("stored", Json(static_cast<long long>(count())));
  if (failures.load() > 0) out.set("error", Json("some fill submits failed"));
  return out;
}

}  // namespace weft::bench
