// The backend contract suite: the kv.h contract, checked by the same cases for
// every backend. WEFT_TEST_BACKEND selects it:
//   memory  createMemoryStore()
//   nats    the weft-kv-nats.so plugin, nats.url = $WEFT_TEST_NATS_URL
//   redis   the weft-kv-redis.so plugin, redis.url = $WEFT_TEST_REDIS_URL
//   sqlite  the weft-kv-sqlite.so plugin on a fresh temp file per case
// Plugins are loaded through the production loader (loadKvStore) from the
// build's plugin folder. A missing variable or server fails the run; nothing
// here skips. The reconnect and stall cases start their own server
// (tests/support), so they can kill or SIGSTOP it.
//
// WEFT_TEST_SEED fixes the seed of the randomized case (it is printed).
// The test links libsqlite3 itself only to hold a competing write lock in the
// sqlite stall case.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/servers.h"
#include "support/temp_dir.h"
#include "weft/kv.h"
#include "weft/memory_kv.h"
#include "weft/plugin_loader.h"

namespace Catch {
template <>
struct StringMaker<weft::Code> {
  static std::string convert(weft::Code code) { return weft::codeName(code); }
};
}  // namespace Catch

namespace {

using namespace std::chrono_literals;
using weft::Code;
using weft::KvBucket;
using weft::Result;
using weft::KvEntry;
using weft::KvStore;
using weft::WatchEvent;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

// Short, so outage tests finish quickly; the reconnect case derives its
// bounds from these.
constexpr int64_t kTimeoutMs = 2000;
constexpr int64_t kReconnectWaitMs = 200;
// Watches promise at most about a second of latency; allow for a busy machine.
constexpr Ms kWatchWait = 5000ms;

int64_t elapsedMs(Clock::time_point since) {
  return std::chrono::duration_cast<Ms>(Clock::now() - since).count();
}

// Polls pred every 10 ms until it holds or timeout passes.
bool eventually(const std::function<bool()>& pred, Ms timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::string describe(const weft::Status& status) {
  return status.toString();
}
template <typename T>
std::string describe(const weft::Result<T>& result) {
  return result.isOk() ? "Ok" : result.status().toString();
}

#define REQUIRE_OK(expr)                        \
  do {                                          \
    const auto& result_ = (expr);               \
    INFO(#expr << " -> " << describe(result_)); \
    REQUIRE(result_.isOk());                    \
  } while (0)

#define CHECK_CODE(expr, expected)              \
  do {                                          \
    const auto& result_ = (expr);               \
    INFO(#expr << " -> " << describe(result_)); \
    CHECK(result_.code() == (expected));        \
  } while (0)

std::string requireEnv(const char* name, const std::string& why) {
  const char* value = std::getenv(name);
  if (!value || !*value) FAIL(name << " is not set: " << why);
  return value;
}

std::string backendName() {
  return requireEnv("WEFT_TEST_BACKEND",
                    "set it to memory, nats, redis or sqlite (ctest sets it per test)");
}

void metric(const std::string& what) {
  const char* backend = std::getenv("WEFT_TEST_BACKEND");
  std::printf("[kv_contract.%s] %s\n", backend ? backend : "?", what.c_str());
  std::fflush(stdout);
}

// A store for one test case. The temp dir (sqlite file) outlives the store.
struct TestStore {
  std::string backend;
  std::unique_ptr<weft::testing::TempDir> dir;
  std::shared_ptr<KvStore> store;
  std::shared_ptr<weft::MemoryStore> memory;  // set for the memory backend

  KvStore* operator->() const { return store.get(); }
};

TestStore makeStore(const std::map<std::string, std::string>& overrides = {}) {
  TestStore t;
  t.backend = backendName();
  if (t.backend == "memory") {
    t.memory = weft::createMemoryStore();
    t.store = t.memory;
    return t;
  }
  weft::PluginContext context;
  context.settings["kv.backend"] = t.backend;
  context.settings["kv.timeoutMs"] = std::to_string(kTimeoutMs);
  context.settings["kv.reconnectWaitMs"] = std::to_string(kReconnectWaitMs);
  if (t.backend == "nats" || t.backend == "redis") {
    const std::string urlKey = t.backend + ".url";  // the reconnect case brings its own server
    if (overrides.count(urlKey) == 0) {
      const char* envVar = t.backend == "nats" ? "WEFT_TEST_NATS_URL" : "WEFT_TEST_REDIS_URL";
      // WEFT_TEST_NATS_REPLICAS: run against the three-node cluster of
      // WEFT_TEST_NATS_CLUSTER_URL with buckets of that many replicas.
      const char* replicas = t.backend == "nats" ? std::getenv("WEFT_TEST_NATS_REPLICAS") : nullptr;
      if (replicas && *replicas) {
        envVar = "WEFT_TEST_NATS_CLUSTER_URL";
        context.settings["nats.replicas"] = replicas;
        if (const char* guard = std::getenv("WEFT_TEST_NATS_CAS_GUARD")) {
          context.settings["nats.casGuard"] = guard;
        }
      }
      context.settings[urlKey] = requireEnv(
          envVar, "start " + t.backend + "-server and export its URL (scripts/test does)");
    }
  } else if (t.backend == "sqlite") {
    t.dir = std::make_unique<weft::testing::TempDir>("weft-kv-sqlite-");
    context.settings["sqlite.path"] = t.dir->file("weft.db");
  } else {
    FAIL("unknown WEFT_TEST_BACKEND '" << t.backend << "': use memory, nats, redis or sqlite");
  }
  for (const auto& [key, value] : overrides) context.settings[key] = value;
  context.log = [backend = t.backend](weft::LogLevel level, const std::string& message) {
    if (level >= weft::LogLevel::Info) {
      std::fprintf(stderr, "[%s plugin] %s\n", backend.c_str(), message.c_str());
    }
  };
  try {
    t.store = weft::loadKvStore(t.backend, "", context);
  } catch (const weft::PluginLoadError& e) {
    FAIL("cannot load the " << t.backend << " plugin (" << weft::pluginErrorKindName(e.kind())
                            << "): " << e.what());
  }
  REQUIRE(t.store);
  return t;
}

// A bucket name no other case or run uses ([a-zA-Z0-9_-], valid everywhere).
std::string uniqueBucket(const std::string& tag) {
  static std::atomic<int> counter{0};
  static const std::string run = [] {
    auto ms = std::chrono::duration_cast<Ms>(std::chrono::system_clock::now().time_since_epoch());
    return std::to_string(::getpid()) + "-" + std::to_string(ms.count() % 100000000);
  }();
  return "ct-" + tag + "-" + run + "-" + std::to_string(counter++);
}

// Opens a fresh bucket, retrying while the store is still connecting (the
// contract lets openBucket return Unavailable until then).
std::shared_ptr<KvBucket> openBucket(const TestStore& t, const std::string& tag,
                                     weft::BucketOptions options = {}) {
  std::string name = uniqueBucket(tag);
  weft::Result<std::shared_ptr<KvBucket>> bucket = weft::Status::internal("not tried");
  eventually(
      [&] {
        bucket = t.store->openBucket(name, options);
        return bucket.isOk() || !bucket.status().isOutage();
      },
      10000ms);
  INFO("openBucket(" << name << ") -> " << describe(bucket));
  REQUIRE(bucket.isOk());
  REQUIRE(*bucket);
  CHECK((*bucket)->name() == name);
  return *bucket;
}

std::string show(const WatchEvent& e) {
  switch (e.type) {
    case WatchEvent::Type::Put:
      return "Put " + e.key + "=" + e.value;
    case WatchEvent::Type::Delete:
      return "Delete " + e.key;
    case WatchEvent::Type::CaughtUp:
      return "CaughtUp";
    case WatchEvent::Type::Reset:
      return "Reset";
  }
  return "?";
}

// Collects a watch's events. Catch2 v2 assertions are not thread-safe, so the
// callback only records; the test thread asserts.
class EventLog {
 public:
  // liveDelay: how long the callback dawdles on each event after CaughtUp,
  // to make the reader fall behind the writers.
  explicit EventLog(Ms liveDelay = Ms(0)) : liveDelay_(liveDelay) {}

  weft::WatchCallback callback() {
    return [this](const WatchEvent& event) {
      bool dawdle;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopped_) ++lateEvents_;
        dawdle = caughtUpIndex(events_) >= 0;
        events_.push_back(event);
      }
      if (dawdle && liveDelay_.count() > 0) std::this_thread::sleep_for(liveDelay_);
    };
  }
  // Called right after the watch's stop() returned: any later event breaks
  // the contract.
  void markStopped() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  int lateEvents() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lateEvents_;
  }
  std::vector<WatchEvent> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }
  bool waitFor(const std::function<bool(const std::vector<WatchEvent>&)>& pred,
               Ms timeout = kWatchWait) const {
    return eventually([&] { return pred(events()); }, timeout);
  }
  bool waitForCaughtUp() const {
    return waitFor(
        [](const std::vector<WatchEvent>& events) { return caughtUpIndex(events) >= 0; });
  }
  // Waits for a Put of key (at or after index from).
  bool waitForPut(const std::string& key, size_t from = 0) const {
    return waitFor([&](const std::vector<WatchEvent>& events) {
      for (size_t i = from; i < events.size(); ++i) {
        if (events[i].type == WatchEvent::Type::Put && events[i].key == key) return true;
      }
      return false;
    });
  }
  static int caughtUpIndex(const std::vector<WatchEvent>& events) {
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i].type == WatchEvent::Type::CaughtUp) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  const Ms liveDelay_;
  mutable std::mutex mu_;
  std::vector<WatchEvent> events_;
  bool stopped_ = false;
  int lateEvents_ = 0;
};

