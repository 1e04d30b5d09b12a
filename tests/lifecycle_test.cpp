// Unit tests of the work lifecycle (docs/api.md §2.4, §2.5, §4.1, §4.3) on the
// in-memory backend with injected time: claims and fencing, leases and the
// sweeper, retries and the dead-letter queue, batch cancel, and injected
// backend faults.
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <thread>

#include "service_fixture.h"
#include "support/faulty_kv.h"
#include "weft/ids.h"

using namespace weft;
using namespace weft::test;

namespace {

// metadata: the registration's metadata object, as JSON text.
void registerAgent(Services& s, const std::string& guid, const std::string& metadata = "") {
  RegisterRequest request;
  request.guid = guid;
  request.handle = guid;
  request.capabilities = {"cpp"};
  if (!metadata.empty()) request.metadata = Json::parse(metadata).value();
  REQUIRE(s.agents->registerAgent(request).isOk());
}

Json claimBody(const std::string& guid, const std::string& extra = "") {
  return Json::parse(R"({"agentGuid":")" + guid + "\"" + (extra.empty() ? "" : "," + extra) + "}")
      .value();
}

// Claims and returns {id, token}.
std::pair<std::string, std::string> claim(Services& s, const std::string& guid) {
  auto r = s.rest->claim(claimBody(guid));
  REQUIRE(r.isOk());
  REQUIRE(r->has_value());
  return {(*r)->getString("id"), (*r)->getString("claimToken")};
}

Json fenceBody(const std::string& guid, const std::string& token, const std::string& extra = "") {
  return Json::parse(R"({"agentGuid":")" + guid + R"(","claimToken":")" + token + "\"" +
                     (extra.empty() ? "" : "," + extra) + "}")
      .value();
}

Json failBody(const std::string& guid, const std::string& token, bool recoverable = true) {
  return fenceBody(guid, token,
                   std::string(R"("error":{"message":"boom","code":"E1","recoverable":)") +
                       (recoverable ? "true" : "false") + "}");
}

std::string statusOf(Services& s, const std::string& id) {
  auto item = s.rest->get(id);
  REQUIRE(item.isOk());
  return item->getString("status");
}

}  // namespace

TEST_CASE("claim assigns the highest-priority oldest item with a fresh token") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  std::string low = submitWork(s, R"("priority":2)");
  clock.advance(5);
  std::string high1 = submitWork(s, R"("priority":8)");
  clock.advance(5);
  std::string high2 = submitWork(s, R"("priority":8)");

  auto r = s.rest->claim(claimBody("a1"));
  REQUIRE(r.isOk());
  REQUIRE(r->has_value());
  const Json& item = **r;
  CHECK(item.getString("id") == high1);
  CHECK(item.getString("status") == "assigned");
  CHECK(item.getInt("attempts") == 1);
  CHECK(item.getString("assignedTo") == "a1");
  CHECK(item.getInt("leaseDurationMs") == 300000);
  CHECK(item.getString("leaseExpiresAt") == formatIso(clock.nowMs() + 300000));
  CHECK(item.getString("claimToken").size() >= 32);
  CHECK(item.get("assignedToAgent").getString("guid") == "a1");

  // The token is never shown again.
  CHECK_FALSE(s.rest->get(high1)->contains("claimToken"));
  CHECK(claim(s, "a1").first == high2);
  CHECK(claim(s, "a1").first == low);
  auto none = s.rest->claim(claimBody("a1"));
  REQUIRE(none.isOk());
  CHECK_FALSE(none->has_value());
}

