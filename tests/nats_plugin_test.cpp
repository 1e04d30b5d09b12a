// NATS-specific behaviour of weft-kv-nats.so that the shared contract suite
// (kv_contract_test.cpp) cannot express: nats.url parsing, the stream settings
// of created buckets, interoperation with agents writing JetStream directly,
// TLS never being downgraded, no late writes after a server crash, and the
// watch noticing a re-created stream. Each case starts its own nats-server
// (tests/support), so none of them needs WEFT_TEST_NATS_URL.
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nats_common.h"
#include "nats_connection.h"
#include "nats_feed.h"
#include "nats_url.h"
#include "nats_version.h"
#include "support/net.h"
#include "support/servers.h"
#include "weft/plugin_loader.h"

namespace {

using namespace weft;
using weft::nats_plugin::parseNatsUrl;
using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

bool waitUntil(const std::function<bool()>& pred, int ms) {
  auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

struct LogSink {
  std::mutex mu;
  std::vector<std::string> lines;
  bool any(const std::function<bool(const std::string&)>& pred) {
    std::lock_guard<std::mutex> lock(mu);
    return std::any_of(lines.begin(), lines.end(), pred);
  }
};

std::shared_ptr<KvStore> loadNats(std::map<std::string, std::string> settings,
                                  std::shared_ptr<LogSink> logs = nullptr) {
  PluginContext context;
  context.settings = std::move(settings);
  context.settings.emplace("kv.timeoutMs", "2000");
  context.settings.emplace("kv.reconnectWaitMs", "200");
  context.log = [logs](LogLevel, const std::string& message) {
    if (!logs) return;
    std::lock_guard<std::mutex> lock(logs->mu);
    logs->lines.push_back(message);
  };
  return loadKvStore("nats", "", context);
}

std::string createError(const std::map<std::string, std::string>& settings) {
  try {
    loadNats(settings);
  } catch (const PluginLoadError& e) {
    CHECK(e.kind() == PluginErrorKind::CreateFailed);
    return e.what();
  }
  return "";
}

// A plain nats.c connection, for checks behind the plugin's back and for
// writing the way agents do.
struct RawNats {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit RawNats(const std::string& url) {
    REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  }
  ~RawNats() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
};

// Applies a watch feed (Reset included) to a map, as a consumer would.
struct WatchView {
  std::mutex mu;
  std::map<std::string, std::string> current, staged;
  bool resetting = false;
  int caughtUps = 0, resets = 0;
  void apply(const WatchEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    auto& target = resetting ? staged : current;
    switch (e.type) {
      case WatchEvent::Type::Put:
        target[e.key] = e.value;
        break;
      case WatchEvent::Type::Delete:
        target.erase(e.key);
        break;
      case WatchEvent::Type::Reset:
        resetting = true;
        staged.clear();
        ++resets;
        break;
      case WatchEvent::Type::CaughtUp:
        if (resetting) current.swap(staged);
        resetting = false;
        ++caughtUps;
        break;
    }
  }
  bool equals(const std::map<std::string, std::string>& expected) {
    std::lock_guard<std::mutex> lock(mu);
    return current == expected;
  }
};

std::map<std::string, std::string> asMap(const std::vector<KvEntry>& entries) {
  std::map<std::string, std::string> out;
  for (const auto& e : entries) out[e.key] = e.value;
  return out;
}

}  // namespace

TEST_CASE("nats.url forms, credentials and schemes", "[unit]") {
  auto bare = parseNatsUrl("127.0.0.1:4222");
  REQUIRE(bare.isOk());
  CHECK(bare->urls == std::vector<std::string>{"nats://127.0.0.1:4222"});
  CHECK_FALSE(bare->secure);

  auto creds = parseNatsUrl("nats://al%40ice:p%3Ass@h:4222");
  REQUIRE(creds.isOk());
  CHECK(creds->urls[0] == "nats://h:4222");  // credentials never reach nats.c's URL
  CHECK(creds->user == "al@ice");
  CHECK(creds->password == "p:ss");
  CHECK(creds->redactedList() == "nats://al@ice:***@h:4222");

  auto token = parseNatsUrl("tls://s3cret@h");
  REQUIRE(token.isOk());
  CHECK(token->secure);
  CHECK(token->token == "s3cret");
  CHECK(token->redactedList().find("s3cret") == std::string::npos);

  auto list = parseNatsUrl("nats://a:1, tls://b:2");
  REQUIRE(list.isOk());
  CHECK(list->urls.size() == 2);
  CHECK(list->secure);  // one tls:// URL makes TLS mandatory for all

  for (std::string scheme : {"ws", "wss", "http", "redis"}) {
    auto r = parseNatsUrl(scheme + "://h:1");
    CHECK(r.code() == Code::InvalidArgument);
    CHECK(r.status().message() == "unsupported NATS URL scheme: " + scheme);
  }
  for (std::string bad : {"", "nats://", "nats://h:0", "nats://h:65536", "nats://h:x",
                          "nats://h/path", "nats://u:%zz@h"}) {
    INFO(bad);
    CHECK(parseNatsUrl(bad).code() == Code::InvalidArgument);
  }
  CHECK(parseNatsUrl("nats://u:%zz@h").status().message().find("%zz") == std::string::npos);
  CHECK(weft::nats_plugin::redactNatsUrl("nats://u:pw@h:1,nats://tok@h:2") ==
        "nats://u:***@h:1,nats://***@h:2");
}

TEST_CASE("keys NATS can represent, and prefix filters", "[unit]") {
  using weft::nats_plugin::isValidKey;
  using weft::nats_plugin::keyFilterForPrefix;
  for (std::string ok : {"a", "A.b-c_d=e/f", "0", "guid-1234"}) CHECK(isValidKey(ok));
  for (std::string bad : {"", " ", "a b", "é", "a*", "a>", ".a", "a.", "a..b", "a\tb"}) {
    INFO(bad);
    CHECK_FALSE(isValidKey(bad));
  }
  CHECK(keyFilterForPrefix("") == "");
  CHECK(keyFilterForPrefix("abc") == "");  // no token boundary: whole bucket
  CHECK(keyFilterForPrefix("p.") == "p.>");
  CHECK(keyFilterForPrefix("p.q.ab") == "p.q.>");
  CHECK(keyFilterForPrefix("a b.c") == "");
}

TEST_CASE("configuration errors fail create() with a readable message", "[config]") {
  // The loader wraps the plugin's message; the plugin's own text ends it.
  CHECK(
      createError({{"nats.url", "ws://127.0.0.1:4222"}}).find("unsupported NATS URL scheme: ws") !=
      std::string::npos);
  CHECK(createError({{"nats.url", "wss://127.0.0.1:4222"}})
            .find("unsupported NATS URL scheme: wss") != std::string::npos);
  CHECK(createError({{"nats.url", "nats://h:1"}, {"kv.timeoutMs", "soon"}}).find("kv.timeoutMs") !=
        std::string::npos);
  CHECK(createError({{"nats.url", "nats://h:1"}, {"kv.reconnectWaitMs", "0"}})
            .find("kv.reconnectWaitMs") != std::string::npos);
}

TEST_CASE("create() succeeds without a server, and the store connects when one appears",
          "[connect]") {
  weft::testing::NatsServer probe;  // only to reserve a free port and a data dir
  const int port = probe.port();
  probe.kill9();
  auto store = loadNats({{"nats.url", "nats://127.0.0.1:" + std::to_string(port)}});
  CHECK(store->state() == ConnectionState::Connecting);
  auto start = Clock::now();
  CHECK(store->openBucket("b", {}).code() == Code::Unavailable);
  CHECK(store->ping().code() == Code::Unavailable);
  CHECK(store->messaging()->publish("a.b", "x").code() == Code::Unavailable);
  CHECK(msSince(start) < 50);
  probe.restart();
  REQUIRE(waitUntil([&] { return store->state() == ConnectionState::Connected; }, 10000));
  CHECK(store->ping().isOk());
  auto bucket = store->openBucket("b", {});
  REQUIRE(bucket.isOk());
  CHECK((*bucket)->put("k", "v").isOk());
}

TEST_CASE("tls:// is never downgraded to plain NATS, and logs hide credentials", "[connect]") {
  weft::testing::NatsServer server;  // plain, no TLS
  auto logs = std::make_shared<LogSink>();
  auto store = loadNats(
      {{"nats.url", "tls://alice:pa55word@127.0.0.1:" + std::to_string(server.port())}}, logs);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  CHECK(store->state() != ConnectionState::Connected);
  CHECK(store->openBucket("b", {}).code() == Code::Unavailable);
  CHECK_FALSE(
      logs->any([](const std::string& l) { return l.find("pa55word") != std::string::npos; }));
  CHECK(logs->any([](const std::string& l) { return l.find("alice:***@") != std::string::npos; }));
}

TEST_CASE("buckets get the agent stream settings and interoperate with direct writers",
          "[buckets]") {
  weft::testing::NatsServer server;
  auto store = loadNats({{"nats.url", server.url()}});
  RawNats raw(server.url());

  BucketOptions registry;
  registry.history = 0;
  registry.maxAgeMs = 86400000;
  auto reg = store->openBucket("agent-registry", registry);
  REQUIRE(reg.isOk());
  jsStreamInfo* si = nullptr;
  REQUIRE(js_GetStreamInfo(&si, raw.js, "KV_agent-registry", nullptr, nullptr) == NATS_OK);
  const jsStreamConfig* c = si->Config;
  REQUIRE(c->SubjectsLen == 1);
  CHECK(std::string(c->Subjects[0]) == "$KV.agent-registry.>");
  CHECK(c->Storage == js_FileStorage);
  CHECK(c->MaxAge == 86400000LL * 1000000LL);  // nanoseconds
  CHECK(c->MaxMsgsPerSubject == -1);
  CHECK(c->AllowRollup);
  CHECK(c->DenyDelete);
  CHECK(c->AllowDirect);
  CHECK(c->Discard == js_DiscardOld);
  jsStreamInfo_Destroy(si);

  // An agent writes its entry straight to JetStream, key = guid, unencoded.
  const std::string guid = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab";
  const std::string subject = "$KV.agent-registry." + guid;
  REQUIRE(js_Publish(nullptr, raw.js, subject.c_str(), "{\"guid\":1}", 10, nullptr, nullptr) ==
          NATS_OK);
  auto got = (*reg)->get(guid);
  REQUIRE(got.isOk());
  CHECK(got->value == "{\"guid\":1}");
  auto listed = (*reg)->keys("");
  REQUIRE(listed.isOk());
  CHECK(*listed == std::vector<std::string>{guid});
  // Unlimited history: every revision stays in the stream.
  REQUIRE((*reg)->update(guid, "{\"guid\":2}", got->revision).isOk());
  REQUIRE(js_GetStreamInfo(&si, raw.js, "KV_agent-registry", nullptr, nullptr) == NATS_OK);
  CHECK(si->State.Msgs == 2);
  jsStreamInfo_Destroy(si);

  // A bucket created by nats.c's own KV API opens fine, and its delete
  // markers (kvStore_Delete) read as absent.
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = "made-by-agent";
  kvStore* kv = nullptr;
  REQUIRE(js_CreateKeyValue(&kv, raw.js, &kc) == NATS_OK);
  uint64_t rev = 0;
  REQUIRE(kvStore_PutString(&rev, kv, "x", "1") == NATS_OK);
  REQUIRE(kvStore_PutString(&rev, kv, "y", "2") == NATS_OK);
  REQUIRE(kvStore_Delete(kv, "y") == NATS_OK);
  auto theirs = store->openBucket("made-by-agent", {});
  REQUIRE(theirs.isOk());
  CHECK((*theirs)->get("x")->value == "1");
  CHECK((*theirs)->get("y").code() == Code::NotFound);
  CHECK((*theirs)->keys("").value() == std::vector<std::string>{"x"});
  // ... and what the plugin writes reads back through nats.c's KV API.
  REQUIRE((*theirs)->erase("x").isOk());
  REQUIRE((*theirs)->create("z", "3").isOk());
  kvEntry* e = nullptr;
  CHECK(kvStore_Get(&e, kv, "x") == NATS_NOT_FOUND);
  REQUIRE(kvStore_Get(&e, kv, "z") == NATS_OK);
  CHECK(std::string(kvEntry_ValueString(e)) == "3");
  kvEntry_Destroy(e);
  kvStore_Destroy(kv);

  // A short max age: the duplicate window must shrink with it.
  BucketOptions shortLived;
  shortLived.maxAgeMs = 500;
  CHECK(store->openBucket("short-lived", shortLived).isOk());
  // A bucket the plugin created (history 1) is a regular bucket for nats.c.
  REQUIRE(js_KeyValue(&kv, raw.js, "short-lived") == NATS_OK);
  REQUIRE(kvStore_PutString(&rev, kv, "from-nats-c", "1") == NATS_OK);
  kvStore_Destroy(kv);
  shortLived.history = 0;
  CHECK(store->openBucket("short-lived-history", shortLived).isOk());
}

TEST_CASE("messaging: core publish and JetStream publish", "[messaging]") {
  weft::testing::NatsServer server;
  auto store = loadNats({{"nats.url", server.url()}});
  RawNats raw(server.url());
  KvMessaging* messaging = store->messaging();
  REQUIRE(messaging != nullptr);

  natsSubscription* sub = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&sub, raw.nc, "loom.p.agents.*.shutdown") == NATS_OK);
  REQUIRE(natsConnection_Flush(raw.nc) == NATS_OK);
  CHECK(messaging->publish("loom.p.agents.g1.shutdown", "{}").isOk());
  natsMsg* msg = nullptr;
  REQUIRE(natsSubscription_NextMsg(&msg, sub, 2000) == NATS_OK);
  natsMsg_Destroy(msg);
  natsSubscription_Destroy(sub);
  CHECK(messaging->publish("has space", "x").code() == Code::InvalidArgument);
  CHECK(messaging->publish("wild.*", "x").code() == Code::InvalidArgument);

  CHECK(messaging->publishJetStream("global.agent.g1", "x").code() == Code::NotFound);
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  const char* subjects[] = {"global.agent.>"};
  sc.Name = "INBOXES";
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  REQUIRE(js_AddStream(nullptr, raw.js, &sc, nullptr, nullptr) == NATS_OK);
  CHECK(messaging->publishJetStream("global.agent.g1", "x").isOk());
}

