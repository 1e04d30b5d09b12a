// Unit tests of idempotent submits (WorkQueue::submit with an
// IdempotencyKey; docs/api.md "Idempotent submits") on the in-memory
// backend with injected time: replays, a reused key with another body, the
// window, and every failure between the record's write and the item's
// (injected with FaultyStore), each retried until it succeeds: one item per
// key, always.
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

// The ids stored in the work bucket (read from the backend, not the view).
std::set<std::string> storedIds(KvStore& store) {
  auto bucket = store.openBucket(kWorkBucket, BucketOptions{});
  REQUIRE(bucket.isOk());
  auto keys = (*bucket)->keys("");
  REQUIRE(keys.isOk());
  return {keys->begin(), keys->end()};
}

SubmitRequest request(const std::string& description = "d") {
  SubmitRequest r;
  r.boundary = "b";
  r.capability = "cpp";
  r.description = description;
  return r;
}

IdempotencyKey key(const std::string& k, const std::string& scope = "") { return {k, scope}; }

// Submits until the answer is not a backend outage (at most 20 tries).
Result<Submitted> submitUntilAnswered(WorkQueue& work, const SubmitRequest& r,
                                      const IdempotencyKey& k, int* outages = nullptr) {
  for (int i = 0; i < 20; ++i) {
    auto out = work.submit(r, k);
    if (out || !out.status().isOutage()) return out;
    if (outages) ++*outages;
  }
  FAIL("still failing after 20 tries");
  return Status::internal("unreachable");
}

}  // namespace

TEST_CASE("idempotent submit: the same key and body replay the first outcome", "[idempotency]") {
  ManualClock clock;
  Services q(createMemoryStore(), clock);

  auto first = q.work->submit(request(), key("k1"));
  REQUIRE(first.isOk());
  CHECK_FALSE(first->replayed);
  CHECK(isUuid(first->id));

  clock.advance(60000);
  auto second = q.work->submit(request(), key("k1"));
  REQUIRE(second.isOk());
  CHECK(second->replayed);
  CHECK(second->id == first->id);
  CHECK(second->targetAgentType == first->targetAgentType);
  CHECK(second->spinUpTriggered == first->spinUpTriggered);
  CHECK(second->estimatedWaitSeconds == first->estimatedWaitSeconds);
  CHECK(storedIds(*q.store) == std::set<std::string>{first->id});
  CHECK(q.work->idempotentReplays() == 1);

  // Another key, or the same key in another scope (another token), is
  // another request.
  auto other = q.work->submit(request(), key("k2"));
  REQUIRE(other.isOk());
  CHECK_FALSE(other->replayed);
  auto scoped = q.work->submit(request(), key("k1", "token:abc"));
  REQUIRE(scoped.isOk());
  CHECK_FALSE(scoped->replayed);
  CHECK(storedIds(*q.store) == std::set<std::string>{first->id, other->id, scoped->id});
  CHECK(q.work->idempotentReplays() == 1);
}

TEST_CASE("idempotent submit: the same key with another body is refused", "[idempotency]") {
  ManualClock clock;
  Services q(createMemoryStore(), clock);
  SubmitRequest withContext = request();
  withContext.contextData = Json::parse(R"({"a":1,"b":{"x":[1,2],"y":"z"}})").value();
  auto first = q.work->submit(withContext, key("k"));
  REQUIRE(first.isOk());

  // Member order is not part of the request: same fingerprint, a replay.
  SubmitRequest reordered = request();
  reordered.contextData = Json::parse(R"({"b":{"y":"z","x":[1,2]},"a":1})").value();
  CHECK(WorkQueue::fingerprint(reordered) == WorkQueue::fingerprint(withContext));
  auto replay = q.work->submit(reordered, key("k"));
  REQUIRE(replay.isOk());
  CHECK(replay->id == first->id);

  // Any field that differs is another request.
  std::vector<SubmitRequest> others(6, withContext);
  others[0].description = "d2";
  others[1].priority = 7;
  others[2].contextData = Json::parse(R"({"a":1,"b":{"x":[2,1],"y":"z"}})").value();
  others[3].projectId = "p2";
  others[4].taskId = "t";
  others[5].requiredAgentType = "copilot-cli";
  for (const auto& other : others) {
    CHECK(WorkQueue::fingerprint(other) != WorkQueue::fingerprint(withContext));
    auto refused = q.work->submit(other, key("k"));
    REQUIRE_FALSE(refused.isOk());
    CHECK(refused.code() == Code::Unprocessable);
    CHECK(refused.status().message().find("Idempotency-Key 'k'") != std::string::npos);
    CHECK(refused.status().message().find("different request body") != std::string::npos);
  }
  CHECK(storedIds(*q.store) == std::set<std::string>{first->id});
}

