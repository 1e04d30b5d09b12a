// Spin-up targets on the memory backend with fake outbound calls:
// the registry rules of docs/api.md §2.6, spin-up operations (§3.7, §4.2, §4.5),
// the mechanisms' pure logic, health checks (§4.4) and the target events.
#include "weft/targets.h"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "service_fixture.h"
#include "support/rest_targets.h"
#include "spinup_fakes.h"
#include "weft/ids.h"
#include "weft/spin_up_mechanisms.h"

namespace weft::test {
namespace {

SpinUpSettings allowAll() {
  SpinUpSettings s;
  s.allowLocal = s.allowSsh = s.allowWebhook = s.allowKubernetes = s.allowGithubActions = true;
  s.githubRunsWaitCapMs = 0;
  s.getEnv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "GITHUB_TOKEN") return std::string("tok-123");
    return std::nullopt;
  };
  s.weftUrl = "http://127.0.0.1:3999";
  return s;
}

// A store with the NATS-only messaging table, recording every publication.
class PublishingStore : public KvStore, public KvMessaging {
 public:
  explicit PublishingStore(std::shared_ptr<KvStore> inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& n,
                                               const BucketOptions& o) override {
    return inner_->openBucket(n, o);
  }
  Status ping() override { return inner_->ping(); }
  ConnectionState state() const override { return inner_->state(); }
  KvMessaging* messaging() override { return this; }
  Status publish(const std::string& subject, const std::string& payload) override {
    std::lock_guard<std::mutex> lock(mutex_);
    published_.emplace_back(subject, payload);
    return Status::ok();
  }
  Status publishJetStream(const std::string&, const std::string&) override {
    return Status::notFound("no stream");
  }
  std::vector<std::pair<std::string, std::string>> published() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return published_;
  }

 private:
  std::shared_ptr<KvStore> inner_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> published_;
};

struct Fixture {
  explicit Fixture(SpinUpSettings settings = allowAll(), std::shared_ptr<KvStore> kv = nullptr) {
    if (!kv) kv = store;
    svc = std::make_unique<Services>(kv, clock, [&](Services& s) {
      targets = std::make_unique<Targets>(s.ctx, settings, runner, http, s.agents.get());
      targets->setEventSink([this](Event e) { events.add(e); });
      s.work->setSpinUpRequester([this](const SpinUpRequest& r) { targets->requestSpinUp(r); });
      s.stats->addContributor(Stats::targetContributor(*targets));
    });
    targets->start();
    REQUIRE(eventually([&] { return targets->view().ready(); }));
  }
  ~Fixture() {
    targets->stop();
    svc.reset();  // the agents view calls into targets until it stops
    targets.reset();
  }

  // The service through its REST form (tests/support/rest_targets.h).
  testing::RestTargets rest() { return testing::RestTargets(*targets); }

  // Registers and REQUIREs success.
  Json registerTarget(const Json& b) {
    auto r = rest().create(b);
    INFO(r.status().toString());
    REQUIRE(r.isOk());
    return *r;
  }
  Json localTarget(const std::string& name, const std::string& capability = "cpp",
                   const std::string& project = "") {
    Json b = body(R"({"agentType":"claude-code","mechanism":"local",
                      "config":{"local":{"command":"agent","args":["--go"]}}})");
    b.set("name", Json(name));
    b.set("capabilities", Json(Json::Array{Json(capability)}));
    if (!project.empty()) b.set("projectId", Json(project));
    return registerTarget(b);
  }
  std::string createError(const Json& b) {
    auto r = rest().create(b);
    REQUIRE_FALSE(r.isOk());
    CHECK(r.code() == Code::InvalidArgument);
    return r.status().message();
  }
  Json stored(const std::string& id) {
    auto r = rest().get(id, std::nullopt);
    REQUIRE(r.isOk());
    return *r;
  }
  Json submit(const std::string& capability = "cpp") {
    Json b = body(R"({"boundary":"personal","description":"d"})");
    b.set("capability", Json(capability));
    auto r = svc->rest->submit(b);
    REQUIRE(r.isOk());
    return *r;
  }

  ManualClock clock;
  std::shared_ptr<MemoryStore> store = createMemoryStore();
  std::shared_ptr<FakeRunner> runner = std::make_shared<FakeRunner>();
  std::shared_ptr<FakeHttp> http = std::make_shared<FakeHttp>();
  EventLog events;
  std::unique_ptr<Services> svc;
  std::unique_ptr<Targets> targets;
};

const std::optional<std::string> kAny;

}  // namespace

// ---- registration -----------------------------------------------------------

TEST_CASE("target registration validates in table order", "[targets]") {
  Fixture f;
  CHECK(f.createError(body("{}")) == "name is required");
  CHECK(f.createError(body(R"({"name":"  "})")) == "name is required");
  CHECK(f.createError(body(R"({"name":7})")) == "name is required");
  CHECK(f.createError(body(R"({"name":"t"})")) == "agentType is required");
  CHECK(f.createError(body(R"({"name":"t","agentType":"robot"})")) ==
        "Invalid agentType: robot. Must be copilot-cli or claude-code");
  CHECK(f.createError(body(R"({"name":"t","agentType":"claude-code"})")) ==
        "capabilities must be a non-empty array");
  CHECK(f.createError(body(R"({"name":"t","agentType":"claude-code","capabilities":"x"})")) ==
        "capabilities must be a non-empty array");
  CHECK(f.createError(body(R"({"name":"t","agentType":"claude-code","capabilities":[]})")) ==
        "capabilities must contain at least one item");
  CHECK(f.createError(body(R"({"name":"t","agentType":"claude-code","capabilities":["a"," "]})")) ==
        "Each capability must be a non-empty string");
  const char* base = R"({"name":"t","agentType":"claude-code","capabilities":["a"])";
  auto with = [&](const std::string& rest) { return body((std::string(base) + rest).c_str()); };
  CHECK(f.createError(with("}")) == "mechanism is required");
  CHECK(f.createError(with(R"(,"mechanism":"telnet"})")) ==
        "Invalid mechanism: telnet. Must be one of: ssh, github-actions, local, webhook, "
        "kubernetes");
  CHECK(f.createError(with(R"(,"mechanism":"local","config":[]})")) == "config must be an object");
  CHECK(f.createError(with(R"(,"mechanism":"local","config":{"mechanism":"ssh"}})")) ==
        "config.mechanism must match top-level mechanism (local)");
  CHECK(f.createError(with(R"(,"mechanism":"local","boundaries":"x"})")) ==
        "boundaries must be an array");
  CHECK(f.createError(with(R"(,"mechanism":"local","boundaries":["ok",""]})")) ==
        "Each boundary must be a non-empty string");
  CHECK(f.createError(with(R"(,"mechanism":"local","tags":["a",1]})")) ==
        "tags must be an array of strings");
  CHECK(f.createError(with(R"(,"mechanism":"local","tags":[")" + std::string(257, 't') +
                           R"("]})")) == "tag exceeds 256 bytes");
  CHECK(f.createError(with(R"(,"mechanism":"local","healthCheck":true})")) ==
        "healthCheck.enabled must be a boolean");
  CHECK(f.createError(with(R"(,"mechanism":"local","healthCheck":{"enabled":"yes"}})")) ==
        "healthCheck.enabled must be a boolean");
  CHECK(f.createError(with(R"(,"mechanism":"local","projectId":"bad id"})")) ==
        "projectId must be 1-64 characters from [A-Za-z0-9_-]");
  CHECK(f.createError(with(R"(,"mechanism":"local","healthCheck":{"enabled":true,"timeoutMs":1e15}})")) ==
        "healthCheck.timeoutMs must be at most 60000");
  // A workflow name cannot leave its path segment of the GitHub API.
  for (const char* workflow : {"../../../x", "..", "a/b", "w%2F.yml"}) {
    INFO(workflow);
    CHECK(f.createError(with(std::string(R"(,"mechanism":"github-actions","config":{"repo":"o/r","workflow":")") +
                             workflow + "\"}}")) ==
          "config.workflow must be one path segment: a workflow file name or id (no / \\ % ? #, not . or ..)");
  }
  CHECK(f.createError(with(R"(,"mechanism":"github-actions","config":{"githubActions":{"repo":"o/r","workflowFile":"../x"}}})")) ==
        "config.workflowFile must be one path segment: a workflow file name or id (no / \\ % ? #, not . or ..)");
  CHECK(f.targets->view().size() == 0);  // nothing was stored
}

