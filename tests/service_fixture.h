// A set of core services on one store with an injected clock, for the unit
// tests of the services and the work lifecycle.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "weft/agent_registry.h"
#include "weft/dead_letters.h"
#include "weft/memory_kv.h"
#include "weft/stats.h"
#include "weft/work_queue.h"
#include "support/rest_work.h"

namespace weft::test {

template <typename F>
bool eventually(F&& predicate, int timeoutMs = 2000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return predicate();
}

inline Json body(const char* text) { return Json::parse(text).value(); }

struct Services;
// Submits {boundary b, capability cpp, description d, ...extra} through the
// REST mapping; returns the new id (REQUIREs success).
inline std::string submitWork(Services& s, const std::string& extra = "");

struct Services {
  // beforeStart runs after the services are built and before they start, e.g.
  // to add view listeners (views accept them only before start()).
  // options: the services' settings (CoreOptions defaults when not given).
  explicit Services(std::shared_ptr<KvStore> s, ManualClock& clock,
                    const std::function<void(Services&)>& beforeStart = {})
      : Services(std::move(s), clock, CoreOptions{}, beforeStart) {}
  // The same with other settings (CoreOptions).
  Services(std::shared_ptr<KvStore> s, ManualClock& clock, const CoreOptions& options,
           const std::function<void(Services&)>& beforeStart = {})
      : store(std::move(s)) {
    ctx.store = store;
    ctx.clock = &clock;
    ctx.options = options;
    agents = std::make_unique<AgentRegistry>(ctx);
    dlq = std::make_unique<DeadLetters>(ctx);
    work = std::make_unique<WorkQueue>(ctx, *agents, *dlq);
    rest = std::make_unique<testing::RestWork>(*work);
    stats = std::make_unique<Stats>(ctx);
    stats->addContributor(Stats::agentContributor(*agents));
    stats->addContributor(Stats::workContributor(*work));
    stats->addContributor(Stats::deadLetterContributor(*dlq));
    if (beforeStart) beforeStart(*this);
    agents->start();
    dlq->start();
    work->start();
    REQUIRE(eventually([&] {
      return agents->view().ready() && work->view().ready() && dlq->view().ready();
    }));
  }
  ~Services() {
    work->stop();
    dlq->stop();
    agents->stop();
  }

  // Writes a registry entry as an agent would, straight into the bucket.
  void putDirect(const std::string& key, const std::string& value) {
    auto bucket = store->openBucket(kAgentBucket, BucketOptions{});
    REQUIRE(bucket.isOk());
    REQUIRE((*bucket)->put(key, value).isOk());
  }

  std::shared_ptr<KvStore> store;
  ServiceContext ctx;
  std::unique_ptr<AgentRegistry> agents;
  std::unique_ptr<DeadLetters> dlq;
  std::unique_ptr<WorkQueue> work;
  std::unique_ptr<testing::RestWork> rest;  // work in its REST form
  std::unique_ptr<Stats> stats;
};

inline std::string submitWork(Services& s, const std::string& extra) {
  std::string text = R"({"boundary":"b","capability":"cpp","description":"d")" +
                     (extra.empty() ? "" : "," + extra) + "}";
  auto r = s.rest->submit(Json::parse(text).value());
  INFO(r.status().toString());
  REQUIRE(r.isOk());
  return r->getString("id");
}

}  // namespace weft::test
