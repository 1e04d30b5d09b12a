// Unit tests of the event derivation (docs/api.md §5.4) on the in-memory backend:
// events come from the views' change feed, once per change per instance,
// whoever wrote the change.
#include "weft/events.h"

#include <catch2/catch.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "service_fixture.h"

using namespace weft;
using namespace weft::test;

namespace {

// Records every event a hub delivers.
class Recorder {
 public:
  explicit Recorder(EventHub& hub) : hub_(hub) {
    id_ = hub_.subscribe([this](const Event& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(e);
    });
  }
  ~Recorder() { hub_.unsubscribe(id_); }

  std::vector<Event> all() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  std::vector<Event> named(const std::string& name) const {
    std::vector<Event> out;
    for (auto& e : all()) {
      if (e.name == name) out.push_back(e);
    }
    return out;
  }
  size_t count(const std::string& name) const { return named(name).size(); }
  // Waits (bounded) until at least n events of that name arrived; returns the last.
  Event waitFor(const std::string& name, size_t n = 1) const {
    REQUIRE(eventually([&] { return count(name) >= n; }));
    return named(name).back();
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.clear();
  }

 private:
  EventHub& hub_;
  EventHub::SubscriptionId id_ = 0;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

auto attachTo(EventHub& hub) {
  return [&hub](Services& s) { hub.attach(*s.agents, *s.work); };
}

void registerAgent(Services& s, const std::string& guid) {
  RegisterRequest request;
  request.guid = guid;
  request.handle = "h-" + guid;
  request.hostname = "host1";
  request.capabilities = {"cpp"};
  REQUIRE(s.agents->registerAgent(request).isOk());
}

std::string submit(Services& s, const std::string& extra = "") {
  std::string text = R"({"boundary":"b","capability":"cpp","description":"d","taskId":"t1")" +
                     (extra.empty() ? "" : "," + extra) + "}";
  auto r = s.rest->submit(Json::parse(text).value());
  REQUIRE(r.isOk());
  return r->getString("id");
}

std::pair<std::string, std::string> claim(Services& s, const std::string& guid) {
  auto r = s.rest->claim(Json::parse(R"({"agentGuid":")" + guid + "\"}").value());
  REQUIRE(r.isOk());
  REQUIRE(r->has_value());
  return {(*r)->getString("id"), (*r)->getString("claimToken")};
}

Json fence(const std::string& guid, const std::string& token, const std::string& extra = "") {
  return Json::parse(R"({"agentGuid":")" + guid + R"(","claimToken":")" + token + "\"" +
                     (extra.empty() ? "" : "," + extra) + "}")
      .value();
}

// The first keys of every event's data, in order (§5.4).
void checkHead(const Event& e) {
  const auto& members = e.data.asObject();
  REQUIRE(members.size() >= 3);
  CHECK(members[0].first == "type");
  CHECK(members[0].second.asString() == e.name);
  CHECK(members[1].first == "timestamp");
  CHECK(parseIso(members[1].second.asString()).has_value());
  CHECK(members[2].first == "projectId");
  CHECK(e.topic == eventTopic(e.name));
}

}  // namespace

TEST_CASE("event topics follow the event name") {
  CHECK(eventTopic("work:assigned") == "work");
  CHECK(eventTopic("agent:registered") == "agents");
  CHECK(eventTopic("target:removed") == "targets");
  CHECK(eventTopic("spin-up:started") == "targets");
  CHECK(eventTopic("bogus") == "");
}

TEST_CASE("an agent entry written directly into the bucket emits agent:registered") {
  ManualClock clock;
  EventHub hub;
  Recorder rec(hub);
  Services s(createMemoryStore(), clock, attachTo(hub));

  s.putDirect("3f2a9c0d5e6b47a8b9c0d1e2f3a4b5c6",
              R"({"guid":"3f2a9c0d5e6b47a8b9c0d1e2f3a4b5c6","handle":"alice","status":"online",)"
              R"("capabilities":["cpp",7],"projectId":"p1","agentType":"developer",)"
              R"("metadata":{"agentType":"copilot-cli","boundaries":["x"]}})");
  Event e = rec.waitFor("agent:registered");
  checkHead(e);
  CHECK(e.topic == "agents");
  CHECK(e.projectId() == "p1");
  CHECK(
      e.data.get("agent").dump() ==
      R"({"guid":"3f2a9c0d5e6b47a8b9c0d1e2f3a4b5c6","handle":"alice","agentType":"copilot-cli"})");
  CHECK(e.data.get("capabilities").dump() == R"(["cpp"])");
  CHECK(e.data.get("boundaries").dump() == R"(["x"])");
  CHECK(e.data.get("status").asString() == "online");
  CHECK(rec.all().size() == 1);
}