TEST_CASE("claim validation, unknown and offline agents") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  CHECK(s.rest->claim(Json::object()).status().message() == "agentGuid is required");
  CHECK(s.rest->claim(claimBody("x", R"("capabilities":"cpp")")).status().message() ==
        "capabilities must be an array of strings");
  CHECK(s.rest->claim(claimBody("x", R"("boundaries":[1])")).status().message() ==
        "boundaries must be an array of strings");
  CHECK(s.rest->claim(claimBody("x", R"("leaseMs":5)")).status().message() ==
        "leaseMs must be an integer between 1000 and 86400000");
  auto unknown = s.rest->claim(claimBody("ghost"));
  CHECK(unknown.code() == Code::NotFound);
  CHECK(unknown.status().message() == "Agent with GUID ghost not found");
  registerAgent(s, "a1");
  REQUIRE(s.agents->deregister("a1"));
  auto offline = s.rest->claim(claimBody("a1"));
  CHECK(offline.code() == Code::Conflict);
  CHECK(offline.status().message() == "Agent with GUID a1 is offline");
}

TEST_CASE("claim honours capability, boundary, project and required agent type") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "bounded", R"({"boundaries":["east"]})");
  registerAgent(s, "copilot", R"({"agentType":"copilot-cli"})");
  std::string west = submitWork(s, R"("boundary":"west")");
  auto none = s.rest->claim(claimBody("bounded"));
  REQUIRE(none.isOk());
  CHECK_FALSE(none->has_value());  // declared boundaries exclude "west"
  std::string forClaude = submitWork(s, R"("boundary":"east","requiredAgentType":"claude-code")");
  auto notCopilot = s.rest->claim(claimBody("copilot", R"("boundaries":["east"])"));
  CHECK_FALSE(notCopilot->has_value());
  CHECK(claim(s, "bounded").first == forClaude);
  CHECK(claim(s, "copilot").first == west);  // no declared boundaries: any boundary
  submitWork(s, R"("projectId":"other")");
  CHECK_FALSE(s.rest->claim(claimBody("copilot"))->has_value());
  CHECK(s.rest->claim(claimBody("copilot", R"("projectId":"other")"))->has_value());
  submitWork(s, R"("capability":"rust")");
  CHECK_FALSE(s.rest->claim(claimBody("copilot"))->has_value());
  CHECK(s.rest->claim(claimBody("copilot", R"("capabilities":["rust"])"))->has_value());
}

TEST_CASE("start, progress and complete are fenced by the claim token") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  registerAgent(s, "a2");
  std::string id = submitWork(s);
  auto [claimed, token] = claim(s, "a1");
  REQUIRE(claimed == id);

  CHECK(s.rest->start(id, Json::parse(R"({"agentGuid":"a1"})").value()).status().message() ==
        "claimToken is required");
  auto wrongToken = s.rest->start(id, fenceBody("a1", "nope"));
  CHECK(wrongToken.code() == Code::Conflict);
  CHECK(wrongToken.status().message() == "Claim token does not match current assignment");
  CHECK(s.rest->start(id, fenceBody("a2", token)).status().message() ==
        "Claim token does not match current assignment");

  clock.advance(1000);
  auto started = s.rest->start(id, fenceBody("a1", token));
  REQUIRE(started.isOk());
  CHECK(started->getString("status") == "in-progress");
  CHECK(started->getString("startedAt") == formatIso(clock.nowMs()));
  CHECK(started->getString("leaseExpiresAt") == formatIso(clock.nowMs() + 300000));
  clock.advance(1000);
  REQUIRE(s.rest->start(id, fenceBody("a1", token)).isOk());  // idempotent

  CHECK(s.rest->progress(id, fenceBody("a1", token, R"("progress":101)")).status().message() ==
        "progress must be an integer between 0 and 100");
  auto progressed = s.rest->progress(id, fenceBody("a1", token, R"("progress":40)"));
  REQUIRE(progressed.isOk());
  CHECK(progressed->getInt("progress") == 40);

  CHECK(s.rest->complete(id, fenceBody("a1", token, R"("result":[])")).status().message() ==
        "result must be an object");
  auto done = s.rest->complete(
      id, fenceBody("a1", token, R"("result":{"summary":"ok","output":{"n":1},"artifacts":[]})"));
  REQUIRE(done.isOk());
  CHECK(done->getString("status") == "completed");
  CHECK(done->getInt("progress") == 100);
  CHECK(done->get("result").getString("summary") == "ok");
  CHECK(done->get("result").contains("completedAt"));
  CHECK_FALSE(done->contains("leaseExpiresAt"));

  // The holder gets the state error, anyone else the token error.
  CHECK(s.rest->complete(id, fenceBody("a1", token)).status().message() ==
        "Cannot complete work in completed state");
  CHECK(s.rest->fail(id, failBody("a1", token)).status().message() ==
        "Cannot fail work in completed state");
  CHECK(s.rest->progress(id, fenceBody("a2", token, R"("progress":1)")).status().message() ==
        "Claim token does not match current assignment");
}