TEST_CASE("a registered target gets the defaults of §2.6", "[targets]") {
  Fixture f;
  Json t = f.registerTarget(body(R"({"name":"builder","agentType":"copilot-cli",
      "capabilities":["cpp"],"mechanism":"webhook","healthCheck":{"enabled":true},
      "description":"d","tags":["x"]})"));
  CHECK(isUuid(t.getString("id")));
  CHECK(t.getString("projectId") == "default");
  CHECK(t.get("config") == body(R"({"mechanism":"webhook"})"));
  CHECK(t.get("boundaries") ==
        body(R"(["corporate","corporate-adjacent","personal","open-source"])"));
  CHECK(t.get("healthCheck") == body(R"({"enabled":true,"intervalMs":300000,"timeoutMs":10000})"));
  CHECK(t.getString("status") == "available");
  CHECK(t.getString("healthStatus") == "unknown");
  CHECK(t.getString("registeredBy") == "api");
  CHECK(t.getInt("useCount", -1) == 0);
  CHECK(t.getString("registeredAt") == formatIso(f.clock.nowMs()));
  CHECK(t.getString("updatedAt") == t.getString("registeredAt"));
  CHECK(t.get("tags") == body(R"(["x"])"));
  // A config without its mechanism gets it filled in; nested and flat shapes
  // are both stored as given.
  Json flat = f.registerTarget(body(R"({"name":"flat","agentType":"claude-code",
      "capabilities":["a"],"mechanism":"local","config":{"command":"node","args":["a.mjs"]}})"));
  CHECK(flat.get("config") == body(R"({"mechanism":"local","command":"node","args":["a.mjs"]})"));
  CHECK(spinup::missingFields(flat.get("config"), "local").empty());
  Json nested = f.localTarget("nested");
  CHECK(spinup::missingFields(nested.get("config"), "local").empty());
  // Registration does not validate mechanism fields.
  Json bare = f.registerTarget(body(R"({"name":"bare","agentType":"claude-code",
      "capabilities":["a"],"mechanism":"kubernetes"})"));
  CHECK(spinup::missingFields(bare.get("config"), "kubernetes") ==
        std::vector<std::string>{"namespace", "jobNamePrefix", "image"});
  CHECK(eventually([&] { return f.events.count("target:registered") == 4; }));
}

TEST_CASE("target names are unique per project, atomically", "[targets]") {
  Fixture f;
  f.localTarget("dup");
  auto again = f.rest().create(body(R"({"name":"dup","agentType":"claude-code",
      "capabilities":["a"],"mechanism":"local"})"));
  REQUIRE_FALSE(again.isOk());
  CHECK(again.code() == Code::AlreadyExists);  // 409
  CHECK(again.status().message() == "Target with name 'dup' already exists");
  f.localTarget("dup", "cpp", "other");  // another project: fine

  // Many concurrent registrations of one name: exactly one wins.
  std::atomic<int> created{0}, duplicates{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = f.rest().create(body(R"({"name":"race","agentType":"claude-code",
          "capabilities":["a"],"mechanism":"local"})"));
      if (r)
        ++created;
      else if (r.code() == Code::AlreadyExists)
        ++duplicates;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(created == 1);
  CHECK(duplicates == 7);

  // Deleting releases the name.
  REQUIRE(f.rest().remove("dup", std::string("default")).isOk());
  f.localTarget("dup");
}

TEST_CASE("a stale name reservation is taken over, a fresh one is not", "[targets]") {
  Fixture f;
  auto names = f.store->openBucket(kTargetNameBucket, BucketOptions{});
  REQUIRE(names.isOk());
  const std::string key = "default." + sha256Hex("ghost").substr(0, 32);
  Json reservation = Json::object();
  reservation.set("id", Json(newUuid()));
  reservation.set("reservedAt", Json(formatIso(f.clock.nowMs())));
  REQUIRE((*names)->put(key, reservation.dump()).isOk());
  Json b = body(R"({"name":"ghost","agentType":"claude-code","capabilities":["a"],
                    "mechanism":"local"})");
  auto r = f.rest().create(b);
  CHECK(r.code() == Code::AlreadyExists);  // maybe a registration in flight
  f.clock.advance(61000);
  Json t = f.registerTarget(b);  // a crash leftover: taken over
  auto held = (*names)->get(key);
  REQUIRE(held.isOk());
  CHECK(Json::parse(held->value)->getString("id") == t.getString("id"));
}

TEST_CASE("target resolution: id, then name, ambiguity and absence", "[targets]") {
  Fixture f;
  Json a = f.localTarget("shared", "cpp", "p1");
  Json b = f.localTarget("shared", "cpp", "p2");
  Json c = f.localTarget("solo");
  CHECK(f.stored(a.getString("id")).getString("projectId") == "p1");
  CHECK(f.stored("solo").getString("id") == c.getString("id"));
  auto ambiguous = f.rest().get("shared", kAny);
  CHECK(ambiguous.code() == Code::Conflict);
  CHECK(ambiguous.status().message() ==
        "Target name 'shared' exists in several projects; use the id or pass projectId");
  auto inP2 = f.rest().get("shared", std::string("p2"));
  REQUIRE(inP2.isOk());
  CHECK(inP2->getString("id") == b.getString("id"));
  // An id match wins in any project, whatever projectId says.
  CHECK(f.rest().get(a.getString("id"), std::string("p2"))->getString("projectId") == "p1");
  auto missing = f.rest().get("nope", kAny);
  CHECK(missing.code() == Code::NotFound);
  CHECK(missing.status().message() == "Target with ID or name nope not found");
  CHECK(f.rest().get("solo", std::string("p1")).code() == Code::NotFound);
  CHECK(f.rest().get(newUuid(), kAny).code() == Code::NotFound);
}

TEST_CASE("target list: filters, order, pagination", "[targets]") {
  Fixture f;
  f.localTarget("one", "cpp");
  f.clock.advance(10);
  f.registerTarget(body(R"({"name":"two","agentType":"copilot-cli","capabilities":["py"],
      "mechanism":"webhook","boundaries":["personal"],"projectId":"p2"})"));
  f.clock.advance(10);
  Json third = f.localTarget("three", "py");
  REQUIRE(f.rest().disable("three", kAny).isOk());

  auto names = [](const Json& body) {
    std::vector<std::string> out;
    for (const auto& t : body.get("targets").asArray()) out.push_back(t.getString("name"));
    return out;
  };
  auto all = f.rest().list({}, {});
  REQUIRE(all.isOk());
  CHECK(names(*all) == std::vector<std::string>{"one", "two", "three"});
  CHECK(all->getInt("total") == 3);
  CHECK(all->get("nextCursor").isNull());
  TargetFilter byType;
  byType.type = "copilot-cli";
  CHECK(names(*f.rest().list(byType, {})) == std::vector<std::string>{"two"});
  TargetFilter disabled;
  disabled.status = "disabled";
  CHECK(names(*f.rest().list(disabled, {})) == std::vector<std::string>{"three"});
  TargetFilter cap;
  cap.capability = "py";
  CHECK(names(*f.rest().list(cap, {})) == std::vector<std::string>{"two", "three"});
  TargetFilter bound;
  bound.boundary = "corporate";
  CHECK(names(*f.rest().list(bound, {})) == std::vector<std::string>{"one", "three"});
  TargetFilter mech;
  mech.mechanism = "webhook";
  CHECK(names(*f.rest().list(mech, {})) == std::vector<std::string>{"two"});
  TargetFilter project;
  project.projectId = "default";
  CHECK(names(*f.rest().list(project, {})) == std::vector<std::string>{"one", "three"});

  auto page1 = f.rest().list({}, {std::string("2"), std::nullopt});
  REQUIRE(page1.isOk());
  CHECK(names(*page1) == std::vector<std::string>{"one", "two"});
  CHECK(page1->getBool("hasMore"));
  auto page2 = f.rest().list({}, {std::nullopt, page1->getString("nextCursor")});
  REQUIRE(page2.isOk());
  CHECK(names(*page2) == std::vector<std::string>{"three"});
  auto mismatch = f.rest().list(byType, {std::nullopt, page1->getString("nextCursor")});
  CHECK(mismatch.status().message() ==
        "Cursor filter mismatch - filters changed between requests. Start a new query.");
}