std::unique_ptr<weft::KvWatch> startWatch(KvBucket& bucket, const std::string& prefix,
                                          EventLog& log) {
  auto watch = bucket.watch(prefix, log.callback());
  INFO("watch(" << prefix << ") -> " << describe(watch));
  REQUIRE(watch.isOk());
  REQUIRE(*watch);
  return std::move(watch).value();
}

std::set<std::string> keySet(KvBucket& bucket, const std::string& prefix) {
  auto keys = bucket.keys(prefix);
  INFO("keys(" << prefix << ") -> " << describe(keys));
  REQUIRE(keys.isOk());
  std::set<std::string> out(keys->begin(), keys->end());
  CHECK(out.size() == keys->size());  // no duplicates
  return out;
}

std::map<std::string, KvEntry> scanMap(KvBucket& bucket, const std::string& prefix) {
  auto entries = bucket.scan(prefix);
  INFO("scan(" << prefix << ") -> " << describe(entries));
  REQUIRE(entries.isOk());
  std::map<std::string, KvEntry> out;
  for (const auto& entry : *entries) out[entry.key] = entry;
  CHECK(out.size() == entries->size());
  return out;
}

std::string randomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// One write a watch test made: value nullopt = a delete.
struct Write {
  std::string key;
  std::optional<std::string> value;
  uint64_t revision = 0;  // of a put
};

// The backends whose feed promises every change between Resets (kv.h).
bool deliversEveryChange(const std::string& backend) {
  return backend == "memory" || backend == "redis" || backend == "sqlite";
}

std::string show(const Write& w) {
  return w.value ? "Put " + w.key + "=" + *w.value : "Delete " + w.key;
}

// Waits until the feed after index caughtUp shows the latest state of every
// key written, then checks the kv.h watch guarantees against writes (in the
// order they were made): per key, the events are an in-order subsequence of
// its writes ending with the last one; Puts carry their revisions and arrive
// in revision order; nothing arrives twice or from nowhere; no Reset. On a
// backend that promises every change, the events are exactly the writes.
void checkLiveFeed(const EventLog& log, int caughtUp, const std::vector<Write>& writes) {
  std::map<std::string, std::vector<const Write*>> perKey;
  for (const auto& w : writes) perKey[w.key].push_back(&w);
  auto liveOf = [&](const std::vector<WatchEvent>& events) {
    return std::vector<WatchEvent>(events.begin() + caughtUp + 1, events.end());
  };
  auto latestArrived = [&](const std::vector<WatchEvent>& events) {
    std::map<std::string, std::string> last;
    for (const auto& e : liveOf(events)) last[e.key] = show(e);
    for (const auto& [key, ws] : perKey) {
      auto it = last.find(key);
      if (it == last.end() || it->second != show(*ws.back())) return false;
    }
    return true;
  };
  const bool arrived = log.waitFor(latestArrived, kWatchWait * 4);
  std::vector<WatchEvent> live = liveOf(log.events());
  std::string trace;
  for (const auto& e : live) trace += show(e) + (e.revision ? "@" + std::to_string(e.revision) : "") + "; ";
  INFO("live events: " << trace);
  CHECK(arrived);

  std::map<std::string, size_t> next;  // per key: index of the next unmatched write
  uint64_t lastPut = 0;
  for (const auto& e : live) {
    INFO("event " << show(e));
    REQUIRE((e.type == WatchEvent::Type::Put || e.type == WatchEvent::Type::Delete));
    auto it = perKey.find(e.key);
    REQUIRE(it != perKey.end());  // nothing from outside the prefix or from nowhere
    const auto& ws = it->second;
    size_t& i = next[e.key];
    while (i < ws.size() && show(*ws[i]) != show(e)) ++i;
    REQUIRE(i < ws.size());  // in order, and not twice
    if (e.type == WatchEvent::Type::Put) {
      CHECK(e.revision == ws[i]->revision);
      CHECK(e.revision > lastPut);
      lastPut = e.revision;
    }
    ++i;
  }
  if (deliversEveryChange(backendName())) {
    std::vector<std::string> got, want;
    for (const auto& e : live) got.push_back(show(e));
    for (const auto& w : writes) want.push_back(show(w));
    CHECK(got == want);
  }
}

}  // namespace

TEST_CASE("the store identifies itself and answers ping", "[store]") {
  auto t = makeStore();
  CHECK(t->name() == t.backend);
  auto bucket = openBucket(t, "ping");  // waits until connected
  CHECK(eventually([&] { return t->state() == weft::ConnectionState::Connected; }, 5000ms));
  REQUIRE_OK(t->ping());
}

TEST_CASE("openBucket is idempotent and handles share data", "[store]") {
  auto t = makeStore();
  std::string name = uniqueBucket("idem");
  weft::Result<std::shared_ptr<KvBucket>> first = weft::Status::internal("not tried");
  REQUIRE(eventually(
      [&] {
        first = t->openBucket(name, {});
        return first.isOk();
      },
      10000ms));
  weft::BucketOptions other;
  other.history = 5;  // an existing bucket keeps its settings; this must not fail
  auto second = t->openBucket(name, other);
  REQUIRE_OK(second);
  auto rev = (*first)->put("k", "v");
  REQUIRE_OK(rev);
  auto got = (*second)->get("k");
  REQUIRE_OK(got);
  CHECK(got->value == "v");
  CHECK(got->revision == *rev);
}

TEST_CASE("get of an absent key is NotFound; an empty bucket lists nothing", "[basic]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "absent");
  CHECK_CODE(bucket->get("nope"), Code::NotFound);
  CHECK(keySet(*bucket, "").empty());
  CHECK(scanMap(*bucket, "").empty());
  CHECK(keySet(*bucket, "some.prefix.").empty());
}