TEST_CASE("recoverable failures retry until maxAttempts, then the DLQ; retry from the DLQ") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  std::string id = submitWork(s, R"("maxAttempts":2)");

  auto first = claim(s, "a1");
  auto retried = s.rest->fail(id, failBody("a1", first.second));
  REQUIRE(retried.isOk());
  CHECK(retried->getString("status") == "pending");
  CHECK(retried->getInt("attempts") == 1);
  CHECK_FALSE(retried->contains("assignedTo"));
  CHECK(retried->get("errors").size() == 1);
  CHECK(retried->get("error").getString("message") == "boom");
  CHECK(retried->get("error").getInt("attempt") == 1);
  // The old token is now stale.
  CHECK(s.rest->complete(id, fenceBody("a1", first.second)).status().message() ==
        "Claim token does not match current assignment");

  auto second = claim(s, "a1");
  CHECK(second.second != first.second);
  auto failed = s.rest->fail(id, failBody("a1", second.second));
  REQUIRE(failed.isOk());
  CHECK(failed->getString("status") == "failed");
  CHECK(failed->contains("failedAt"));

  auto entry = s.dlq->get(id);
  REQUIRE(entry.isOk());
  const DeadLetter& dead = **entry;
  CHECK(dead.id == id);
  CHECK(dead.reason == DeadLetterReason::MaxAttemptsExceeded);
  CHECK(dead.attempts == 2);
  CHECK(dead.errors.size() == 2);
  REQUIRE(dead.workItem);
  CHECK(dead.workItem->status == WorkStatus::Failed);
  CHECK_FALSE(dead.workItem->contains(WorkField::ClaimToken));
  CHECK(dead.errors[1].message == "boom");
  CHECK(dead.failedAtMs == clock.nowMs());
  CHECK(s.dlq->list({}, {})->total == 1);
  CHECK(s.dlq->list({}, {})->items.front()->id == id);
  CHECK(s.stats->overview()->totals.deadLettered == 1);

  auto requeued = s.rest->retryDeadLetter(id);
  REQUIRE(requeued.isOk());
  CHECK(requeued->getString("status") == "pending");
  CHECK(requeued->getInt("attempts") == 0);
  CHECK(requeued->get("errors").size() == 2);  // history kept
  CHECK(s.dlq->get(id).code() == Code::NotFound);
  CHECK(s.rest->retryDeadLetter(id).code() == Code::NotFound);
}

TEST_CASE("a non-recoverable failure dead-letters at once; DLQ retry of a live item is 409") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  std::string id = submitWork(s);
  auto c = claim(s, "a1");
  REQUIRE(s.rest->fail(id, failBody("a1", c.second, false)).isOk());
  CHECK((*s.dlq->get(id))->reason == DeadLetterReason::NonRecoverable);
  REQUIRE(s.rest->retryDeadLetter(id, /*resetAttempts=*/false));
  CHECK(s.rest->get(id)->getInt("attempts") == 1);
  // A leftover entry for a pending item cannot be retried.
  DeadLetter leftover;
  leftover.id = id;
  leftover.workItem = std::make_shared<WorkItem>();
  REQUIRE(s.dlq->write(leftover));
  CHECK(s.rest->retryDeadLetter(id).status().message() ==
        "Cannot retry work in pending state");
  REQUIRE(s.dlq->discard(id).isOk());
  CHECK(s.dlq->discard(id).code() == Code::NotFound);
}