TEST_CASE("target status and health texts", "[targets]") {
  for (auto s : {TargetStatus::Available, TargetStatus::InUse, TargetStatus::Disabled,
                 TargetStatus::Error}) {
    CHECK(parseTargetStatus(targetStatusText(s)) == s);
  }
  CHECK(std::string(targetStatusText(TargetStatus::InUse)) == "in-use");
  CHECK(std::string(targetStatusText(TargetStatus::Unknown)) == "unknown");
  CHECK_FALSE(parseTargetStatus("unknown"));  // never stored by Weft
  CHECK_FALSE(parseTargetStatus("Disabled"));
  for (auto h : {TargetHealth::Healthy, TargetHealth::Unhealthy, TargetHealth::Unknown}) {
    CHECK(parseTargetHealth(targetHealthText(h)) == h);
  }
  CHECK(std::string(targetHealthText(TargetHealth::Unknown)) == "unknown");
  CHECK_FALSE(parseTargetHealth("degraded"));

  // Decoding: an absent or unknown text is Unknown; the texts stay as stored.
  const std::string odd = R"({"id":"t1","name":"n","status":"paused","healthStatus":"degraded"})";
  auto r = Targets::decode(odd, "default");
  REQUIRE(r);
  CHECK(r->status == TargetStatus::Unknown);
  CHECK(r->healthStatus == TargetHealth::Unknown);
  CHECK(r->statusText() == "paused");
  CHECK(r->healthText() == "degraded");
  CHECK(r->target.dump() == odd);
  auto bare = Targets::decode(R"({"id":"t1","name":"n"})", "default");
  REQUIRE(bare);
  CHECK(bare->status == TargetStatus::Unknown);
  CHECK(bare->healthStatus == TargetHealth::Unknown);
  CHECK(bare->statusText().empty());
  CHECK(bare->healthText() == "unknown");
  auto known = Targets::decode(
      R"({"id":"t1","name":"n","status":"in-use","healthStatus":"unhealthy"})", "default");
  REQUIRE(known);
  CHECK(known->status == TargetStatus::InUse);
  CHECK(known->healthStatus == TargetHealth::Unhealthy);
}

TEST_CASE("a status Weft does not know is returned, filtered and counted as stored", "[targets]") {
  Fixture f;
  Json t = f.localTarget("odd");
  const std::string id = t.getString("id");
  t.set("status", Json("paused"));
  t.set("healthStatus", Json("degraded"));
  const std::string written = t.dump();
  auto bucket = f.store->openBucket(kTargetBucket, BucketOptions{});
  REQUIRE(bucket.isOk());
  REQUIRE((*bucket)->put(id, written).isOk());
  CHECK(f.stored(id).dump() == written);  // returned as stored
  REQUIRE(eventually([&] {
    auto seen = f.targets->view().find(id);
    return seen && seen->statusText() == "paused";
  }));

  auto names = [&](const std::string& status) {
    TargetFilter filter;
    filter.status = status;
    auto listed = f.rest().list(filter, {});
    REQUIRE(listed.isOk());
    std::vector<std::string> out;
    for (const auto& x : listed->get("targets").asArray()) out.push_back(x.getString("name"));
    return out;
  };
  CHECK(names("paused") == std::vector<std::string>{"odd"});
  CHECK(names("unknown").empty());
  CHECK(names("available").empty());
  TargetCounts counts = f.targets->liveStats(std::nullopt);
  CHECK(counts.total == 1);
  CHECK(counts.available + counts.inUse + counts.disabled == 0);

  // Disabling writes the known text.
  REQUIRE(f.rest().disable("odd", kAny).isOk());
  Json disabled = f.stored(id);
  CHECK(disabled.getString("status") == "disabled");
  CHECK(disabled.getString("healthStatus") == "degraded");
  CHECK(names("disabled") == std::vector<std::string>{"odd"});
}

TEST_CASE("PUT merges config and healthCheck, and validates", "[targets]") {
  Fixture f;
  Json t = f.registerTarget(body(R"({"name":"m","agentType":"claude-code","capabilities":["a"],
      "mechanism":"webhook","config":{"url":"http://a","headers":{"X":"1"}}})"));
  const std::string id = t.getString("id");
  f.clock.advance(1000);
  auto bad = [&](const char* b) {
    auto r = f.rest().update(id, kAny, body(b));
    REQUIRE_FALSE(r.isOk());
    return r.status().message();
  };
  CHECK(bad(R"({"description":5})") == "description must be a string");
  CHECK(bad(R"({"capabilities":[]})") == "capabilities must contain at least one item");
  CHECK(bad(R"({"boundaries":[""]})") == "Each boundary must be a non-empty string");
  CHECK(bad(R"({"tags":"x"})") == "tags must be an array of strings");
  CHECK(bad(R"({"healthCheck":{"timeoutMs":60001}})") ==
        "healthCheck.timeoutMs must be at most 60000");
  CHECK(bad(R"({"config":1})") == "config must be an object");
  CHECK(bad(R"({"config":{"mechanism":"local"}})") ==
        "config.mechanism must match top-level mechanism (webhook)");
  CHECK(bad(R"({"healthCheck":{"enabled":1}})") == "healthCheck.enabled must be a boolean");

  // Without healthCheck.enabled, a target without one does not get one.
  auto r = f.rest().update(id, kAny, body(R"({"healthCheck":{"intervalMs":5}})"));
  REQUIRE(r.isOk());
  CHECK_FALSE(r->contains("healthCheck"));

  r = f.rest().update(id, kAny, body(R"({"description":"new","config":{"headers":{"Y":"2"},
      "method":"PUT"},"name":"ignored","status":"disabled","mechanism":"local",
      "healthCheck":{"enabled":false,"timeoutMs":500}})"));
  REQUIRE(r.isOk());
  CHECK(r->getString("description") == "new");
  CHECK(r->getString("name") == "m");
  CHECK(r->getString("status") == "available");
  CHECK(r->getString("mechanism") == "webhook");
  CHECK(r->get("config") ==
        body(R"({"mechanism":"webhook","url":"http://a","headers":{"Y":"2"},"method":"PUT"})"));
  CHECK(r->get("healthCheck") == body(R"({"enabled":false,"intervalMs":300000,"timeoutMs":500})"));
  CHECK(r->getString("updatedAt") == formatIso(f.clock.nowMs()));
  r = f.rest().update("m", kAny, body(R"({"healthCheck":{"enabled":true}})"));
  REQUIRE(r.isOk());
  CHECK(r->get("healthCheck") == body(R"({"enabled":true,"intervalMs":300000,"timeoutMs":500})"));
  CHECK(f.rest().update("nope", kAny, body("{}")).code() == Code::NotFound);
  CHECK(eventually([&] { return f.events.count("target:updated") == 3; }));
}

TEST_CASE("enable, disable and disable-batch", "[targets]") {
  Fixture f;
  Json a = f.localTarget("a");
  Json b = f.localTarget("b");
  Json c = f.registerTarget(body(R"({"name":"c","agentType":"copilot-cli","capabilities":["x"],
      "mechanism":"ssh"})"));
  auto d = f.rest().disable("a", kAny);
  REQUIRE(d.isOk());
  CHECK(d->dump() == R"({"success":true,"message":"Target a disabled"})");
  CHECK(f.stored("a").getString("status") == "disabled");
  REQUIRE(eventually([&] { return f.events.count("target:disabled") == 1; }));
  CHECK(f.events.named("target:disabled")[0].data.getString("reason") == "manual");
  auto e = f.rest().enable(a.getString("id"), kAny);
  REQUIRE(e.isOk());
  CHECK(e->getString("message") == "Target " + a.getString("id") + " enabled");
  CHECK(f.stored("a").getString("status") == "available");
  REQUIRE(eventually([&] { return f.events.count("target:updated") == 1; }));
  CHECK(f.events.named("target:updated").back().data.getString("newStatus") == "available");

  auto batchError = [&](const char* text) {
    auto r = f.rest().disableBatch(body(text));
    REQUIRE_FALSE(r.isOk());
    return r.status().message();
  };
  CHECK(batchError("{}") == "Either filter or targetIds must be provided");
  CHECK(batchError(R"({"targetIds":[]})") == "Either filter or targetIds must be provided");
  CHECK(batchError(R"({"targetIds":"a"})") == "targetIds must be an array");
  CHECK(batchError(R"({"filter":{"agentType":"x"}})") ==
        "filter.agentType must be copilot-cli or claude-code");
  CHECK(batchError(R"({"filter":{"status":1}})") == "filter.status must be a string");
  CHECK(batchError(R"({"filter":{"mechanism":false}})") == "filter.mechanism must be a string");

  REQUIRE(f.rest().disable("b", kAny).isOk());
  auto r = f.rest().disableBatch(body(R"({"targetIds":["a","b","ghost",3]})"));
  REQUIRE(r.isOk());
  CHECK(r->get("success") == Json(Json::Array{a.get("id"), b.get("id")}));
  CHECK(r->get("failed") == body(R"(["ghost","3"])"));
  CHECK(r->get("errors") == body(R"({"ghost":"Target not found","3":"Target not found"})"));
  CHECK(r->get("disabledTargets") == Json(Json::Array{a.get("id")}));
  CHECK(r->get("alreadyDisabled") == Json(Json::Array{b.get("id")}));
  CHECK(r->getInt("count") == 2);
  CHECK(r->getInt("totalProcessed") == 4);
  CHECK(r->get("successRate").asDouble() == Approx(50.0));

  auto byFilter = f.rest().disableBatch(body(R"({"filter":{"mechanism":"ssh"}})"));
  REQUIRE(byFilter.isOk());
  CHECK(byFilter->get("disabledTargets") == Json(Json::Array{c.get("id")}));
  CHECK(f.stored("c").getString("status") == "disabled");
}

TEST_CASE("delete removes the target and its name, by id or name", "[targets]") {
  Fixture f;
  Json t = f.localTarget("gone");
  auto r = f.rest().remove("gone", kAny);
  REQUIRE(r.isOk());
  CHECK(r->dump() == R"({"success":true,"message":"Target gone removed"})");
  CHECK(f.rest().get(t.getString("id"), kAny).code() == Code::NotFound);
  CHECK(f.rest().remove("gone", kAny).code() == Code::NotFound);
  CHECK(eventually([&] { return f.events.count("target:removed") == 1; }));
  CHECK(f.events.named("target:removed")[0].data.getString("targetName") == "gone");
}

TEST_CASE("target events are derived from stored changes", "[targets][events]") {
  TargetRecord before, after;
  before.id = after.id = "t1";
  before.name = after.name = "n";
  before.projectId = after.projectId = "p";
  before.status = after.status = TargetStatus::Available;
  before.healthStatus = after.healthStatus = TargetHealth::Unknown;
  before.target =
      body(R"({"id":"t1","status":"available","healthStatus":"unknown","updatedAt":"a"})");

  auto names = [](const std::vector<Event>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.name);
    return out;
  };
  CHECK(names(deriveTargetEvents(nullptr, &before, 0)) ==
        std::vector<std::string>{"target:registered"});
  CHECK(names(deriveTargetEvents(&before, nullptr, 0)) ==
        std::vector<std::string>{"target:removed"});

  // A probe that leaves the health as it was: nothing.
  after.target = body(R"({"id":"t1","status":"available","healthStatus":"unknown","updatedAt":"b",
                          "lastHealthCheck":"b"})");
  CHECK(deriveTargetEvents(&before, &after, 0).empty());
  // A changed health.
  after.healthStatus = TargetHealth::Unhealthy;
  after.target = body(R"({"id":"t1","status":"available","healthStatus":"unhealthy",
                          "lastError":"boom","lastHealthCheck":"b"})");
  auto health = deriveTargetEvents(&before, &after, 0);
  REQUIRE(names(health) == std::vector<std::string>{"target:health-changed"});
  CHECK(health[0].data.getString("previousHealth") == "unknown");
  CHECK(health[0].data.getString("newHealth") == "unhealthy");
  CHECK(health[0].data.getString("error") == "boom");
  CHECK(health[0].topic == "targets");
  CHECK(health[0].projectId() == "p");
  // Disable (also of an already disabled target).
  after.healthStatus = TargetHealth::Unknown;
  after.status = TargetStatus::Disabled;
  after.target =
      body(R"({"id":"t1","status":"disabled","healthStatus":"unknown","updatedAt":"c"})");
  CHECK(names(deriveTargetEvents(&before, &after, 0)) ==
        std::vector<std::string>{"target:disabled"});
  CHECK(names(deriveTargetEvents(&after, &after, 0)).empty());
  TargetRecord again = after;
  again.target.set("updatedAt", Json("d"));
  CHECK(names(deriveTargetEvents(&after, &again, 0)) ==
        std::vector<std::string>{"target:disabled"});
  // PUT on a disabled target, enable, a spin-up outcome: updated.
  TargetRecord put = after;
  put.target.set("description", Json("x"));
  auto updated = deriveTargetEvents(&after, &put, 0);
  REQUIRE(names(updated) == std::vector<std::string>{"target:updated"});
  CHECK(updated[0].data.getString("previousStatus") == "disabled");
  CHECK(updated[0].data.getString("newStatus") == "disabled");
  TargetRecord used = before;
  used.target.set("useCount", Json(1));
  CHECK(names(deriveTargetEvents(&before, &used, 0)) == std::vector<std::string>{"target:updated"});
}