TEST_CASE("kill -9 of the server under write load: nothing lost, no late writes",
          "[outage][slow]") {
  weft::testing::NatsServer server;
  auto store = loadNats({{"nats.url", server.url()}});
  auto opened = store->openBucket("load", {});
  REQUIRE(opened.isOk());
  auto bucket = *opened;
  WatchView view;
  auto watch = bucket->watch("", [&](const WatchEvent& e) { view.apply(e); });
  REQUIRE(watch.isOk());

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, Code> outcome;
  double slowestFailureMs = 0;
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      std::string key = "w" + std::to_string(i);
      auto start = Clock::now();
      auto r = bucket->put(key, "x");
      std::lock_guard<std::mutex> lock(mu);
      outcome[key] = r.isOk() ? Code::Ok : r.code();
      if (!r.isOk()) {
        slowestFailureMs = std::max(slowestFailureMs, msSince(start));
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  server.kill9();
  REQUIRE(waitUntil([&] { return store->state() == ConnectionState::Disconnected; }, 3000));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  server.restart();
  REQUIRE(waitUntil([&] { return store->state() == ConnectionState::Connected; }, 10000));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  writer.join();

  auto scan = bucket->scan("");
  REQUIRE(scan.isOk());
  std::set<std::string> present;
  for (const auto& e : *scan) present.insert(e.key);
  int ackedLost = 0, failedPresent = 0, failed = 0, acked = 0, indeterminate = 0;
  for (const auto& [key, code] : outcome) {
    bool there = present.count(key) > 0;
    if (code == Code::Ok) {
      ++acked;
      if (!there) ++ackedLost;
    } else if (code == Code::Unavailable) {
      ++failed;
      if (there) ++failedPresent;  // parked in the reconnect buffer and replayed
    } else {
      ++indeterminate;  // Timeout: may or may not have been applied
    }
  }
  INFO("acked " << acked << ", failed fast " << failed << ", indeterminate " << indeterminate
                << ", slowest failure " << slowestFailureMs << " ms");
  CHECK(acked > 0);
  CHECK(failed > 0);
  CHECK(ackedLost == 0);
  CHECK(failedPresent == 0);
  CHECK(slowestFailureMs < 2000 + 500);
  // The watch went on across the crash and matches the bucket.
  auto expected = asMap(*scan);
  CHECK(waitUntil([&] { return view.equals(expected); }, 15000));
}

TEST_CASE("a watch notices a deleted and re-created stream and replays", "[watch][slow]") {
  weft::testing::NatsServer server;
  auto store = loadNats({{"nats.url", server.url()}});
  auto bucket = *store->openBucket("recreated", {});
  REQUIRE(bucket->put("a", "1").isOk());
  REQUIRE(bucket->put("b", "2").isOk());
  WatchView view;
  auto watch = bucket->watch("", [&](const WatchEvent& e) { view.apply(e); });
  REQUIRE(watch.isOk());
  REQUIRE(waitUntil([&] { return view.equals({{"a", "1"}, {"b", "2"}}); }, 3000));

  RawNats raw(server.url());
  REQUIRE(js_DeleteStream(raw.js, "KV_recreated", nullptr, nullptr) == NATS_OK);
  auto other = loadNats({{"nats.url", server.url()}});
  auto again = *other->openBucket("recreated", {});
  REQUIRE(again->put("c", "3").isOk());  // sequence 1 of the new stream
  // nats.c reports the consumer's missed heartbeats after ~20 s; then Reset.
  CHECK(waitUntil([&] { return view.equals({{"c", "3"}}); }, 40000));
  std::lock_guard<std::mutex> lock(view.mu);
  CHECK(view.resets == 1);
}

TEST_CASE("a re-created stream has another resume token, and a saved position is refused",
          "[watch][resume]") {
  weft::testing::NatsServer server;
  auto store = loadNats({{"nats.url", server.url()}});
  auto bucket = *store->openBucket("reborn", {});
  REQUIRE(bucket->put("a", "1").isOk());
  auto at = bucket->put("b", "2");
  REQUIRE(at.isOk());
  auto token = bucket->resumeToken();
  REQUIRE(token.isOk());
  CHECK(token->rfind("KV_reborn@", 0) == 0);

  RawNats raw(server.url());
  REQUIRE(js_DeleteStream(raw.js, "KV_reborn", nullptr, nullptr) == NATS_OK);
  auto other = loadNats({{"nats.url", server.url()}});
  auto again = *other->openBucket("reborn", {});
  for (int i = 0; i < 5; ++i) REQUIRE(again->put("k" + std::to_string(i), "v").isOk());
  // The new stream is past the saved revision, yet it is not the same one.
  auto newToken = again->resumeToken();
  REQUIRE(newToken.isOk());
  CHECK(*newToken != *token);
  CHECK_FALSE(newToken->empty());
  auto refused = again->watchFrom("", *token, *at, [](const WatchEvent&) {});
  CHECK(refused.code() == Code::NotFound);
  // With its own token it resumes: only what came after.
  std::mutex mu;
  std::vector<std::string> keys;
  bool caughtUp = false;
  auto resumed = again->watchFrom("", *newToken, 3, [&](const WatchEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (e.type == WatchEvent::Type::CaughtUp) caughtUp = true;
    if (e.type == WatchEvent::Type::Put) keys.push_back(e.key);
  });
  REQUIRE(resumed.isOk());
  REQUIRE(waitUntil([&] { std::lock_guard<std::mutex> lock(mu); return caughtUp; }, 5000));
  std::lock_guard<std::mutex> lock(mu);
  CHECK(keys == std::vector<std::string>{"k3", "k4"});
}

// A live feed that went silent while its stream moved on is replaced by one
// resuming after the last message read (nats_watch.cpp); these are the two
// pieces that takes, against a real server.
TEST_CASE("a key feed knows when it is behind its stream and resumes without a gap",
          "[watch]") {
  using namespace weft::nats_plugin;
  weft::testing::NatsServer server;
  auto store = loadNats({{"nats.url", server.url()}});
  auto bucket = *store->openBucket("resumed", {});
  REQUIRE(bucket->put("a", "1").isOk());
  REQUIRE(bucket->put("b", "2").isOk());

  ConnectionSettings settings;
  settings.servers = *parseNatsUrl(server.url());
  auto conn = *NatsConnection::open(settings);
  REQUIRE(waitUntil([&] { return conn->checkAvailable().isOk(); }, 5000));
  BucketRef ref;
  ref.name = "resumed";
  ref.stream = "KV_resumed";
  ref.subjectPrefix = "$KV.resumed.";

  // Reads entries until `want` keys arrived or a second of silence.
  auto read = [](KeyFeed& feed, size_t want, bool* caughtUp) {
    std::vector<std::pair<std::string, uint64_t>> got;
    FeedEntry entry;
    while (got.size() < want) {
      auto ev = feed.next(1000, &entry);
      REQUIRE(ev.isOk());
      if (*ev == KeyFeed::Event::Idle) break;
      if (*ev == KeyFeed::Event::CaughtUp) {
        if (caughtUp) *caughtUp = true;
        continue;
      }
      got.emplace_back(entry.key, entry.revision);
    }
    return got;
  };

  auto feed = KeyFeed::open(conn, ref, "", false, Deadline(2000));
  REQUIRE(feed.isOk());
  bool caughtUp = false;
  auto replayed = read(**feed, 2, &caughtUp);
  REQUIRE(replayed.size() == 2);
  CHECK(replayed.back().second == 2);
  FeedEntry entry;
  if (!caughtUp) REQUIRE(*(*feed)->next(1000, &entry) == KeyFeed::Event::CaughtUp);
  CHECK((*feed)->lastStreamSeq() == 2);
  CHECK(*(*feed)->behind(Deadline(2000)) == false);

  // Written but not read yet: the stream is ahead of what the feed read.
  REQUIRE(bucket->put("c", "3").isOk());
  REQUIRE(bucket->erase("a").isOk());
  CHECK(*(*feed)->behind(Deadline(2000)) == true);

  // A feed resuming after revision 2 delivers exactly what came later, in
  // order, delete marker included, and no second CaughtUp.
  auto resumed = KeyFeed::resume(conn, ref, "", 2, Deadline(2000));
  REQUIRE(resumed.isOk());
  CHECK((*resumed)->caughtUp());
  bool caughtUpAgain = false;
  auto later = read(**resumed, 2, &caughtUpAgain);
  REQUIRE(later.size() == 2);
  CHECK(later[0] == std::make_pair(std::string("c"), uint64_t{3}));
  CHECK(later[1].first == "a");
  CHECK(later[1].second == 4);
  CHECK_FALSE(caughtUpAgain);
  CHECK(*(*resumed)->behind(Deadline(2000)) == false);
  REQUIRE(bucket->put("d", "4").isOk());
  auto live = read(**resumed, 1, nullptr);
  REQUIRE(live.size() == 1);
  CHECK(live[0] == std::make_pair(std::string("d"), uint64_t{5}));
  CHECK(read(**resumed, 1, nullptr).empty());

  // An empty bucket counts from the stream's last sequence, so a purged
  // stream does not look like one the feed is behind.
  auto empty = *store->openBucket("resumed-empty", {});
  REQUIRE(empty->put("x", "1").isOk());
  REQUIRE(empty->erase("x").isOk());
  RawNats raw(server.url());
  REQUIRE(js_PurgeStream(raw.js, "KV_resumed-empty", nullptr, nullptr) == NATS_OK);
  BucketRef emptyRef = ref;
  emptyRef.name = "resumed-empty";
  emptyRef.stream = "KV_resumed-empty";
  emptyRef.subjectPrefix = "$KV.resumed-empty.";
  auto quiet = KeyFeed::open(conn, emptyRef, "", false, Deadline(2000));
  REQUIRE(quiet.isOk());
  CHECK(*(*quiet)->next(1000, &entry) == KeyFeed::Event::CaughtUp);
  CHECK(*(*quiet)->behind(Deadline(2000)) == false);
  conn->close();
}

// Feeds retired while their messages still stream in: nats.c 3.4 could free
// a subscription its read thread was handing a message to (a crash seen
// after a stalled server came back). ~KeyFeed unsubscribes and lets a round
// trip pass first; this retires 150 feeds in mid-stream while a writer keeps
// the stream busy, and checks each delivered in order without a gap.
TEST_CASE("key feeds retired in mid-stream: no crash, each read in order", "[watch]") {
  using namespace weft::nats_plugin;
  weft::testing::NatsServer server;
  auto store = loadNats({{"nats.url", server.url()}});
  auto bucket = *store->openBucket("retired", {});
  // Every key is new, so no message is superseded and an unfiltered feed
  // sees every sequence.
  for (int i = 0; i < 2000; ++i) REQUIRE(bucket->put("k" + std::to_string(i), "v").isOk());

  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    while (!stop.load()) {
      if (bucket->put("w" + std::to_string(written.load()), "v").isOk()) ++written;
    }
  });

  ConnectionSettings settings;
  settings.servers = *parseNatsUrl(server.url());
  auto conn = *NatsConnection::open(settings);
  REQUIRE(waitUntil([&] { return conn->checkAvailable().isOk(); }, 5000));
  BucketRef ref;
  ref.name = "retired";
  ref.stream = "KV_retired";
  ref.subjectPrefix = "$KV.retired.";

  int feeds = 0, outOfOrder = 0, gaps = 0;
  uint64_t totalRead = 0;
  for (int round = 0; round < 150; ++round) {
    // Resume from an early sequence: thousands of messages are on their way
    // when the feed is dropped after a handful.
    auto feed = KeyFeed::resume(conn, ref, "", 1 + static_cast<uint64_t>(round), Deadline(2000));
    REQUIRE(feed.isOk());
    ++feeds;
    uint64_t last = 1 + static_cast<uint64_t>(round);
    FeedEntry entry;
    for (int n = 0; n < 5 + round % 20; ++n) {
      auto ev = (*feed)->next(1000, &entry);
      REQUIRE(ev.isOk());
      if (*ev != KeyFeed::Event::Entry) continue;
      if (entry.revision <= last) ++outOfOrder;
      if (entry.revision != last + 1) ++gaps;  // unfiltered: every sequence comes
      last = entry.revision;
      ++totalRead;
    }
  }  // each feed is retired here, mid-stream
  stop = true;
  writer.join();
  INFO("feeds " << feeds << ", entries read " << totalRead << ", writes meanwhile " << written);
  CHECK(feeds == 150);
  CHECK(totalRead >= 150 * 5);
  CHECK(outOfOrder == 0);
  CHECK(gaps == 0);
  CHECK(written > 0);
  conn->close();
}

