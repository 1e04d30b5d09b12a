// The work view's saved copy (views.saveDir): a restart loads it and
// reads only the changes made since; a copy that does not fit the bucket
// (another bucket, a damaged file, a revision the bucket cannot resume
// from) is never used, and the view then replays in full. Every check
// compares the restarted view with one that replayed the whole bucket.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "service_fixture.h"
#include "support/temp_dir.h"
#include "support/work_entry_equal.h"
#include "weft/saved_view.h"

namespace weft::test {
namespace {

// The work view's file in dir is dir + "/weft-work.view".
CoreOptions savingTo(const std::string& dir) {
  CoreOptions options;
  options.viewSaveDir = dir;
  options.viewSaveIntervalMs = 0;  // saved on stop only: the tests decide when
  return options;
}

// Every entry of the view by key, with its revision.
std::map<std::string, std::pair<std::shared_ptr<const WorkEntry>, uint64_t>> contents(
    const WorkQueue& work) {
  std::map<std::string, std::pair<std::shared_ptr<const WorkEntry>, uint64_t>> out;
  work.view().forEachEntry([&](const std::string& key, const std::shared_ptr<const WorkEntry>& e,
                               uint64_t revision) { out[key] = {e, revision}; });
  return out;
}

// The view of `restarted` holds exactly what a full replay of the same
// store holds, and its counts and first page agree.
void checkSameAsReplay(Services& restarted, const std::shared_ptr<KvStore>& store,
                       ManualClock& clock) {
  Services replayed(store, clock);  // no saved copy: a full replay
  CHECK(replayed.work->view().startedBy() == "replay");
  auto mine = contents(*restarted.work);
  auto theirs = contents(*replayed.work);
  CHECK(mine.size() == theirs.size());
  for (const auto& [key, entry] : theirs) {
    INFO("item " << key);
    auto it = mine.find(key);
    REQUIRE(it != mine.end());
    CHECK(it->second.second == entry.second);
    CHECK(sameEntry(*it->second.first, *entry.first));
  }
  for (const char* status : {"pending", "cancelled", "completed"}) {
    WorkFilter filter;
    filter.status = status;
    INFO("status " << status);
    CHECK(restarted.work->count(filter) == replayed.work->count(filter));
  }
  CHECK(restarted.work->count(WorkFilter{}) == theirs.size());
}

// Waits until the view's feed has delivered the write of `id` (a view saves
// up to what its feed delivered; its own writes reach it sooner).
void waitFed(Services& s, const std::string& id) {
  const uint64_t revision = s.work->view().findEntry(id).second;
  REQUIRE(revision > 0);
  REQUIRE(eventually([&] { return s.work->view().feedRevision() >= revision; }));
}

void flipByte(const std::string& path, long offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekg(offset);
  char c = 0;
  f.get(c);
  f.seekp(offset);
  f.put(static_cast<char>(c ^ 0x5a));
}

long fileSize(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  return f ? static_cast<long>(f.tellg()) : -1;
}

}  // namespace

TEST_CASE("a restart loads the saved work view and reads only the changes since", "[saved]") {
  testing::TempDir dir("weft-saved-view-");
  const std::string path = dir.file("weft-work.view");
  auto store = createMemoryStore();
  ManualClock clock(1700000000000);
  std::vector<std::string> ids;
  {
    Services first(store, clock, savingTo(dir.path()));
    CHECK(first.work->view().startedBy() == "replay (no saved copy of this bucket)");
    for (int i = 0; i < 40; ++i) {
      ids.push_back(submitWork(first, "\"priority\":" + std::to_string(1 + i % 10) +
                                          ",\"projectId\":\"p" + std::to_string(i % 3) + "\""));
      clock.advance(7);
    }
    ids.push_back(submitWork(first, "\"delayMs\":60000"));
    for (int i = 0; i < 10; ++i) REQUIRE(first.rest->cancel(ids[i]).isOk());
    waitFed(first, ids[9]);
  }  // stop() saves
  REQUIRE(fileSize(path) > 0);

  // While it is down, another instance (which saves nothing) changes items,
  // deletes one and adds some.
  {
    Services other(store, clock);
    REQUIRE(other.rest->cancel(ids[20]).isOk());
    REQUIRE(other.rest->cancel(ids[21]).isOk());
    auto bucket = store->openBucket(kWorkBucket, BucketOptions{});
    REQUIRE(bucket.isOk());
    REQUIRE((*bucket)->erase(ids[22]).isOk());
    REQUIRE((*bucket)->erase(ids[3]).isOk());
    submitWork(other, "\"priority\":9");
    submitWork(other, "\"capability\":\"rust\"");
  }

  Services restarted(store, clock, savingTo(dir.path()));
  CHECK(restarted.work->view().startedBy() == "resumed");
  CHECK_FALSE(restarted.work->view().find(ids[22]));
  CHECK_FALSE(restarted.work->view().find(ids[3]));
  REQUIRE(restarted.work->view().find(ids[20]));
  CHECK(restarted.work->view().find(ids[20])->status == WorkStatus::Cancelled);
  checkSameAsReplay(restarted, store, clock);

  // It goes on living: a new item and a claim-free change after the resume.
  const std::string later = submitWork(restarted, "\"priority\":10");
  REQUIRE(restarted.rest->cancel(ids[30]).isOk());
  CHECK(restarted.work->view().find(later));
  CHECK(restarted.work->view().find(ids[30])->status == WorkStatus::Cancelled);
}

TEST_CASE("a saved view of another bucket, or a damaged one, is not used", "[saved]") {
  testing::TempDir dir("weft-saved-view-");
  const std::string path = dir.file("weft-work.view");
  ManualClock clock(1700000000000);
  auto store = createMemoryStore();
  {
    Services first(store, clock, savingTo(dir.path()));
    std::string last;
    for (int i = 0; i < 12; ++i) last = submitWork(first);
    waitFed(first, last);
  }
  const long size = fileSize(path);
  REQUIRE(size > 100);

  SECTION("another store: the token differs") {
    auto other = createMemoryStore();
    {
      Services seed(other, clock);
      for (int i = 0; i < 3; ++i) submitWork(seed);
    }
    Services restarted(other, clock, savingTo(dir.path()));
    CHECK(restarted.work->view().startedBy() == "replay (no saved copy of this bucket)");
    CHECK(restarted.work->view().size() == 3);
    checkSameAsReplay(restarted, other, clock);
  }
  SECTION("a damaged byte anywhere fails the checksum") {
    for (long offset : {8L, size / 2, size - 9, size - 1}) {
      INFO("offset " << offset);
      flipByte(path, offset);
      Services restarted(store, clock, savingTo(dir.path()));
      CHECK(restarted.work->view().startedBy() == "replay (no saved copy of this bucket)");
      checkSameAsReplay(restarted, store, clock);
    }  // each restart saves a good copy again on stop
  }
  SECTION("a torn file") {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
    Services restarted(store, clock, savingTo(dir.path()));
    CHECK(restarted.work->view().startedBy() == "replay (no saved copy of this bucket)");
    checkSameAsReplay(restarted, store, clock);
  }
}

TEST_CASE("a saved view the bucket cannot resume from is dropped before replaying", "[saved]") {
  testing::TempDir dir("weft-saved-view-");
  const std::string path = dir.file("weft-work.view");
  ManualClock clock(1700000000000);
  auto store = createMemoryStore();
  std::string token;
  {
    Services first(store, clock);
    for (int i = 0; i < 5; ++i) submitWork(first);
    auto bucket = store->openBucket(kWorkBucket, BucketOptions{});
    REQUIRE(bucket.isOk());
    token = (*bucket)->resumeToken().value();
  }
  REQUIRE_FALSE(token.empty());
  // The right bucket, but a revision it never reached, and an entry it never
  // held: the bucket refuses to resume after loading, so the entry must go.
  {
    SavedViewFile file(path, "work-entry/1");
    WorkEntry ghost;
    ghost.id = "ghost";
    ghost.projectId = "default";
    ghost.capability = "cpp";
    ghost.boundary = "b";
    REQUIRE(file.write(token, 1000000, 1, [&](size_t, ByteSink& out) {
                  out.str("ghost");
                  out.u64(999999);
                  WorkQueue::encodeSaved("ghost", ghost, out);
                }).isOk());
  }
  Services restarted(store, clock, savingTo(dir.path()));
  CHECK(restarted.work->view().startedBy().rfind("replay (saved copy refused:", 0) == 0);
  CHECK_FALSE(restarted.work->view().find("ghost"));
  CHECK(restarted.work->view().size() == 5);
  checkSameAsReplay(restarted, store, clock);
}

TEST_CASE("the dead-letter view is saved and resumed too", "[saved]") {
  testing::TempDir dir("weft-saved-view-");
  auto store = createMemoryStore();
  ManualClock clock(1700000000000);
  // Items that fail for good go to the dead-letter queue.
  auto deadLetter = [&](Services& s, const std::string& project) {
    const std::string id = submitWork(s, "\"maxAttempts\":1,\"projectId\":\"" + project + "\"");
    const std::string guid = "agent-" + project;
    RegisterRequest agent;
    agent.guid = guid;
    agent.handle = guid;
    agent.capabilities = {"cpp"};
    agent.projectId = project;
    REQUIRE(s.agents->registerAgent(agent).isOk());
    auto claimed = s.rest->claim(Json::parse(R"({"agentGuid":")" + guid + "\"}").value());
    REQUIRE(claimed.isOk());
    REQUIRE(claimed->has_value());
    REQUIRE((*claimed)->getString("id") == id);
    auto failed = s.rest->fail(
        id, Json::parse(R"({"agentGuid":")" + guid + R"(","claimToken":")" +
                        (*claimed)->getString("claimToken") +
                        R"(","error":{"message":"boom","recoverable":false}})")
                .value());
    INFO(failed.status().toString());
    REQUIRE(failed.isOk());
    REQUIRE(eventually([&] { return s.dlq->view().find(id) != nullptr; }));
    clock.advance(1000);
    return id;
  };
  std::vector<std::string> ids;
  {
    Services first(store, clock, savingTo(dir.path()));
    for (const char* project : {"p1", "p2", "p3"}) ids.push_back(deadLetter(first, project));
    REQUIRE(eventually([&] { return first.dlq->view().feedRevision() >= first.dlq->view().appliedRevision(); }));
  }
  {
    Services other(store, clock);  // saves nothing
    REQUIRE(other.dlq->discard(ids[1]).isOk());
    ids.push_back(deadLetter(other, "p4"));
  }
  Services restarted(store, clock, savingTo(dir.path()));
  CHECK(restarted.dlq->view().startedBy() == "resumed");
  CHECK(restarted.work->view().startedBy() == "resumed");
  CHECK(restarted.dlq->view().size() == 3);
  CHECK_FALSE(restarted.dlq->view().find(ids[1]));
  REQUIRE(restarted.dlq->view().find(ids[3]));
  CHECK(restarted.dlq->view().find(ids[3])->projectId == "p4");
  Services replayed(store, clock);
  for (const char* project : {"p1", "p2", "p3", "p4"}) {
    DeadLetterFilter filter;
    filter.projectId = project;
    INFO(project);
    CHECK(restarted.dlq->count(filter) == replayed.dlq->count(filter));
  }
  std::map<std::string, std::string> mine, theirs;
  restarted.dlq->view().forEach([&](const std::string& key, const auto& e) {
    mine[key] = e->projectId + "/" + e->capability + "/" + std::to_string(e->failedAtMs);
  });
  replayed.dlq->view().forEach([&](const std::string& key, const auto& e) {
    theirs[key] = e->projectId + "/" + e->capability + "/" + std::to_string(e->failedAtMs);
  });
  CHECK(mine == theirs);
}