// ---- spin-up ------------------------------------------------------------------

TEST_CASE("manual spin-up: preconditions in order", "[targets][spinup]") {
  SpinUpSettings settings = allowAll();
  settings.allowSsh = false;
  Fixture f(settings);
  f.registerTarget(body(R"({"name":"s","agentType":"claude-code","capabilities":["a"],
      "mechanism":"ssh","config":{"host":"h","user":"u","command":"c"}})"));
  f.registerTarget(body(R"({"name":"k","agentType":"claude-code","capabilities":["a"],
      "mechanism":"kubernetes","config":{"kubernetes":{"image":"i"}}})"));
  f.localTarget("off");
  REQUIRE(f.rest().disable("off", kAny).isOk());

  auto err = [&](const char* ref) {
    auto r = f.rest().spinUpTarget(ref, kAny);
    REQUIRE_FALSE(r.isOk());
    return r.status();
  };
  CHECK(err("nope").code() == Code::NotFound);
  Status disabled = err("off");
  CHECK(disabled.code() == Code::Conflict);
  CHECK(disabled.message() == "Target off is disabled");
  Status mech = err("s");
  CHECK(mech.code() == Code::PermissionDenied);  // 403
  CHECK(mech.message() == "mechanism ssh is disabled by server configuration");
  Status missing = err("k");
  CHECK(missing.code() == Code::Conflict);
  CHECK(missing.message() ==
        "Target k is missing required config for mechanism kubernetes: namespace, jobNamePrefix");
  CHECK(f.runner->calls().empty());
}

TEST_CASE("every mechanism is disabled by default", "[targets][spinup]") {
  SpinUpSettings defaults;
  for (const char* m : spinup::kMechanisms) CHECK_FALSE(defaults.allows(m));
  Fixture f(defaults);
  f.localTarget("l");
  auto r = f.rest().spinUpTarget("l", kAny);
  CHECK(r.code() == Code::PermissionDenied);
  CHECK(r.status().message() == "mechanism local is disabled by server configuration");
  auto t = f.rest().test("l", kAny);
  CHECK(t.code() == Code::PermissionDenied);
  CHECK(f.runner->calls().empty());
}

TEST_CASE("manual spin-up records the outcome on the target", "[targets][spinup]") {
  Fixture f;
  Json t = f.localTarget("ok");
  auto r = f.rest().spinUpTarget("ok", kAny);
  REQUIRE(r.isOk());
  CHECK(isUuid(r->getString("operationId")));
  CHECK(r->getString("targetName") == "ok");
  CHECK(r->getString("targetId") == t.getString("id"));
  CHECK(r->getBool("success"));
  const std::string opId = r->getString("operationId");
  REQUIRE(eventually([&] { return f.stored("ok").getInt("useCount") == 1; }));
  Json stored = f.stored("ok");
  const Json& last = stored.get("lastSpinUp");
  CHECK(last.getString("operationId") == opId);
  CHECK(last.getString("outcome") == "success");
  CHECK(last.get("mechanismResult") == body(R"({"pid":4242})"));
  CHECK(stored.getString("lastUsedAt") == formatIso(f.clock.nowMs()));
  auto op = f.targets->spinUp().find(opId);
  REQUIRE(op);
  CHECK(op->status == "success");

  // What ran: the command and args directly, the agent environment added.
  auto calls = f.runner->calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].argv == std::vector<std::string>{"agent", "--go"});
  CHECK(calls[0].detached);
  auto env = calls[0].env;
  auto has = [&](const std::string& k, const std::string& v) {
    return std::find(env.begin(), env.end(), std::make_pair(k, v)) != env.end();
  };
  CHECK(has("LOOMINAL_TARGET_ID", t.getString("id")));
  CHECK(has("LOOMINAL_TARGET_NAME", "ok"));
  CHECK(has("LOOMINAL_AGENT_TYPE", "claude-code"));
  CHECK(has("LOOMINAL_PROJECT_ID", "default"));
  CHECK(has("WEFT_URL", "http://127.0.0.1:3999"));

  REQUIRE(eventually([&] { return f.events.count("spin-up:completed") == 1; }));
  auto started = f.events.named("spin-up:started");
  REQUIRE(started.size() == 1);
  CHECK(started[0].data.getString("mechanism") == "local");
  CHECK_FALSE(started[0].data.contains("workId"));
  CHECK(f.events.named("spin-up:completed")[0].data.getString("operationId") == opId);

  // A failing run: lastError and a failure lastSpinUp; useCount unchanged.
  f.runner->setHandler([](const ProcessRequest&, const CancelToken&) -> Result<ProcessOutcome> {
    ProcessOutcome o;
    o.pid = 7;
    o.exited = true;
    o.exitCode = 3;
    return o;
  });
  f.clock.advance(1);
  auto second = f.rest().spinUpTarget("ok", kAny);
  REQUIRE(second.isOk());
  REQUIRE(eventually(
      [&] { return f.stored("ok").get("lastSpinUp").getString("outcome") == "failure"; }));
  stored = f.stored("ok");
  CHECK(stored.getString("lastError") == "exit code 3");
  CHECK(stored.get("lastSpinUp").getString("error") == "exit code 3");
  CHECK(stored.getInt("useCount") == 1);
  REQUIRE(eventually([&] { return f.events.count("spin-up:failed") == 1; }));
  CHECK(f.events.named("spin-up:failed")[0].data.getString("errorMessage") == "exit code 3");
}

