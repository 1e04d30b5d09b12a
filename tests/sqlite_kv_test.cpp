// Tests of the sqlite plugin's own behaviour, beyond the shared contract suite
// (kv_contract_test.cpp): settings validation, an unusable file, expiry with
// delete events, change-log trimming (Reset), several stores and several
// processes on one file, and a full disk.
//
// The plugin is loaded through the production loader. The executable is also
// its own helper process: `sqlite_kv_tests --child <mode> ...` runs one of
// the child modes at the bottom instead of the Catch2 session.
#define CATCH_CONFIG_RUNNER
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.h"
#include "support/temp_dir.h"
#include "weft/kv.h"
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
using weft::KvStore;
using weft::WatchEvent;
using Type = weft::WatchEvent::Type;
using Clock = std::chrono::steady_clock;
using Settings = std::map<std::string, std::string>;

std::string selfExe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

struct Logs {
  std::mutex mutex;
  std::vector<std::string> lines;
  bool contains(const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex);
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }
};

// Loads the plugin; throws PluginLoadError when create() refuses the settings.
std::shared_ptr<KvStore> load(const std::string& path, Settings extra = {},
                              std::shared_ptr<Logs> logs = nullptr) {
  weft::PluginContext context;
  context.settings = {{"kv.backend", "sqlite"}, {"sqlite.path", path}, {"kv.timeoutMs", "2000"}};
  for (auto& [key, value] : extra) context.settings[key] = value;
  if (!logs) logs = std::make_shared<Logs>();
  context.log = [logs](weft::LogLevel, const std::string& line) {
    std::lock_guard<std::mutex> lock(logs->mutex);
    logs->lines.push_back(line);
  };
  return weft::loadKvStore("sqlite", "", context);
}

std::shared_ptr<KvBucket> openBucket(KvStore& store, const std::string& name,
                                     int64_t maxAgeMs = 0) {
  weft::BucketOptions options;
  options.maxAgeMs = maxAgeMs;
  auto bucket = store.openBucket(name, options);
  REQUIRE(bucket.isOk());
  return bucket.value();
}

// Bounded polling, for asynchronous effects (watch delivery, the sweep).
template <typename F>
bool eventually(F condition, std::chrono::milliseconds limit = 3000ms) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

struct Recorder {
  std::mutex mutex;
  std::vector<WatchEvent> events;
  weft::WatchCallback callback() {
    return [this](const WatchEvent& e) {
      std::lock_guard<std::mutex> lock(mutex);
      events.push_back(e);
    };
  }
  std::vector<WatchEvent> copy() {
    std::lock_guard<std::mutex> lock(mutex);
    return events;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mutex);
    return events.size();
  }
  bool has(Type type, const std::string& key = "") {
    std::lock_guard<std::mutex> lock(mutex);
    return std::any_of(events.begin(), events.end(), [&](const WatchEvent& e) {
      return e.type == type && (key.empty() || e.key == key);
    });
  }
};

// One CAS increment of a decimal counter; true when this call won.
bool increment(KvBucket& bucket, const std::string& key, int* errors) {
  auto current = bucket.get(key);
  if (!current.isOk()) {
    ++*errors;
    return false;
  }
  auto next = std::to_string(std::stoi(current->value) + 1);
  auto updated = bucket.update(key, next, current->revision);
  if (updated.isOk()) return true;
  if (updated.code() != Code::Conflict) ++*errors;
  return false;
}

}  // namespace

TEST_CASE("sqlite: invalid settings are refused naming the key", "[sqlite]") {
  weft::testing::TempDir dir("weft-sqlite-");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"sqlite.synchronous", "SOMETIMES"}, {"sqlite.pollIntervalMs", "abc"},
      {"sqlite.pollIntervalMs", "5000"},   {"kv.timeoutMs", "0"},
      {"sqlite.path", ":memory:"},         {"sqlite.changeLogMaxRows", "-1"}};
  for (const auto& [key, value] : bad) {
    INFO(key << " = " << value);
    try {
      load(dir.file("a.db"), {{key, value}});
      FAIL("create() accepted it");
    } catch (const weft::PluginLoadError& e) {
      CHECK(e.kind() == weft::PluginErrorKind::CreateFailed);
      CHECK(std::string(e.what()).find(key) != std::string::npos);
    }
  }
  // Lower case is accepted; the parent directories are created.
  auto store = load(dir.file("deep/er/a.db"), {{"sqlite.synchronous", "normal"}});
  CHECK(store->state() == weft::ConnectionState::Connected);
  CHECK(store->ping().isOk());
  CHECK(store->messaging() == nullptr);
  struct stat st;
  CHECK(::stat(dir.file("deep/er/a.db").c_str(), &st) == 0);
}

