// Unit tests of the core services (AgentRegistry, WorkQueue, Stats) on the
// in-memory backend with injected time.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "support/rest_agents.h"
#include "weft/agent_registry.h"
#include "weft/ids.h"
#include "weft/memory_kv.h"
#include "weft/stats.h"
#include "weft/work_queue.h"
#include "service_fixture.h"

using namespace weft;
using namespace weft::test;

namespace {

// The registry through its REST form (tests/support/rest_agents.h).
testing::RestAgents restAgents(Services& s) { return testing::RestAgents(*s.agents); }

Json listAgents(Services& s, AgentFilter f = {}, PageRequest p = {}) {
  auto text = restAgents(s).list(f, p);
  REQUIRE(text.isOk());
  return Json::parse(*text).value();
}

}  // namespace

TEST_CASE("register creates an online entry in the shared format") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  auto reg = restAgents(s).registerAgent(
      body(R"({"guid":"agent-1","handle":"alice","capabilities":["cpp"],"hostname":"dev1",
              "agentType":"developer","metadata":{"agentType":"copilot-cli","team":"x"},
              "status":"busy"})"));
  REQUIRE(reg.isOk());
  CHECK(reg->created);
  const Json& a = reg->agent;
  CHECK(a.getString("guid") == "agent-1");
  CHECK(a.getString("status") == "online");  // a body status is ignored
  CHECK(a.getString("role") == "developer");
  CHECK(a.getString("agentType") == "copilot-cli");
  CHECK(a.getString("projectId") == "default");
  CHECK(a.getString("scope") == "team");
  CHECK(a.get("boundaries").dump() == R"(["default"])");
  CHECK(a.get("stale").asBool() == false);
  CHECK_FALSE(a.contains("metadata"));
  CHECK_FALSE(a.contains("natsUrl"));
  CHECK(a.getString("registeredAt") == formatIso(clock.nowMs()));

  // The stored entry is what an agent writing NATS directly would write.
  auto bucket = s.store->openBucket(kAgentBucket, BucketOptions{});
  auto stored = (*bucket)->get("agent-1");
  REQUIRE(stored.isOk());
  Json entry = Json::parse(stored->value).value();
  CHECK(entry.getString("guid") == "agent-1");
  CHECK(entry.get("metadata").getString("team") == "x");
  CHECK(entry.get("capabilities").dump() == R"(["cpp"])");
}

TEST_CASE("re-registration rules: same agent, offline, stale, and 409 otherwise") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  REQUIRE(restAgents(s).registerAgent(body(R"({"guid":"g1","handle":"alice","capabilities":[]})")));
  auto same = restAgents(s).registerAgent(body(R"({"guid":"g1","handle":"alice","capabilities":[]})"));
  REQUIRE(same.isOk());
  CHECK_FALSE(same->created);

  auto other = restAgents(s).registerAgent(body(R"({"guid":"g1","handle":"bob","capabilities":[]})"));
  REQUIRE_FALSE(other.isOk());
  CHECK(other.code() == Code::Conflict);
  CHECK(other.status().message() == "Agent with GUID g1 is already registered and online");

  REQUIRE(restAgents(s).deregister("g1").isOk());
  auto afterOffline =
      restAgents(s).registerAgent(body(R"({"guid":"g1","handle":"bob","capabilities":[]})"));
  REQUIRE(afterOffline.isOk());
  CHECK_FALSE(afterOffline->created);

  clock.advance(180001);  // bob is now stale
  auto afterStale =
      restAgents(s).registerAgent(body(R"({"guid":"g1","handle":"carol","capabilities":[]})"));
  REQUIRE(afterStale.isOk());
  CHECK(afterStale->agent.getString("handle") == "carol");
}

