// The work list's ordered index (core/src/work_index.h) against a model: a
// random history of changes (new items, any status to any other status, as
// a coalescing change feed delivers them, re-assignments, deletions), and
// after it every filter combination's count and every page, walked forwards
// and backwards by key, compared with filtering and sorting everything.
#include <catch2/catch.hpp>
#include <algorithm>
#include <map>
#include <memory>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "weft/agent_registry.h"
#include "weft/sorted_blocks.h"
#include "weft/value_cache.h"
#include "work_index.h"

using namespace weft;

namespace {

const std::vector<std::string> kProjects = {"default", "p1", "p2"};
const std::vector<std::string> kCaps = {"cpp", "go", "rust"};
const std::vector<std::string> kBounds = {"internal", "public"};
const std::vector<std::string> kAgents = {"", "a1", "a2", "a3"};
const std::vector<WorkStatus> kStatuses = {WorkStatus::Pending,   WorkStatus::Assigned,
                                           WorkStatus::InProgress, WorkStatus::Completed,
                                           WorkStatus::Failed,    WorkStatus::Cancelled};

template <typename T>
const T& pick(std::mt19937& rng, const std::vector<T>& from) {
  return from[rng() % from.size()];
}

std::shared_ptr<WorkEntry> randomRecord(std::mt19937& rng, const std::string& id) {
  auto r = std::make_shared<WorkEntry>();
  r->id = id;
  r->projectId = pick(rng, kProjects);
  r->capability = pick(rng, kCaps);
  r->boundary = pick(rng, kBounds);
  r->assignedTo = pick(rng, kAgents);
  r->status = pick(rng, kStatuses);
  r->priority = 1 + static_cast<int64_t>(rng() % 3);  // many ties, so offeredAt and id order too
  r->offeredAtMs = 1000 + static_cast<int64_t>(rng() % 20);
  return r;
}

bool inListOrder(const WorkEntry* a, const WorkEntry* b) {
  if (a->priority != b->priority) return a->priority > b->priority;
  if (a->offeredAtMs != b->offeredAtMs) return a->offeredAtMs < b->offeredAtMs;
  return a->id < b->id;
}

std::vector<const WorkEntry*> expected(const std::map<std::string, std::shared_ptr<WorkEntry>>& all,
                                        const WorkFilter& f) {
  std::vector<const WorkEntry*> out;
  for (const auto& [id, r] : all) {
    if (f.projectId && r->projectId != *f.projectId) continue;
    if (f.status && r->statusText() != *f.status) continue;
    if (f.capability && r->capability != *f.capability) continue;
    if (f.boundary && r->boundary != *f.boundary) continue;
    if (f.assignedTo && r->assignedTo != *f.assignedTo) continue;
    out.push_back(r.get());
  }
  std::sort(out.begin(), out.end(), inListOrder);
  return out;
}

std::vector<std::string> ids(const std::vector<const WorkEntry*>& records) {
  std::vector<std::string> out;
  for (const auto* r : records) out.push_back(r->id);
  return out;
}

// Every combination of the five filters, each with a value some item has
// (or, for one in five, a value none has).
std::vector<WorkFilter> someFilters(std::mt19937& rng) {
  std::vector<WorkFilter> out;
  for (unsigned mask = 0; mask < 32; ++mask) {
    WorkFilter f;
    auto value = [&](const std::vector<std::string>& from) {
      return rng() % 5 == 0 ? std::string("nobody-has-this") : pick(rng, from);
    };
    if (mask & 1) f.projectId = value(kProjects);
    if (mask & 2) f.status = rng() % 5 == 0 ? "paused" : workStatusText(pick(rng, kStatuses));
    if (mask & 4) f.capability = value(kCaps);
    if (mask & 8) f.boundary = value(kBounds);
    if (mask & 16) f.assignedTo = value(kAgents);
    out.push_back(f);
  }
  return out;
}

}  // namespace