TEST_CASE("put and get round-trip values", "[basic]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "roundtrip");

  auto roundTrip = [&](const std::string& key, const std::string& value) {
    auto rev = bucket->put(key, value);
    REQUIRE_OK(rev);
    CHECK(*rev > 0);
    auto got = bucket->get(key);
    REQUIRE_OK(got);
    CHECK(got->key == key);
    CHECK(got->value.size() == value.size());
    CHECK((got->value == value));  // no dump of binary values
    CHECK(got->revision == *rev);
  };

  SECTION("text") {
    roundTrip("alpha", "hello world");
  }
  SECTION("JSON with unicode") {
    roundTrip("a/b=c_d-e.f", R"({"name":"Zoë ✓","n":[1,2]})");
  }
  SECTION("every byte value, NUL included") {
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    roundTrip("bin", all + all);
  }
  SECTION("empty value") {
    roundTrip("empty", "");
  }
  SECTION("512 KiB value") {
    auto start = Clock::now();
    roundTrip("big", randomBytes(512 * 1024, 7));
    metric("512 KiB put+get: " + std::to_string(elapsedMs(start)) + " ms");
  }
  SECTION("overwrite") {
    auto r1 = bucket->put("k", "one");
    REQUIRE_OK(r1);
    auto r2 = bucket->put("k", "two");
    REQUIRE_OK(r2);
    CHECK(*r2 > *r1);
    auto got = bucket->get("k");
    REQUIRE_OK(got);
    CHECK(got->value == "two");
    CHECK(got->revision == *r2);
  }
}

TEST_CASE("getMany answers each key as get does, in the order asked", "[basic]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "getmany");
  // 300 keys: present, deleted, never written, and one present key asked twice.
  std::vector<std::string> asked;
  std::map<std::string, std::pair<std::string, uint64_t>> expected;  // key -> value, revision
  for (int i = 0; i < 300; ++i) {
    const std::string key = "k" + std::to_string(i);
    asked.push_back(key);
    if (i % 3 == 2) continue;  // never written
    const std::string value = "value " + std::to_string(i) + std::string(static_cast<size_t>(i), 'x');
    auto rev = bucket->put(key, value);
    REQUIRE_OK(rev);
    if (i % 3 == 1) {
      REQUIRE_OK(bucket->erase(key));
    } else {
      expected[key] = {value, *rev};
    }
  }
  asked.push_back("k0");
  std::reverse(asked.begin(), asked.end());
  auto got = bucket->getMany(asked);
  REQUIRE_OK(got);
  REQUIRE(got->size() == asked.size());
  size_t present = 0;
  for (size_t i = 0; i < asked.size(); ++i) {
    INFO("key " << asked[i]);
    auto want = expected.find(asked[i]);
    const auto& entry = (*got)[i];
    if (want == expected.end()) {
      CHECK_FALSE(entry.has_value());
      continue;
    }
    REQUIRE(entry.has_value());
    ++present;
    CHECK(entry->key == asked[i]);
    CHECK(entry->value == want->second.first);
    CHECK(entry->revision == want->second.second);
    auto one = bucket->get(asked[i]);
    REQUIRE_OK(one);
    CHECK(one->revision == entry->revision);
  }
  CHECK(present == 101);  // 100 written and kept, k0 twice
  auto none = bucket->getMany({});
  REQUIRE_OK(none);
  CHECK(none->empty());
}

TEST_CASE("revisions are positive and strictly increase per bucket", "[basic]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "revs");
  uint64_t last = 0;
  auto next = [&](const weft::Result<uint64_t>& rev) {
    INFO("write -> " << describe(rev));
    REQUIRE(rev.isOk());
    CHECK(*rev > last);
    last = *rev;
  };
  for (int i = 0; i < 20; ++i) next(bucket->put("k" + std::to_string(i % 3), std::to_string(i)));
  next(bucket->create("c", "1"));
  next(bucket->update("c", "2", last));
  REQUIRE_OK(bucket->erase("c"));
  next(bucket->create("c", "3"));
  next(bucket->put("k0", "again"));
}

TEST_CASE("create writes only when the key is absent", "[cas]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "create");
  auto r1 = bucket->create("k", "first");
  REQUIRE_OK(r1);
  CHECK_CODE(bucket->create("k", "second"), Code::AlreadyExists);
  auto got = bucket->get("k");
  REQUIRE_OK(got);
  CHECK(got->value == "first");
  CHECK(got->revision == *r1);

  SECTION("works again after an erase") {
    REQUIRE_OK(bucket->erase("k"));
    CHECK_CODE(bucket->get("k"), Code::NotFound);
    auto r2 = bucket->create("k", "third");
    REQUIRE_OK(r2);
    CHECK(*r2 > *r1);
    got = bucket->get("k");
    REQUIRE_OK(got);
    CHECK(got->value == "third");
    CHECK_CODE(bucket->create("k", "fourth"), Code::AlreadyExists);
  }
  SECTION("works again after an erase at the revision") {
    REQUIRE_OK(bucket->erase("k", *r1));
    REQUIRE_OK(bucket->create("k", "third"));
  }
  SECTION("fails after a put over it") {
    REQUIRE_OK(bucket->put("k", "put"));
    CHECK_CODE(bucket->create("k", "x"), Code::AlreadyExists);
  }
}

namespace {

// createAsync's outcome, waited for (at most 30 s) and counted: `done` must
// run exactly once.
struct AsyncOutcome {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Result<uint64_t>> results;

  KvBucket::CreateDone callback() {
    return [this](Result<uint64_t> r) {
      std::lock_guard<std::mutex> lock(mu);
      results.push_back(std::move(r));
      cv.notify_all();
    };
  }
  bool waitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return results.size() >= n; });
  }
};