TEST_CASE("expired leases are re-queued by the sweeper, then dead-lettered") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  std::string id = submitWork(s, R"("maxAttempts":2,"leaseMs":1000)");
  auto c = claim(s, "a1");
  CHECK(s.work->sweepOnce().leasesExpired == 0);
  clock.advance(999);
  CHECK(s.work->sweepOnce().leasesExpired == 0);
  clock.advance(1);
  auto report = s.work->sweepOnce();
  CHECK(report.leasesExpired == 1);
  CHECK(report.retried == 1);
  auto item = s.rest->get(id);
  CHECK(item->getString("status") == "pending");
  CHECK(item->get("error").getString("code") == "LEASE_EXPIRED");
  CHECK(item->get("error").getString("message") == "lease expired");
  CHECK(s.rest->start(id, fenceBody("a1", c.second)).status().message() ==
        "Claim token does not match current assignment");

  // progress extends the lease
  auto c2 = claim(s, "a1");
  clock.advance(800);
  REQUIRE(s.rest->progress(id, fenceBody("a1", c2.second, R"("progress":5)")));
  clock.advance(800);
  CHECK(s.work->sweepOnce().leasesExpired == 0);
  clock.advance(300);
  auto final = s.work->sweepOnce();
  CHECK(final.deadLettered == 1);
  CHECK(statusOf(s, id) == "failed");
  CHECK((*s.dlq->get(id))->reason == DeadLetterReason::MaxAttemptsExceeded);
}

TEST_CASE("two instances sweeping one backend count each expiry once") {
  ManualClock clock;
  auto store = createMemoryStore();
  Services a(store, clock);
  Services b(store, clock);
  registerAgent(a, "agent");
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(submitWork(a, R"("leaseMs":1000,"maxAttempts":5)"));
  for (int i = 0; i < 20; ++i) claim(a, "agent");
  REQUIRE(eventually([&] {
    int active = 0;
    b.work->view().forEach([&](const std::string&, const auto& r) { active += r->isActive(); });
    return active == 20;
  }));
  clock.advance(1000);
  WorkQueue::SweepReport ra, rb;
  std::thread ta([&] { ra = a.work->sweepOnce(); });
  std::thread tb([&] { rb = b.work->sweepOnce(); });
  ta.join();
  tb.join();
  CHECK(ra.leasesExpired + rb.leasesExpired == 20);
  for (const auto& id : ids) {
    auto item = a.rest->get(id);
    CHECK(item->getString("status") == "pending");
    CHECK(item->getInt("attempts") == 1);
    CHECK(item->get("errors").size() == 1);
  }
}