TEST_CASE("work index: counts and keyed pages match a full scan after a random history",
          "[work][index]") {
  const uint32_t seed = GENERATE(1u, 2u, 3u, 4u);
  // Bulk: the first 2,000 changes arrive as a restart's replay would hand
  // them over (ListIndex::beginBulk), changes and deletions among them, and
  // the counts must be exact meanwhile.
  const bool bulk = GENERATE(false, true);
  INFO("seed " << seed << (bulk ? ", loaded in bulk" : ""));
  std::mt19937 rng(seed);
  WorkIndex index;
  if (bulk) index.beginBulk();
  std::map<std::string, std::shared_ptr<WorkEntry>> model;  // what the view would hold
  for (int step = 0; step < 3000; ++step) {
    if (bulk && step == 2000) {
      for (const WorkFilter& f : someFilters(rng)) CHECK(index.count(f) == expected(model, f).size());
      index.endBulk();
    }
    const std::string id = "item-" + std::to_string(rng() % 400);
    auto it = model.find(id);
    std::shared_ptr<WorkEntry> before = it == model.end() ? nullptr : it->second;
    const int kind = static_cast<int>(rng() % 10);
    if (before && kind == 0) {  // deleted (retention, purge)
      index.update(before.get(), nullptr);
      model.erase(it);
      continue;
    }
    std::shared_ptr<WorkEntry> after;
    if (before && kind < 7) {
      // A later revision: any status (the feed may skip the ones between),
      // maybe another assignee; the list fields an item keeps stay.
      after = std::make_shared<WorkEntry>(*before);
      after->status = pick(rng, kStatuses);
      after->assignedTo = pick(rng, kAgents);
    } else {
      after = randomRecord(rng, id);  // new, or rewritten whole by other software
    }
    index.update(before.get(), after.get());
    model[id] = after;
  }

  for (const WorkFilter& f : someFilters(rng)) {
    const auto want = expected(model, f);
    CAPTURE(f.projectId.value_or("-"), f.status.value_or("-"), f.capability.value_or("-"),
            f.boundary.value_or("-"), f.assignedTo.value_or("-"));
    CHECK(index.count(f) == want.size());

    // The whole list at once.
    bool more = true;
    CHECK(ids(index.page(f, {}, &more)) == ids(want));
    CHECK_FALSE(more);

    // Forwards page by page, each page found by the key of the last one.
    const size_t limit = 1 + rng() % 7;
    std::vector<std::vector<const WorkEntry*>> pages;
    WorkIndex::PageQuery q;
    q.limit = limit;
    for (int guard = 0; guard < 1000; ++guard) {
      auto page = index.page(f, q, &more);
      if (!page.empty()) pages.push_back(page);
      CHECK(page.size() <= limit);
      if (!more) break;
      REQUIRE(page.size() == limit);  // a page with more after it is full
      q.after = WorkIndex::keyOf(*page.back());
    }
    std::vector<const WorkEntry*> walked;
    for (const auto& p : pages) walked.insert(walked.end(), p.begin(), p.end());
    CHECK(ids(walked) == ids(want));

    // Backwards from the last page: each previous page ends before the
    // first item of the one after it.
    for (size_t i = pages.size(); i-- > 1;) {
      WorkIndex::PageQuery back;
      back.limit = limit;
      back.before = WorkIndex::keyOf(*pages[i].front());
      auto page = index.page(f, back, &more);
      CHECK(ids(page) == ids(pages[i - 1]));
      CHECK(more);
    }

    // By position: skipping k matches starts the page at the k-th.
    if (!want.empty()) {
      WorkIndex::PageQuery byPosition;
      byPosition.skip = rng() % want.size();
      byPosition.limit = limit;
      auto page = index.page(f, byPosition, &more);
      const auto from = want.begin() + static_cast<std::ptrdiff_t>(byPosition.skip);
      const auto to = want.size() - byPosition.skip > limit ? from + static_cast<std::ptrdiff_t>(limit)
                                                            : want.end();
      CHECK(ids(page) == ids({from, to}));
      CHECK(more == (to != want.end()));
    }
  }
}

TEST_CASE("work index: a key that no longer exists still finds its place", "[work][index]") {
  WorkIndex index;
  std::vector<std::shared_ptr<WorkEntry>> held;
  for (int i = 0; i < 6; ++i) {
    auto r = std::make_shared<WorkEntry>();
    r->id = "id-" + std::to_string(i);
    r->priority = 5;
    r->offeredAtMs = 100 + i;
    index.update(nullptr, r.get());
    held.push_back(r);
  }
  // The page ended at id-2, which was then deleted: the next page still
  // starts at id-3, and the one before a deleted id-4 ends at id-3.
  const WorkIndex::Key gone = WorkIndex::keyOf(*held[2]);
  index.update(held[2].get(), nullptr);
  WorkIndex::PageQuery q;
  q.after = gone;
  q.limit = 2;
  bool more = false;
  CHECK(ids(index.page(WorkFilter{}, q, &more)) == std::vector<std::string>{"id-3", "id-4"});
  CHECK(more);
  const WorkIndex::Key gone4 = WorkIndex::keyOf(*held[4]);
  index.update(held[4].get(), nullptr);
  WorkIndex::PageQuery back;
  back.before = gone4;
  back.limit = 2;
  CHECK(ids(index.page(WorkFilter{}, back, &more)) == std::vector<std::string>{"id-1", "id-3"});
  CHECK(more);  // id-5 follows
  CHECK(index.count(WorkFilter{}) == 4);
}