TEST_CASE("register validation messages follow the table order") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  auto message = [&](const char* text) {
    auto r = restAgents(s).registerAgent(body(text));
    REQUIRE_FALSE(r.isOk());
    CHECK(r.code() == Code::InvalidArgument);
    return r.status().message();
  };
  CHECK(message(R"({"guid":"bad guid","handle":""})") ==
        "guid must be 1-128 characters from [A-Za-z0-9_-]");
  CHECK(message(R"({"handle":"  "})") == "handle is required");
  CHECK(message(R"({"handle":"a"})") == "capabilities must be an array of non-empty strings");
  CHECK(message(R"({"handle":"a","capabilities":["x",""]})") ==
        "capabilities must be an array of non-empty strings");
  CHECK(message(R"({"handle":"a","capabilities":[],"agentType":3})") ==
        "agentType must be a string");
  CHECK(message(R"({"handle":"a","capabilities":[],"projectId":"a b"})") ==
        "projectId must be 1-64 characters from [A-Za-z0-9_-]");
  CHECK(message(R"({"handle":"a","capabilities":[],"hostname":1})") ==
        "hostname must be a string");
  CHECK(message(R"({"handle":"a","capabilities":[],"scope":"world"})") ==
        "scope must be one of: private, personal, team, public");
  CHECK(message(R"({"handle":"a","capabilities":[],"currentTaskCount":-1})") ==
        "currentTaskCount must be a non-negative integer");
  CHECK(message(R"({"handle":"a","capabilities":[],"maxConcurrentTasks":0})") ==
        "maxConcurrentTasks must be a positive integer");
  CHECK(message(R"({"handle":"a","capabilities":[],"metadata":{"agentType":"x"}})") ==
        "metadata.agentType must be copilot-cli or claude-code");
  CHECK(message(R"({"handle":"a","capabilities":[],"metadata":{"boundaries":[1]}})") ==
        "metadata.boundaries must be an array of non-empty strings");
  // Every field has a size cap.
  const std::string longHost =
      R"({"handle":"a","capabilities":[],"hostname":")" + std::string(257, 'h') + "\"}";
  CHECK(message(longHost.c_str()) == "hostname exceeds 256 bytes");
  const std::string bigMeta =
      R"({"handle":"a","capabilities":[],"metadata":{"notes":")" + std::string(70000, 'm') + "\"}}";
  CHECK(message(bigMeta.c_str()) == "metadata exceeds 65536 bytes");
  CHECK(s.agents->view().size() == 0);  // nothing stored
}

TEST_CASE("entries written directly are listed verbatim; garbage is skipped") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  const std::string direct =
      R"({"guid":"3f2a9c0d5e6b47a8b9c0d1e2f3a4b5c6","handle":"alice","status":"online",)"
      R"("capabilities":["cpp",7],"projectId":"0123456789abcdef","agentType":"developer",)"
      R"("registeredAt":"2025-12-11T05:23:00Z","lastHeartbeat":"2025-12-11T05:23:00.1+00:00",)"
      R"("natsUrl":"nats://x","futureField":{"k":1}})";
  s.putDirect("3f2a9c0d5e6b47a8b9c0d1e2f3a4b5c6", direct);
  s.putDirect("junk", "not json at all");
  s.putDirect("noguid", R"({"handle":"x"})");
  s.putDirect("array", R"([1,2])");
  // The feed applies the four puts one by one: wait for the last of them too.
  REQUIRE(eventually(
      [&] { return s.agents->view().size() == 1 && s.agents->view().invalidCount() == 3; }));

  Json list = listAgents(s);
  REQUIRE(list.get("agents").size() == 1);
  const Json& a = list.get("agents").asArray()[0];
  CHECK(a.getString("registeredAt") == "2025-12-11T05:23:00Z");  // verbatim
  CHECK(a.getString("lastHeartbeat") == "2025-12-11T05:23:00.1+00:00");
  CHECK(a.get("capabilities").dump() == R"(["cpp"])");
  CHECK(a.getString("role") == "developer");
  CHECK(a.getString("agentType") == "claude-code");
  CHECK_FALSE(a.contains("currentTaskCount"));
  CHECK_FALSE(a.contains("futureField"));

  // A lookup of an invalid value is a 404, never an error.
  CHECK(restAgents(s).get("junk").code() == Code::NotFound);
  CHECK(restAgents(s).get("no such key").code() == Code::NotFound);

  // Heartbeat keeps members Weft does not know.
  clock.advance(1000);
  auto hb = restAgents(s).heartbeat("3f2a9c0d5e6b47a8b9c0d1e2f3a4b5c6",
                                body(R"({"status":"busy","currentTaskCount":2})"));
  REQUIRE(hb.isOk());
  CHECK(hb->getString("status") == "busy");
  auto bucket = s.store->openBucket(kAgentBucket, BucketOptions{});
  Json stored = Json::parse((*bucket)->get("3f2a9c0d5e6b47a8b9c0d1e2f3a4b5c6")->value).value();
  CHECK(stored.get("futureField").dump() == R"({"k":1})");
  CHECK(stored.getString("natsUrl") == "nats://x");
  CHECK(stored.getString("lastHeartbeat") == formatIso(clock.nowMs()));
}