TEST_CASE("concurrent claimers never get the same item") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  constexpr int kItems = 300, kThreads = 6;
  for (int t = 0; t < kThreads; ++t) registerAgent(s, "w" + std::to_string(t));
  for (int i = 0; i < kItems; ++i) submitWork(s);
  std::mutex mutex;
  std::multiset<std::string> claimed;
  std::atomic<int> completedWithStale{0};
  std::atomic<int> completeFailures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string guid = "w" + std::to_string(t);
      for (;;) {
        auto r = s.rest->claim(claimBody(guid));
        if (!r.isOk()) continue;
        if (!r->has_value()) break;
        std::string id = (*r)->getString("id");
        {
          std::lock_guard<std::mutex> lock(mutex);
          claimed.insert(id);
        }
        // Catch2 assertions are not thread-safe: count here, check after join.
        if (s.rest->complete(id, fenceBody(guid, "stale-token")).isOk()) ++completedWithStale;
        if (!s.rest->complete(id, fenceBody(guid, (*r)->getString("claimToken"))).isOk()) {
          ++completeFailures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(claimed.size() == kItems);
  std::set<std::string> unique(claimed.begin(), claimed.end());
  CHECK(unique.size() == kItems);
  CHECK(completedWithStale == 0);
  CHECK(completeFailures == 0);
  CHECK(s.stats->overview()->totals.completedWork == kItems);
}

TEST_CASE("cancel-batch by ids and by filter, with reassign") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  std::string p = submitWork(s, R"("priority":9)");
  std::string q = submitWork(s, R"("priority":1)");
  std::string r = submitWork(s, R"("priority":1)");
  auto c = claim(s, "a1");
  REQUIRE(c.first == p);
  REQUIRE(s.rest->cancel(r));

  CHECK(s.rest->cancelBatch(Json::object()).status().message() ==
        "Either filter or workItemIds must be provided");
  CHECK(s.rest->cancelBatch(body(R"({"workItemIds":"x"})")).status().message() ==
        "workItemIds must be an array");
  CHECK(s.rest->cancelBatch(body(R"({"filter":{"status":1}})")).status().message() ==
        "filter.status must be a string");
  CHECK(s.rest->cancelBatch(body(R"({"filter":{"minPriority":"1"}})")).status().message() ==
        "filter.minPriority must be a number");
  CHECK(s.rest->cancelBatch(body(R"({"filter":{},"reason":"bored"})")).status().message() ==
        "Invalid reason. Must be one of: user-requested, deadline-passed, resource-constraint, "
        "system-shutdown");

  std::string ghost = newUuid();
  auto result = s.rest->cancelBatch(
      Json::parse(R"({"workItemIds":[")" + p + R"(",")" + r + R"(",")" + ghost +
                  R"("],"reassign":true,"reason":"user-requested"})")
          .value());
  REQUIRE(result.isOk());
  CHECK(result->get("success").dump() == "[\"" + p + "\"]");
  CHECK(result->get("reassignedItems").dump() == "[\"" + p + "\"]");
  CHECK(result->get("notCancellable").dump() == "[\"" + r + "\"]");
  CHECK(result->get("errors").getString(ghost) == "Work item not found");
  CHECK(result->get("errors").getString(r) == "Cannot cancel work in cancelled state");
  CHECK(result->getInt("totalProcessed") == 3);
  auto reassigned = s.rest->get(p);
  CHECK(reassigned->getString("status") == "pending");
  CHECK(reassigned->getInt("attempts") == 1);
  CHECK(s.rest->complete(p, fenceBody("a1", c.second)).status().message() ==
        "Claim token does not match current assignment");

  auto byFilter = s.rest->cancelBatch(body(R"({"filter":{"minPriority":5},"reason":"deadline-passed"})"));
  REQUIRE(byFilter.isOk());
  CHECK(byFilter->get("cancelledItems").dump() == "[\"" + p + "\"]");
  CHECK(s.rest->get(p)->getString("cancelReason") == "deadline-passed");
  CHECK(statusOf(s, q) == "pending");
}

TEST_CASE("a failed DLQ write leaves the item where it was") {
  ManualClock clock;
  auto faulty = std::make_shared<FaultyStore>(createMemoryStore());
  Services s(faulty, clock);
  registerAgent(s, "a1");
  std::string id = submitWork(s, R"("maxAttempts":1)");
  auto c = claim(s, "a1");
  faulty->inject({KvOp::Put, kDlqBucket, 1, Code::Unavailable, false});
  auto r = s.rest->fail(id, failBody("a1", c.second));
  CHECK(r.code() == Code::Unavailable);
  CHECK(statusOf(s, id) == "assigned");
  CHECK(s.dlq->get(id).code() == Code::NotFound);
  // The agent can simply report again.
  REQUIRE(s.rest->fail(id, failBody("a1", c.second)).isOk());
  CHECK(statusOf(s, id) == "failed");
  CHECK(s.dlq->get(id).isOk());
}