TEST_CASE("agent changes: heartbeat-only is silent, others map to the catalogue") {
  ManualClock clock;
  EventHub hub;
  Recorder rec(hub);
  Services s(createMemoryStore(), clock, attachTo(hub));
  registerAgent(s, "a1");
  Event reg = rec.waitFor("agent:registered");
  CHECK(reg.projectId() == "default");
  CHECK(reg.data.get("agent").dump() ==
        R"({"guid":"a1","handle":"h-a1","agentType":"claude-code","hostname":"host1"})");
  CHECK(reg.data.get("boundaries").dump() == R"(["default"])");

  // A heartbeat alone: nothing. Then a marker change proves the feed moved on.
  clock.advance(1000);
  REQUIRE(s.agents->heartbeat("a1", {}).isOk());
  HeartbeatRequest twoTasks;
  twoTasks.currentTaskCount = 2;
  REQUIRE(s.agents->heartbeat("a1", twoTasks).isOk());
  Event upd = rec.waitFor("agent:updated");
  CHECK(rec.count("agent:updated") == 1);
  checkHead(upd);
  CHECK(upd.data.get("previousStatus").asString() == "online");
  CHECK(upd.data.get("newStatus").asString() == "online");
  CHECK(upd.data.get("currentTaskCount").asInt() == 2);
  CHECK(upd.data.get("capabilities").dump() == R"(["cpp"])");

  SECTION("status and capabilities changes are updates") {
    HeartbeatRequest toBusy;
    toBusy.status = "busy";
    REQUIRE(s.agents->heartbeat("a1", toBusy).isOk());
    Event busy = rec.waitFor("agent:updated", 2);
    CHECK(busy.data.get("previousStatus").asString() == "online");
    CHECK(busy.data.get("newStatus").asString() == "busy");
    HeartbeatRequest newCaps;
    newCaps.capabilities = std::vector<std::string>{"cpp", "go"};
    REQUIRE(s.agents->heartbeat("a1", newCaps).isOk());
    Event caps = rec.waitFor("agent:updated", 3);
    CHECK(caps.data.get("capabilities").dump() == R"(["cpp","go"])");
  }

  SECTION("a shutdown request is agent:shutdown requested:true with its reason") {
    AgentRegistry::ShutdownRequest request;
    request.graceful = false;
    request.reason = "maintenance";
    REQUIRE(s.agents->requestShutdown("a1", request).isOk());
    Event down = rec.waitFor("agent:shutdown");
    checkHead(down);
    CHECK(down.data.get("requested").asBool());
    CHECK(down.data.get("reason").asString() == "maintenance");
    CHECK_FALSE(down.data.get("graceful").asBool());
    CHECK(down.data.get("agent").get("guid").asString() == "a1");
    CHECK(rec.count("agent:updated") == 1);  // the request alone changes nothing else
  }

  SECTION("deregistration is agent:shutdown manual, re-registration agent:registered") {
    REQUIRE(s.agents->deregister("a1").isOk());
    Event down = rec.waitFor("agent:shutdown");
    CHECK_FALSE(down.data.get("requested").asBool());
    CHECK(down.data.get("reason").asString() == "manual");
    CHECK(down.data.get("graceful").asBool());
    CHECK(rec.count("agent:updated") == 1);  // going offline is not an update

    registerAgent(s, "a1");
    rec.waitFor("agent:registered", 2);
  }

  SECTION("going offline while stale (staleness marking) is reason error") {
    clock.advance(s.ctx.options.staleAfterMs + 1000);
    REQUIRE(s.agents
                ->modify("a1",
                         [](Json& entry) {
                           entry.set("status", Json("offline"));
                           return true;
                         })
                .isOk());
    Event down = rec.waitFor("agent:shutdown");
    CHECK(down.data.get("reason").asString() == "error");
    CHECK_FALSE(down.data.get("requested").asBool());
  }

  SECTION("deleting an online entry is agent:shutdown; deleting an offline one is silent") {
    auto bucket = s.store->openBucket(kAgentBucket, BucketOptions{});
    REQUIRE(bucket.isOk());
    REQUIRE((*bucket)->erase("a1").isOk());
    Event down = rec.waitFor("agent:shutdown");
    CHECK(down.data.get("reason").asString() == "manual");

    registerAgent(s, "a2");
    rec.waitFor("agent:registered", 2);
    REQUIRE(s.agents->deregister("a2").isOk());
    rec.waitFor("agent:shutdown", 2);
    REQUIRE((*bucket)->erase("a2").isOk());
    registerAgent(s, "a3");  // a marker: the feed delivered the erase before this
    rec.waitFor("agent:registered", 3);
    CHECK(rec.count("agent:shutdown") == 2);
  }
}