TEST_CASE("sqlite: an unusable path gives Unavailable, then recovers by itself", "[sqlite]") {
  weft::testing::TempDir dir("weft-sqlite-");
  const std::string blocker = dir.file("notadir");
  std::FILE* f = std::fopen(blocker.c_str(), "w");
  REQUIRE(f != nullptr);
  std::fclose(f);
  auto logs = std::make_shared<Logs>();
  auto store = load(blocker + "/x.db", {}, logs);  // not a configuration error
  CHECK(store->state() == weft::ConnectionState::Disconnected);
  CHECK(store->ping().code() == Code::Unavailable);
  CHECK(store->openBucket("b", {}).code() == Code::Unavailable);
  CHECK(logs->contains("cannot"));

  REQUIRE(::unlink(blocker.c_str()) == 0);
  REQUIRE(::mkdir(blocker.c_str(), 0755) == 0);
  CHECK(store->ping().isOk());
  CHECK(store->state() == weft::ConnectionState::Connected);
  auto bucket = store->openBucket("b", {});
  REQUIRE(bucket.isOk());
  CHECK(bucket.value()->put("k", "v").isOk());
}

TEST_CASE("sqlite: data and revision order survive a reopen", "[sqlite]") {
  weft::testing::TempDir dir("weft-sqlite-");
  uint64_t last = 0;
  {
    auto store = load(dir.file("p.db"));
    auto bucket = openBucket(*store, "keep");
    REQUIRE(bucket->put("a", "1").isOk());
    REQUIRE(bucket->erase("a").isOk());
    auto put = bucket->put("b", "2");
    REQUIRE(put.isOk());
    last = *put;
  }
  auto store = load(dir.file("p.db"));
  auto bucket = openBucket(*store, "keep");
  CHECK(bucket->get("a").code() == Code::NotFound);
  CHECK(bucket->get("b")->value == "2");
  auto put = bucket->put("c", "3");
  REQUIRE(put.isOk());
  CHECK(*put > last);
}

TEST_CASE("sqlite: expired keys vanish at once and the sweep reports them", "[sqlite]") {
  weft::testing::TempDir dir("weft-sqlite-");
  auto store = load(dir.file("e.db"),
                    {{"sqlite.maintenanceIntervalMs", "50"}, {"sqlite.pollIntervalMs", "20"}});
  auto bucket = openBucket(*store, "ttl", 300);
  auto written = bucket->put("k", "v");
  REQUIRE(written.isOk());
  REQUIRE(bucket->put("keep", "v").isOk());
  Recorder recorder;
  auto watch = bucket->watch("", recorder.callback());
  REQUIRE(watch.isOk());
  REQUIRE(eventually([&] { return recorder.has(Type::CaughtUp); }));

  std::this_thread::sleep_for(200ms);
  REQUIRE(bucket->put("keep", "v2").isOk());  // refreshed: does not expire
  std::this_thread::sleep_for(150ms);
  CHECK(bucket->get("k").code() == Code::NotFound);
  CHECK(bucket->get("keep").isOk());
  CHECK(bucket->update("k", "x", *written).code() == Code::Conflict);
  CHECK(eventually([&] { return recorder.has(Type::Delete, "k"); }));
  auto keys = bucket->keys("");
  REQUIRE(keys.isOk());
  CHECK(*keys == std::vector<std::string>{"keep"});
  CHECK(bucket->create("k", "new").isOk());
}