Result<uint64_t> createAndWait(KvBucket& bucket, const std::string& key, const std::string& value) {
  AsyncOutcome outcome;
  bucket.createAsync(key, value, outcome.callback());
  REQUIRE(outcome.waitFor(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a second call would land here
  std::lock_guard<std::mutex> lock(outcome.mu);
  REQUIRE(outcome.results.size() == 1);
  return outcome.results.front();
}

}  // namespace

TEST_CASE("createAsync answers exactly what create would, exactly once", "[cas][async]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "createasync");
  auto r1 = createAndWait(*bucket, "k", "first");
  REQUIRE_OK(r1);
  auto got = bucket->get("k");
  REQUIRE_OK(got);
  CHECK(got->value == "first");
  CHECK(got->revision == *r1);
  CHECK_CODE(createAndWait(*bucket, "k", "second"), Code::AlreadyExists);
  CHECK(bucket->get("k")->value == "first");

  SECTION("over a deleted key it writes") {
    REQUIRE_OK(bucket->erase("k"));
    auto r2 = createAndWait(*bucket, "k", "third");
    REQUIRE_OK(r2);
    CHECK(*r2 > *r1);
    CHECK(bucket->get("k")->value == "third");
  }
  SECTION("a key the backend cannot store gets what create gives it") {
    // Key rules are the backend's (nats refuses a space, the others store it).
    const auto sync = bucket->create("odd key 1", "x");
    const auto async = createAndWait(*bucket, "odd key 2", "x");
    CHECK(sync.isOk() == async.isOk());
    if (!sync.isOk()) CHECK(sync.code() == async.code());
  }
  SECTION("many in flight from several threads: each answered once, all stored") {
    constexpr int kThreads = 4;
    constexpr int kEach = 100;
    AsyncOutcome outcome;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string key = "many." + std::to_string(t) + "." + std::to_string(i);
          bucket->createAsync(key, key, outcome.callback());
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(outcome.waitFor(kThreads * kEach));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::lock_guard<std::mutex> lock(outcome.mu);
    REQUIRE(outcome.results.size() == static_cast<size_t>(kThreads * kEach));
    std::set<uint64_t> revisions;
    for (const auto& r : outcome.results) {
      REQUIRE_OK(r);
      revisions.insert(*r);
    }
    CHECK(revisions.size() == static_cast<size_t>(kThreads * kEach));
    auto listed = bucket->keys("many.");
    REQUIRE_OK(listed);
    CHECK(listed->size() == static_cast<size_t>(kThreads * kEach));
    auto one = bucket->get("many.3.99");
    REQUIRE_OK(one);
    CHECK(one->value == "many.3.99");
  }
}

TEST_CASE("update is compare-and-set on the revision", "[cas]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "update");
  auto r1 = bucket->put("k", "v1");
  REQUIRE_OK(r1);
  auto r2 = bucket->update("k", "v2", *r1);
  REQUIRE_OK(r2);
  CHECK(*r2 > *r1);

  SECTION("a stale revision is Conflict and writes nothing") {
    CHECK_CODE(bucket->update("k", "stale", *r1), Code::Conflict);
    CHECK_CODE(bucket->update("k", "future", *r2 + 1000), Code::Conflict);
    auto got = bucket->get("k");
    REQUIRE_OK(got);
    CHECK(got->value == "v2");
    CHECK(got->revision == *r2);
  }
  SECTION("an absent key is Conflict, whatever the revision") {
    CHECK_CODE(bucket->update("never", "x", *r2), Code::Conflict);
    CHECK_CODE(bucket->update("never", "x", 1), Code::Conflict);
    CHECK_CODE(bucket->get("never"), Code::NotFound);
  }
  SECTION("revision 0 never matches, so it does not act as create") {
    CHECK_CODE(bucket->update("never", "x", 0), Code::Conflict);
    CHECK_CODE(bucket->get("never"), Code::NotFound);
    CHECK_CODE(bucket->update("k", "x", 0), Code::Conflict);
  }
  SECTION("a deleted key is Conflict at its last revision") {
    REQUIRE_OK(bucket->erase("k"));
    CHECK_CODE(bucket->update("k", "x", *r2), Code::Conflict);
    CHECK_CODE(bucket->get("k"), Code::NotFound);
  }
  SECTION("the new revision chains") {
    auto r3 = bucket->update("k", "v3", *r2);
    REQUIRE_OK(r3);
    auto got = bucket->get("k");
    REQUIRE_OK(got);
    CHECK(got->value == "v3");
    CHECK(got->revision == *r3);
  }
}

TEST_CASE("erase: unconditional, or only at the expected revision", "[cas]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "erase");
  SECTION("unconditional erase of an absent key is Ok") {
    REQUIRE_OK(bucket->erase("never"));
    CHECK_CODE(bucket->get("never"), Code::NotFound);
  }
  SECTION("conditional erase of an absent key is Conflict") {
    CHECK_CODE(bucket->erase("never", 5), Code::Conflict);
  }
  SECTION("unconditional erase removes, twice is Ok") {
    REQUIRE_OK(bucket->put("k", "v"));
    REQUIRE_OK(bucket->erase("k"));
    CHECK_CODE(bucket->get("k"), Code::NotFound);
    REQUIRE_OK(bucket->erase("k"));
  }
  SECTION("erase at a wrong revision is Conflict and keeps the value") {
    auto r1 = bucket->put("k", "v");
    REQUIRE_OK(r1);
    auto r2 = bucket->put("k", "w");
    REQUIRE_OK(r2);
    CHECK_CODE(bucket->erase("k", *r1), Code::Conflict);
    CHECK_CODE(bucket->erase("k", *r2 + 1000), Code::Conflict);
    auto got = bucket->get("k");
    REQUIRE_OK(got);
    CHECK(got->value == "w");
    REQUIRE_OK(bucket->erase("k", *r2));
    CHECK_CODE(bucket->get("k"), Code::NotFound);
    CHECK_CODE(bucket->erase("k", *r2), Code::Conflict);
  }
}

TEST_CASE("keys and scan filter by prefix and terminate after deletes", "[list]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "list");
  std::map<std::string, uint64_t> revs;
  for (std::string key : {"user.1", "user.2", "user.10", "group.1", "usr"}) {
    auto rev = bucket->put(key, "v-" + key);
    REQUIRE_OK(rev);
    revs[key] = *rev;
  }
  using S = std::set<std::string>;
  CHECK(keySet(*bucket, "") == S{"user.1", "user.2", "user.10", "group.1", "usr"});
  CHECK(keySet(*bucket, "user.") == S{"user.1", "user.2", "user.10"});
  CHECK(keySet(*bucket, "group.") == S{"group.1"});
  CHECK(keySet(*bucket, "nomatch.").empty());

  SECTION("a prefix that ends inside a token is a plain string prefix") {
    CHECK(keySet(*bucket, "user.1") == S{"user.1", "user.10"});
    CHECK(keySet(*bucket, "us") == S{"user.1", "user.2", "user.10", "usr"});
  }
  SECTION("scan returns values and revisions") {
    auto all = scanMap(*bucket, "user.");
    REQUIRE(all.size() == 3);
    for (const auto& [key, entry] : all) {
      CHECK(entry.key == key);
      CHECK(entry.value == "v-" + key);
      CHECK(entry.revision == revs[key]);
    }
  }
  SECTION("after the latest operation was a delete") {
    REQUIRE_OK(bucket->erase("user.2"));
    CHECK(keySet(*bucket, "user.") == S{"user.1", "user.10"});
    CHECK(scanMap(*bucket, "").count("user.2") == 0);
    for (std::string key : {"user.1", "user.10", "group.1", "usr"}) REQUIRE_OK(bucket->erase(key));
    CHECK(keySet(*bucket, "").empty());
    CHECK(scanMap(*bucket, "").empty());
    CHECK(keySet(*bucket, "user.").empty());
  }
}

TEST_CASE("keys and scan list 10,000 keys exactly", "[list][slow]") {
  // This case is about enumeration, not durability: with the default
  // sqlite.synchronous=FULL its 10,000 fsyncs took up to a minute on a busy
  // shared disk.
  auto t = makeStore({{"sqlite.synchronous", "NORMAL"}});
  auto bucket = openBucket(t, "scan10k");
  constexpr int kCount = 10000;
  auto keyOf = [](int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "k.%05d", i);
    return std::string(buf);
  };
  auto start = Clock::now();
  for (int i = 0; i < kCount; ++i) {
    auto rev = bucket->put(keyOf(i), "v" + std::to_string(i));
    if (!rev.isOk()) REQUIRE_OK(rev);  // only report the first failure
  }
  metric("10000 puts: " + std::to_string(elapsedMs(start)) + " ms");

  start = Clock::now();
  auto keys = keySet(*bucket, "");
  metric("keys of 10000: " + std::to_string(elapsedMs(start)) + " ms");
  REQUIRE(keys.size() == kCount);
  CHECK(*keys.begin() == keyOf(0));
  CHECK(*keys.rbegin() == keyOf(kCount - 1));

  start = Clock::now();
  auto all = scanMap(*bucket, "");
  metric("scan of 10000: " + std::to_string(elapsedMs(start)) + " ms");
  REQUIRE(all.size() == kCount);
  int wrong = 0;
  for (int i = 0; i < kCount; ++i) {
    auto it = all.find(keyOf(i));
    if (it == all.end() || it->second.value != "v" + std::to_string(i)) ++wrong;
  }
  CHECK(wrong == 0);

  auto some = keySet(*bucket, "k.09");
  CHECK(some.size() == 1000);
}

