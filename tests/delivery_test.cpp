// Unit tests of work delivery (issue 18): delayed work (notBefore / delayMs),
// retry backoff (RetryPolicy, nextAttemptAt after a failure or an expired
// lease) and long-poll claims (WorkQueue::claimWait: wake one waiter per
// item, FIFO, timeouts, cancel, shutdown, due items waking waiters), on the
// in-memory backend with an injected clock.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <vector>

#include "service_fixture.h"
#include "weft/events.h"
#include "weft/ids.h"
#include "weft/retry_policy.h"

using namespace weft;
using namespace weft::test;

namespace {

Status submitError(Services& s, const std::string& extra) {
  std::string text = R"({"boundary":"b","capability":"cpp","description":"d",)" + extra + "}";
  auto r = s.rest->submit(Json::parse(text).value());
  REQUIRE_FALSE(r.isOk());
  return r.status();
}

void registerAgent(Services& s, const std::string& guid) {
  RegisterRequest request;
  request.guid = guid;
  request.handle = guid;
  request.capabilities = {"cpp"};
  REQUIRE(s.agents->registerAgent(request).isOk());
}

Json claimBody(const std::string& guid, const std::string& extra = "") {
  return Json::parse(R"({"agentGuid":")" + guid + "\"" + (extra.empty() ? "" : "," + extra) + "}")
      .value();
}

// The claimed item's id, or "" when nothing was claimable.
std::string claimId(Services& s, const std::string& guid) {
  auto r = s.rest->claim(claimBody(guid));
  INFO(r.status().toString());
  REQUIRE(r.isOk());
  return r->has_value() ? (*r)->getString("id") : "";
}

Json item(Services& s, const std::string& id) {
  auto r = s.rest->get(id);
  REQUIRE(r.isOk());
  return *r;
}

// Claims the item with the agent and reports a recoverable failure;
// returns the failed (retried) item.
Json claimAndFail(Services& s, const std::string& guid, const std::string& id) {
  auto claimed = s.rest->claim(claimBody(guid));
  REQUIRE(claimed.isOk());
  REQUIRE(claimed->has_value());
  REQUIRE((*claimed)->getString("id") == id);
  auto failed = s.rest->fail(
      id, Json::parse(R"({"agentGuid":")" + guid + R"(","claimToken":")" +
                      (*claimed)->getString("claimToken") +
                      R"(","error":{"message":"dependency down"}})")
              .value());
  REQUIRE(failed.isOk());
  return *failed;
}

// A long-poll claim's outcome, filled in by its done callback.
struct WaitOutcome {
  std::mutex mu;
  bool done = false;
  int calls = 0;
  Status status = Status::ok();
  std::string id;  // "" = nothing claimed

  WorkQueue::ClaimDone callback() {
    return [this](Result<std::optional<ClaimedItem>> r) {
      std::lock_guard<std::mutex> lock(mu);
      ++calls;  // checked by isDone(): exactly once
      done = true;
      if (!r) {
        status = r.status();
      } else if (r->has_value()) {
        id = (*r)->work.item->id;
      }
    };
  }
  bool isDone() {
    std::lock_guard<std::mutex> lock(mu);
    CHECK(calls <= 1);
    return done;
  }
  std::string claimed() {
    std::lock_guard<std::mutex> lock(mu);
    return id;
  }
};

ClaimRequest waitRequest(const std::string& guid, int64_t waitMs) {
  ClaimRequest r;
  r.agentGuid = guid;
  r.waitMs = waitMs;
  return r;
}

}  // namespace