namespace {

// With these settings a key is remembered for exactly `window` ms: a replay
// just before, a new item (the old one stays) at the window, and from then
// on the key names the new item, whatever its body.
void checkWindow(int64_t idempotencyRetentionMs, int64_t retentionMs, int64_t window) {
  ManualClock clock;
  CoreOptions options;
  options.idempotencyRetentionMs = idempotencyRetentionMs;
  options.retentionMs = retentionMs;
  Services q(createMemoryStore(), clock, options);

  auto first = q.work->submit(request(), key("k"));
  REQUIRE(first.isOk());
  clock.advance(window - 1);
  auto inside = q.work->submit(request(), key("k"));
  REQUIRE(inside.isOk());
  CHECK(inside->id == first->id);
  clock.advance(1);
  auto after = q.work->submit(request("another"), key("k"));
  REQUIRE(after.isOk());
  CHECK_FALSE(after->replayed);
  CHECK(after->id != first->id);
  auto again = q.work->submit(request("another"), key("k"));
  REQUIRE(again.isOk());
  CHECK(again->id == after->id);
  CHECK(storedIds(*q.store) == std::set<std::string>{first->id, after->id});
}

}  // namespace

TEST_CASE("idempotent submit: a key is remembered for the window, capped at work retention",
          "[idempotency]") {
  checkWindow(60000, 86400000, 60000);
  // work.retentionMs shorter than the window caps it.
  checkWindow(86400000, 5000, 5000);
}

// Every place a submit can fail between its two writes, with and without the
// failed write having landed. Each case retries with the same key until it
// gets an answer: exactly one item, and every answer names it.
TEST_CASE("idempotent submit: failures between the writes never duplicate", "[idempotency]") {
  struct Case {
    const char* name;
    Fault fault;
  };
  const std::vector<Case> cases = {
      {"record write refused", {KvOp::Create, kIdempotencyBucket, 1, Code::Unavailable, false}},
      {"record written, its ack lost", {KvOp::Create, kIdempotencyBucket, 1, Code::Timeout, true}},
      {"item write refused", {KvOp::Create, kWorkBucket, 1, Code::Unavailable, false}},
      {"item written, its ack lost", {KvOp::Create, kWorkBucket, 1, Code::Timeout, true}},
      {"item refused twice, then the replay's read fails",
       {KvOp::Create, kWorkBucket, 1, Code::Unavailable, false}},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      ManualClock clock;
      auto faulty = std::make_shared<FaultyStore>(createMemoryStore());
      Services q(faulty, clock);
      faulty->inject(c.fault);
      if (std::string(c.name).find("twice") != std::string::npos) {
        faulty->inject({KvOp::Create, kWorkBucket, 1, Code::Unavailable, false});
        faulty->inject({KvOp::Get, kWorkBucket, 1, Code::Timeout, false});
      }
      auto first = q.work->submit(request(), key("retry-me"));
      CHECK_FALSE(first.isOk());
      CHECK(first.status().isOutage());

      int outages = 0;
      auto retried = submitUntilAnswered(*q.work, request(), key("retry-me"), &outages);
      REQUIRE(retried.isOk());
      auto replay = q.work->submit(request(), key("retry-me"));
      REQUIRE(replay.isOk());
      CHECK(replay->replayed);
      CHECK(replay->id == retried->id);
      CHECK(storedIds(*q.store) == std::set<std::string>{retried->id});
      // The item reads back whole and pending.
      auto item = q.work->get(retried->id);
      REQUIRE(item.isOk());
      CHECK(item->item->status == WorkStatus::Pending);
      CHECK(item->item->description == "d");
      // Every injected fault was hit.
      CHECK(faulty->triggered() == (std::string(c.name).find("twice") != std::string::npos ? 3 : 1));
    }
  }
}

TEST_CASE("idempotent submit: concurrent requests with one key make one item", "[idempotency]") {
  ManualClock clock;
  Services q(createMemoryStore(), clock);
  constexpr int kThreads = 8;
  constexpr int kKeys = 20;
  for (int k = 0; k < kKeys; ++k) {
    std::vector<std::string> ids(kThreads);
    std::vector<std::thread> threads;
    std::atomic<bool> go{false};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        auto out = q.work->submit(request(), key("c" + std::to_string(k)));
        if (out) ids[t] = out->id;
      });
    }
    go = true;
    for (auto& th : threads) th.join();
    INFO("key c" << k);
    for (const auto& id : ids) CHECK(id == ids[0]);
  }
  CHECK(storedIds(*q.store).size() == static_cast<size_t>(kKeys));
}

TEST_CASE("idempotent submit: a backend outage answers fast with Unavailable", "[idempotency]") {
  ManualClock clock;
  auto faulty = std::make_shared<FaultyStore>(createMemoryStore());
  Services q(faulty, clock);
  // The record's read fails after the record exists: the answer is the
  // outage, not a replay and not a new item.
  auto first = q.work->submit(request(), key("k"));
  REQUIRE(first.isOk());
  faulty->inject({KvOp::Get, kIdempotencyBucket, 1, Code::Unavailable, false});
  auto during = q.work->submit(request(), key("k"));
  REQUIRE_FALSE(during.isOk());
  CHECK(during.code() == Code::Unavailable);
  CHECK(storedIds(*q.store) == std::set<std::string>{first->id});
  auto after = q.work->submit(request(), key("k"));
  REQUIRE(after.isOk());
  CHECK(after->id == first->id);
}