TEST_CASE("de-duplication and the concurrency limit", "[targets][spinup]") {
  SpinUpSettings settings = allowAll();
  settings.maxConcurrent = 2;
  Fixture f(settings);
  f.runner->setHandler([](const ProcessRequest&, const CancelToken& c) -> Result<ProcessOutcome> {
    waitForCancel(c);  // hangs until told to stop
    ProcessOutcome o;
    o.cancelled = true;
    return o;
  });
  f.localTarget("a");
  f.localTarget("b");
  f.localTarget("c");
  auto first = f.rest().spinUpTarget("a", kAny);
  REQUIRE(first.isOk());
  CHECK(first->getString("status") == "in-progress");
  auto same = f.rest().spinUpTarget("a", kAny);
  REQUIRE(same.isOk());
  CHECK(same->getString("operationId") == first->getString("operationId"));
  REQUIRE(f.rest().spinUpTarget("b", kAny).isOk());
  auto third = f.rest().spinUpTarget("c", kAny);
  CHECK(third.code() == Code::ResourceExhausted);  // 429
  CHECK(third.status().message() == "Too many concurrent spin-ups (limit 2)");
  // A target with an active operation still gets it back at the limit.
  CHECK(f.rest().spinUpTarget("b", kAny).isOk());
  CHECK(f.targets->spinUp().activeCount() == 2);
  CHECK(eventually([&] { return f.runner->calls().size() == 2; }));  // a, b: once each
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(f.runner->calls().size() == 2);
}

TEST_CASE("an operation past spinup.timeoutMs times out", "[targets][spinup]") {
  SpinUpSettings settings = allowAll();
  settings.timeoutMs = 150;
  Fixture f(settings);
  f.runner->setHandler([](const ProcessRequest&, const CancelToken& c) -> Result<ProcessOutcome> {
    waitForCancel(c);  // ignores its own timeout
    ProcessOutcome o;
    o.cancelled = true;
    return o;
  });
  f.localTarget("slow");
  auto r = f.rest().spinUpTarget("slow", kAny);
  REQUIRE(r.isOk());
  const std::string opId = r->getString("operationId");
  REQUIRE(eventually([&] {
    auto op = f.targets->spinUp().find(opId);
    return op && op->status == "timeout";
  }));
  REQUIRE(eventually(
      [&] { return f.stored("slow").get("lastSpinUp").getString("outcome") == "failure"; }));
  CHECK(f.stored("slow").getString("lastError") == "Spin-up timed out after 150 ms");
  REQUIRE(eventually([&] { return f.events.count("spin-up:failed") == 1; }));
  CHECK(f.events.named("spin-up:failed")[0].data.getString("errorMessage") ==
        "Spin-up timed out after 150 ms");
  // A waited local run is given the operation's budget as its timeout.
  auto calls = f.runner->calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].timeoutMs <= 150);
}

TEST_CASE("a submission without workers spins up the first matching target", "[targets][spinup]") {
  Fixture f;
  // Not eligible: wrong project, wrong type, disabled, mechanism config
  // incomplete; then two good ones, the earlier one wins.
  f.localTarget("other-project", "cpp", "p2");
  f.registerTarget(body(R"({"name":"copilot","agentType":"copilot-cli","capabilities":["cpp"],
      "mechanism":"local","config":{"command":"x"}})"));
  f.localTarget("off", "cpp");
  REQUIRE(f.rest().disable("off", kAny).isOk());
  f.registerTarget(body(R"({"name":"incomplete","agentType":"claude-code","capabilities":["cpp"],
      "mechanism":"local"})"));
  f.registerTarget(body(R"({"name":"other-boundary","agentType":"claude-code",
      "capabilities":["cpp"],"boundaries":["corporate"],"mechanism":"local",
      "config":{"command":"x"}})"));
  f.clock.advance(5);
  Json first = f.localTarget("first", "cpp");
  f.clock.advance(5);
  f.localTarget("second", "cpp");

  Json response = f.submit("cpp");
  CHECK(response.getBool("spinUpTriggered"));
  CHECK(response.getInt("estimatedWaitSeconds") == 30);
  const std::string workId = response.getString("id");
  REQUIRE(eventually([&] { return f.stored("first").getInt("useCount") == 1; }));
  CHECK(f.stored("first").get("lastSpinUp").getString("workItemId") == workId);
  CHECK(f.stored("second").getInt("useCount") == 0);
  auto triggered = f.events.named("spin-up:triggered");
  REQUIRE(triggered.size() == 1);
  CHECK(triggered[0].data.getString("workId") == workId);
  CHECK(triggered[0].data.getString("targetAgentType") == "claude-code");
  CHECK(triggered[0].data.getString("capability") == "cpp");
  CHECK(triggered[0].data.getString("boundary") == "personal");
  auto started = f.events.named("spin-up:started");
  REQUIRE(started.size() == 1);
  CHECK(started[0].data.getString("workId") == workId);
  CHECK(started[0].data.getString("capability") == "cpp");
  auto calls = f.runner->calls();
  REQUIRE(calls.size() == 1);
  CHECK(std::find(calls[0].env.begin(), calls[0].env.end(),
                  std::make_pair(std::string("WEFT_WORK_ITEM_ID"), workId)) != calls[0].env.end());

  // Cooldown: a second submission within spinup.cooldownMs starts nothing.
  f.submit("cpp");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(f.runner->calls().size() == 1);
  CHECK(f.events.count("spin-up:triggered") == 2);
  // After the cooldown it starts again (the same first target).
  f.clock.advance(30000);
  f.submit("cpp");
  REQUIRE(eventually([&] { return f.stored("first").getInt("useCount") == 2; }));
  CHECK(f.runner->calls().size() == 2);

  // No matching target at all: requested, skipped, nothing runs.
  f.submit("rust");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(f.runner->calls().size() == 2);
}