TEST_CASE("RetryPolicy: none, fixed and exponential with cap and jitter") {
  RetryPolicy p;
  p.backoff = Backoff::None;
  CHECK(p.delayMs(1, 0.0) == 0);
  CHECK(p.delayMs(5, 0.5) == 0);

  p.backoff = Backoff::Fixed;
  p.baseDelayMs = 1500;
  p.maxDelayMs = 60000;
  p.jitterPercent = 0;
  CHECK(p.delayMs(1, 0.7) == 1500);
  CHECK(p.delayMs(9, 0.7) == 1500);

  p.backoff = Backoff::Exponential;
  p.baseDelayMs = 1000;
  p.maxDelayMs = 5000;
  CHECK(p.delayMs(1, 0.0) == 1000);
  CHECK(p.delayMs(2, 0.0) == 2000);
  CHECK(p.delayMs(3, 0.0) == 4000);
  CHECK(p.delayMs(4, 0.0) == 5000);  // capped
  CHECK(p.delayMs(1000, 0.0) == 5000);  // no overflow however many attempts

  // Jitter takes off up to jitterPercent, never adds.
  p.jitterPercent = 20;
  CHECK(p.delayMs(2, 0.0) == 2000);
  CHECK(p.delayMs(2, 0.5) == 1800);
  CHECK(p.delayMs(2, 0.999999) > 1600);
  for (int i = 0; i < 200; ++i) {
    const int64_t d = p.delayMs(3, jitterRandom());
    CHECK(d > 3200);
    CHECK(d <= 4000);
  }

  // An item's retry object overrides member by member.
  RetryPolicy server;
  server.backoff = Backoff::Fixed;
  server.baseDelayMs = 700;
  server.maxDelayMs = 9000;
  server.jitterPercent = 10;
  RetryPolicy mine = server.overriddenBy(Json::parse(R"({"backoff":"exponential","maxDelayMs":800})").value());
  CHECK(mine.backoff == Backoff::Exponential);
  CHECK(mine.baseDelayMs == 700);
  CHECK(mine.maxDelayMs == 800);
  CHECK(mine.jitterPercent == 10);
  CHECK(server.overriddenBy(Json()).backoff == Backoff::Fixed);
}

TEST_CASE("delayed work: not claimable before nextAttemptAt, claimable from then on") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  const std::string id = submitWork(s, R"("delayMs":60000,"priority":9)");
  Json stored = item(s, id);
  CHECK(stored.getString("status") == "pending");
  CHECK(stored.getString("nextAttemptAt") == formatIso(clock.nowMs() + 60000));
  // The submitted transition names the time (work:submitted carries it).
  const Json& log = stored.get("transitions");
  CHECK(log.asArray().back().getString("nextAttemptAt") == stored.getString("nextAttemptAt"));

  // A due item of lower priority is claimed first; the delayed one is not.
  const std::string due = submitWork(s, R"("priority":1)");
  CHECK(claimId(s, "a1") == due);
  CHECK(claimId(s, "a1") == "");
  clock.advance(59999);
  CHECK(claimId(s, "a1") == "");
  clock.advance(1);
  CHECK(claimId(s, "a1") == id);
  Json claimed = item(s, id);
  CHECK(claimed.getString("status") == "assigned");
  CHECK(claimed.find("nextAttemptAt") == nullptr);
}

TEST_CASE("delayed work: notBefore as an ISO time, a past one means due now") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  const std::string later =
      submitWork(s, "\"notBefore\":\"" + formatIso(clock.nowMs() + 5000) + "\"");
  CHECK(item(s, later).getString("nextAttemptAt") == formatIso(clock.nowMs() + 5000));
  const std::string past = submitWork(s, "\"notBefore\":\"2020-01-01T00:00:00Z\"");
  CHECK(item(s, past).find("nextAttemptAt") == nullptr);
  CHECK(claimId(s, "a1") == past);
  CHECK(claimId(s, "a1") == "");
  clock.advance(5000);
  CHECK(claimId(s, "a1") == later);
}