TEST_CASE("the work lifecycle emits one event per transition") {
  ManualClock clock;
  EventHub hub;
  Recorder rec(hub);
  Services s(createMemoryStore(), clock, attachTo(hub));
  registerAgent(s, "a1");

  const std::string id = submit(s, R"("priority":7,"projectId":"p9")");
  Event sub = rec.waitFor("work:submitted");
  checkHead(sub);
  CHECK(sub.topic == "work");
  CHECK(sub.projectId() == "p9");
  CHECK(sub.data.get("workId").asString() == id);
  CHECK(sub.data.get("taskId").asString() == "t1");
  CHECK(sub.data.get("capability").asString() == "cpp");
  CHECK(sub.data.get("boundary").asString() == "b");
  CHECK(sub.data.get("priority").asInt() == 7);
  CHECK(sub.data.get("description").asString() == "d");
  CHECK_FALSE(sub.data.contains("requeued"));

  // The agent must be in p9 to claim there.
  RegisterRequest inP9;
  inP9.guid = "a9";
  inP9.handle = "h9";
  inP9.projectId = "p9";
  inP9.capabilities = {"cpp"};
  REQUIRE(s.agents->registerAgent(inP9).isOk());
  auto [claimed, token] = claim(s, "a9");
  REQUIRE(claimed == id);
  Event asg = rec.waitFor("work:assigned");
  checkHead(asg);
  CHECK(asg.data.get("assignedTo").asString() == "a9");
  CHECK(asg.data.get("assignedToAgent").get("handle").asString() == "h9");
  CHECK(asg.data.get("attempts").asInt() == 1);
  CHECK(asg.data.get("leaseExpiresAt").isString());
  CHECK(asg.data.get("capability").asString() == "cpp");

  REQUIRE(s.rest->start(id, fence("a9", token)).isOk());
  Event st = rec.waitFor("work:started");
  CHECK(st.data.get("assignedTo").asString() == "a9");
  REQUIRE(s.rest->start(id, fence("a9", token)).isOk());  // idempotent: lease only

  REQUIRE(s.rest->progress(id, fence("a9", token, R"("progress":40)")).isOk());
  Event pr = rec.waitFor("work:progress");
  CHECK(pr.data.get("progress").asInt() == 40);
  CHECK(pr.data.get("assignedToAgent").get("guid").asString() == "a9");

  REQUIRE(s.rest->complete(id, fence("a9", token, R"("result":{"summary":"all done"})")).isOk());
  Event done = rec.waitFor("work:completed");
  CHECK(done.data.get("summary").asString() == "all done");
  CHECK(done.data.get("assignedTo").asString() == "a9");

  // A marker write, so the feed has delivered everything above.
  submit(s);
  rec.waitFor("work:submitted", 2);
  CHECK(rec.count("work:started") == 1);
  CHECK(rec.count("work:progress") == 1);
  CHECK(rec.count("work:assigned") == 1);
  CHECK(rec.count("work:completed") == 1);
}