// A live watch whose server pauses (SIGSTOP) for longer than its stall limit
// gets the backlog when the server resumes; that backlog on the wire is not a
// stalled feed, so the feed is kept (no "resumed after revision") and every
// write arrives.
TEST_CASE("a server pause does not make a live watch replace its feed", "[watch][slow]") {
  weft::testing::NatsServer server;
  auto logs = std::make_shared<LogSink>();
  auto store = loadNats({{"nats.url", server.url()}, {"kv.timeoutMs", "1000"}}, logs);
  auto bucket = *store->openBucket("paused", {});
  REQUIRE(bucket->put("seed", "0").isOk());
  WatchView view;
  auto watch = bucket->watch("", [&](const WatchEvent& e) { view.apply(e); });
  REQUIRE(watch.isOk());
  REQUIRE(waitUntil([&] { return view.equals({{"seed", "0"}}); }, 3000));

  // Writers keep going through the pause: their writes time out (unknown
  // outcome) and land when the server resumes.
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        if (bucket->put("t" + std::to_string(t) + "-" + std::to_string(i), "x").isOk()) ++acked;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  server.pause();
  std::this_thread::sleep_for(std::chrono::milliseconds(6000));  // > the 5 s stall limit
  server.resume();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (auto& w : writers) w.join();

  // Every key the server holds arrives, with nothing extra.
  auto scanned = bucket->scan("");
  REQUIRE(scanned.isOk());
  std::map<std::string, std::string> expected;
  for (const auto& e : *scanned) expected[e.key] = e.value;
  CHECK(waitUntil([&] { return view.equals(expected); }, 10000));
  CHECK(acked > 0);
  std::lock_guard<std::mutex> lock(logs->mu);
  int replaced = 0;
  for (const auto& line : logs->lines) {
    if (line.find("resumed after revision") != std::string::npos) ++replaced;
  }
  INFO("stored keys " << expected.size() << ", acknowledged writes " << acked);
  CHECK(replaced == 0);
  std::lock_guard<std::mutex> viewLock(view.mu);
  CHECK(view.resets == 0);
}