TEST_CASE("delayed work and retry: field rules name the field") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  CHECK(submitError(s, R"("notBefore":"tomorrow")").message() ==
        "notBefore must be an ISO 8601 date-time string (e.g. 2026-12-04T10:00:00Z)");
  CHECK(submitError(s, R"("notBefore":12)").message() ==
        "notBefore must be an ISO 8601 date-time string (e.g. 2026-12-04T10:00:00Z)");
  CHECK(submitError(s, R"("delayMs":-1)").message() ==
        "delayMs must be an integer between 0 and 2592000000 (30 days)");
  CHECK(submitError(s, R"("delayMs":2592000001)").message() ==
        "delayMs must be an integer between 0 and 2592000000 (30 days)");
  CHECK(submitError(s, R"("delayMs":"5")").message() ==
        "delayMs must be an integer between 0 and 2592000000 (30 days)");
  CHECK(submitError(s, R"("delayMs":5,"notBefore":"2030-01-01T00:00:00Z")").message() ==
        "notBefore and delayMs cannot both be given");
  Status far = submitError(s, "\"notBefore\":\"" + formatIso(clock.nowMs() + kMaxDelayMs + 1) + "\"");
  CHECK(far.code() == Code::InvalidArgument);
  CHECK(far.message() == "notBefore must be at most 2592000000 ms (30 days) ahead");
  CHECK(submitError(s, R"("retry":"fast")").message() == "retry must be an object");
  CHECK(submitError(s, R"("retry":{"backoff":"linear"})").message() ==
        "retry.backoff must be one of: none, fixed, exponential");
  CHECK(submitError(s, R"("retry":{"baseDelayMs":-5})").message() ==
        "retry.baseDelayMs must be an integer between 0 and 2592000000");
  CHECK(submitError(s, R"("retry":{"maxDelayMs":1.5})").message() ==
        "retry.maxDelayMs must be an integer between 0 and 2592000000");
  CHECK(submitError(s, R"("retry":{"baseDelayMs":5000,"maxDelayMs":10})").message() ==
        "retry.maxDelayMs must not be less than retry.baseDelayMs");
  CHECK(submitError(s, R"("retry":{"jitterPercent":101})").message() ==
        "retry.jitterPercent must be an integer between 0 and 100");
  // Absent options keep today's item: no nextAttemptAt, no retry member.
  registerAgent(s, "a1");
  Json plain = item(s, submitWork(s));
  CHECK(plain.find("nextAttemptAt") == nullptr);
  CHECK(plain.find("retry") == nullptr);
}

TEST_CASE("retry backoff: a failed item waits for nextAttemptAt, exponential and capped") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  const std::string id = submitWork(
      s, R"("maxAttempts":5,"retry":{"backoff":"exponential","baseDelayMs":1000,"maxDelayMs":3000,"jitterPercent":0})");
  CHECK(item(s, id).get("retry").dump() ==
        R"({"backoff":"exponential","baseDelayMs":1000,"maxDelayMs":3000,"jitterPercent":0})");
  const int64_t expected[] = {1000, 2000, 3000, 3000};
  for (int64_t wait : expected) {
    const Json failedItem = claimAndFail(s, "a1", id);
    const Json* failed = &failedItem;
    CHECK(failed->getString("status") == "pending");
    CHECK(failed->getString("nextAttemptAt") == formatIso(clock.nowMs() + wait));
    // The failed transition carries it, and so does the work:failed event.
    const Json& last = failed->get("transitions").asArray().back();
    CHECK(last.getString("event") == "failed");
    CHECK(last.getString("nextAttemptAt") == formatIso(clock.nowMs() + wait));
    auto after = WorkQueue::decode(failed->dump());
    REQUIRE(after);
    const Event* lastFailed = nullptr;
    auto events = deriveWorkEvents(nullptr, after.get(), clock.nowMs(), {});
    for (const auto& e : events) {
      if (e.name == "work:failed") lastFailed = &e;
    }
    REQUIRE(lastFailed);
    CHECK(lastFailed->data.getString("nextAttemptAt") == formatIso(clock.nowMs() + wait));
    CHECK(claimId(s, "a1") == "");
    clock.advance(wait - 1);
    CHECK(claimId(s, "a1") == "");
    clock.advance(1);
    // Claimable again: the next loop claims it.
  }
}

TEST_CASE("retry backoff: the server default applies to failures and expired leases") {
  ManualClock clock;
  CoreOptions options;
  options.retry.backoff = Backoff::Fixed;
  options.retry.baseDelayMs = 4000;
  options.retry.jitterPercent = 0;
  options.leaseMs = 1000;
  Services s(createMemoryStore(), clock, options);
  registerAgent(s, "a1");
  const std::string id = submitWork(s);
  REQUIRE(claimId(s, "a1") == id);
  clock.advance(1000);
  auto report = s.work->sweepOnce();
  CHECK(report.leasesExpired == 1);
  CHECK(report.retried == 1);
  Json expired = item(s, id);
  CHECK(expired.getString("status") == "pending");
  CHECK(expired.getString("nextAttemptAt") == formatIso(clock.nowMs() + 4000));
  CHECK(claimId(s, "a1") == "");
  clock.advance(4000);
  CHECK(claimId(s, "a1") == id);
}