TEST_CASE("sqlite: a watcher that falls behind the trimmed log resets", "[sqlite]") {
  weft::testing::TempDir dir("weft-sqlite-");
  auto logs = std::make_shared<Logs>();
  auto store = load(dir.file("t.db"),
                    {{"sqlite.maintenanceIntervalMs", "20"},
                     {"sqlite.changeLogMaxRows", "10"},
                     {"sqlite.pollIntervalMs", "20"},
                     {"sqlite.synchronous", "OFF"}},
                    logs);
  auto bucket = openBucket(*store, "trim");
  REQUIRE(bucket->put("a", "0").isOk());

  // The callback blocks on the first live Put, so the watcher falls behind
  // while the log is written and trimmed.
  std::mutex gate;
  std::unique_lock<std::mutex> hold(gate);
  std::atomic<bool> blocked{false};
  Recorder recorder;
  auto record = recorder.callback();
  auto watch = bucket->watch("", [&](const WatchEvent& e) {
    record(e);
    if (e.type == Type::Put && e.key == "block") {
      blocked = true;
      std::lock_guard<std::mutex> wait(gate);
    }
  });
  REQUIRE(watch.isOk());
  REQUIRE(eventually([&] { return recorder.has(Type::CaughtUp); }));
  REQUIRE(bucket->put("block", "x").isOk());
  REQUIRE(eventually([&] { return blocked.load(); }));
  for (int i = 0; i < 100; ++i) {
    REQUIRE(bucket->put("k" + std::to_string(i % 7), std::to_string(i)).isOk());
  }
  REQUIRE(bucket->erase("a").isOk());
  std::this_thread::sleep_for(200ms);  // several trim periods
  hold.unlock();

  REQUIRE(eventually([&] { return recorder.has(Type::Reset); }));
  REQUIRE(eventually([&] {
    auto events = recorder.copy();
    return !events.empty() && events.back().type == Type::CaughtUp;
  }));
  // The view rebuilt from the feed equals the bucket.
  std::map<std::string, std::string> view, replay;
  bool replaying = false;
  for (const auto& e : recorder.copy()) {
    if (e.type == Type::Reset) {
      replaying = true;
      replay.clear();
    } else if (e.type == Type::CaughtUp) {
      if (replaying) view = replay;
      replaying = false;
    } else if (e.type == Type::Put) {
      (replaying ? replay : view)[e.key] = e.value;
    } else if (e.type == Type::Delete) {
      (replaying ? replay : view).erase(e.key);
    }
  }
  auto all = bucket->scan("");
  REQUIRE(all.isOk());
  std::map<std::string, std::string> truth;
  for (const auto& entry : *all) truth[entry.key] = entry.value;
  CHECK(view == truth);
  CHECK(logs->contains("resetting"));
  REQUIRE(bucket->put("after", "reset").isOk());
  CHECK(eventually([&] { return recorder.has(Type::Put, "after"); }));
}

