// Stats kept as the views change (project_counts.h): they must equal a count
// over the view after any sequence of changes, including the ones a feed
// produces when it coalesces writes, replays old news or delivers writes made
// through another instance; and a drift must be found and corrected.
#include <catch2/catch.hpp>

#include <limits>
#include <map>
#include <random>
#include <thread>

#include "service_fixture.h"
#include "support/rest_agents.h"
#include "support/rest_work.h"
#include "weft/project_counts.h"

namespace weft {
namespace {

using test::body;
using test::eventually;
using test::Services;

// A record of its own, so the counting is tested apart from any service.
struct Rec {
  std::string project, status;
  int64_t at = 0;
};

std::shared_ptr<const Rec> decodeRec(const std::string&, const std::string& value) {
  auto j = Json::parse(value);
  if (!j || !j->isObject()) return nullptr;
  auto r = std::make_shared<Rec>();
  r->project = j->getString("p");
  r->status = j->getString("s");
  r->at = j->getInt("t", 0);
  return r;
}

std::string encodeRec(const std::string& project, const std::string& status, int64_t at) {
  Json j = Json::object();
  j.set("p", Json(project));
  j.set("s", Json(status));
  j.set("t", Json(at));
  return j.dump();
}

std::shared_ptr<ProjectCounts<Rec>> countsOf(BucketView<Rec>& view) {
  return ProjectCounts<Rec>::attach(
      view, [](const Rec& r) -> const std::string& { return r.project; },
      [](const Rec& r, ProjectTotals& t, int64_t sign) {
        if (r.status == "pending") t.pendingWork += sign;
        if (r.status == "done") t.completedWork += sign;
      },
      [](const Rec& r) -> std::optional<int64_t> {
        if (r.at == 0) return std::nullopt;
        return r.at;
      });
}

TEST_CASE("project counts equal a recount after coalesced, stale and deleted changes") {
  BucketView<Rec> view("recs", {}, decodeRec);
  auto counts = countsOf(view);
  std::mt19937 rng(GENERATE(1u, 2u, 3u, 4u, 5u));
  const char* projects[] = {"p0", "p1", "p2"};
  const char* statuses[] = {"pending", "done", "other"};
  uint64_t revision = 0;
  for (int step = 0; step < 3000; ++step) {
    const std::string key = "k" + std::to_string(rng() % 60);
    // Revisions jump (the feed coalesced what came between) and now and then
    // an event arrives late, below what the view holds (old news).
    revision += 1 + rng() % 4;
    const uint64_t at = rng() % 10 == 0 && revision > 10 ? revision - 5 : revision;
    switch (rng() % 6) {
      case 0:
        view.applyErase(key, at);
        break;
      case 1:
        view.applyPut(key, "not json", at);  // an invalid value removes the key from the view
        break;
      default:
        view.applyPut(key,
                      encodeRec(projects[rng() % 3], statuses[rng() % 3],
                                rng() % 4 == 0 ? 0 : static_cast<int64_t>(rng() % 1000)),
                      at);
    }
    if (step % 500 == 499) REQUIRE(counts->verify() == 0);
  }
  CHECK(counts->verify() == 0);

  // A skew (what a lost or doubled event would do) is found, corrected and
  // then gone.
  view.applyPut("known", encodeRec("p1", "pending", 5), ++revision);
  counts->skewForTest("p1", 1);
  CHECK(counts->verify() == 1);
  CHECK(counts->verify() == 0);
  counts->skewForTest("nowhere", 1);
  CHECK(counts->verify() == 1);
  CHECK(counts->verify() == 0);
}

TEST_CASE("a view remembers deleted keys for a while, so old writes stay out, then forgets them") {
  BucketView<Rec>::Options options;
  options.rememberDeletedMs = 2000;
  BucketView<Rec> view("recs", options, decodeRec);
  view.applyPut("a", encodeRec("p", "pending", 1), 10);
  view.applyErase("a", 11);
  CHECK(view.rememberedAbsent() == 1);
  // A write older than the deletion, applied after it (a writer's own apply
  // overtaken by a sweeper's delete), does not bring the key back.
  view.applyPut("a", encodeRec("p", "pending", 1), 10);
  CHECK(view.find("a") == nullptr);
  // Deletions long past are forgotten as new ones come: the memory of
  // deleted keys does not grow with history.
  for (int i = 0; i < 50; ++i) {
    const std::string key = "old" + std::to_string(i);
    view.applyPut(key, encodeRec("p", "done", 1), 100 + 2 * i);
    view.applyErase(key, 101 + 2 * i);
  }
  CHECK(view.rememberedAbsent() == 51);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  view.applyPut("b", encodeRec("p", "pending", 1), 1000);
  view.applyErase("b", 1001);
  CHECK(view.rememberedAbsent() == 1);
  // A key written again is held again, and no longer remembered as absent.
  view.applyPut("b", encodeRec("p", "pending", 1), 1002);
  CHECK(view.find("b") != nullptr);
  CHECK(view.rememberedAbsent() == 0);
}

TEST_CASE("project activity is the newest of the project's records and forgets removed ones") {
  auto store = createMemoryStore();
  auto bucket = *store->openBucket("recs", {});
  BucketView<Rec> view("recs", {}, decodeRec);
  auto counts = countsOf(view);
  view.start(store);
  REQUIRE(eventually([&] { return view.ready(); }));
  auto totals = [&]() {
    ProjectTotalsMap m;
    REQUIRE(counts->addTo(m, "not loaded"));
    return m;
  };
  auto settled = [&](size_t size) { return eventually([&] { return view.size() == size; }); };

  REQUIRE(bucket->put("a", encodeRec("p", "pending", 100)));
  REQUIRE(bucket->put("b", encodeRec("p", "pending", 300)));
  REQUIRE(bucket->put("c", encodeRec("q", "done", 0)));
  REQUIRE(settled(3));
  REQUIRE(eventually([&] { return totals()["p"].pendingWork == 2; }));
  CHECK(totals().at("p").lastActivityMs == 300);
  CHECK(totals().at("q").completedWork == 1);
  // q shows no activity: it stays at "none known".
  CHECK(totals().at("q").lastActivityMs == std::numeric_limits<int64_t>::min());

  // The newest record's activity moves back: so does the project's.
  REQUIRE(bucket->put("b", encodeRec("p", "done", 200)));
  REQUIRE(eventually([&] { return totals()["p"].completedWork == 1; }));
  CHECK(totals().at("p").lastActivityMs == 200);
  CHECK(totals().at("p").pendingWork == 1);
  REQUIRE(bucket->erase("b"));
  REQUIRE(settled(2));
  CHECK(totals().at("p").lastActivityMs == 100);
  // A project whose last record goes is forgotten.
  REQUIRE(bucket->erase("a"));
  REQUIRE(settled(1));
  CHECK(totals().count("p") == 0);
  CHECK(counts->verify() == 0);
  view.stop();
}

// Agents, work and dead letters as weftd counts them: the stats of instance A
// equal a count over the backend while instance B does the writing.
TEST_CASE("stats of one instance follow writes made through another") {
  ManualClock clock;
  auto store = createMemoryStore();
  Services a(store, clock);
  Services b(store, clock);

  std::mt19937 rng(7);
  std::vector<std::string> items;
  for (int i = 0; i < 6; ++i) {
    Json reg = body(R"({"handle":"h","capabilities":["c"]})");
    reg.set("guid", Json("g" + std::to_string(i)));
    reg.set("projectId", Json("p" + std::to_string(i % 3)));
    REQUIRE(testing::RestAgents(*b.agents).registerAgent(reg));
  }
  REQUIRE(testing::RestAgents(*b.agents).deregister("g5"));
  for (int i = 0; i < 60; ++i) {
    Json submit = body(R"({"boundary":"default","capability":"c","description":"d"})");
    submit.set("projectId", Json("p" + std::to_string(rng() % 3)));
    submit.set("maxAttempts", Json(1));
    auto r = b.rest->submit(submit);
    REQUIRE(r);
    items.push_back(r->getString("id"));
  }
  for (size_t i = 0; i < items.size(); i += 5) REQUIRE(b.rest->cancel(items[i]));
  // Claims by agents of each project; every other claimed item completes,
  // the rest fail for good (dead-lettered).
  int claimed = 0;
  for (int i = 0; i < 24; ++i) {
    const std::string project = "p" + std::to_string(i % 3);
    const std::string guid = "g" + std::to_string(i % 3);
    Json claim = body(R"({"capabilities":["c"]})");
    claim.set("agentGuid", Json(guid));
    claim.set("projectId", Json(project));
    auto got = b.rest->claim(claim);
    REQUIRE(got);
    if (!*got) continue;
    ++claimed;
    Json report = Json::object();
    report.set("agentGuid", Json(guid));
    report.set("claimToken", Json((*got)->getString("claimToken")));
    const std::string id = (*got)->getString("id");
    if (i % 2 == 0) {
      REQUIRE(b.rest->complete(id, report));
    } else {
      report.set("error", body(R"({"message":"no","recoverable":false})"));
      REQUIRE(b.rest->fail(id, report));
    }
  }
  CHECK(claimed >= 12);

  // The expected figures, counted from the backend itself.
  ProjectTotalsMap expected;
  auto workBucket = *store->openBucket(kWorkBucket, {});
  auto workKeys = workBucket->keys("");
  REQUIRE(workKeys);
  for (const auto& key : *workKeys) {
    auto e = workBucket->get(key);
    REQUIRE(e);
    const Json item = *Json::parse(e->value);
    ProjectTotals& t = expected[item.getString("projectId")];
    const std::string status = item.getString("status");
    if (status == "pending") ++t.pendingWork;
    if (status == "assigned" || status == "in-progress") ++t.activeWork;
    if (status == "completed") ++t.completedWork;
    if (status == "failed") ++t.failedWork;
    if (status == "cancelled") ++t.cancelledWork;
  }
  auto dlqBucket = *store->openBucket(kDlqBucket, {});
  auto dlqKeys = dlqBucket->keys("");
  REQUIRE(dlqKeys);
  for (const auto& key : *dlqKeys) {
    auto e = dlqBucket->get(key);
    REQUIRE(e);
    ++expected[Json::parse(e->value)->get("workItem").getString("projectId")].deadLettered;
  }
  for (int i = 0; i < 5; ++i) ++expected["p" + std::to_string(i % 3)].agents;  // g5 is offline
  expected["p2"];  // g5's project is known through its entry

  auto matches = [&](Services& s) {
    auto o = s.stats->overview();
    if (!o || o->byProject.size() != expected.size()) return false;
    for (const auto& [project, want] : expected) {
      auto it = o->byProject.find(project);
      if (it == o->byProject.end()) return false;
      const ProjectTotals& got = it->second;
      if (got.agents != want.agents || got.pendingWork != want.pendingWork ||
          got.activeWork != want.activeWork || got.completedWork != want.completedWork ||
          got.failedWork != want.failedWork || got.cancelledWork != want.cancelledWork ||
          got.deadLettered != want.deadLettered) {
        return false;
      }
    }
    return true;
  };
  CHECK(expected.at("p0").cancelledWork + expected.at("p1").cancelledWork +
            expected.at("p2").cancelledWork ==
        12);
  CHECK(eventually([&] { return matches(a); }));
  CHECK(matches(b));
  // Nothing to correct on either instance, and nothing reported.
  CHECK(a.stats->verify() == 0);
  CHECK(b.stats->verify() == 0);
  CHECK(a.stats->drift().empty());

  // The list index of instance a, fed only by the change feed, pages exactly
  // like b's (which also applied its own writes): the same ids in the same
  // order, page after page along the cursors, and the same total, equal to
  // what the backend holds for the filter.
  auto walk = [](Services& s, const WorkFilter& f, size_t* total) {
    std::vector<std::string> ids;
    std::optional<std::string> cursor;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = testing::RestWork(*s.work).list(f, PageRequest{std::string("7"), cursor});
      INFO((page ? std::string() : page.status().toString()));
      REQUIRE(page);
      *total = static_cast<size_t>(page->get("total").asInt());
      for (const Json& item : page->get("workItems").asArray()) ids.push_back(item.getString("id"));
      const std::string next = page->getString("nextCursor");  // null on the last page
      if (next.empty()) break;
      cursor = next;
    }
    return ids;
  };
  auto backendCount = [&](const WorkFilter& f) {
    size_t n = 0;
    for (const auto& key : *workKeys) {
      const Json item = *Json::parse(workBucket->get(key)->value);
      if (f.status && item.getString("status") != *f.status) continue;
      if (f.projectId && item.getString("projectId") != *f.projectId) continue;
      if (f.capability && item.getString("capability") != *f.capability) continue;
      ++n;
    }
    return n;
  };
  const std::vector<WorkFilter> filters = {
      WorkFilter{},
      WorkFilter{std::string("pending"), std::nullopt, std::nullopt, std::nullopt, std::nullopt},
      WorkFilter{std::string("completed"), std::nullopt, std::nullopt, std::nullopt,
                 std::string("p1")},
      WorkFilter{std::nullopt, std::nullopt, std::string("c"), std::nullopt, std::string("p2")}};
  for (size_t i = 0; i < filters.size(); ++i) {
    INFO("filter " << i);
    size_t totalA = 0, totalB = 0;
    CHECK(eventually([&] { return walk(a, filters[i], &totalA) == walk(b, filters[i], &totalB); }));
    const auto idsA = walk(a, filters[i], &totalA);
    CHECK(idsA.size() == backendCount(filters[i]));
    CHECK(totalA == idsA.size());
    CHECK(totalB == idsA.size());
  }
}

TEST_CASE("an instance claims and lists items another instance wrote (values read, not held)") {
  ManualClock clock;
  auto store = createMemoryStore();
  Services a(store, clock);
  Services b(store, clock);
  REQUIRE(testing::RestAgents(*b.agents)
              .registerAgent(body(R"({"guid":"w1","handle":"h","capabilities":["c"]})")));
  std::map<std::string, std::string> descriptions;  // id -> what a submitted
  for (int i = 0; i < 6; ++i) {
    Json submit = body(R"({"boundary":"default","capability":"c"})");
    submit.set("description", Json("written by a, #" + std::to_string(i)));
    auto r = a.rest->submit(submit);
    REQUIRE(r);
    descriptions[r->getString("id")] = submit.getString("description");
  }
  REQUIRE(eventually([&] {
    return b.work->count(WorkFilter{std::string("pending"), {}, {}, {}, {}}) == 6;
  }));
  // b never saw these values but through its feed, and keeps none of them.
  auto page = b.rest->list(WorkFilter{std::string("pending"), {}, {}, {}, {}},
                           PageRequest{std::string("10"), std::nullopt});
  REQUIRE(page);
  REQUIRE(page->get("workItems").asArray().size() == 6);
  for (const Json& item : page->get("workItems").asArray()) {
    CHECK(item.getString("description") == descriptions[item.getString("id")]);
  }
  for (int i = 0; i < 6; ++i) {
    auto claimed = b.rest->claim(body(R"({"agentGuid":"w1"})"));
    REQUIRE(claimed);
    REQUIRE(claimed->has_value());
    const Json& item = **claimed;
    CHECK(item.getString("status") == "assigned");
    CHECK(item.getString("description") == descriptions[item.getString("id")]);
    descriptions.erase(item.getString("id"));  // each one once
  }
  CHECK(descriptions.empty());
  auto none = b.rest->claim(body(R"({"agentGuid":"w1"})"));
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
}

TEST_CASE("finished items are kept as index entries and read from the backend for pages") {
  ManualClock clock;
  auto store = createMemoryStore();
  Services s(store, clock);
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    Json submit = body(R"({"boundary":"default","capability":"c"})");
    submit.set("description", Json("item " + std::to_string(i) + std::string(200, 'x')));
    auto r = s.rest->submit(submit);
    REQUIRE(r);
    ids.push_back(r->getString("id"));
  }
  for (size_t i = 0; i < ids.size(); i += 2) REQUIRE(s.rest->cancel(ids[i]));
  auto bucket = *store->openBucket(kWorkBucket, {});