// A server-side error reply is an outage of the server side (503), never an
// internal error of weftd (500): what gets and writes see while a replicated
// stream elects a leader.
TEST_CASE("server error replies and cluster unavailability map to Unavailable", "[unit]") {
  using namespace weft::nats_plugin;
  CHECK(fromNats(NATS_ERR, "get").code() == Code::Unavailable);
  CHECK(fromJetStream(NATS_ERR, JSClusterNotAvailErr, "get", "JetStream system temporarily "
                      "unavailable").code() == Code::Unavailable);
  CHECK(fromJetStream(NATS_ERR, JSStreamOfflineErr, "get", nullptr).code() == Code::Unavailable);
  const Status detailed = fromJetStream(NATS_ERR, JSStreamNotFoundErr, "get", "stream not found");
  CHECK(detailed.message().find("stream not found") != std::string::npos);
  CHECK(fromNats(NATS_INVALID_ARG, "put").code() == Code::InvalidArgument);
  CHECK(fromNats(NATS_TIMEOUT, "put").code() == Code::Timeout);
}

// JetStream's "out of storage" answers (here: the server's max_file_store
// limit, the same reply a server gives when its disk budget is used up) must
// reach weftd as Unavailable with a plain message, never as Internal (500).
TEST_CASE("a server out of JetStream storage makes writes Unavailable, reads keep working",
          "[limits]") {
  weft::testing::TempDir dir("weft-nats-limits-");
  {
    std::FILE* conf = std::fopen(dir.file("limits.conf").c_str(), "w");
    REQUIRE(conf != nullptr);
    std::fputs("jetstream { max_file_store: 1048576 }\n", conf);
    std::fclose(conf);
  }
  weft::testing::ServerOptions options;
  options.extraArgs = {"-c", dir.file("limits.conf")};
  weft::testing::NatsServer server(options);
  auto store = loadNats({{"nats.url", server.url()}});
  REQUIRE(waitUntil([&] { return store->ping().isOk(); }, 10000));
  auto opened = store->openBucket("limits", BucketOptions{});
  REQUIRE(opened.isOk());
  auto bucket = opened.value();

  const std::string value(32 * 1024, 'x');
  Status failure = Status::ok();
  int stored = 0;
  for (int i = 0; i < 200 && failure.isOk(); ++i) {  // 6.4 MiB at most, over the 1 MiB limit
    auto put = bucket->put("k" + std::to_string(i), value);
    if (put.isOk()) {
      ++stored;
    } else {
      failure = put.status();
    }
  }
  INFO(failure.toString() << " after " << stored << " values");
  REQUIRE_FALSE(failure.isOk());
  CHECK(failure.code() == Code::Unavailable);
  CHECK(failure.message().find("out of storage") != std::string::npos);
  CHECK(stored > 0);
  // What was stored stays readable.
  auto first = bucket->get("k0");
  REQUIRE(first.isOk());
  CHECK(first.value().value == value);
  // A delete is a write too in JetStream (a tombstone message).
  const Status erased = bucket->erase("k0");
  INFO(erased.toString());
  CHECK(erased.code() == Code::Unavailable);
  // Room again once the stream is purged behind the plugin's back: writes work
  // without reconnecting.
  RawNats raw(server.url());
  jsErrCode code = static_cast<jsErrCode>(0);
  REQUIRE(js_PurgeStream(raw.js, "KV_limits", nullptr, &code) == NATS_OK);
  CHECK(waitUntil([&] { return bucket->put("again", "v").isOk(); }, 10000));
}