TEST_CASE("list index: a field with several values (agent capabilities) counts and pages once per record",
          "[index]") {
  std::mt19937 rng(7);
  const bool bulk = GENERATE(false, true);  // the first 1,500 changes as a replay
  INFO((bulk ? "loaded in bulk" : "one by one"));
  ListIndex<AgentListTraits> index;
  if (bulk) index.beginBulk();
  std::map<std::string, std::shared_ptr<AgentRecord>> model;
  const std::vector<std::string> caps = {"a", "b", "c", "d"};
  for (int step = 0; step < 2000; ++step) {
    if (bulk && step == 1500) index.endBulk();
    const std::string guid = "agent-" + std::to_string(rng() % 150);
    auto it = model.find(guid);
    std::shared_ptr<AgentRecord> before = it == model.end() ? nullptr : it->second;
    if (before && rng() % 8 == 0) {
      index.update(before.get(), nullptr);
      model.erase(it);
      continue;
    }
    auto after = std::make_shared<AgentRecord>();
    after->guid = guid;
    after->agentType = rng() % 2 ? "claude-code" : "codex";
    after->status = rng() % 3 ? "online" : "offline";
    after->projectId = rng() % 2 ? "default" : "p1";
    if (rng() % 5) after->registeredAtMs = static_cast<int64_t>(rng() % 30);  // else: none, listed first
    for (size_t n = rng() % 4; n > 0; --n) after->capabilities.push_back(caps[rng() % caps.size()]);
    index.update(before.get(), after.get());  // duplicates and no capability at all included
    model[guid] = after;
  }
  for (unsigned mask = 0; mask < 16; ++mask) {
    ListIndex<AgentListTraits>::Filter f;
    if (mask & 1) f[0] = "codex";
    if (mask & 2) f[1] = "online";
    if (mask & 4) f[2] = caps[rng() % caps.size()];
    if (mask & 8) f[3] = "p1";
    std::vector<const AgentRecord*> want;
    for (const auto& [guid, a] : model) {
      if ((f[0] && a->agentType != *f[0]) || (f[1] && a->status != *f[1]) ||
          (f[2] && !a->hasCapability(*f[2])) || (f[3] && a->projectId != *f[3])) {
        continue;
      }
      want.push_back(a.get());
    }
    std::sort(want.begin(), want.end(), [](const AgentRecord* a, const AgentRecord* b) {
      const auto ka = ListIndex<AgentListTraits>::keyOf(*a), kb = ListIndex<AgentListTraits>::keyOf(*b);
      return std::tie(ka.major, ka.minor, ka.id) < std::tie(kb.major, kb.minor, kb.id);
    });
    INFO("mask " << mask);
    CHECK(index.count(f) == want.size());
    std::vector<const AgentRecord*> walked;
    ListIndex<AgentListTraits>::PageQuery q;
    q.limit = 4;
    bool more = true;
    while (more) {
      auto page = index.page(f, q, &more);
      walked.insert(walked.end(), page.begin(), page.end());
      if (page.empty()) break;
      q.after = ListIndex<AgentListTraits>::keyOf(*page.back());
    }
    CHECK(walked == want);
  }
}

// n random inserts and erasures of values below range, the same on both.
static void randomEdits(SortedBlocks<int, std::less<>>& blocks, std::set<int>& model, std::mt19937& rng,
                 int n, int range) {
  for (int i = 0; i < n; ++i) {
    const int v = static_cast<int>(rng() % static_cast<unsigned>(range));
    if (rng() % 2) {
      CHECK(blocks.insert(v) == model.insert(v).second);
    } else {
      auto it = blocks.find(v);
      REQUIRE((it != blocks.end()) == (model.erase(v) > 0));
      if (it != blocks.end()) blocks.erase(it);
    }
  }
}