TEST_CASE("automatic spin-up de-duplicates an active operation", "[targets][spinup]") {
  SpinUpSettings settings = allowAll();
  settings.cooldownMs = 0;
  Fixture f(settings);
  std::atomic<bool> release{false};
  f.runner->setHandler([&](const ProcessRequest&, const CancelToken& c) -> Result<ProcessOutcome> {
    while (!release && !c.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ProcessOutcome o;
    o.running = true;
    return o;
  });
  f.localTarget("t");
  f.submit();
  f.submit();
  f.submit();
  CHECK(eventually([&] { return f.runner->calls().size() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(f.runner->calls().size() == 1);
  release = true;
  REQUIRE(eventually([&] { return f.stored("t").getInt("useCount") == 1; }));
  f.submit();  // no cooldown, nothing active: a new one
  REQUIRE(eventually([&] { return f.stored("t").getInt("useCount") == 2; }));
}

TEST_CASE("an agent registering with the target id is linked to the spin-up", "[targets][spinup]") {
  Fixture f;
  std::atomic<bool> release{false};
  f.runner->setHandler([&](const ProcessRequest&, const CancelToken& c) -> Result<ProcessOutcome> {
    while (!release && !c.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ProcessOutcome o;
    o.exited = true;
    o.exitCode = 0;
    return o;
  });
  Json t = f.localTarget("linked");
  REQUIRE(f.rest().spinUpTarget("linked", kAny).isOk());
  RegisterRequest agent;
  agent.guid = "agent-1";
  agent.handle = "h";
  agent.capabilities = {"cpp"};
  Json metadata = Json::object();
  metadata.set("targetId", t.get("id"));
  agent.metadata = metadata;
  REQUIRE(f.svc->agents->registerAgent(agent).isOk());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release = true;
  REQUIRE(eventually([&] { return f.events.count("spin-up:completed") == 1; }));
  CHECK(f.events.named("spin-up:completed")[0].data.getString("agentGuid") == "agent-1");
}

// ---- mechanisms -------------------------------------------------------------------

TEST_CASE("ssh argv: no local shell, remote values single-quoted", "[spinup][mechanisms]") {
  Json cfg = body(R"json({"host":"h.example","user":"deploy","port":2222,"privateKeyPath":"/k/id",
      "command":"start-agent --x","workingDirectory":"/srv/it's here",
      "env":{"A":"x'y","B":"$(rm -rf /)"},"connectionTimeoutMs":1500})json");
  auto argv = spinup::sshArgv(cfg, "/usr/bin/ssh");
  REQUIRE(argv.isOk());
  CHECK(*argv ==
        std::vector<std::string>{
            "/usr/bin/ssh", "-p", "2222", "-i", "/k/id", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "deploy@h.example",
            "export A='x'\\''y' B='$(rm -rf /)'; cd '/srv/it'\\''s here' && start-agent --x"});
  auto minimal = spinup::sshArgv(body(R"({"host":"h","user":"u","command":"c"})"), "ssh");
  REQUIRE(minimal.isOk());
  CHECK(*minimal == std::vector<std::string>{"ssh", "-o", "StrictHostKeyChecking=accept-new", "-o",
                                             "BatchMode=yes", "-o", "ConnectTimeout=30", "u@h",
                                             "c"});
  auto badEnv =
      spinup::sshArgv(body(R"({"host":"h","user":"u","command":"c","env":{"A-B":"1"}})"), "ssh");
  CHECK(badEnv.status().message() == "invalid env var name: A-B");
  // A destination that ssh would read as an option is refused.
  CHECK_FALSE(
      spinup::sshArgv(body(R"({"host":"-oProxyCommand=x","user":"u","command":"c"})"), "ssh")
          .isOk());
  CHECK_FALSE(spinup::sshArgv(body(R"({"host":"h","user":"-x","command":"c"})"), "ssh").isOk());
  auto probe = spinup::sshProbeArgv(body(R"({"host":"h","user":"u","command":"c"})"), "ssh", 4000);
  REQUIRE(probe.isOk());
  CHECK(probe->back() == "echo ok");
  CHECK(std::find(probe->begin(), probe->end(), "ConnectTimeout=4") != probe->end());
  CHECK(spinup::isValidEnvName("_A1"));
  CHECK_FALSE(spinup::isValidEnvName("1A"));
  CHECK_FALSE(spinup::isValidEnvName(""));
}

TEST_CASE("webhook body templating escapes values as JSON strings", "[spinup][mechanisms]") {
  spinup::RunContext run{"tid", "name \"quoted\"", "claude-code", "p", "wid", "oid", "ts"};
  Json cfg = Json::object();
  cfg.set("bodyTemplate", Json(R"({"t":"{{targetId}}","n":"{{targetName}}","w":"{{workItemId}}",)"
                               R"("o":"{{operationId}}","at":"{{timestamp}}","x":"{{unknown}}"})"));
  std::string rendered = spinup::webhookBody(cfg, run);
  CHECK(rendered == R"({"t":"tid","n":"name \"quoted\"","w":"wid","o":"oid","at":"ts",)"
                    R"("x":"{{unknown}}"})");
  REQUIRE(Json::parse(rendered).isOk());
  run.workItemId = "";
  cfg.set("bodyTemplate", Json("w={{workItemId}};p={{projectId}};a={{agentType}}"));
  CHECK(spinup::webhookBody(cfg, run) == "w=;p=p;a=claude-code");
  Json def = Json::parse(spinup::webhookBody(Json::object(), run)).value();
  CHECK(def.dump() ==
        R"({"targetId":"tid","targetName":"name \"quoted\"","agentType":"claude-code",)"
        R"("projectId":"p","operationId":"oid","timestamp":"ts"})");
}

TEST_CASE("webhook mechanism: request shape, success codes, body never kept",
          "[spinup][mechanisms]") {
  Fixture f;
  f.http->setHandler([](const HttpCall&, const CancelToken&) -> Result<HttpReply> {
    HttpReply reply;
    reply.status = 202;
    reply.body = "INTERNAL-SECRET";
    return reply;
  });
  f.registerTarget(body(R"({"name":"hook","agentType":"claude-code","capabilities":["cpp"],
      "mechanism":"webhook","config":{"webhook":{"url":"https://hooks.example/x","method":"put",
      "headers":{"X-Key":"k"},"bodyTemplate":"{\"w\":\"{{workItemId}}\"}","timeoutMs":1234}}})"));
  std::string workId = f.submit().getString("id");
  REQUIRE(eventually([&] { return f.stored("hook").getInt("useCount") == 1; }));
  auto calls = f.http->calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].method == "PUT");
  CHECK(calls[0].url == "https://hooks.example/x");
  CHECK(calls[0].body == "{\"w\":\"" + workId + "\"}");
  CHECK(calls[0].timeoutMs == 1234);
  auto header = [&](const std::string& n) {
    for (const auto& [k, v] : calls[0].headers) {
      if (k == n) return v;
    }
    return std::string("<none>");
  };
  CHECK(header("Content-Type") == "application/json");
  CHECK(header("User-Agent") == "loom-weft");
  CHECK(header("X-Key") == "k");
  Json stored = f.stored("hook");
  CHECK(stored.get("lastSpinUp").get("mechanismResult") == body(R"({"response":{"status":202}})"));
  CHECK(stored.dump().find("INTERNAL-SECRET") == std::string::npos);

  // A status outside successCodes fails; a timeout fails with its own text.
  REQUIRE(f.rest()
              .update("hook", kAny, body(R"({"config":{"webhook":{"url":"https://h/x",
      "successCodes":[200]}}})"))
              .isOk());
  REQUIRE(f.rest().spinUpTarget("hook", kAny).isOk());
  REQUIRE(eventually(
      [&] { return f.stored("hook").getString("lastError") == "webhook returned status 202"; }));
  f.http->setHandler([](const HttpCall&, const CancelToken&) -> Result<HttpReply> {
    return Status::timeout("timed out");
  });
  REQUIRE(f.rest().spinUpTarget("hook", kAny).isOk());
  REQUIRE(eventually([&] {
    return f.stored("hook").getString("lastError") == "webhook timed out after 30000 ms";
  }));
}

TEST_CASE("kubernetes mechanism pipes a Job manifest to kubectl", "[spinup][mechanisms]") {
  SpinUpSettings settings = allowAll();
  settings.kubectlPath = "/opt/kubectl";
  Fixture f(settings);
  Json t = f.registerTarget(body(R"({"name":"kube","agentType":"copilot-cli","capabilities":["a"],
      "mechanism":"kubernetes","config":{"kubernetes":{"namespace":"agents","jobNamePrefix":"loom",
      "image":"reg/agent:1","serviceAccount":"sa","imagePullSecret":"pull","command":"run",
      "args":["--fast"],"env":{"EXTRA":"1","LOOMINAL_AGENT_TYPE":"override"},
      "resources":{"cpu":"500m","memory":"1Gi"},"ttlSecondsAfterFinished":600}}})"));
  REQUIRE(f.rest().spinUpTarget("kube", kAny).isOk());
  REQUIRE(eventually([&] { return f.stored("kube").getInt("useCount") == 1; }));
  auto calls = f.runner->calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].argv ==
        std::vector<std::string>{"/opt/kubectl", "apply", "-f", "-", "-n", "agents", "-o", "json"});
  REQUIRE(calls[0].stdinData);
  Json job = Json::parse(*calls[0].stdinData).value();
  const std::string jobName = job.get("metadata").getString("name");
  CHECK(jobName.rfind("loom-", 0) == 0);
  CHECK(jobName.size() == 13);
  CHECK(f.stored("kube").get("lastSpinUp").get("mechanismResult").getString("jobName") == jobName);
  CHECK(job.getString("apiVersion") == "batch/v1");
  CHECK(job.getString("kind") == "Job");
  const Json& labels = job.get("metadata").get("labels");
  CHECK(labels.getString("app.kubernetes.io/name") == "loom-agent");
  CHECK(labels.getString("app.kubernetes.io/instance") == jobName);
  CHECK(labels.getString("app.kubernetes.io/managed-by") == "loom-weft");
  CHECK(labels.getString("loom.agent/target-id") == t.getString("id"));
  CHECK(labels.getString("loom.agent/agent-type") == "copilot-cli");
  CHECK(job.get("metadata").get("annotations").getString("loom.agent/target-name") == "kube");
  const Json& spec = job.get("spec");
  CHECK(spec.getInt("backoffLimit", -1) == 0);
  CHECK(spec.getInt("ttlSecondsAfterFinished") == 600);
  const Json& pod = spec.get("template").get("spec");
  CHECK(pod.getString("restartPolicy") == "Never");
  CHECK(pod.getString("serviceAccountName") == "sa");
  CHECK(pod.get("imagePullSecrets") == body(R"([{"name":"pull"}])"));
  const Json& c = pod.get("containers").asArray().at(0);
  CHECK(c.getString("name") == "agent");
  CHECK(c.getString("image") == "reg/agent:1");
  CHECK(c.get("command") == body(R"(["run"])"));
  CHECK(c.get("args") == body(R"(["--fast"])"));
  CHECK(
      c.get("resources") ==
      body(R"({"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"cpu":"500m","memory":"1Gi"}})"));
  std::map<std::string, std::string> env;
  for (const auto& e : c.get("env").asArray()) env[e.getString("name")] = e.getString("value");
  CHECK(env["LOOMINAL_TARGET_ID"] == t.getString("id"));
  CHECK(env["LOOMINAL_TARGET_NAME"] == "kube");
  CHECK(env["LOOMINAL_AGENT_TYPE"] == "override");  // the target's env wins
  CHECK(env["LOOMINAL_PROJECT_ID"] == "default");
  CHECK(env["EXTRA"] == "1");
  CHECK_FALSE(env.count("WEFT_WORK_ITEM_ID"));  // manual: no work item

  // A kubectl failure names its exit code and first stderr line.
  f.runner->setHandler([](const ProcessRequest&, const CancelToken&) -> Result<ProcessOutcome> {
    ProcessOutcome o;
    o.exited = true;
    o.exitCode = 1;
    o.stderrData = "error: forbidden\nmore";
    return o;
  });
  REQUIRE(f.rest().spinUpTarget("kube", kAny).isOk());
  REQUIRE(eventually([&] {
    return f.stored("kube").getString("lastError") == "kubectl exit code 1: error: forbidden";
  }));
}