TEST_CASE("watch: replay, CaughtUp, then live changes in order", "[watch]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "watch");
  auto ra = bucket->put("w.a", "1");
  REQUIRE_OK(ra);
  auto rb = bucket->put("w.b", "2");
  REQUIRE_OK(rb);
  REQUIRE_OK(bucket->put("x.c", "outside"));
  REQUIRE_OK(bucket->put("w.gone", "soon deleted"));
  REQUIRE_OK(bucket->erase("w.gone"));

  EventLog log;
  auto watch = startWatch(*bucket, "w.", log);
  REQUIRE(log.waitForCaughtUp());

  // The replay: exactly the current values under the prefix, as Puts with
  // their revisions, in any order, and no deleted key.
  auto events = log.events();
  int caughtUp = EventLog::caughtUpIndex(events);
  std::map<std::string, std::pair<std::string, uint64_t>> replay;
  for (int i = 0; i < caughtUp; ++i) {
    INFO("replay event " << i << ": " << show(events[i]));
    CHECK(events[i].type == WatchEvent::Type::Put);
    replay[events[i].key] = {events[i].value, events[i].revision};
  }
  CHECK(caughtUp == 2);
  CHECK(replay == decltype(replay){{"w.a", {"1", *ra}}, {"w.b", {"2", *rb}}});

  // Live: the changes under the prefix, nothing from outside it, checked
  // against what kv.h guarantees (coalescing allowed unless the backend
  // promises every change).
  std::vector<Write> writes;
  auto rc = bucket->put("w.c", "3");
  REQUIRE_OK(rc);
  writes.push_back({"w.c", "3", *rc});
  REQUIRE_OK(bucket->erase("w.a"));
  writes.push_back({"w.a", std::nullopt, 0});
  REQUIRE_OK(bucket->put("x.d", "outside"));
  auto rb2 = bucket->put("w.b", "22");
  REQUIRE_OK(rb2);
  writes.push_back({"w.b", "22", *rb2});
  auto rd = bucket->create("w.d", "4");
  REQUIRE_OK(rd);
  writes.push_back({"w.d", "4", *rd});
  auto rd2 = bucket->update("w.d", "5", *rd);
  REQUIRE_OK(rd2);
  writes.push_back({"w.d", "5", *rd2});
  REQUIRE_OK(bucket->erase("w.d", *rd2));
  writes.push_back({"w.d", std::nullopt, 0});

  checkLiveFeed(log, caughtUp, writes);

  SECTION("stop() is final and idempotent") {
    // A second watch proves later changes are delivered to live watches.
    EventLog witness;
    auto witnessWatch = startWatch(*bucket, "w.", witness);
    REQUIRE(witness.waitForCaughtUp());
    watch->stop();
    log.markStopped();
    watch->stop();
    size_t witnessFrom = witness.size();
    REQUIRE_OK(bucket->put("w.after-stop", "x"));
    REQUIRE_OK(bucket->erase("w.b"));
    CHECK(witness.waitForPut("w.after-stop", witnessFrom));
    CHECK(witness.waitFor([&](const std::vector<WatchEvent>& e) {
      return !e.empty() && e.back().type == WatchEvent::Type::Delete && e.back().key == "w.b";
    }));
    CHECK(log.lateEvents() == 0);
    watch.reset();  // the destructor after stop() is harmless
  }
  SECTION("the destructor stops too") {
    watch.reset();
    log.markStopped();
    EventLog witness;
    auto witnessWatch = startWatch(*bucket, "w.", witness);
    REQUIRE(witness.waitForCaughtUp());
    size_t from = witness.size();
    REQUIRE_OK(bucket->put("w.after-destroy", "x"));
    CHECK(witness.waitForPut("w.after-destroy", from));
    CHECK(log.lateEvents() == 0);
  }
}

TEST_CASE("watch: a reader that falls behind still gets the latest state of every key",
          "[watch]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "watch-slow");
  REQUIRE_OK(bucket->put("s.k0", "initial"));

  // The callback dawdles on live events, so the writes below outrun it.
  EventLog log(std::chrono::milliseconds(3));
  auto watch = startWatch(*bucket, "s.", log);
  REQUIRE(log.waitForCaughtUp());
  const int caughtUp = EventLog::caughtUpIndex(log.events());
  REQUIRE(caughtUp == 1);

  std::vector<Write> writes;
  constexpr int kKeys = 5, kRounds = 40;
  for (int round = 0; round < kRounds; ++round) {
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "s.k" + std::to_string(k);
      const std::string value = "v" + std::to_string(round);
      auto r = bucket->put(key, value);
      REQUIRE_OK(r);
      writes.push_back({key, value, *r});
    }
  }
  REQUIRE_OK(bucket->erase("s.k3"));
  writes.push_back({"s.k3", std::nullopt, 0});
  REQUIRE_OK(bucket->put("x.outside", "never seen"));
  checkLiveFeed(log, caughtUp, writes);
  const size_t delivered = log.size() - caughtUp - 1;
  metric("slow reader: " + std::to_string(delivered) + " of " + std::to_string(writes.size()) +
         " live changes delivered");
}

TEST_CASE("watch of an empty bucket, and of one whose latest op was a delete", "[watch]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "watchempty");
  SECTION("empty") {
    EventLog log;
    auto watch = startWatch(*bucket, "", log);
    REQUIRE(log.waitForCaughtUp());
    auto events = log.events();
    CHECK(show(events.front()) == "CaughtUp");
    REQUIRE_OK(bucket->put("first", "1"));
    CHECK(log.waitForPut("first"));
  }
  SECTION("only a delete marker left") {
    REQUIRE_OK(bucket->put("a", "1"));
    REQUIRE_OK(bucket->erase("a"));
    EventLog log;
    auto watch = startWatch(*bucket, "", log);
    REQUIRE(log.waitForCaughtUp());
    auto events = log.events();
    CHECK(show(events.front()) == "CaughtUp");
    REQUIRE_OK(bucket->put("a", "2"));
    CHECK(log.waitForPut("a"));
  }
}

TEST_CASE("watchFrom: only the changes after a revision, deletions included, then live",
          "[watch][resume]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "resume");
  const weft::WatchCallback ignore = [](const WatchEvent&) {};
  auto token = bucket->resumeToken();
  REQUIRE_OK(token);
  const bool resumable = t.backend == "memory" || t.backend == "nats";
  CHECK(token->empty() == !resumable);
  REQUIRE_OK(bucket->put("r.a", "1"));
  REQUIRE_OK(bucket->put("r.b", "2"));
  REQUIRE_OK(bucket->put("r.c", "3"));
  auto at = bucket->put("r.d", "4");
  REQUIRE_OK(at);

  // A full replay's CaughtUp names the bucket it read.
  {
    EventLog full;
    auto watch = startWatch(*bucket, "", full);
    REQUIRE(full.waitForCaughtUp());
    auto events = full.events();
    CHECK(events[EventLog::caughtUpIndex(events)].value == *token);
  }
  // Values that expire leave no trace to resume from.
  auto aging = openBucket(t, "resume-age", weft::BucketOptions{60000, 1});
  auto agingToken = aging->resumeToken();
  REQUIRE_OK(agingToken);
  CHECK(agingToken->empty());
  if (!resumable) {
    CHECK_CODE(bucket->watchFrom("", "any", *at, ignore), Code::NotFound);
    return;
  }

  auto rb = bucket->put("r.b", "22");
  REQUIRE_OK(rb);
  REQUIRE_OK(bucket->erase("r.c"));
  auto re = bucket->put("r.e", "5");
  REQUIRE_OK(re);
  REQUIRE_OK(bucket->put("x.out", "outside the prefix"));

  EventLog log;
  auto resumed = bucket->watchFrom("r.", *token, *at, log.callback());
  REQUIRE_OK(resumed);
  REQUIRE(log.waitForCaughtUp());
  auto events = log.events();
  const int caughtUp = EventLog::caughtUpIndex(events);
  std::vector<std::string> before;
  for (int i = 0; i < caughtUp; ++i) before.push_back(show(events[i]));
  CHECK(before == std::vector<std::string>{"Put r.b=22", "Delete r.c", "Put r.e=5"});
  REQUIRE(caughtUp == 3);
  CHECK(events[0].revision == *rb);
  CHECK(events[2].revision == *re);
  CHECK(events[caughtUp].value == *token);
  auto rf = bucket->put("r.f", "6");
  REQUIRE_OK(rf);
  CHECK(log.waitForPut("r.f", caughtUp));

  // Nothing after the newest revision: caught up at once.
  EventLog quiet;
  auto quietWatch = bucket->watchFrom("r.", *token, *rf, quiet.callback());
  REQUIRE_OK(quietWatch);
  REQUIRE(quiet.waitForCaughtUp());
  CHECK(show(quiet.events().front()) == "CaughtUp");

  // Refused: another incarnation's token, a revision the bucket never had.
  CHECK_CODE(bucket->watchFrom("", *token + "x", *at, ignore), Code::NotFound);
  CHECK_CODE(bucket->watchFrom("", *token, *rf + 1000, ignore), Code::NotFound);
  CHECK_CODE(bucket->watchFrom("", *token, 0, ignore), Code::NotFound);
}