TEST_CASE("saved work entries decode to what was encoded; damaged records do not", "[saved]") {
  WorkEntry a;
  a.id = "item-1";
  a.projectId = "proj";
  a.capability = "cpp";
  a.boundary = "team/a";
  a.requiredAgentType = "claude";
  a.assignedTo = "agent-7";
  a.status = WorkStatus::InProgress;
  a.priority = 9;
  a.attempts = 2;
  a.offeredAtMs = 1700000000123;
  a.updatedAtMs = 1700000000456;
  a.dueAtMs = 1700000009999;
  a.leaseExpiresAtMs = 1700000300000;
  a.progress = 40;
  a.lastTransitionSeq = 5;
  a.errorCount = 1;
  WorkEntry b;  // defaults; an id other than its key; an unknown status text
  b.id = "not-the-key";
  b.status = WorkStatus::Unknown;
  b.unknownStatus = "paused";
  for (const auto& [key, entry] : {std::pair<std::string, const WorkEntry*>{"item-1", &a},
                                   {"key-2", &b}}) {
    INFO("key " << key);
    ByteSink out;
    WorkQueue::encodeSaved(key, *entry, out);
    const std::string bytes = out.bytes();
    ByteSource in(bytes.data(), bytes.data() + bytes.size());
    auto back = WorkQueue::decodeSaved(key, in);
    REQUIRE(back);
    CHECK(in.atEnd());
    CHECK(sameEntry(*back, *entry));
    // Every truncation fails.
    for (size_t n = 0; n < bytes.size(); ++n) {
      ByteSource cut(bytes.data(), bytes.data() + n);
      CHECK_FALSE(WorkQueue::decodeSaved(key, cut));
    }
  }
  // A status byte beyond the known ones.
  ByteSink out;
  WorkQueue::encodeSaved("item-1", a, out);
  std::string bytes = out.bytes();
  const size_t statusAt = 1 + 6 * 8 + a.projectId.size() + a.capability.size() +
                          a.boundary.size() + a.requiredAgentType.size() + a.assignedTo.size();
  REQUIRE(static_cast<uint8_t>(bytes[statusAt]) == static_cast<uint8_t>(WorkStatus::InProgress));
  bytes[statusAt] = 42;
  ByteSource in(bytes.data(), bytes.data() + bytes.size());
  CHECK_FALSE(WorkQueue::decodeSaved("item-1", in));
}

TEST_CASE("one saved view file belongs to one process at a time", "[saved]") {
  testing::TempDir dir("weft-saved-view-");
  const std::string path = dir.file("sub/work.view");  // the directory is created
  SavedViewFile first(path, "work-entry/1");
  REQUIRE(first.lock().isOk());
  SavedViewFile second(path, "work-entry/1");
  auto st = second.lock();
  CHECK(st.code() == Code::Unavailable);
  CHECK(st.message().find("held by another process") != std::string::npos);
}

}  // namespace weft::test