TEST_CASE("failures, retries, dead-lettering, DLQ retry and cancel") {
  ManualClock clock;
  EventHub hub;
  Recorder rec(hub);
  Services s(createMemoryStore(), clock, attachTo(hub));
  registerAgent(s, "a1");
  const std::string id = submit(s, R"("maxAttempts":2)");

  auto [c1, t1] = claim(s, "a1");
  REQUIRE(
      s.rest->fail(id, fence("a1", t1, R"("error":{"message":"boom","recoverable":true})")).isOk());
  Event f1 = rec.waitFor("work:failed");
  checkHead(f1);
  CHECK(f1.data.get("errorMessage").asString() == "boom");
  CHECK(f1.data.get("recoverable").asBool());
  CHECK(f1.data.get("retrying").asBool());
  CHECK_FALSE(f1.data.get("deadLettered").asBool());
  CHECK(f1.data.get("attempts").asInt() == 1);
  CHECK(f1.data.get("maxAttempts").asInt() == 2);
  CHECK(f1.data.get("assignedTo").asString() == "a1");

  // The second attempt expires: the sweeper's lease expiry dead-letters it.
  auto [c2, t2] = claim(s, "a1");
  (void)t2;
  clock.advance(s.ctx.options.leaseMs + 1000);
  auto report = s.work->sweepOnce();
  CHECK(report.deadLettered == 1);
  Event f2 = rec.waitFor("work:failed", 2);
  CHECK(f2.data.get("errorMessage").asString() == "lease expired");
  CHECK_FALSE(f2.data.get("retrying").asBool());
  CHECK(f2.data.get("deadLettered").asBool());
  CHECK(f2.data.get("attempts").asInt() == 2);

  // Out of the DLQ: submitted again, requeued.
  REQUIRE(eventually([&] { return s.dlq->view().find(id) != nullptr; }));
  REQUIRE(s.rest->retryDeadLetter(id).isOk());
  Event rq = rec.waitFor("work:submitted", 2);
  CHECK(rq.data.get("requeued").asBool());
  CHECK(rq.data.get("workId").asString() == id);

  REQUIRE(s.rest->cancel(id).isOk());
  Event cn = rec.waitFor("work:cancelled");
  checkHead(cn);
  CHECK(cn.data.get("workId").asString() == id);
  CHECK_FALSE(cn.data.contains("assignedTo"));  // it was pending
  CHECK(rec.count("work:failed") == 2);
}

TEST_CASE("a claim emits exactly one work:assigned although write and watch both apply it") {
  ManualClock clock;
  EventHub hub;
  Recorder rec(hub);
  Services s(createMemoryStore(), clock, attachTo(hub));
  registerAgent(s, "a1");
  submit(s);
  claim(s, "a1");
  rec.waitFor("work:assigned");
  // The watch delivers in order: once it delivered this later write, it has
  // delivered the claim too, and the view ignored it as already applied.
  submit(s);
  rec.waitFor("work:submitted", 2);
  CHECK(rec.count("work:assigned") == 1);
}

TEST_CASE("two instances on one store both emit every event once") {
  ManualClock clock;
  auto store = createMemoryStore();
  EventHub hub1, hub2;
  Recorder rec1(hub1), rec2(hub2);
  Services one(store, clock, attachTo(hub1));
  Services two(store, clock, attachTo(hub2));

  registerAgent(one, "a1");
  rec2.waitFor("agent:registered");  // instance two learns it from the feed
  REQUIRE(eventually([&] { return two.agents->view().find("a1") != nullptr; }));
  submit(two);
  rec1.waitFor("work:submitted");
  REQUIRE(eventually([&] { return one.work->view().size() == 1; }));
  claim(one, "a1");
  Event a1 = rec1.waitFor("work:assigned");
  Event a2 = rec2.waitFor("work:assigned");
  CHECK(a1.data.get("workId") == a2.data.get("workId"));
  CHECK(a2.data.get("assignedToAgent").get("guid").asString() == "a1");

  submit(one);  // marker
  rec1.waitFor("work:submitted", 2);
  rec2.waitFor("work:submitted", 2);
  CHECK(rec1.count("work:assigned") == 1);
  CHECK(rec2.count("work:assigned") == 1);
  CHECK(rec1.count("agent:registered") == 1);
  CHECK(rec2.count("agent:registered") == 1);
}

TEST_CASE("the initial replay emits nothing") {
  ManualClock clock;
  auto store = createMemoryStore();
  {
    Services before(store, clock);
    registerAgent(before, "a1");
    submit(before);
  }
  EventHub hub;
  Recorder rec(hub);
  Services s(store, clock, attachTo(hub));
  REQUIRE(s.work->view().size() == 1);
  submit(s);  // marker
  rec.waitFor("work:submitted");
  CHECK(rec.all().size() == 1);
}