TEST_CASE("retry backoff: none (the default) retries at once, as before") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  const std::string id = submitWork(s);
  const Json failed = claimAndFail(s, "a1", id);
  CHECK(failed.find("nextAttemptAt") == nullptr);
  CHECK(failed.get("transitions").asArray().back().find("nextAttemptAt") == nullptr);
  CHECK(claimId(s, "a1") == id);
}

TEST_CASE("long poll: a parked claim gets the item submitted meanwhile") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  WaitOutcome out;
  const uint64_t waitId = s.work->claimWait(waitRequest("a1", 20000), out.callback());
  CHECK(waitId != 0);
  CHECK_FALSE(out.isDone());
  CHECK(s.work->parkedClaims() == 1);
  const std::string id = submitWork(s);
  REQUIRE(eventually([&] { return out.isDone(); }, 10000));
  CHECK(out.claimed() == id);
  CHECK(item(s, id).getString("assignedTo") == "a1");
  CHECK(s.work->parkedClaims() == 0);
}

TEST_CASE("long poll: an available item is claimed at once, waitMs 0 never parks") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  WaitOutcome none;
  CHECK(s.work->claimWait(waitRequest("a1", 0), none.callback()) == 0);
  CHECK(none.isDone());
  CHECK(none.claimed() == "");
  const std::string id = submitWork(s);
  WaitOutcome now;
  CHECK(s.work->claimWait(waitRequest("a1", 5000), now.callback()) == 0);
  CHECK(now.isDone());
  CHECK(now.claimed() == id);
  // An unknown agent is the same 404 as a plain claim, at once.
  WaitOutcome unknown;
  CHECK(s.work->claimWait(waitRequest("nobody", 5000), unknown.callback()) == 0);
  CHECK(unknown.isDone());
  CHECK(unknown.status.code() == Code::NotFound);
}

TEST_CASE("long poll: nothing within waitMs ends with nothing claimed") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  WaitOutcome out;
  const auto start = std::chrono::steady_clock::now();
  s.work->claimWait(waitRequest("a1", 300), out.callback());
  REQUIRE(eventually([&] { return out.isDone(); }, 10000));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= std::chrono::milliseconds(300));
  CHECK(out.claimed() == "");
  CHECK(out.status.isOk());
  CHECK(s.work->parkedClaims() == 0);
}

TEST_CASE("long poll: one item wakes one waiter, the longest-waiting first") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  std::vector<std::unique_ptr<WaitOutcome>> outs;
  for (int i = 0; i < 5; ++i) {
    registerAgent(s, "a" + std::to_string(i));
    outs.push_back(std::make_unique<WaitOutcome>());
    s.work->claimWait(waitRequest("a" + std::to_string(i), 20000), outs.back()->callback());
  }
  CHECK(s.work->parkedClaims() == 5);
  const std::string first = submitWork(s);
  REQUIRE(eventually([&] { return outs[0]->isDone(); }, 10000));
  CHECK(outs[0]->claimed() == first);
  // The others stay parked: nobody else was woken for it.
  CHECK(s.work->parkedClaims() == 4);
  for (int i = 1; i < 5; ++i) CHECK_FALSE(outs[i]->isDone());
  const std::string second = submitWork(s);
  REQUIRE(eventually([&] { return outs[1]->isDone(); }, 10000));
  CHECK(outs[1]->claimed() == second);
  CHECK(s.work->parkedClaims() == 3);
  // A burst: each item one waiter.
  std::set<std::string> burst{submitWork(s), submitWork(s), submitWork(s)};
  REQUIRE(eventually([&] { return outs[2]->isDone() && outs[3]->isDone() && outs[4]->isDone(); },
                     10000));
  std::set<std::string> got{outs[2]->claimed(), outs[3]->claimed(), outs[4]->claimed()};
  CHECK(got == burst);
}