TEST_CASE("maxAgeMs: values not rewritten expire", "[expiry]") {
  auto t = makeStore();
  weft::BucketOptions options;
  options.maxAgeMs = 1000;
  auto bucket = openBucket(t, "expiry", options);
  auto start = Clock::now();
  REQUIRE_OK(bucket->put("k", "v"));
  REQUIRE_OK(bucket->get("k"));
  // Bounded: the age plus time for a server-side sweep.
  bool gone = eventually([&] { return bucket->get("k").code() == Code::NotFound; }, 11000ms);
  CHECK(gone);
  CHECK(elapsedMs(start) >= 900);  // not before its age (a little clock slack)
  metric("maxAgeMs=1000 expiry observed after " + std::to_string(elapsedMs(start)) + " ms");
  CHECK(keySet(*bucket, "").empty());
  REQUIRE_OK(bucket->create("k", "again"));  // an expired key is absent
}

TEST_CASE("concurrent CAS on one key: exactly one winner per revision", "[cas][concurrency]") {
  auto t = makeStore();
  auto bucket = openBucket(t, "race");
  REQUIRE_OK(bucket->put("counter", "0"));

  constexpr int kThreads = 4;
  constexpr int kTarget = 100;  // total successful increments
  std::atomic<int> successes{0};
  std::atomic<int> conflicts{0};
  std::mutex mu;
  std::vector<uint64_t> winningExpected;  // the revision each winner read
  std::vector<std::string> errors;
  auto deadline = Clock::now() + 60s;

  auto increment = [&] {
    while (successes.load() < kTarget && Clock::now() < deadline) {
      auto current = bucket->get("counter");
      if (!current.isOk()) {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back("get: " + current.status().toString());
        return;
      }
      int value = std::stoi(current->value);
      auto rev = bucket->update("counter", std::to_string(value + 1), current->revision);
      if (rev.isOk()) {
        ++successes;
        std::lock_guard<std::mutex> lock(mu);
        winningExpected.push_back(current->revision);
      } else if (rev.code() == Code::Conflict) {
        ++conflicts;
      } else {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back("update: " + rev.status().toString());
        return;
      }
    }
  };
  std::atomic<bool> go{false};  // start together, so the threads really race
  auto worker = [&] {
    while (!go.load()) std::this_thread::yield();
    try {
      increment();
    } catch (const std::exception& e) {  // e.g. a corrupted counter value
      std::lock_guard<std::mutex> lock(mu);
      errors.push_back(std::string("exception: ") + e.what());
    }
  };
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker);
  go = true;
  for (auto& thread : threads) thread.join();
  metric("CAS race: " + std::to_string(successes.load()) + " wins, " +
         std::to_string(conflicts.load()) + " conflicts, " + std::to_string(kThreads) +
         " threads, " + std::to_string(elapsedMs(start)) + " ms");

  CHECK(errors.empty());
  if (!errors.empty()) FAIL_CHECK("first error: " << errors.front());
  CHECK(successes.load() >= kTarget);
  auto final = bucket->get("counter");
  REQUIRE_OK(final);
  CHECK(std::stoi(final->value) == successes.load());
  std::set<uint64_t> distinct(winningExpected.begin(), winningExpected.end());
  CHECK(distinct.size() == winningExpected.size());
}

namespace {

// One side of the randomized comparison: a bucket, its watch, the revision
// of each key as this side reported it, and the events its writes imply.
struct Side {
  std::shared_ptr<KvBucket> bucket;
  EventLog log;
  std::unique_ptr<weft::KvWatch> watch;
  std::map<std::string, uint64_t> revision;                      // current revision per present key
  std::map<std::string, uint64_t> previous;                      // the revision before that (stale)
  std::vector<std::pair<std::string, uint64_t>> expectedEvents;  // show(), Put revision

  void wrote(const std::string& key, const std::string& value, uint64_t rev) {
    if (revision.count(key)) previous[key] = revision[key];
    revision[key] = rev;
    expectedEvents.push_back({"Put " + key + "=" + value, rev});
  }
  void erased(const std::string& key) {
    if (revision.count(key)) {
      previous[key] = revision[key];
      revision.erase(key);
      expectedEvents.push_back({"Delete " + key, 0});
    }
  }
  // Whether backend delivered the expected events, in order. Deletes of keys
  // that were already absent are dropped first: the contract allows a
  // backend to report them (a NATS delete marker) or not.
  void checkStream(const std::string& sideName) const {
    auto events = log.events();
    int caughtUp = EventLog::caughtUpIndex(events);
    INFO(sideName << ": watch stream");
    REQUIRE(caughtUp == 0);  // the bucket was empty when the watch started
    std::set<std::string> present;
    std::vector<std::pair<std::string, uint64_t>> actual;
    for (size_t i = 1; i < events.size(); ++i) {
      const auto& e = events[i];
      if (e.type == WatchEvent::Type::Put) {
        present.insert(e.key);
        actual.push_back({show(e), e.revision});
      } else if (e.type == WatchEvent::Type::Delete) {
        if (present.erase(e.key)) actual.push_back({show(e), 0});
      } else {
        FAIL_CHECK("unexpected " << show(e) << " at event " << i);
      }
    }
    if (sideName != "model" && !deliversEveryChange(backendName())) {
      std::vector<WatchEvent> live(events.begin() + 1, events.end());
      checkCoalesced(live);
      return;
    }
    CHECK(actual.size() == expectedEvents.size());
    size_t firstDiff = 0;
    while (firstDiff < actual.size() && firstDiff < expectedEvents.size() &&
           actual[firstDiff] == expectedEvents[firstDiff]) {
      ++firstDiff;
    }
    INFO("first difference at event " << firstDiff);
    if (firstDiff < actual.size() && firstDiff < expectedEvents.size()) {
      CHECK(actual[firstDiff].first == expectedEvents[firstDiff].first);
      CHECK(actual[firstDiff].second == expectedEvents[firstDiff].second);
    }
  }

  // The kv.h guarantee where intermediate values may be coalesced: per key,
  // the events are an in-order subsequence of the expected ones that ends
  // with the key's last one, and Puts arrive in revision order. A Delete of a
  // key the reader does not hold that matches no expected delete (the marker
  // of erasing an absent key) is skipped.
  void checkCoalesced(const std::vector<WatchEvent>& live) const {
    auto keyOf = [](const std::string& shown) {
      std::string rest = shown.substr(shown.find(' ') + 1);
      return rest.substr(0, rest.find('='));
    };
    std::map<std::string, std::vector<std::pair<std::string, uint64_t>>> want;
    for (const auto& e : expectedEvents) want[keyOf(e.first)].push_back(e);
    std::map<std::string, size_t> next;
    std::map<std::string, std::pair<std::string, uint64_t>> last;
    std::set<std::string> held;
    uint64_t lastPut = 0;
    for (const auto& ev : live) {
      const std::pair<std::string, uint64_t> e{
          show(ev), ev.type == WatchEvent::Type::Put ? ev.revision : 0};
      INFO("event " << e.first);
      REQUIRE((ev.type == WatchEvent::Type::Put || ev.type == WatchEvent::Type::Delete));
      const auto& events = want[ev.key];
      size_t& i = next[ev.key];
      size_t j = i;
      // A Delete that names its marker's revision matches only a delete made
      // after every Put it skips over.
      auto fits = [&](size_t k) {
        if (events[k] != e) return false;
        if (ev.type != WatchEvent::Type::Delete || ev.revision == 0) return true;
        for (size_t p = i; p < k; ++p) {
          if (events[p].second >= ev.revision) return false;
        }
        return true;
      };
      while (j < events.size() && !fits(j)) ++j;
      if (j == events.size() && ev.type == WatchEvent::Type::Delete && !held.count(ev.key)) {
        continue;  // a redundant marker
      }
      INFO("revision " << ev.revision << "; expected next for the key: "
                       << (i < events.size() ? events[i].first + " @" + std::to_string(events[i].second)
                                             : std::string("nothing")));
      REQUIRE(j < events.size());
      i = j + 1;
      last[ev.key] = e;
      if (ev.type == WatchEvent::Type::Put) {
        held.insert(ev.key);
        CHECK(ev.revision > lastPut);
        lastPut = ev.revision;
      } else {
        held.erase(ev.key);
      }
    }
    for (const auto& [key, events] : want) {
      INFO("key " << key << ": the latest state arrives");
      REQUIRE(last.count(key) == 1);
      CHECK(last[key] == events.back());
    }
  }
};

}  // namespace