TEST_CASE("emit delivers events without a stored change; unsubscribe stops delivery") {
  EventHub hub;
  auto rec = std::make_unique<Recorder>(hub);
  hub.emit(makeEvent("spin-up:triggered", "p1", 1765430580000,
                     {{"targetAgentType", Json("claude-code")}, {"workId", Json("w")}}));
  auto all = rec->all();
  REQUIRE(all.size() == 1);
  CHECK(all[0].topic == "targets");
  CHECK(all[0].data.dump() ==
        R"({"type":"spin-up:triggered","timestamp":"2025-12-11T05:23:00.000Z","projectId":"p1",)"
        R"("targetAgentType":"claude-code","workId":"w"})");
  rec.reset();
  hub.emit(makeEvent("spin-up:started", "p1", 0, {}));  // no subscriber left: no crash
  CHECK(hub.emitted() == 2);
}

// --- coalescing ----------------------------------------------------
// A change feed may skip intermediate values of a key. Whatever subset of an
// item's stored values a reader sees, the transition events it derives must be
// exactly those of the whole history, once each and in order.

namespace {

// One value of the item: decoded whole (what the view's full listener
// gets) and as the work view keeps it (what it passes as `before` next).
struct Seen {
  std::shared_ptr<const WorkRecord> record;
  std::shared_ptr<const WorkEntry> entry;
};

// Every value the item had, oldest first, read from the backend after each step.
class Snapshots {
 public:
  Snapshots(Services& s, std::string id) : s_(s), id_(std::move(id)) { take(); }
  void take() {
    auto bucket = s_.work->view().bucket();
    REQUIRE(bucket);
    auto entry = bucket->get(id_);
    REQUIRE(entry.isOk());
    auto record = WorkQueue::decode(entry->value);
    REQUIRE(record);
    values_.push_back({record, WorkEntry::of(*record)});
  }
  const std::vector<Seen>& values() const { return values_; }

 private:
  Services& s_;
  std::string id_;
  std::vector<Seen> values_;
};

Json noSummary(const std::string&) { return Json(); }

// The events a reader derives when it sees exactly the values whose bit is set
// in mask (the last value is always seen), starting from "absent".
std::vector<Event> seenThrough(const std::vector<Seen>& values, unsigned mask) {
  std::vector<Event> out;
  const WorkEntry* before = nullptr;
  for (size_t i = 0; i < values.size(); ++i) {
    const bool last = i + 1 == values.size();
    if (!last && !(mask & (1u << i))) continue;
    for (auto& e : deriveWorkEvents(before, values[i].record.get(), 0, noSummary)) {
      out.push_back(e);
    }
    before = values[i].entry.get();
  }
  return out;
}

std::vector<std::string> transitionNames(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    if (e.name != "work:progress") out.push_back(e.name);
  }
  return out;
}

// Checks every subset of the intermediate values against the full history.
void checkEverySubset(const std::vector<Seen>& values,
                      const std::vector<std::string>& expected) {
  REQUIRE(values.size() <= 16);
  const unsigned all = (1u << (values.size() - 1)) - 1;
  const std::vector<Event> full = seenThrough(values, all);
  REQUIRE(transitionNames(full) == expected);
  for (unsigned mask = 0; mask <= all; ++mask) {
    INFO("values seen (bit mask): " << mask);
    const std::vector<Event> got = seenThrough(values, mask);
    CHECK(transitionNames(got) == expected);
    // Same payloads as the uncoalesced feed, apart from the timestamps.
    std::vector<Event> a, b;
    for (auto& e : full) if (e.name != "work:progress") a.push_back(e);
    for (auto& e : got) if (e.name != "work:progress") b.push_back(e);
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      Json x = a[i].data, y = b[i].data;
      x.erase("timestamp");
      y.erase("timestamp");
      CHECK(x.dump() == y.dump());
    }
  }
}

}  // namespace