TEST_CASE("long poll: a waiter only wakes for items it may take") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  registerAgent(s, "a2");
  WaitOutcome onlyX, any;
  ClaimRequest x = waitRequest("a1", 20000);
  x.boundaries = std::vector<std::string>{"x"};
  s.work->claimWait(x, onlyX.callback());  // waiting longest, but only for boundary x
  s.work->claimWait(waitRequest("a2", 20000), any.callback());
  const std::string inB = submitWork(s);  // boundary b
  REQUIRE(eventually([&] { return any.isDone(); }, 10000));
  CHECK(any.claimed() == inB);
  CHECK_FALSE(onlyX.isDone());
  auto r = s.rest->submit(
      Json::parse(R"({"boundary":"x","capability":"cpp","description":"d"})").value());
  REQUIRE(r.isOk());
  REQUIRE(eventually([&] { return onlyX.isDone(); }, 10000));
  CHECK(onlyX.claimed() == r->getString("id"));
}

TEST_CASE("long poll: a cancelled wait never claims, ending waits answers every waiter") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  registerAgent(s, "a2");
  WaitOutcome gone;
  const uint64_t id = s.work->claimWait(waitRequest("a1", 20000), gone.callback());
  s.work->cancelClaimWait(id);
  CHECK(gone.isDone());
  CHECK(gone.claimed() == "");
  CHECK(s.work->parkedClaims() == 0);
  s.work->cancelClaimWait(id);  // again: ignored
  const std::string item1 = submitWork(s);
  CHECK(item(s, item1).getString("status") == "pending");

  REQUIRE(claimId(s, "a2") == item1);
  WaitOutcome w1, w2;
  s.work->claimWait(waitRequest("a1", 20000), w1.callback());
  s.work->claimWait(waitRequest("a2", 20000), w2.callback());
  CHECK(s.work->parkedClaims() == 2);
  s.work->endClaimWaits();
  CHECK(w1.isDone());
  CHECK(w2.isDone());
  CHECK(w1.claimed() == "");
  CHECK(s.work->parkedClaims() == 0);
  // From now on a claim does not wait.
  WaitOutcome late;
  CHECK(s.work->claimWait(waitRequest("a1", 20000), late.callback()) == 0);
  CHECK(late.isDone());
}

TEST_CASE("long poll: a delayed item coming due wakes a waiter (timer, injected clock)") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  WaitOutcome out;
  s.work->claimWait(waitRequest("a1", 30000), out.callback());
  const std::string id = submitWork(s, R"("delayMs":5000)");
  // Not due: the waiter stays parked.
  s.work->promoteDue();
  CHECK_FALSE(out.isDone());
  CHECK(s.work->parkedClaims() == 1);
  clock.advance(5000);
  // The due timer notices within a second (no explicit promoteDue here).
  REQUIRE(eventually([&] { return out.isDone(); }, 10000));
  CHECK(out.claimed() == id);
}

TEST_CASE("long poll: a retried item with backoff wakes a waiter only when due") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  registerAgent(s, "a2");
  const std::string id =
      submitWork(s, R"("retry":{"backoff":"fixed","baseDelayMs":2000,"jitterPercent":0})");
  auto claimed = s.rest->claim(claimBody("a1"));
  REQUIRE(claimed.isOk());
  REQUIRE(claimed->has_value());
  WaitOutcome out;
  s.work->claimWait(waitRequest("a2", 30000), out.callback());
  auto failed = s.rest->fail(
      id, Json::parse(R"({"agentGuid":"a1","claimToken":")" + (*claimed)->getString("claimToken") +
                      R"(","error":{"message":"x"}})")
              .value());
  REQUIRE(failed.isOk());
  s.work->promoteDue();
  CHECK_FALSE(out.isDone());
  clock.advance(2000);
  s.work->promoteDue();
  REQUIRE(eventually([&] { return out.isDone(); }, 10000));
  CHECK(out.claimed() == id);
}

TEST_CASE("long poll: stop() ends parked waits") {
  ManualClock clock;
  WaitOutcome out;
  {
    Services s(createMemoryStore(), clock);
    registerAgent(s, "a1");
    s.work->claimWait(waitRequest("a1", 30000), out.callback());
    CHECK_FALSE(out.isDone());
  }
  CHECK(out.isDone());
  CHECK(out.claimed() == "");
}