TEST_CASE("agent list filters, order and stale flag") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  s.putDirect("b", R"({"guid":"b","status":"online","capabilities":["x"],"registeredAt":"2025-01-02T00:00:00Z"})");
  s.putDirect("a", R"({"guid":"a","status":"offline","capabilities":["y"],"registeredAt":"2025-01-03T00:00:00Z"})");
  s.putDirect("c", R"({"guid":"c","status":"online","capabilities":["x"],"projectId":"p2"})");
  REQUIRE(eventually([&] { return s.agents->view().size() == 3; }));
  Json all = listAgents(s);
  std::string order;
  for (const auto& a : all.get("agents").asArray()) order += a.getString("guid");
  CHECK(order == "cba");  // no registeredAt first, then ascending

  AgentFilter byCap;
  byCap.capability = "x";
  CHECK(listAgents(s, byCap).get("total").asInt() == 2);
  AgentFilter byProject;
  byProject.projectId = "default";
  CHECK(listAgents(s, byProject).get("total").asInt() == 2);
  AgentFilter byStatus;
  byStatus.status = "offline";
  CHECK(listAgents(s, byStatus).get("agents").asArray()[0].getString("guid") == "a");

  REQUIRE(restAgents(s).registerAgent(body(R"({"guid":"fresh","handle":"h","capabilities":[]})")));
  clock.advance(180001);
  AgentFilter fresh;
  fresh.status = "online";
  Json page = listAgents(s, fresh, {std::string("1"), std::nullopt});
  CHECK(page.get("count").asInt() == 1);
  CHECK(page.get("hasMore").asBool());
  auto one = restAgents(s).get("fresh");
  REQUIRE(one.isOk());
  CHECK(one->get("stale").asBool());
}

TEST_CASE("heartbeat and deregister validation and not-found") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  CHECK(restAgents(s).heartbeat("nobody", Json::object()).status().message() ==
        "Agent with GUID nobody not found");
  CHECK(restAgents(s).heartbeat("nobody", body(R"({"status":"offline"})")).status().message() ==
        "status must be online or busy");
  REQUIRE(restAgents(s).registerAgent(body(R"({"guid":"g","handle":"h","capabilities":[]})")));
  auto off = restAgents(s).deregister("g");
  REQUIRE(off.isOk());
  CHECK(off->getString("status") == "offline");
  CHECK(restAgents(s).deregister("g").isOk());  // idempotent
  auto hb = restAgents(s).heartbeat("g", Json::object());
  REQUIRE(hb.isOk());
  CHECK(hb->getString("status") == "offline");  // stays offline without a status
}