// --- replicated buckets --------------------------------------------

TEST_CASE("server versions: parsing, the INFO line, and which servers need the guard", "[unit]") {
  using namespace weft::nats_plugin;
  auto v = parseServerVersion("2.9.10");
  REQUIRE(v);
  CHECK(v->major == 2);
  CHECK(v->minor == 9);
  CHECK(v->patch == 10);
  CHECK(parseServerVersion("v2.10.4-beta.1")->minor == 10);
  CHECK_FALSE(parseServerVersion(""));
  CHECK_FALSE(parseServerVersion("2.9"));
  CHECK_FALSE(parseServerVersion("two.nine.ten"));
  CHECK_FALSE(hasReplicatedCasFix(*parseServerVersion("2.9.10")));
  CHECK_FALSE(hasReplicatedCasFix(*parseServerVersion("2.9.20")));
  CHECK(hasReplicatedCasFix(*parseServerVersion("2.9.21")));
  CHECK(hasReplicatedCasFix(*parseServerVersion("2.10.0")));
  CHECK(hasReplicatedCasFix(*parseServerVersion("3.0.0")));
  CHECK_FALSE(hasReplicatedCasFix(*parseServerVersion("1.99.99")));
  auto info = versionFromInfoLine(
      R"(INFO {"server_id":"X","server_name":"n1","version":"2.9.10","proto":1,"jetstream":true})");
  REQUIRE(info);
  CHECK(info->text == "2.9.10");
  CHECK_FALSE(versionFromInfoLine(R"(INFO {"server_id":"X"})"));
  CHECK_FALSE(versionFromInfoLine("-ERR 'Authorization Violation'"));
  std::string host;
  int port = 0;
  REQUIRE(splitHostPort("nats://user:pw@127.0.0.1:4222", &host, &port));
  CHECK(host == "127.0.0.1");
  CHECK(port == 4222);
  CHECK_FALSE(splitHostPort("nats://127.0.0.1", &host, &port));
}