  // The view holds index entries, live or finished.
  for (size_t i = 0; i < ids.size(); ++i) {
    auto entry = s.work->view().find(ids[i]);
    REQUIRE(entry);
    CHECK(entry->isTerminal() == (i % 2 == 0));
  }

  // A page of finished items shows each as the backend holds it.
  const WorkFilter cancelled{std::string("cancelled"), std::nullopt, std::nullopt, std::nullopt,
                             std::nullopt};
  auto pageJson = [&](const WorkFilter& f) {
    auto page = s.rest->list(f, PageRequest{std::string("100"), std::nullopt});
    REQUIRE(page);
    return *page;
  };
  Json page = pageJson(cancelled);
  REQUIRE(page.get("workItems").asArray().size() == 15);
  CHECK(page.get("total").asInt() == 15);
  for (const Json& item : page.get("workItems").asArray()) {
    auto stored = bucket->get(item.getString("id"));
    REQUIRE(stored);
    const Json want = *Json::parse(stored->value);
    CHECK(item.getString("status") == "cancelled");
    CHECK(item.getString("description") == want.getString("description"));
    CHECK(item.getString("cancelledAt") == want.getString("cancelledAt"));
  }

  // A finished item rewritten (by other software, here) is shown as it is
  // now once the view has its revision: the values cached for pages never
  // answer for another revision.
  const std::string changed = ids[4];
  Json rewritten = *Json::parse(bucket->get(changed)->value);
  rewritten.set("description", Json("rewritten"));
  auto revision = bucket->put(changed, rewritten.dump());
  REQUIRE(revision);
  REQUIRE(eventually([&] { return s.work->view().findEntry(changed).second == *revision; }));
  bool seen = false;
  const Json reread = pageJson(cancelled);
  for (const Json& item : reread.get("workItems").asArray()) {
    if (item.getString("id") != changed) continue;
    seen = true;
    CHECK(item.getString("description") == "rewritten");
  }
  CHECK(seen);

  // An item deleted after the index was read is left out, the others are
  // read as usual.
  auto listed = s.work->list(cancelled, PageRequest{std::string("100"), std::nullopt});
  REQUIRE(listed);
  REQUIRE(listed->entries.size() == 15);
  const std::string gone = listed->entries[3]->id;
  REQUIRE(bucket->erase(gone));
  REQUIRE(eventually([&] { return s.work->view().find(gone) == nullptr; }));
  auto again = listed->read(listed->entries, 0, listed->entries.size());
  REQUIRE(again);
  REQUIRE(again->size() == 15);
  for (size_t i = 0; i < again->size(); ++i) {
    INFO("entry " << i);
    CHECK(((*again)[i] == nullptr) == (i == 3));
    if ((*again)[i]) CHECK((*again)[i]->id == listed->entries[i]->id);
  }
  Json after = pageJson(cancelled);
  CHECK(after.get("workItems").asArray().size() == 14);
  CHECK(after.get("count").asInt() == 14);
  CHECK(after.get("total").asInt() == 14);
}

}  // namespace
}  // namespace weft
