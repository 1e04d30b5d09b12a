// Unit tests of idle detection and staleness marking (docs/api.md §4.6) on the
// memory backend with injected time.
#include <catch2/catch.hpp>

#include "service_fixture.h"
#include "weft/agent_monitor.h"

using namespace weft;
using namespace weft::test;

namespace {

struct MonitorHarness {
  explicit MonitorHarness(ManualClock& clock, CoreOptions options = {})
      : services(createMemoryStore(), clock, [&](Services& s) {
          ServiceContext ctx = s.ctx;
          ctx.options = options;
          monitor = std::make_unique<AgentMonitor>(
              ctx, *s.agents, [&s](const std::string& g) { return s.work->hasActiveWork(g); });
          monitor->attach();
        }) {}
  ~MonitorHarness() { monitor->stop(); }

  Json stored(const std::string& guid) {
    auto entry = services.agents->fetch(guid);
    REQUIRE(entry.isOk());
    return (*entry)->entry;
  }

  std::unique_ptr<AgentMonitor> monitor;
  Services services;
};

void registerAgent(Services& s, const std::string& guid, RegisterRequest request = {}) {
  request.guid = guid;
  request.handle = "h";
  request.capabilities = {"cpp"};
  REQUIRE(s.agents->registerAgent(request).isOk());
}

RegisterRequest withTasks(int64_t currentTaskCount) {
  RegisterRequest r;
  r.currentTaskCount = currentTaskCount;
  return r;
}

RegisterRequest withSpindown(int64_t spindownAfterIdleMs) {
  RegisterRequest r;
  r.spindownAfterIdleMs = spindownAfterIdleMs;
  return r;
}

}  // namespace

TEST_CASE("an idle agent gets one shutdown request, again only after new activity") {
  ManualClock clock;
  MonitorHarness h(clock);
  registerAgent(h.services, "a1");
  REQUIRE(eventually([&] { return h.services.agents->view().find("a1") != nullptr; }));
  CHECK(h.monitor->checkOnce().idleRequests == 0);
  clock.advance(299999);
  CHECK(h.monitor->checkOnce().idleRequests == 0);
  clock.advance(1);
  CHECK(h.monitor->checkOnce().idleRequests == 1);
  Json request = h.stored("a1").get("shutdownRequested");
  CHECK(request.getString("reason") == "idle-timeout");
  CHECK(request.getBool("graceful") == true);
  CHECK(h.stored("a1").getString("status") == "online");  // never changed by a request
  clock.advance(600000);
  CHECK(h.monitor->checkOnce().idleRequests == 0);

  // A status change is activity; the idle clock starts again.
  HeartbeatRequest busy, online;
  busy.status = "busy";
  online.status = "online";
  REQUIRE(h.services.agents->heartbeat("a1", busy));
  REQUIRE(h.services.agents->heartbeat("a1", online));
  clock.advance(299000);
  CHECK(h.monitor->checkOnce().idleRequests == 0);
  clock.advance(1000);
  CHECK(h.monitor->checkOnce().idleRequests == 1);
}

TEST_CASE("heartbeats alone are not activity") {
  ManualClock clock;
  MonitorHarness h(clock);
  registerAgent(h.services, "a1");
  REQUIRE(eventually([&] { return h.services.agents->view().find("a1") != nullptr; }));
  for (int i = 0; i < 5; ++i) {
    clock.advance(60000);
    REQUIRE(h.services.agents->heartbeat("a1", {}));
  }
  CHECK(h.monitor->checkOnce().idleRequests == 1);
}

TEST_CASE("busy agents, task counts and spindownAfterIdleMs") {
  ManualClock clock;
  MonitorHarness h(clock);
  registerAgent(h.services, "worker");
  registerAgent(h.services, "counting", withTasks(2));
  registerAgent(h.services, "never", withSpindown(0));
  registerAgent(h.services, "quick", withSpindown(1000));
  REQUIRE(eventually([&] { return h.services.agents->view().size() == 4; }));
  auto submitted = h.services.rest->submit(
      body(R"({"boundary":"b","capability":"cpp","description":"d"})"));
  REQUIRE(submitted.isOk());
  auto claimed = h.services.rest->claim(body(R"({"agentGuid":"worker"})"));
  REQUIRE(claimed.isOk());
  REQUIRE(claimed->has_value());

  clock.advance(1000);
  CHECK(h.monitor->checkOnce().idleRequests == 1);  // only "quick"
  CHECK(h.stored("quick").contains("shutdownRequested"));
  clock.advance(300000);
  CHECK(h.monitor->checkOnce().idleRequests == 0);  // worker holds work, counting has tasks
  CHECK_FALSE(h.stored("worker").contains("shutdownRequested"));
  CHECK_FALSE(h.stored("counting").contains("shutdownRequested"));
  CHECK_FALSE(h.stored("never").contains("shutdownRequested"));
}

TEST_CASE("idle detection is off when the timeout is 0") {
  ManualClock clock;
  CoreOptions options;
  options.idleTimeoutMs = 0;
  MonitorHarness h(clock, options);
  registerAgent(h.services, "a1");
  REQUIRE(eventually([&] { return h.services.agents->view().find("a1") != nullptr; }));
  clock.advance(10000000);
  CHECK(h.monitor->checkOnce().idleRequests == 0);
}

TEST_CASE("stale agents are marked offline only when asked to") {
  ManualClock clock;
  CoreOptions marking;
  marking.markStaleOffline = true;
  marking.idleTimeoutMs = 0;
  MonitorHarness h(clock, marking);
  registerAgent(h.services, "old");
  registerAgent(h.services, "fresh");
  REQUIRE(eventually([&] { return h.services.agents->view().size() == 2; }));
  clock.advance(180000);
  CHECK(h.monitor->checkOnce().markedOffline == 0);
  REQUIRE(h.services.agents->heartbeat("fresh", {}));
  clock.advance(1);
  CHECK(h.monitor->checkOnce().markedOffline == 1);
  CHECK(h.stored("old").getString("status") == "offline");
  CHECK(h.stored("fresh").getString("status") == "online");

  ManualClock other;
  CoreOptions defaults;
  defaults.idleTimeoutMs = 0;
  MonitorHarness plain(other, defaults);
  registerAgent(plain.services, "old");
  REQUIRE(eventually([&] { return plain.services.agents->view().size() == 1; }));
  other.advance(1000000);
  CHECK(plain.monitor->checkOnce().markedOffline == 0);
  CHECK(plain.stored("old").getString("status") == "online");
}