TEST_CASE("submit validates in table order") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  auto message = [&](const char* text) {
    auto r = s.rest->submit(body(text));
    REQUIRE_FALSE(r.isOk());
    CHECK(r.code() == Code::InvalidArgument);
    return r.status().message();
  };
  CHECK(message(R"({})") == "classification is required");
  CHECK(message(R"({"classification":"x"})") == "classification is required");
  CHECK(message(R"({"boundary":" "})") == "boundary must be a non-empty string");
  CHECK(message(R"({"boundary":"b"})") == "capability is required");
  CHECK(message(R"({"boundary":"b","capability":5})") == "capability must be a non-empty string");
  CHECK(message(R"({"boundary":"b","capability":"c"})") == "description is required");
  CHECK(message(R"({"boundary":"b","capability":"c","description":true})") ==
        "description must be a string");
  CHECK(message(R"({"boundary":"b","capability":"c","description":"d","priority":11})") ==
        "priority must be an integer between 1 and 10");
  CHECK(message(R"({"boundary":"b","capability":"c","description":"d","preferredAgentType":"x"})") ==
        "Invalid preferredAgentType: x. Must be copilot-cli or claude-code");
  CHECK(message(R"({"boundary":"b","capability":"c","description":"d","requiredAgentType":1})") ==
        "Invalid requiredAgentType: 1. Must be copilot-cli or claude-code");
  CHECK(message(R"({"boundary":"b","capability":"c","description":"d","maxAttempts":0})") ==
        "maxAttempts must be an integer between 1 and 100");
  CHECK(message(R"({"boundary":"b","capability":"c","description":"d","leaseMs":999})") ==
        "leaseMs must be an integer between 1000 and 86400000");
  CHECK(message(R"({"boundary":"b","capability":"c","description":"d","projectId":""})") ==
        "projectId must be 1-64 characters from [A-Za-z0-9_-]");
  CHECK(message(R"({"boundary":"b","capability":"c","description":"d","taskId":7})") ==
        "taskId must be a string");
  const std::string longDeadline = R"({"boundary":"b","capability":"c","description":"d","deadline":")" +
                                   std::string(300, '9') + "\"}";
  CHECK(message(longDeadline.c_str()) == "deadline exceeds 256 bytes");
  std::string big = R"({"boundary":"b","capability":"c","description":"d","contextData":")" +
                    std::string(262145, 'x') + "\"}";
  auto r = s.rest->submit(Json::parse(big).value());
  CHECK(r.status().message() == "contextData exceeds 262144 bytes");
  CHECK(s.work->view().size() == 0);  // nothing stored by a rejected submit
}

TEST_CASE("submit stores a pending item and routes to eligible workers") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  auto noWorker = s.rest->submit(body(R"({"boundary":"b","capability":"cpp","description":"d"})"));
  REQUIRE(noWorker.isOk());
  CHECK(noWorker->getString("id") == noWorker->getString("workItemId"));
  CHECK(noWorker->getString("targetAgentType") == "claude-code");
  CHECK(noWorker->get("spinUpTriggered").asBool());
  CHECK(noWorker->getInt("estimatedWaitSeconds") == 30);

  REQUIRE(restAgents(s).registerAgent(body(
      R"({"guid":"w1","handle":"w","capabilities":["cpp"],"metadata":{"agentType":"copilot-cli"}})")));
  auto routed = s.rest->submit(body(
      R"({"boundary":"b","capability":"cpp","description":"d","priority":9,"taskId":"t-1",)"
      R"("contextData":{"k":[1,2]},"deadline":"tomorrow"})"));
  REQUIRE(routed.isOk());
  CHECK(routed->getString("targetAgentType") == "copilot-cli");
  CHECK_FALSE(routed->get("spinUpTriggered").asBool());
  CHECK(routed->getInt("estimatedWaitSeconds") == 5);

  auto item = s.rest->get(routed->getString("id"));
  REQUIRE(item.isOk());
  CHECK(item->getString("status") == "pending");
  CHECK(item->getString("taskId") == "t-1");
  CHECK(item->getInt("priority") == 9);
  CHECK(item->getInt("attempts") == 0);
  CHECK(item->getInt("maxAttempts") == 3);
  CHECK(item->get("errors").dump() == "[]");
  CHECK(item->get("contextData").dump() == R"({"k":[1,2]})");
  CHECK(item->getString("deadline") == "tomorrow");
  CHECK(item->getString("offeredBy") == "coordinator");
  CHECK_FALSE(item->contains("claimToken"));

  // A worker in another boundary is not eligible.
  REQUIRE(restAgents(s).registerAgent(body(
      R"({"guid":"w2","handle":"w2","capabilities":["go"],"metadata":{"boundaries":["other"]}})")));
  auto fenced = s.rest->submit(body(R"({"boundary":"b","capability":"go","description":"d"})"));
  CHECK(fenced->get("spinUpTriggered").asBool());

  CHECK(s.rest->get("not-a-uuid").code() == Code::NotFound);
  CHECK(s.rest->get("3f2a9c0d-5e6b-47a8-b9c0-d1e2f3a4b5c6").code() == Code::NotFound);
}