TEST_CASE("sorted blocks: the same order, bounds and size as a std::set through random edits",
          "[work][index]") {
  const uint32_t seed = GENERATE(7u, 8u, 9u);
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  SortedBlocks<int, std::less<>> blocks;
  std::set<int> model;
  // Phases: ascending appends (restart replay), random inserts, erasures
  // that empty and merge blocks, then random edits; checked after each.
  auto check = [&] {
    REQUIRE(blocks.size() == model.size());
    CHECK(std::vector<int>(blocks.begin(), blocks.end()) == std::vector<int>(model.begin(), model.end()));
    std::vector<int> backwards;
    for (auto it = blocks.end(); it != blocks.begin();) backwards.push_back(*--it);
    CHECK(std::vector<int>(backwards.rbegin(), backwards.rend()) ==
          std::vector<int>(model.begin(), model.end()));
    for (int probe = 0; probe < 50; ++probe) {
      const int k = static_cast<int>(rng() % 6000) - 500;
      auto lb = blocks.lower_bound(k);
      auto mlb = model.lower_bound(k);
      REQUIRE((lb == blocks.end()) == (mlb == model.end()));
      if (mlb != model.end()) CHECK(*lb == *mlb);
      auto ub = blocks.upper_bound(k);
      auto mub = model.upper_bound(k);
      REQUIRE((ub == blocks.end()) == (mub == model.end()));
      if (mub != model.end()) CHECK(*ub == *mub);
      CHECK((blocks.find(k) != blocks.end()) == (model.count(k) > 0));
    }
  };
  for (int v = 0; v < 2000; v += 2) CHECK(blocks.insert(v) == model.insert(v).second);
  check();
  for (int i = 0; i < 2000; ++i) {
    const int v = static_cast<int>(rng() % 5000);
    CHECK(blocks.insert(v) == model.insert(v).second);
  }
  check();
  for (int v = 0; v < 4000; ++v) {
    if (v % 7 == 3) continue;
    auto it = blocks.find(v);
    REQUIRE((it != blocks.end()) == (model.erase(v) > 0));
    if (it != blocks.end()) blocks.erase(it);
  }
  check();
  for (int round = 0; round < 4; ++round) {
    randomEdits(blocks, model, rng, 5000, 5000);
    check();
  }
  check();
  while (!model.empty()) {
    auto it = blocks.find(*model.begin());
    REQUIRE(it != blocks.end());
    blocks.erase(it);
    model.erase(model.begin());
  }
  check();
  CHECK(blocks.empty());
}

TEST_CASE("sorted blocks: values deferred in any order and settled equal a std::set",
          "[work][index]") {
  const uint32_t seed = GENERATE(11u, 12u, 13u);
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  SortedBlocks<int, std::less<>> blocks;
  std::set<int> model;
  auto check = [&] {
    REQUIRE(blocks.settled());
    REQUIRE(blocks.size() == model.size());
    CHECK(std::vector<int>(blocks.begin(), blocks.end()) == std::vector<int>(model.begin(), model.end()));
  };
  // A bulk load into an empty set, duplicates among it.
  for (int i = 0; i < 5000; ++i) {
    const int v = static_cast<int>(rng() % 4000);
    blocks.defer(v);
    model.insert(v);
  }
  size_t deferred = 0;
  blocks.forEachDeferred([&](int) { ++deferred; });
  CHECK(deferred == 5000);
  CHECK(blocks.size() == 5000);  // counted before they are put in order
  blocks.settle();
  check();
  // A few next to many (inserted one by one), then many next to many
  // (merged), each followed by erasures and random edits.
  for (int round : {10, 3000}) {
    for (int i = 0; i < round; ++i) {
      const int v = static_cast<int>(rng() % 8000);
      blocks.defer(v);
      model.insert(v);
    }
    blocks.settle();
    check();
    randomEdits(blocks, model, rng, 3000, 8000);
    check();
  }
}

TEST_CASE("value cache: answers only for the revision it read, least recently used out",
          "[work][index]") {
  ValueCache cache(3);
  cache.put("a", 1, "a1");
  cache.put("b", 5, "b5");
  cache.put("c", 7, "c7");
  CHECK(cache.find("a", 1) == std::optional<std::string>("a1"));
  CHECK_FALSE(cache.find("a", 2));  // the view holds another revision
  CHECK_FALSE(cache.find("x", 1));
  cache.put("d", 2, "d2");  // b was used least recently: it goes
  CHECK(cache.size() == 3);
  CHECK_FALSE(cache.find("b", 5));
  CHECK(cache.find("c", 7) == std::optional<std::string>("c7"));
  CHECK(cache.find("d", 2) == std::optional<std::string>("d2"));
  cache.put("a", 3, "a3");  // read again at a newer revision: replaced
  CHECK_FALSE(cache.find("a", 1));
  CHECK(cache.find("a", 3) == std::optional<std::string>("a3"));
  CHECK(cache.size() == 3);
  ValueCache none(0);
  none.put("a", 1, "a1");
  CHECK_FALSE(none.find("a", 1));
}