TEST_CASE("github-actions: dispatch, run lookup and token rules", "[spinup][mechanisms]") {
  SpinUpSettings settings = allowAll();
  settings.githubApiUrl = "http://gh.local/api/";
  settings.githubTokenEnvVars = {"GITHUB_TOKEN", "OTHER_TOKEN"};
  Fixture f(settings);
  f.http->setHandler([](const HttpCall& call, const CancelToken&) -> Result<HttpReply> {
    HttpReply reply;
    if (call.method == "POST") {
      reply.status = 204;
    } else {
      reply.status = 200;
      reply.body = R"({"total_count":2,"workflow_runs":[{"id":41},{"id":42}]})";
    }
    return reply;
  });
  f.registerTarget(body(R"({"name":"gh","agentType":"claude-code","capabilities":["a"],
      "mechanism":"github-actions","config":{"githubActions":{"repo":"acme/agents",
      "workflow":"spin up.yml","ref":"dev","inputs":{"size":"l"}}}})"));
  REQUIRE(f.rest().spinUpTarget("gh", kAny).isOk());
  REQUIRE(eventually([&] { return f.stored("gh").getInt("useCount") == 1; }));
  CHECK(f.stored("gh").get("lastSpinUp").get("mechanismResult") == body(R"({"runId":42})"));
  auto calls = f.http->calls();
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].url ==
        "http://gh.local/api/repos/acme/agents/actions/workflows/spin%20up.yml/dispatches");
  CHECK(Json::parse(calls[0].body).value() == body(R"({"ref":"dev","inputs":{"size":"l"}})"));
  auto header = [&](const HttpCall& c, const std::string& n) {
    for (const auto& [k, v] : c.headers) {
      if (k == n) return v;
    }
    return std::string("<none>");
  };
  CHECK(header(calls[0], "Authorization") == "Bearer tok-123");
  CHECK(header(calls[0], "Accept") == "application/vnd.github+json");
  CHECK(header(calls[0], "X-GitHub-Api-Version") == "2022-11-28");
  CHECK(header(calls[0], "User-Agent") == "loom-weft");
  CHECK(calls[1].method == "GET");
  CHECK(calls[1].url.find("/actions/workflows/spin%20up.yml/runs?") != std::string::npos);

  // A token variable outside spinup.githubTokenEnvVars, and an unset one.
  REQUIRE(f.rest()
              .update("gh", kAny, body(R"({"config":{"githubActions":{"repo":"acme/agents",
                                 "workflowFile":"w.yml","tokenEnvVar":"AWS_SECRET"}}})"))
              .isOk());
  REQUIRE(f.rest().spinUpTarget("gh", kAny).isOk());
  REQUIRE(eventually([&] {
    return f.stored("gh").getString("lastError") ==
           "token variable AWS_SECRET is not allowed by server configuration";
  }));
  REQUIRE(f.rest()
              .update("gh", kAny, body(R"({"config":{"githubActions":{"repo":"acme/agents",
                                 "workflowFile":"w.yml","tokenEnvVar":"OTHER_TOKEN"}}})"))
              .isOk());
  REQUIRE(f.rest().spinUpTarget("gh", kAny).isOk());
  REQUIRE(eventually([&] {
    return f.stored("gh").getString("lastError") == "environment variable OTHER_TOKEN is not set";
  }));
  CHECK(f.http->calls().size() == 2);  // neither failure called GitHub
  // A dispatch answered with something other than 204.
  f.http->setHandler([](const HttpCall&, const CancelToken&) -> Result<HttpReply> {
    HttpReply reply;
    reply.status = 404;
    return reply;
  });
  REQUIRE(f.rest()
              .update("gh", kAny, body(R"({"config":{"githubActions":{"repo":"acme/agents",
      "workflow":"w.yml"}}})"))
              .isOk());
  REQUIRE(f.rest().spinUpTarget("gh", kAny).isOk());
  REQUIRE(eventually([&] {
    return f.stored("gh").getString("lastError") == "GitHub dispatch returned status 404";
  }));
}

TEST_CASE("local mechanism: argv without a shell unless asked", "[spinup][mechanisms]") {
  Fixture f;
  f.registerTarget(body(R"json({"name":"literal","agentType":"claude-code","capabilities":["a"],
      "mechanism":"local","config":{"command":"/bin/echo","args":["; touch /tmp/x","$(id)"],
      "detached":false,"workingDirectory":"/srv","env":{"LOOMINAL_TARGET_NAME":"mine"}}})json"));
  f.registerTarget(body(R"({"name":"shell","agentType":"claude-code","capabilities":["a"],
      "mechanism":"local","config":{"command":"echo hi > out","args":["ignored"],"shell":true}})"));
  REQUIRE(f.rest().spinUpTarget("literal", kAny).isOk());
  REQUIRE(f.rest().spinUpTarget("shell", kAny).isOk());
  REQUIRE(eventually([&] { return f.runner->calls().size() == 2; }));
  REQUIRE(eventually([&] { return f.stored("literal").getInt("useCount") == 1; }));
  auto calls = f.runner->calls();
  auto byName = [&](const std::string& n) {
    for (const auto& c : calls) {
      for (const auto& [k, v] : c.env) {
        if (k == "LOOMINAL_TARGET_NAME" && v == n) return c;
      }
    }
    FAIL("no call for " << n);
    return calls[0];
  };
  ProcessRequest literal = byName("mine");
  CHECK(literal.argv == std::vector<std::string>{"/bin/echo", "; touch /tmp/x", "$(id)"});
  CHECK_FALSE(literal.detached);
  CHECK(literal.workingDirectory == "/srv");
  ProcessRequest shell = byName("shell");
  CHECK(shell.argv == std::vector<std::string>{"/bin/sh", "-c", "echo hi > out"});
  // Not detached: stdout and stderr are kept in mechanismResult.response.
  CHECK(f.stored("literal").get("lastSpinUp").get("mechanismResult") ==
        body(R"({"pid":4242,"response":{"stdout":"ok\n","stderr":""}})"));
}

// ---- health -------------------------------------------------------------------

TEST_CASE("test endpoint probes and records health", "[targets][health]") {
  Fixture f;
  f.runner->addExecutable("agent");
  Json t = f.localTarget("probe");
  auto r = f.rest().test("probe", kAny);
  REQUIRE(r.isOk());
  CHECK(r->getBool("healthy"));
  CHECK_FALSE(r->contains("error"));
  CHECK(r->getInt("latencyMs", -1) == r->getInt("responseTimeMs", -2));
  CHECK(r->getString("targetId") == t.getString("id"));
  Json stored = f.stored("probe");
  CHECK(stored.getString("healthStatus") == "healthy");
  CHECK(stored.getString("lastHealthCheck") == formatIso(f.clock.nowMs()));
  REQUIRE(eventually([&] { return f.events.count("target:health-changed") == 1; }));
  CHECK(f.events.named("target:health-changed")[0].data.getString("newHealth") == "healthy");

  // Missing config: 200 with healthy:false and the missing-fields message.
  f.registerTarget(body(R"({"name":"empty","agentType":"claude-code","capabilities":["a"],
      "mechanism":"webhook"})"));
  auto empty = f.rest().test("empty", kAny);
  REQUIRE(empty.isOk());
  CHECK_FALSE(empty->getBool("healthy"));
  CHECK(empty->getString("error") ==
        "Target empty is missing required config for mechanism webhook: url");
  CHECK(f.stored("empty").getString("lastError") == empty->getString("error"));

  // A test is allowed for a disabled target; a missing executable is unhealthy.
  REQUIRE(f.rest().disable("probe", kAny).isOk());
  REQUIRE(
      f.rest().update("probe", kAny, body(R"({"config":{"local":{"command":"gone"}}})")).isOk());
  auto gone = f.rest().test("probe", kAny);
  REQUIRE(gone.isOk());
  CHECK(gone->getString("error") == "command not found: gone");
  REQUIRE(eventually([&] { return f.events.count("target:health-changed") == 3; }));
}