TEST_CASE("coalesced feeds: every transition event once, in order, whatever was skipped") {
  ManualClock clock;
  Services s(createMemoryStore(), clock);
  registerAgent(s, "a1");
  registerAgent(s, "a2");

  SECTION("submit, claim, start, progress, complete") {
    const std::string id = submit(s);
    Snapshots snaps(s, id);
    auto [claimed, token] = claim(s, "a1");
    REQUIRE(claimed == id);
    snaps.take();
    REQUIRE(s.rest->start(id, fence("a1", token)).isOk());
    snaps.take();
    REQUIRE(s.rest->progress(id, fence("a1", token, R"("progress":40)")).isOk());
    snaps.take();
    REQUIRE(s.rest->complete(id, fence("a1", token, R"("result":{"summary":"ok"})")).isOk());
    snaps.take();
    checkEverySubset(snaps.values(),
                     {"work:submitted", "work:assigned", "work:started", "work:completed"});
    // The completion names its agent even when the reader never saw it assigned.
    auto events = seenThrough(snaps.values(), 0);
    CHECK(events.back().data.get("assignedTo").asString() == "a1");
    CHECK(events.back().data.get("summary").asString() == "ok");
    CHECK(events[1].data.get("attempts").asInt() == 1);
    CHECK(events[1].data.get("leaseExpiresAt").isString());
  }

  SECTION("a retry, then a second agent completes") {
    const std::string id = submit(s, R"("maxAttempts":3)");
    Snapshots snaps(s, id);
    auto [c1, t1] = claim(s, "a1");
    snaps.take();
    REQUIRE(s.rest->fail(id, fence("a1", t1, R"("error":{"message":"boom"})")).isOk());
    snaps.take();
    auto [c2, t2] = claim(s, "a2");
    REQUIRE(c2 == id);
    snaps.take();
    REQUIRE(s.rest->start(id, fence("a2", t2)).isOk());
    snaps.take();
    REQUIRE(s.rest->complete(id, fence("a2", t2)).isOk());
    snaps.take();
    checkEverySubset(snaps.values(), {"work:submitted", "work:assigned", "work:failed",
                                      "work:assigned", "work:started", "work:completed"});
    auto events = seenThrough(snaps.values(), 0);
    CHECK(events[1].data.get("assignedTo").asString() == "a1");
    CHECK(events[2].data.get("errorMessage").asString() == "boom");
    CHECK(events[2].data.get("retrying").asBool());
    CHECK_FALSE(events[2].data.get("deadLettered").asBool());
    CHECK(events[2].data.get("attempts").asInt() == 1);
    CHECK(events[3].data.get("assignedTo").asString() == "a2");
    CHECK(events[3].data.get("attempts").asInt() == 2);
    CHECK(events[5].data.get("assignedTo").asString() == "a2");
  }

  SECTION("dead-lettered, retried from the DLQ, then cancelled") {
    const std::string id = submit(s, R"("maxAttempts":1)");
    Snapshots snaps(s, id);
    auto [c1, t1] = claim(s, "a1");
    snaps.take();
    REQUIRE(s.rest->fail(id, fence("a1", t1, R"("error":{"message":"bad"})")).isOk());
    snaps.take();
    REQUIRE(eventually([&] { return s.dlq->view().find(id) != nullptr; }));
    REQUIRE(s.rest->retryDeadLetter(id).isOk());
    snaps.take();
    REQUIRE(s.rest->cancel(id).isOk());
    snaps.take();
    checkEverySubset(snaps.values(), {"work:submitted", "work:assigned", "work:failed",
                                      "work:submitted", "work:cancelled"});
    auto events = seenThrough(snaps.values(), 0);
    CHECK(events[2].data.get("deadLettered").asBool());
    CHECK_FALSE(events[2].data.get("retrying").asBool());
    CHECK(events[3].data.get("requeued").asBool());
    CHECK_FALSE(events[0].data.contains("requeued"));
  }

  SECTION("progress: the latest value of the attempt, once") {
    const std::string id = submit(s);
    Snapshots snaps(s, id);
    auto [c1, token] = claim(s, "a1");
    REQUIRE(s.rest->start(id, fence("a1", token)).isOk());
    REQUIRE(s.rest->progress(id, fence("a1", token, R"("progress":10)")).isOk());
    REQUIRE(s.rest->progress(id, fence("a1", token, R"("progress":70)")).isOk());
    snaps.take();
    auto events = seenThrough(snaps.values(), 1);
    std::vector<std::string> names;
    for (auto& e : events) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"work:submitted", "work:assigned", "work:started",
                                            "work:progress"});
    CHECK(events.back().data.get("progress").asInt() == 70);
    // Seeing the same value again (a replay after a Reset) adds nothing.
    CHECK(deriveWorkEvents(snaps.values().back().entry.get(), snaps.values().back().record.get(), 0,
                           noSummary)
              .empty());
  }
}