TEST_CASE("a failed item update after the DLQ write is repaired, never half-moved") {
  ManualClock clock;
  auto faulty = std::make_shared<FaultyStore>(createMemoryStore());
  Services s(faulty, clock);
  registerAgent(s, "a1");

  SECTION("update refused: the entry is an orphan until the sweeper removes it") {
    std::string id = submitWork(s, R"("maxAttempts":1)");
    auto c = claim(s, "a1");
    faulty->inject({KvOp::Update, kWorkBucket, 1, Code::Unavailable, false});
    CHECK(s.rest->fail(id, failBody("a1", c.second)).code() == Code::Unavailable);
    CHECK(statusOf(s, id) == "assigned");
    clock.advance(30000);
    CHECK(s.work->sweepOnce().orphansRemoved == 0);  // too young: an update may be in flight
    clock.advance(30000);
    CHECK(s.work->sweepOnce().orphansRemoved == 1);
    CHECK(s.dlq->get(id).code() == Code::NotFound);
    CHECK(statusOf(s, id) == "assigned");
  }
  SECTION("update applied but acknowledgement lost: failed and in the DLQ") {
    std::string id = submitWork(s, R"("maxAttempts":1)");
    auto c = claim(s, "a1");
    faulty->inject({KvOp::Update, kWorkBucket, 1, Code::Timeout, true});
    CHECK(s.rest->fail(id, failBody("a1", c.second)).code() == Code::Timeout);
    REQUIRE(eventually([&] { return s.work->view().find(id)->status == WorkStatus::Failed; }));
    CHECK(statusOf(s, id) == "failed");
    CHECK(s.dlq->get(id).isOk());
    clock.advance(120000);
    CHECK(s.work->sweepOnce().orphansRemoved == 0);
    CHECK(s.dlq->get(id).isOk());
    // A retried fail now answers the state error.
    CHECK(s.rest->fail(id, failBody("a1", c.second)).status().message() ==
          "Cannot fail work in failed state");
  }
}

TEST_CASE("retention removes old terminal items and dead-letter entries") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  std::string done = submitWork(s);
  auto c = claim(s, "a1");
  REQUIRE(s.rest->complete(done, fenceBody("a1", c.second)));
  std::string pending = submitWork(s);
  clock.advance(86400000);
  auto report = s.work->sweepOnce();
  CHECK(report.itemsPurged == 1);
  CHECK(s.rest->get(done).code() == Code::NotFound);
  CHECK(statusOf(s, pending) == "pending");
}

TEST_CASE("retention takes finished items in the order they finished, and no live one") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  std::vector<std::string> finished;
  for (int i = 0; i < 6; ++i) {
    finished.push_back(submitWork(s));
    REQUIRE(s.rest->cancel(finished.back()));
    clock.advance(3600000);  // one an hour
  }
  const std::string pending = submitWork(s);
  // 24 h after the first: the first one is due, then one more each hour.
  clock.advance(86400000 - 6 * 3600000);
  for (size_t due = 1; due <= finished.size(); ++due) {
    INFO("hour " << due);
    CHECK(s.work->sweepOnce().itemsPurged == 1);
    for (size_t i = 0; i < finished.size(); ++i) {
      CHECK((s.rest->get(finished[i]).code() == Code::NotFound) == (i < due));
    }
    clock.advance(3600000);
  }
  CHECK(s.work->sweepOnce().itemsPurged == 0);
  CHECK(statusOf(s, pending) == "pending");
}

TEST_CASE("retention by an instance that saw the items finish only through the feed") {
  ManualClock clock;
  auto store = createMemoryStore();
  Services a(store, clock);
  Services b(store, clock);
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(submitWork(a));
    REQUIRE(a.rest->cancel(ids.back()));
  }
  const std::string pending = submitWork(a);
  REQUIRE(eventually([&] {
    for (const auto& id : ids) {
      auto e = b.work->view().find(id);
      if (!e || !e->isTerminal()) return false;
    }
    return true;
  }));
  clock.advance(86400000);
  CHECK(b.work->sweepOnce().itemsPurged == 10);
  for (const auto& id : ids) CHECK(a.rest->get(id).code() == Code::NotFound);
  REQUIRE(eventually([&] { return a.work->view().size() == 1; }));
  CHECK(a.work->sweepOnce().itemsPurged == 0);
  CHECK(statusOf(a, pending) == "pending");
}