TEST_CASE("sqlite: two stores on one file see each other and CAS exclusively", "[sqlite]") {
  weft::testing::TempDir dir("weft-sqlite-");
  auto one = load(dir.file("shared.db"), {{"sqlite.synchronous", "NORMAL"}});
  auto two = load(dir.file("shared.db"), {{"sqlite.synchronous", "NORMAL"}});
  auto b1 = openBucket(*one, "shared");
  auto b2 = openBucket(*two, "shared");

  Recorder recorder;
  auto watch = b2->watch("", recorder.callback());
  REQUIRE(watch.isOk());
  REQUIRE(eventually([&] { return recorder.has(Type::CaughtUp); }));
  int64_t worstMs = 0;
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(37 * i));  // vary the poll phase
    const size_t before = recorder.size();
    const auto start = Clock::now();
    REQUIRE(b1->put("k" + std::to_string(i), "v").isOk());
    REQUIRE(eventually([&] { return recorder.size() > before; }));
    worstMs = std::max<int64_t>(
        worstMs,
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
  }
  // The default poll interval is 100 ms; allow for a loaded machine.
  CHECK(worstMs < 500);
  REQUIRE(b1->erase("k0").isOk());
  CHECK(eventually([&] { return recorder.has(Type::Delete, "k0"); }));

  REQUIRE(b1->create("counter", "0").isOk());
  CHECK(b2->create("counter", "0").code() == Code::AlreadyExists);
  std::atomic<int> wins{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    auto bucket = (t % 2) != 0 ? b1 : b2;
    threads.emplace_back([&, bucket] {
      int localErrors = 0;
      for (int i = 0; i < 100; ++i) {
        if (increment(*bucket, "counter", &localErrors)) ++wins;
      }
      errors += localErrors;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  CHECK(std::stoi(b1->get("counter")->value) == wins.load());
}

TEST_CASE("sqlite: CAS is exclusive across processes, their writes reach a watch", "[sqlite]") {
  weft::testing::TempDir dir("weft-sqlite-");
  const std::string path = dir.file("mp.db");
  auto store = load(path, {{"sqlite.synchronous", "NORMAL"}});
  auto bucket = openBucket(*store, "mp");
  REQUIRE(bucket->create("counter", "0").isOk());
  Recorder recorder;
  auto watch = bucket->watch("from-child.", recorder.callback());
  REQUIRE(watch.isOk());
  REQUIRE(eventually([&] { return recorder.has(Type::CaughtUp); }));

  const int kRounds = 300;
  std::vector<weft::testing::ChildProcess> children;
  for (int c = 0; c < 2; ++c) {
    weft::testing::ChildOptions options;
    options.argv = {selfExe(), "--child", "cas", path, std::to_string(kRounds), std::to_string(c)};
    children.emplace_back(options);
  }
  // Start together, so that the loops overlap.
  REQUIRE(eventually([&] { return bucket->get("ready.0").isOk() && bucket->get("ready.1").isOk(); },
                     10000ms));
  REQUIRE(bucket->put("go", "1").isOk());
  int localWins = 0;
  int errors = 0;
  for (int i = 0; i < kRounds; ++i) {
    if (increment(*bucket, "counter", &errors)) ++localWins;
  }
  CHECK(errors == 0);
  int childWins = 0;
  for (size_t c = 0; c < children.size(); ++c) {
    auto status = children[c].wait(30000ms);
    REQUIRE(status.has_value());
    INFO("child " << c << ": " << status->toString());
    CHECK((status->exited && status->code == 0));
    auto wins = bucket->get("wins." + std::to_string(c));
    REQUIRE(wins.isOk());
    childWins += std::stoi(wins->value);
  }
  CHECK(std::stoi(bucket->get("counter")->value) == localWins + childWins);
  CHECK(eventually([&] {
    return recorder.has(Type::Put, "from-child.0") && recorder.has(Type::Put, "from-child.1");
  }));
}

TEST_CASE("sqlite: a full disk gives Unavailable, reads keep working", "[sqlite]") {
  // RLIMIT_FSIZE stands in for a full disk; it is set in a child process so
  // this one keeps its limits.
  weft::testing::TempDir dir("weft-sqlite-");
  weft::testing::ChildOptions options;
  options.argv = {selfExe(), "--child", "full", dir.file("full.db")};
  weft::testing::ChildProcess child(options);
  auto status = child.wait(30000ms);
  REQUIRE(status.has_value());
  INFO(status->toString());
  CHECK((status->exited && status->code == 0));
}

// --- child modes ---------------------------------------------------------------

namespace {

int childFail(const std::string& message) {
  std::fprintf(stderr, "sqlite_kv_tests child: %s\n", message.c_str());
  return 1;
}

// cas <path> <rounds> <tag>: CAS increments of "counter" in bucket "mp",
// then writes wins.<tag> and from-child.<tag>.
int childCas(const std::string& path, int rounds, const std::string& tag) {
  auto store = load(path, {{"sqlite.synchronous", "NORMAL"}, {"kv.timeoutMs", "5000"}});
  auto opened = store->openBucket("mp", {});
  if (!opened.isOk()) return childFail("openBucket: " + opened.status().toString());
  auto bucket = opened.value();
  if (!bucket->put("ready." + tag, "1").isOk()) return childFail("ready");
  for (int i = 0; i < 10000 && !bucket->get("go").isOk(); ++i) ::usleep(1000);
  int wins = 0;
  int errors = 0;
  for (int i = 0; i < rounds; ++i) {
    if (increment(*bucket, "counter", &errors)) ++wins;
  }
  if (errors != 0) return childFail(std::to_string(errors) + " unexpected errors");
  if (!bucket->put("wins." + tag, std::to_string(wins)).isOk()) return childFail("wins");
  if (!bucket->put("from-child." + tag, "hello").isOk()) return childFail("hello");
  return 0;
}

// full <path>: writes until the file size limit, expecting Unavailable.
int childFull(const std::string& path) {
  ::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of being killed
  auto store = load(path);
  auto opened = store->openBucket("full", {});
  if (!opened.isOk()) return childFail("openBucket: " + opened.status().toString());
  auto bucket = opened.value();
  if (!bucket->put("first", "x").isOk()) return childFail("first put");
  struct rlimit limit {
    256 * 1024, 256 * 1024
  };
  ::setrlimit(RLIMIT_FSIZE, &limit);
  const std::string value(8192, 'v');
  for (int i = 0; i < 1000; ++i) {
    auto put = bucket->put("k" + std::to_string(i), value);
    if (put.isOk()) continue;
    if (put.code() != Code::Unavailable) {
      return childFail("expected Unavailable, got " + put.status().toString());
    }
    if (store->state() != weft::ConnectionState::Disconnected) {
      return childFail("state() is not Disconnected");
    }
    auto first = bucket->get("first");
    if (!first.isOk()) return childFail("get after the failure: " + first.status().toString());
    return 0;
  }
  return childFail("no write failed");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "--child") {
    try {
      const std::string mode = argv[2];
      if (mode == "cas" && argc == 6) return childCas(argv[3], std::stoi(argv[4]), argv[5]);
      if (mode == "full" && argc == 4) return childFull(argv[3]);
      return childFail("unknown child mode");
    } catch (const std::exception& e) {
      return childFail(e.what());
    }
  }
  return Catch::Session().run(argc, argv);
}