TEST_CASE("probes per mechanism", "[targets][health]") {
  Fixture f;
  f.runner->setHandler([](const ProcessRequest& req, const CancelToken&) -> Result<ProcessOutcome> {
    ProcessOutcome o;
    o.exited = true;
    o.exitCode = 0;
    o.stdoutData = req.argv[1] == "auth" ? "yes\n" : "ok\n";
    return o;
  });
  f.registerTarget(body(R"({"name":"ssh","agentType":"claude-code","capabilities":["a"],
      "mechanism":"ssh","config":{"host":"h","user":"u","command":"c"}})"));
  f.registerTarget(body(R"({"name":"k","agentType":"claude-code","capabilities":["a"],
      "mechanism":"kubernetes","config":{"namespace":"n","jobNamePrefix":"j","image":"i"}})"));
  f.registerTarget(body(R"({"name":"hook","agentType":"claude-code","capabilities":["a"],
      "mechanism":"webhook","config":{"url":"http://h/x","headers":{"A":"b"}}})"));
  f.registerTarget(body(R"({"name":"gh","agentType":"claude-code","capabilities":["a"],
      "mechanism":"github-actions","config":{"repo":"o/r","workflow":"w.yml"}})"));
  for (const char* name : {"ssh", "k", "hook", "gh"}) {
    auto r = f.rest().test(name, kAny);
    REQUIRE(r.isOk());
    INFO(name << ": " << r->dump());
    CHECK(r->getBool("healthy"));
  }
  auto runs = f.runner->calls();
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].argv.back() == "echo ok");
  CHECK(runs[1].argv ==
        std::vector<std::string>{"kubectl", "auth", "can-i", "create", "jobs", "-n", "n"});
  auto calls = f.http->calls();
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].method == "HEAD");
  CHECK(calls[0].url == "http://h/x");
  CHECK(calls[1].method == "GET");
  CHECK(calls[1].url == "https://api.github.com/repos/o/r/actions/workflows/w.yml");

  f.runner->setHandler([](const ProcessRequest&, const CancelToken&) -> Result<ProcessOutcome> {
    ProcessOutcome o;
    o.exited = true;
    o.exitCode = 255;
    return o;
  });
  auto down = f.rest().test("ssh", kAny);
  REQUIRE(down.isOk());
  CHECK(down->getString("error") == "ssh exited with code 255");
}

TEST_CASE("the periodic checker probes due targets only", "[targets][health]") {
  SpinUpSettings settings = allowAll();
  settings.allowWebhook = false;
  Fixture f(settings);
  f.runner->addExecutable("agent");
  Json b = body(R"({"agentType":"claude-code","capabilities":["a"],"mechanism":"local",
      "config":{"command":"agent"},"healthCheck":{"enabled":true,"intervalMs":60000}})");
  b.set("name", Json("due"));
  f.registerTarget(b);
  b.set("name", Json("off"));
  f.registerTarget(b);
  REQUIRE(f.rest().disable("off", kAny).isOk());
  b.set("name", Json("unchecked"));
  b.set("healthCheck", body(R"({"enabled":false})"));
  f.registerTarget(b);
  f.registerTarget(body(R"({"name":"hook","agentType":"claude-code","capabilities":["a"],
      "mechanism":"webhook","config":{"url":"http://h"},"healthCheck":{"enabled":true}})"));

  CHECK(f.targets->healthCheckOnce() == 1);
  CHECK(f.stored("due").getString("healthStatus") == "healthy");
  CHECK(f.stored("off").getString("healthStatus") == "unknown");
  CHECK(f.stored("unchecked").getString("healthStatus") == "unknown");
  CHECK(f.stored("hook").getString("healthStatus") == "unknown");  // mechanism disabled
  CHECK(f.targets->healthCheckOnce() == 0);                        // interval not elapsed
  f.clock.advance(59999);
  CHECK(f.targets->healthCheckOnce() == 0);
  f.clock.advance(1);
  REQUIRE(f.rest().update("due", kAny, body(R"({"config":{"command":"gone"}})")).isOk());
  CHECK(f.targets->healthCheckOnce() == 1);
  CHECK(f.stored("due").getString("healthStatus") == "unhealthy");
  CHECK(f.stored("due").getString("lastError") == "command not found: gone");
  REQUIRE(eventually([&] { return f.events.count("target:health-changed") == 2; }));
  auto changed = f.events.named("target:health-changed").back();
  CHECK(changed.data.getString("previousHealth") == "healthy");
  CHECK(changed.data.getString("newHealth") == "unhealthy");
  CHECK(changed.data.getString("error") == "command not found: gone");
}

TEST_CASE("targets count in the stats", "[targets][stats]") {
  Fixture f;
  f.localTarget("a");
  f.localTarget("b", "cpp", "p2");
  REQUIRE(f.rest().disable("b", kAny).isOk());
  auto overview = f.svc->stats->overview();
  REQUIRE(overview.isOk());
  CHECK(overview->totals.targets == 2);
  CHECK(overview->totals.disabledTargets == 1);
  CHECK(overview->byProject.at("p2").disabledTargets == 1);
  const TargetCounts all = f.targets->liveStats(std::nullopt);
  CHECK((all.total == 2 && all.available == 1 && all.inUse == 0 && all.disabled == 1));
  const TargetCounts p2 = f.targets->liveStats(std::string("p2"));
  CHECK((p2.total == 1 && p2.available == 0 && p2.inUse == 0 && p2.disabled == 1));
}

TEST_CASE("with nats, target changes and probes are published", "[targets]") {
  auto mem = createMemoryStore();
  auto publishing = std::make_shared<PublishingStore>(mem);
  Fixture f(allowAll(), publishing);
  f.runner->addExecutable("agent");
  Json t = f.localTarget("pub", "cpp", "proj");
  const std::string id = t.getString("id");
  REQUIRE(f.rest().update(id, kAny, body(R"({"description":"x"})")).isOk());
  REQUIRE(f.rest().disable(id, kAny).isOk());
  REQUIRE(f.rest().enable(id, kAny).isOk());
  REQUIRE(f.rest().test(id, kAny).isOk());
  REQUIRE(f.rest().spinUpTarget(id, kAny).isOk());
  REQUIRE(eventually([&] { return f.stored(id).getInt("useCount") == 1; }));
  REQUIRE(eventually([&] { return publishing->published().size() == 6; }));
  Json stored = f.stored(id);
  REQUIRE(f.rest().remove(id, kAny).isOk());
  auto pubs = publishing->published();
  REQUIRE(pubs.size() == 7);
  std::vector<std::string> subjects;
  for (const auto& p : pubs) subjects.push_back(p.first);
  CHECK(subjects ==
        std::vector<std::string>{"loominal.proj.targets.register", "loominal.proj.targets.update",
                                 "loominal.proj.targets.update", "loominal.proj.targets.update",
                                 "loominal.proj.targets.health." + id,
                                 "loominal.proj.targets.update", "loominal.proj.targets.remove"});
  CHECK(Json::parse(pubs[0].second).value() == t);  // the full target JSON
  Json health = Json::parse(pubs[4].second).value();
  CHECK(health.getString("targetId") == id);
  CHECK(health.getString("targetName") == "pub");
  CHECK(health.getString("healthStatus") == "healthy");
  CHECK(health.contains("timestamp"));
  CHECK(Json::parse(pubs[5].second).value() == stored);  // after the outcome
}

TEST_CASE("target endpoints answer 503 while the backend is down", "[targets]") {
  Fixture f;
  f.localTarget("a");
  f.store->setAvailable(false);
  CHECK(f.rest().get("a", kAny).status().isOutage());
  CHECK(f.rest().list({}, {}).status().isOutage());
  CHECK(f.rest().spinUpTarget("a", kAny).status().isOutage());
  // Validation still comes first.
  CHECK(f.rest().create(body("{}")).code() == Code::InvalidArgument);
  f.store->setAvailable(true);
  CHECK(f.rest().get("a", kAny).isOk());
}

}  // namespace weft::test