TEST_CASE("work list order, filters and cancel") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  std::vector<std::string> ids;
  for (int p : {3, 9, 3}) {
    clock.advance(10);
    auto r = s.rest->submit(body(("{\"boundary\":\"b\",\"capability\":\"c\",\"description\":\"d\","
                                  "\"priority\":" + std::to_string(p) + "}").c_str()));
    REQUIRE(r.isOk());
    ids.push_back(r->getString("id"));
  }
  auto list = s.rest->list({}, {});
  REQUIRE(list.isOk());
  const auto& items = list->get("workItems").asArray();
  REQUIRE(items.size() == 3);
  CHECK(items[0].getString("id") == ids[1]);
  CHECK(items[1].getString("id") == ids[0]);
  CHECK(items[2].getString("id") == ids[2]);

  auto cancelled = s.rest->cancel(ids[0]);
  REQUIRE(cancelled.isOk());
  CHECK(cancelled->getString("message") == "Work item " + ids[0] + " cancelled");
  auto again = s.rest->cancel(ids[0]);
  CHECK(again.code() == Code::Conflict);
  CHECK(again.status().message() == "Cannot cancel work in cancelled state");
  CHECK(s.rest->cancel(newUuid()).code() == Code::NotFound);

  WorkFilter pending;
  pending.status = "pending";
  CHECK(s.rest->list(pending, {})->getInt("total") == 2);
  auto item = s.rest->get(ids[0]);
  CHECK(item->getString("status") == "cancelled");
  CHECK(item->contains("cancelledAt"));
}

TEST_CASE("an outage gives Unavailable at once and data survives a restart") {
  ManualClock clock;
  auto store = createMemoryStore();
  std::string id;
  {
    Services s(store, clock);
    auto r = s.rest->submit(body(R"({"boundary":"b","capability":"c","description":"d"})"));
    REQUIRE(r.isOk());
    id = r->getString("id");
    store->setAvailable(false);
    CHECK(s.rest->submit(body(R"({"boundary":"b","capability":"c","description":"d"})")).code() ==
          Code::Unavailable);
    CHECK(s.rest->list({}, {}).code() == Code::Unavailable);
    CHECK(restAgents(s).list({}, {}).code() == Code::Unavailable);
    CHECK(s.stats->overview().code() == Code::Unavailable);
    store->setAvailable(true);
  }
  Services restarted(store, clock);
  auto item = restarted.rest->get(id);
  REQUIRE(item.isOk());
  CHECK(item->getString("status") == "pending");
}

TEST_CASE("stats count per project") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  auto empty = s.stats->overview();
  REQUIRE(empty.isOk());
  CHECK(empty->byProject.empty());
  CHECK(empty->totals.agents == 0);

  REQUIRE(restAgents(s).registerAgent(body(R"({"guid":"a1","handle":"h","capabilities":[]})")));
  REQUIRE(restAgents(s).registerAgent(
      body(R"({"guid":"a2","handle":"h","capabilities":[],"projectId":"p2"})")));
  REQUIRE(restAgents(s).deregister("a2"));
  auto w = s.rest->submit(body(R"({"boundary":"b","capability":"c","description":"d"})"));
  REQUIRE(s.rest->submit(body(R"({"boundary":"b","capability":"c","description":"d"})")));
  REQUIRE(s.rest->cancel(w->getString("id")));

  auto stats = s.stats->overview();
  REQUIRE(stats.isOk());
  CHECK(stats->byProject.size() == 2);
  const ProjectTotals& totals = stats->totals;
  CHECK(totals.agents == 1);
  CHECK(totals.pendingWork == 1);
  CHECK(totals.cancelledWork == 1);
  CHECK(totals.failedWork == 0);
  CHECK(stats->byProject.at("p2").agents == 0);
  // The registration is the default project's activity; p2 has none known
  // (its agent left), so it reads as now.
  CHECK(stats->byProject.at("p2").lastActivityMs == stats->timestampMs);
  CHECK(stats->timestampMs == clock.nowMs());
  auto projects = s.stats->projects();
  CHECK(projects->projects == std::vector<std::string>{"default", "p2"});
}