TEST_CASE("randomized operations match the memory model", "[model]") {
  auto t = makeStore();
  uint32_t seed = 20240611;
  if (const char* s = std::getenv("WEFT_TEST_SEED")) seed = static_cast<uint32_t>(std::stoul(s));
  metric("randomized seed " + std::to_string(seed) + " (WEFT_TEST_SEED)");
  std::mt19937 rng(seed);

  auto model = weft::createMemoryStore();
  Side real, ref;
  real.bucket = openBucket(t, "model");
  auto modelBucket = model->openBucket("model", {});
  REQUIRE_OK(modelBucket);
  ref.bucket = *modelBucket;
  real.watch = startWatch(*real.bucket, "r.", real.log);
  ref.watch = startWatch(*ref.bucket, "r.", ref.log);
  REQUIRE(real.log.waitForCaughtUp());
  REQUIRE(ref.log.waitForCaughtUp());

  constexpr int kOps = 1500;
  const std::vector<std::string> keys = {"r.k0", "r.k1", "r.k2", "r.k3", "r.k4", "r.k5", "x.out"};
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };

  // The revision argument for a side: its own current revision ("right"), or
  // a stale or impossible one ("wrong"); for an absent key both are wrong.
  auto revisionFor = [](const Side& side, const std::string& key, bool right, bool stale) {
    auto it = side.revision.find(key);
    if (it == side.revision.end()) return uint64_t{1};
    if (right) return it->second;
    auto prev = side.previous.find(key);
    if (stale && prev != side.previous.end()) return prev->second;
    return it->second + 1000000;
  };

  for (int op = 0; op < kOps; ++op) {
    const std::string& key = keys[pick(static_cast<int>(keys.size()))];
    std::string value = "v" + std::to_string(op);
    if (pick(10) == 0) value += std::string("\0\xff\n", 3);
    int kind = pick(100);
    bool right = pick(3) != 0;
    bool stale = pick(2) == 0;
    std::string what;
    Code realCode, refCode;
    auto applyWrite = [&](Side& side, const weft::Result<uint64_t>& r) {
      if (r.isOk()) side.wrote(key, value, *r);
      return r.code();
    };
    auto applyErase = [&](Side& side, const weft::Status& s) {
      if (s.isOk()) side.erased(key);
      return s.code();
    };
    if (kind < 20) {
      what = "put";
      realCode = applyWrite(real, real.bucket->put(key, value));
      refCode = applyWrite(ref, ref.bucket->put(key, value));
    } else if (kind < 35) {
      what = "create";
      realCode = applyWrite(real, real.bucket->create(key, value));
      refCode = applyWrite(ref, ref.bucket->create(key, value));
    } else if (kind < 60) {
      what = right ? "update(right)" : "update(wrong)";
      realCode =
          applyWrite(real, real.bucket->update(key, value, revisionFor(real, key, right, stale)));
      refCode =
          applyWrite(ref, ref.bucket->update(key, value, revisionFor(ref, key, right, stale)));
    } else if (kind < 70) {
      what = "erase";
      realCode = applyErase(real, real.bucket->erase(key));
      refCode = applyErase(ref, ref.bucket->erase(key));
    } else if (kind < 82) {
      what = right ? "erase(right)" : "erase(wrong)";
      realCode = applyErase(real, real.bucket->erase(key, revisionFor(real, key, right, stale)));
      refCode = applyErase(ref, ref.bucket->erase(key, revisionFor(ref, key, right, stale)));
    } else {
      what = "get";
      auto a = real.bucket->get(key);
      auto b = ref.bucket->get(key);
      realCode = a.code();
      refCode = b.code();
      if (a.isOk() && b.isOk()) {
        INFO("op " << op << " get " << key);
        CHECK((a->value == b->value));
        CHECK(a->revision == real.revision[key]);
      }
    }
    if (realCode != refCode) {
      FAIL("op " << op << " " << what << " " << key << ": backend " << weft::codeName(realCode)
                 << ", model " << weft::codeName(refCode) << " (seed " << seed << ")");
    }
  }

  // Final state: same keys and values; the backend's revisions are the ones
  // it returned.
  auto realAll = scanMap(*real.bucket, "");
  auto refAll = scanMap(*ref.bucket, "");
  REQUIRE(realAll.size() == refAll.size());
  for (const auto& [key, entry] : refAll) {
    INFO("key " << key);
    REQUIRE(realAll.count(key) == 1);
    CHECK((realAll[key].value == entry.value));
    CHECK(realAll[key].revision == real.revision[key]);
  }

  // Watch streams: a sentinel written last marks the end of both.
  const std::string end = "r.zz-end";
  for (Side* side : {&real, &ref}) {
    auto rev = side->bucket->put(end, "end");
    REQUIRE_OK(rev);
    side->wrote(end, "end", *rev);
  }
  CHECK(real.log.waitForPut(end));
  CHECK(ref.log.waitForPut(end));
  real.watch->stop();
  ref.watch->stop();
  // Events under the watch prefix only.
  for (Side* side : {&real, &ref}) {
    auto& events = side->expectedEvents;
    events.erase(
        std::remove_if(events.begin(), events.end(),
                       [](const auto& e) { return e.first.find(" x.") != std::string::npos; }),
        events.end());
  }
  real.checkStream("backend");
  ref.checkStream("model");
  std::vector<std::string> realShown, refShown;
  for (const auto& e : real.expectedEvents) realShown.push_back(e.first);
  for (const auto& e : ref.expectedEvents) refShown.push_back(e.first);
  CHECK(realShown == refShown);
}

namespace {

// A private server for the nats or redis backend, so a case can crash or
// stall it without disturbing the shared one.
std::unique_ptr<weft::testing::ServerProcess> startOwnServer(const std::string& backend,
                                                             std::string* url) {
  if (backend == "nats") {
    auto nats = std::make_unique<weft::testing::NatsServer>();
    *url = nats->url();
    return nats;
  }
  REQUIRE(backend == "redis");
  auto redis = std::make_unique<weft::testing::RedisServer>();
  *url = redis->url();
  return redis;
}

template <typename T>
weft::Status statusOf(const weft::Result<T>& result) {
  return result.isOk() ? weft::Status::ok() : result.status();
}
weft::Status statusOf(const weft::Status& status) {
  return status;
}

// During an outage every call must fail with Unavailable or Timeout, within
// the operation timeout plus a margin: never a hang, never a success.
template <typename Call>
weft::Status expectOutageFailure(const std::string& what, Call&& call) {
  constexpr int64_t kBound = kTimeoutMs + 1500;
  auto start = Clock::now();
  weft::Status status = statusOf(call());
  int64_t ms = elapsedMs(start);
  INFO(what << " during the outage -> " << status.toString() << " after " << ms << " ms");
  CHECK(status.isOutage());
  CHECK(ms <= kBound);
  metric(what + " during outage: " + codeName(status.code()) + " in " + std::to_string(ms) + " ms");
  return status;
}

}  // namespace