namespace {

// The value stored under id, straight from the backend.
std::string storedValue(Services& s, const std::string& id) {
  auto entry = s.work->view().bucket()->get(id);
  REQUIRE(entry.isOk());
  return entry->value;
}

}  // namespace

TEST_CASE("the typed WorkQueue API: submit, claim, report, fail and retry") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  SubmitRequest request;
  request.boundary = "b";
  request.capability = "cpp";
  request.description = "typed";
  request.priority = 9;
  request.maxAttempts = 2;
  request.contextData = Json::parse(R"({"k":[1,2]})").value();
  auto submitted = s.work->submit(request);
  REQUIRE(submitted.isOk());
  CHECK(submitted->targetAgentType == "claude-code");
  CHECK(submitted->estimatedWaitSeconds == std::optional<int64_t>(5));
  const std::string id = submitted->id;

  auto read = s.work->get(id);
  REQUIRE(read.isOk());
  const WorkItem& item = *read->item;
  CHECK(item.status == WorkStatus::Pending);
  CHECK(item.priority == 9);
  CHECK(item.maxAttempts == 2);
  CHECK(item.contextData.get("k").size() == 2);
  CHECK(item.errors.empty());
  CHECK(read->assignedToAgent.isNull());

  ClaimRequest claimRequest;
  claimRequest.agentGuid = "a1";
  auto claimed = s.work->claim(claimRequest);
  REQUIRE(claimed.isOk());
  REQUIRE(claimed->has_value());
  const WorkItem& assigned = *(*claimed)->work.item;
  CHECK(assigned.status == WorkStatus::Assigned);
  CHECK(assigned.attempts == 1);
  CHECK_FALSE(assigned.claimToken.empty());
  CHECK((*claimed)->work.assignedToAgent.getString("guid") == "a1");
  // What the claim returns is what it stored.
  CHECK(assigned.encode() == storedValue(s, id));
  const ClaimHolder holder{"a1", assigned.claimToken};

  auto progressed = s.work->progress(id, ProgressReport{holder, 30});
  REQUIRE(progressed.isOk());
  CHECK(progressed->item->progress == 30);
  CHECK(progressed->item->encode() == storedValue(s, id));

  FailReport failure{holder, "broke", std::string("E9"), true};
  auto failed = s.work->fail(id, failure);
  REQUIRE(failed.isOk());
  CHECK(failed->item->status == WorkStatus::Pending);
  REQUIRE(failed->item->errors.size() == 1);
  CHECK(failed->item->errors[0].code == std::optional<std::string>("E9"));
  CHECK(failed->item->errors[0].agentGuid == std::optional<std::string>("a1"));
  CHECK_FALSE(failed->item->contains(WorkField::AssignedTo));
  CHECK(failed->item->encode() == storedValue(s, id));
  // Every stored value reads back byte for byte.
  const std::string stored = storedValue(s, id);
  CHECK(WorkItem::decode(stored)->encode() == stored);

  auto again = s.work->claim(claimRequest);
  REQUIRE(again.isOk());
  REQUIRE(again->has_value());
  const ClaimHolder second{"a1", (*again)->work.item->claimToken};
  auto dead = s.work->fail(id, FailReport{second, "again", std::nullopt, true});
  REQUIRE(dead.isOk());
  CHECK(dead->item->status == WorkStatus::Failed);
  auto entry = s.dlq->get(id);
  REQUIRE(entry.isOk());
  CHECK((*entry)->errors.size() == 2);
  CHECK((*entry)->workItem->encode().find("claimToken") == std::string::npos);

  auto retried = s.work->retryDeadLetter(id);
  REQUIRE(retried.isOk());
  CHECK(retried->item->status == WorkStatus::Pending);
  CHECK(retried->item->attempts == 0);
  CHECK(retried->item->encode() == storedValue(s, id));

  auto cancelled = s.work->cancel(id);
  REQUIRE(cancelled.isOk());
  CHECK((*cancelled)->status == WorkStatus::Cancelled);
  CHECK((*cancelled)->encode() == storedValue(s, id));
  CHECK(s.work->cancel(id).code() == Code::Conflict);
}