TEST_CASE("the server's version is read from a real nats-server", "[connect]") {
  weft::testing::NatsServer server;
  auto version = weft::nats_plugin::probeServerVersion("127.0.0.1", server.port(), 2000);
  REQUIRE(version);
  INFO("nats-server reports " << version->text);
  CHECK(version->major == 2);
  // Nothing listens on a port that was just free: no version, promptly.
  const int closed = weft::testing::findFreePort();
  auto start = Clock::now();
  CHECK_FALSE(weft::nats_plugin::probeServerVersion("127.0.0.1", closed, 2000));
  CHECK(msSince(start) < 2500);
}

namespace {

// Racers with one expectation each round; returns how many rounds had more
// than one winner (a lost update) out of rounds.
int doubleWinRounds(KvBucket& bucket, int rounds, int racers) {
  int doubled = 0;
  for (int round = 0; round < rounds; ++round) {
    const std::string key = "race.k" + std::to_string(round % 4);
    auto current = bucket.get(key);
    uint64_t expected;
    if (current.isOk()) {
      expected = current->revision;
    } else {
      auto created = bucket.put(key, "seed");
      REQUIRE(created.isOk());
      expected = *created;
    }
    std::atomic<int> winners{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int r = 0; r < racers; ++r) {
      threads.emplace_back([&, r] {
        while (!go.load()) std::this_thread::yield();
        if (bucket.update(key, "racer " + std::to_string(r), expected).isOk()) ++winners;
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    if (winners.load() > 1) ++doubled;
  }
  return doubled;
}

}  // namespace

TEST_CASE("compare-and-set on a three-replica bucket: guarded is exclusive, native is not",
          "[cluster]") {
  const char* url = std::getenv("WEFT_TEST_NATS_CLUSTER_URL");
  if (!url || !*url) FAIL("WEFT_TEST_NATS_CLUSTER_URL is not set: scripts/test starts a cluster");
  auto logs = std::make_shared<LogSink>();
  auto guarded = loadNats({{"nats.url", url}, {"nats.replicas", "3"}}, logs);
  auto native = loadNats({{"nats.url", url}, {"nats.replicas", "3"}, {"nats.casGuard", "off"}});
  const std::string name =
      "race-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
  std::shared_ptr<KvBucket> a, b;
  REQUIRE(waitUntil(
      [&] {
        auto r = guarded->openBucket(name, {});
        if (r) a = *r;
        return r.isOk();
      },
      20000));
  auto r = native->openBucket(name, {});
  REQUIRE(r.isOk());
  b = *r;
  CHECK(logs->any([&](const std::string& line) {
    return line.find("opened NATS KV bucket " + name + " (3 replica(s), compare-and-set guarded") !=
           std::string::npos;
  }));
  CHECK(logs->any([](const std::string& line) { return line.find("nats-server 2.") == 0; }));

  // The positive control first: the native check lets several racers win.
  int nativeDoubles = 0;
  for (int attempt = 0; attempt < 5 && nativeDoubles == 0; ++attempt) {
    nativeDoubles += doubleWinRounds(*b, 40, 8);
  }
  std::printf("[nats_plugin] R3 native compare-and-set: rounds with several winners: %d\n",
              nativeDoubles);
  CHECK(nativeDoubles > 0);

  const int guardedDoubles = doubleWinRounds(*a, 200, 8);
  std::printf("[nats_plugin] R3 guarded compare-and-set: rounds with several winners: %d of 200\n",
              guardedDoubles);
  CHECK(guardedDoubles == 0);
}