TEST_CASE("outage and reconnect without recreating the store", "[reconnect]") {
  const std::string backend = backendName();

  if (backend == "memory") {
    // No server to kill: the simulated outage (setAvailable) must behave like
    // one, so the core services' outage tests mean something.
    auto t = makeStore();
    REQUIRE(t.memory);
    auto bucket = openBucket(t, "outage");
    REQUIRE_OK(bucket->put("before", "1"));
    EventLog log;
    auto watch = startWatch(*bucket, "", log);
    REQUIRE(log.waitForCaughtUp());
    t.memory->setAvailable(false);
    CHECK(t->state() == weft::ConnectionState::Disconnected);
    CHECK_CODE(t->ping(), Code::Unavailable);
    CHECK_CODE(bucket->put("during", "x"), Code::Unavailable);
    CHECK_CODE(bucket->get("before"), Code::Unavailable);
    CHECK_CODE(bucket->keys(""), Code::Unavailable);
    CHECK_CODE(t->openBucket(uniqueBucket("outage2"), {}), Code::Unavailable);
    t.memory->setAvailable(true);
    CHECK(t->state() == weft::ConnectionState::Connected);
    auto got = bucket->get("before");
    REQUIRE_OK(got);
    CHECK(got->value == "1");
    CHECK_CODE(bucket->get("during"), Code::NotFound);
    size_t from = log.size();
    REQUIRE_OK(bucket->put("after", "2"));
    CHECK(log.waitForPut("after", from));
    SECTION("resetWatches replays") {
      t.memory->resetWatches();
      // Reset, the two current values in write order, CaughtUp.
      CHECK(log.waitFor([](const std::vector<WatchEvent>& e) {
        return e.size() >= 4 && e.back().type == WatchEvent::Type::CaughtUp;
      }));
      auto events = log.events();
      REQUIRE(events.size() >= 4);
      std::vector<std::string> tail;
      for (size_t i = events.size() - 4; i < events.size(); ++i) tail.push_back(show(events[i]));
      CHECK(tail == std::vector<std::string>{"Reset", "Put before=1", "Put after=2", "CaughtUp"});
    }
    return;
  }

  if (backend == "sqlite") {
    // Not applicable: SQLite is embedded, so there is no server connection to
    // lose and nothing to reconnect. The store must simply stay connected.
    auto t = makeStore();
    auto bucket = openBucket(t, "outage");
    CHECK(t->state() == weft::ConnectionState::Connected);
    REQUIRE_OK(t->ping());
    metric("reconnect: not applicable (embedded database, no server to kill)");
    return;
  }

  REQUIRE((backend == "nats" || backend == "redis"));
  std::string url;
  auto server = startOwnServer(backend, &url);
  auto t = makeStore({{backend + ".url", url}});
  auto bucket = openBucket(t, "reconnect");
  REQUIRE_OK(bucket->put("before", "1"));
  EventLog log;
  auto watch = startWatch(*bucket, "", log);
  REQUIRE(log.waitForCaughtUp());

  server->kill9();

  auto killedAt = Clock::now();
  std::vector<std::pair<std::string, Code>> failedWrites;
  for (int i = 0; i < 3; ++i) {
    std::string key = "during" + std::to_string(i);
    auto status = expectOutageFailure("put", [&] { return bucket->put(key, "x"); });
    failedWrites.push_back({key, status.code()});
  }
  {
    auto status = expectOutageFailure(
        "createAsync", [&] { return createAndWait(*bucket, "during-async", "x"); });
    failedWrites.push_back({"during-async", status.code()});
  }
  expectOutageFailure("get", [&] { return bucket->get("before"); });
  expectOutageFailure("keys", [&] { return bucket->keys(""); });
  expectOutageFailure("ping", [&] { return t->ping(); });
  CHECK(eventually([&] { return t->state() != weft::ConnectionState::Connected; }, 5000ms));
  metric("outage: all calls failed within " + std::to_string(elapsedMs(killedAt)) + " ms total");

  server->restart();
  auto restartedAt = Clock::now();

  // Service returns on its own, through the same store and bucket objects.
  weft::Result<KvEntry> before = weft::Status::internal("not tried");
  bool back = eventually(
      [&] {
        before = bucket->get("before");
        return before.isOk();
      },
      20000ms);
  INFO("get(before) after restart -> " << describe(before));
  REQUIRE(back);
  metric("first success " + std::to_string(elapsedMs(restartedAt)) +
         " ms after the server was ready again");
  CHECK(before->value == "1");
  CHECK(eventually([&] { return t->state() == weft::ConnectionState::Connected; }, 5000ms));
  REQUIRE_OK(t->ping());

  // A write refused as Unavailable must not appear later (no replay from a
  // client-side buffer). A Timeout is indeterminate: either outcome is fine.
  int indeterminate = 0;
  for (const auto& [key, code] : failedWrites) {
    auto got = bucket->get(key);
    if (code == Code::Unavailable) {
      INFO("write of " << key << " was refused with Unavailable");
      CHECK(got.code() == Code::NotFound);
    } else {
      ++indeterminate;
    }
  }
  metric("timed-out (indeterminate) writes during outage: " + std::to_string(indeterminate));

  // The watch opened before the crash delivers new changes (after a Reset and
  // replay, if the backend sends one).
  size_t from = log.size();
  REQUIRE_OK(bucket->put("after", "2"));
  CHECK(log.waitForPut("after", from));
  auto events = log.events();
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].type == WatchEvent::Type::Reset) {
      metric("watch sent Reset at event " + std::to_string(i));
    }
  }
  auto got = bucket->get("after");
  REQUIRE_OK(got);
  CHECK(got->value == "2");
  watch->stop();
}

TEST_CASE("a stalled backend makes calls time out, then service resumes", "[stall]") {
  const std::string backend = backendName();

  if (backend == "memory") {
    // Not applicable: the memory store does no I/O and cannot stall; its
    // outage switch is covered by the reconnect case.
    auto t = makeStore();
    REQUIRE_OK(t->ping());
    metric("stall: not applicable (in-process store, no I/O)");
    return;
  }

  if (backend == "sqlite") {
    // The SQLite analogue of a stall: another connection holds the write
    // lock. Writes must give up within kv.timeoutMs (busy timeout), not wait.
    auto t = makeStore();
    auto bucket = openBucket(t, "stall");
    REQUIRE_OK(bucket->put("before", "1"));
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(t.dir->file("weft.db").c_str(), &db) == SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> closer(db, &sqlite3_close);
    REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    expectOutageFailure("put while the write lock is held elsewhere",
                        [&] { return bucket->put("during", "x"); });
    REQUIRE(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    REQUIRE_OK(bucket->put("after", "2"));
    auto got = bucket->get("before");
    REQUIRE_OK(got);
    CHECK(got->value == "1");
    return;
  }

  REQUIRE((backend == "nats" || backend == "redis"));
  std::string url;
  auto server = startOwnServer(backend, &url);
  auto t = makeStore({{backend + ".url", url}});
  auto bucket = openBucket(t, "stall");
  REQUIRE_OK(bucket->put("before", "1"));

  server->pause();  // SIGSTOP: the connection stays open, nothing answers
  expectOutageFailure("put", [&] { return bucket->put("during", "x"); });
  // An asynchronous create is answered too: its acknowledgement times out.
  expectOutageFailure("createAsync",
                      [&] { return createAndWait(*bucket, "during-async", "x"); });
  expectOutageFailure("get", [&] { return bucket->get("before"); });
  server->resume();
  auto resumedAt = Clock::now();

  weft::Result<KvEntry> before = weft::Status::internal("not tried");
  bool back = eventually(
      [&] {
        before = bucket->get("before");
        return before.isOk();
      },
      20000ms);
  INFO("get(before) after SIGCONT -> " << describe(before));
  REQUIRE(back);
  metric("first success " + std::to_string(elapsedMs(resumedAt)) + " ms after SIGCONT");
  CHECK(before->value == "1");
  REQUIRE_OK(bucket->put("after", "2"));
}
