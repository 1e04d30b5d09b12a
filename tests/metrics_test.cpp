// Metrics (docs/api.md §2.1): the registry and its Prometheus text output, the
// measuring KvStore decorator, weftd's catalogue, and GET /metrics of a real
// weftd (sqlite backend, child process) parsed line by line.
#include "weft/metrics.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "metrics/weft_metrics.h"
#include "support/temp_dir.h"
#include "support/weftd.h"
#include "weft/instrumented_kv.h"
#include "weft/log.h"
#include "weft/memory_kv.h"

using namespace weft;
using weft::testing::HttpResponse;
using weft::testing::TempDir;
using weft::testing::Weftd;
using weft::testing::WeftdOptions;

namespace {

const bool kQuietLog = [] {
  log::setLevel(LogLevel::Warn);
  return true;
}();

// ---- a strict parser of the text format 0.0.4 ---------------------------------

struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> help;
  std::map<std::string, std::string> type;
  std::vector<std::string> familyOrder;
  std::vector<ParsedSample> samples;

  // The sample with exactly these labels, if any.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& s : samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nullopt;
  }
  double valueOr0(const std::string& name,
                  const std::map<std::string, std::string>& labels = {}) const {
    return value(name, labels).value_or(0);
  }
  std::vector<ParsedSample> family(const std::string& name) const {
    std::vector<ParsedSample> out;
    for (const auto& s : samples) {
      if (s.name == name) out.push_back(s);
    }
    return out;
  }
};

double parseValue(const std::string& text) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  size_t used = 0;
  const double v = std::stod(text, &used);
  if (used != text.size()) throw std::runtime_error("bad value: " + text);
  return v;
}

// Parses and validates: comments are HELP/TYPE, every sample belongs to a
// family declared before it, names and labels follow the grammar, label
// values are properly escaped. Any violation fails the test.
Exposition parseExposition(const std::string& text) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");
  Exposition out;
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    INFO("line: " << line);
    REQUIRE(!line.empty());
    if (line[0] == '#') {
      std::smatch m;
      static const std::regex kComment("# (HELP|TYPE) ([^ ]+) (.*)");
      REQUIRE(std::regex_match(line, m, kComment));
      REQUIRE(std::regex_match(m[2].str(), kName));
      if (m[1] == "HELP") {
        REQUIRE(out.help.count(m[2]) == 0);
        out.help[m[2]] = m[3];
      } else {
        REQUIRE(out.type.count(m[2]) == 0);
        REQUIRE((m[3] == "counter" || m[3] == "gauge" || m[3] == "histogram"));
        out.type[m[2]] = m[3];
        out.familyOrder.push_back(m[2]);
      }
      continue;
    }
    ParsedSample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    REQUIRE(std::regex_match(s.name, kName));
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line.at(i) != '}') {
        const size_t eq = line.find('=', i);
        REQUIRE(eq != std::string::npos);
        const std::string label = line.substr(i, eq - i);
        REQUIRE(std::regex_match(label, kLabelName));
        REQUIRE(line.at(eq + 1) == '"');
        std::string value;
        size_t j = eq + 2;
        for (;; ++j) {
          const char c = line.at(j);
          if (c == '"') break;
          if (c == '\\') {
            const char e = line.at(++j);
            REQUIRE((e == '\\' || e == '"' || e == 'n'));
            value += e == 'n' ? '\n' : e;
          } else {
            value += c;
          }
        }
        REQUIRE(s.labels.emplace(label, value).second);
        i = j + 1;
        if (line.at(i) == ',') ++i;
      }
      ++i;
    }
    REQUIRE(line.at(i) == ' ');
    s.value = parseValue(line.substr(i + 1));
    // The family: the sample name, or for histograms the name without suffix.
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string sx = suffix;
      if (!out.type.count(family) && family.size() > sx.size() &&
          family.compare(family.size() - sx.size(), sx.size(), sx) == 0) {
        family = family.substr(0, family.size() - sx.size());
      }
    }
    REQUIRE(out.type.count(family) == 1);
    REQUIRE(out.help.count(family) == 1);
    if (out.type[family] == "histogram") REQUIRE(s.name != family);
    out.samples.push_back(std::move(s));
  }
  return out;
}

// Checks every histogram series of a family: cumulative buckets in
// increasing `le` order ending with +Inf == _count.
void checkHistogram(const Exposition& e, const std::string& family) {
  std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> series;
  for (const auto& s : e.family(family + "_bucket")) {
    auto labels = s.labels;
    REQUIRE(labels.count("le") == 1);
    const double le = parseValue(labels["le"]);
    labels.erase("le");
    series[labels].emplace_back(le, s.value);
  }
  REQUIRE(!series.empty());
  for (auto& [labels, buckets] : series) {
    REQUIRE(buckets.size() == metrics::defaultDurationBuckets().size() + 1);
    for (size_t i = 0; i < metrics::defaultDurationBuckets().size(); ++i) {
      CHECK(buckets[i].first == Approx(metrics::defaultDurationBuckets()[i]));
    }
    CHECK(std::isinf(buckets.back().first));
    for (size_t i = 1; i < buckets.size(); ++i) CHECK(buckets[i].second >= buckets[i - 1].second);
    const auto count = e.value(family + "_count", labels);
    REQUIRE(count.has_value());
    CHECK(*count == buckets.back().second);
    CHECK(e.value(family + "_sum", labels).has_value());
  }
}

// The families of the docs/api.md §2.1 table, with their types and labels.
const std::map<std::string, std::pair<std::string, std::set<std::string>>> kCatalogue = {
    {"weft_http_requests_total", {"counter", {"method", "route", "status"}}},
    {"weft_http_request_duration_seconds", {"histogram", {"method", "route", "status"}}},
    {"weft_backend_operation_duration_seconds", {"histogram", {"backend", "op"}}},
    {"weft_backend_errors_total", {"counter", {"backend", "op", "kind"}}},
    {"weft_backend_up", {"gauge", {"backend"}}},
    {"weft_work_items", {"gauge", {"status"}}},
    {"weft_agents", {"gauge", {"status"}}},
    {"weft_agents_stale", {"gauge", {}}},
    {"weft_claims_waiting", {"gauge", {}}},
    {"weft_dlq_items", {"gauge", {}}},
    {"weft_idempotent_replays_total", {"counter", {}}},
    {"weft_stats_drift_total", {"counter", {"source"}}},
    {"weft_websocket_connections", {"gauge", {}}},
    {"weft_spinup_operations_total", {"counter", {"mechanism", "outcome"}}},
};

template <typename F>
bool eventually(F&& predicate, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return predicate();
}

}  // namespace

// ---------------------------------------------------------------- registry --

TEST_CASE("metrics registry: text format with HELP, TYPE and escaped labels", "[metrics]") {
  metrics::Registry r;
  auto& c = r.counter("app_things_total", "Things done.\nSecond \\ line.", {"kind"});
  auto& g = r.gauge("app_level", "A level.");
  c.with({"a \"quoted\"\nvalue\\"}).inc();
  c.with({"plain"}).inc(2.5);
  c.with({"plain"}).inc(-1);  // ignored: counters never go down
  g.with({}).set(-3);
  r.callback("app_items", "Items.", metrics::Type::Gauge, {"status"}, [] {
    return std::vector<metrics::Sample>{{{"z"}, 2}, {{"a"}, 1}};
  });

  const std::string text = r.render();
  CHECK(text ==
        "# HELP app_things_total Things done.\\nSecond \\\\ line.\n"
        "# TYPE app_things_total counter\n"
        "app_things_total{kind=\"a \\\"quoted\\\"\\nvalue\\\\\"} 1\n"
        "app_things_total{kind=\"plain\"} 2.5\n"
        "# HELP app_level A level.\n"
        "# TYPE app_level gauge\n"
        "app_level -3\n"
        "# HELP app_items Items.\n"
        "# TYPE app_items gauge\n"
        "app_items{status=\"a\"} 1\n"
        "app_items{status=\"z\"} 2\n");
  const Exposition e = parseExposition(text);
  CHECK(e.value("app_things_total", {{"kind", "a \"quoted\"\nvalue\\"}}) == 1);
}

TEST_CASE("metrics registry: histogram buckets are cumulative and end with +Inf", "[metrics]") {
  metrics::Registry r;
  // Binary fractions, so the sum is exact.
  auto& h = r.histogram("op_seconds", "Durations.", {"op"}, {0.125, 1, 10});
  auto& child = h.with({"x"});
  for (double v : {0.0625, 0.125, 0.5, 2.0, 20.0, 20.0}) child.observe(v);
  const std::string text = r.render();
  CHECK(text.find("op_seconds_bucket{op=\"x\",le=\"0.125\"} 2\n") != std::string::npos);
  CHECK(text.find("op_seconds_bucket{op=\"x\",le=\"1\"} 3\n") != std::string::npos);
  CHECK(text.find("op_seconds_bucket{op=\"x\",le=\"10\"} 4\n") != std::string::npos);
  CHECK(text.find("op_seconds_bucket{op=\"x\",le=\"+Inf\"} 6\n") != std::string::npos);
  CHECK(text.find("op_seconds_sum{op=\"x\"} 42.6875\n") != std::string::npos);
  CHECK(text.find("op_seconds_count{op=\"x\"} 6\n") != std::string::npos);
  parseExposition(text);

  // The default buckets are those of docs/api.md §2.1.
  CHECK(metrics::defaultDurationBuckets() ==
        std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
}

TEST_CASE("metrics registry: bad declarations and label counts are rejected", "[metrics]") {
  metrics::Registry r;
  CHECK_THROWS_AS(r.counter("bad-name", "x"), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "x", {"bad-label"}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "x", {"__reserved"}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h_seconds", "x", {"le"}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h_seconds", "x", {}, {1, 0.5}), std::invalid_argument);
  auto& c = r.counter("dup_total", "x", {"a"});
  CHECK_THROWS_AS(r.gauge("dup_total", "x"), std::invalid_argument);
  CHECK_THROWS_AS(c.with({"1", "2"}), std::invalid_argument);
}

TEST_CASE("metrics registry: concurrent updates are all counted", "[metrics]") {
  metrics::Registry r;
  auto& c = r.counter("hits_total", "Hits.", {"t"});
  auto& h = r.histogram("lat_seconds", "Latency.", {"t"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        c.with({std::to_string(i % 3)}).inc();
        h.with({"all"}).observe(0.001 * t);
        if (i % 1000 == 0) r.render();  // scrapes race with updates
      }
    });
  }
  for (auto& th : threads) th.join();
  const Exposition e = parseExposition(r.render());
  double total = 0;
  for (const auto& s : e.family("hits_total")) total += s.value;
  CHECK(total == 20000);
  CHECK(e.value("lat_seconds_count", {{"t", "all"}}) == 20000);
}

// ------------------------------------------------------------- decorator ----

namespace {

class FakeMessaging : public KvMessaging {
 public:
  Status publish(const std::string&, const std::string&) override { return Status::ok(); }
  Status publishJetStream(const std::string&, const std::string&) override { return Status::ok(); }
};

// A memory store that also offers messaging, to see the decorator pass it on.
class MessagingStore : public KvStore {
 public:
  explicit MessagingStore(std::shared_ptr<KvStore> inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& n,
                                               const BucketOptions& o) override {
    return inner_->openBucket(n, o);
  }
  Status ping() override { return inner_->ping(); }
  ConnectionState state() const override { return inner_->state(); }
  KvMessaging* messaging() override { return &messaging_; }

 private:
  std::shared_ptr<KvStore> inner_;
  FakeMessaging messaging_;
};

}  // namespace

TEST_CASE("instrumented store: every operation is measured under its name", "[metrics][kv]") {
  auto memory = createMemoryStore();
  std::vector<KvOpRecord> records;
  std::mutex mutex;
  auto store = instrumentKvStore(memory, [&](const KvOpRecord& r) {
    std::lock_guard<std::mutex> lock(mutex);
    records.push_back(r);
  });
  CHECK(store->name() == "memory");
  CHECK(store->state() == ConnectionState::Connected);

  auto bucket = store->openBucket("b", {});
  REQUIRE(bucket);
  auto& b = **bucket;
  CHECK(b.name() == "b");
  auto rev = b.create("k", "v1");
  REQUIRE(rev);
  CHECK(b.create("k", "again").code() == Code::AlreadyExists);
  CHECK(b.get("k")->value == "v1");
  CHECK(b.get("missing").code() == Code::NotFound);
  auto rev2 = b.update("k", "v2", *rev);
  REQUIRE(rev2);
  CHECK(b.update("k", "v3", *rev).code() == Code::Conflict);
  REQUIRE(b.put("p", "x"));
  REQUIRE(b.keys(""));
  REQUIRE(b.scan(""));
  REQUIRE(b.erase("p").isOk());
  REQUIRE(store->ping().isOk());

  // Watches pass through unmeasured and still deliver.
  std::atomic<int> events{0};
  auto watch = b.watch("", [&](const WatchEvent&) { ++events; });
  REQUIRE(watch);
  CHECK(eventually([&] { return events.load() >= 2; }));  // k, then CaughtUp
  (*watch)->stop();

  memory->setAvailable(false);
  CHECK(b.get("k").code() == Code::Unavailable);
  CHECK(store->ping().code() == Code::Unavailable);
  memory->setAvailable(true);

  std::lock_guard<std::mutex> lock(mutex);
  std::vector<std::pair<std::string, Code>> seen;
  for (const auto& r : records) {
    CHECK(r.seconds >= 0);
    seen.emplace_back(kvOpName(r.op), r.code);
  }
  CHECK(seen == std::vector<std::pair<std::string, Code>>{
                    {"create", Code::Ok},
                    {"create", Code::AlreadyExists},
                    {"get", Code::Ok},
                    {"get", Code::NotFound},
                    {"update", Code::Ok},
                    {"update", Code::Conflict},
                    {"put", Code::Ok},
                    {"list", Code::Ok},
                    {"list", Code::Ok},
                    {"delete", Code::Ok},
                    {"ping", Code::Ok},
                    {"get", Code::Unavailable},
                    {"ping", Code::Unavailable},
                });
}

TEST_CASE("instrumented store: messaging passes through; a throwing observer is harmless",
          "[metrics][kv]") {
  auto inner = std::make_shared<MessagingStore>(createMemoryStore());
  auto store = instrumentKvStore(inner, [](const KvOpRecord&) { throw std::runtime_error("x"); });
  CHECK(store->messaging() == inner->messaging());
  CHECK(store->messaging() != nullptr);
  CHECK(store->ping().isOk());
  auto bucket = store->openBucket("b", {});
  REQUIRE(bucket);
  CHECK((*bucket)->put("k", "v").isOk());
  // Nothing to measure without an observer: the store itself comes back.
  CHECK(instrumentKvStore(inner, {}) == inner);
}

// ------------------------------------------------------ weftd's catalogue ---

TEST_CASE("weft metrics: catalogue, label hygiene, error kinds, reconnects", "[metrics]") {
  auto memory = createMemoryStore();
  // The ticker samples once at start; the test samples by hand after that.
  WeftMetrics m("memory", std::chrono::hours(1));
  auto store = m.instrument(memory);

  {
    const Exposition e = parseExposition(m.render());
    for (const auto& [name, spec] : kCatalogue) {
      INFO(name);
      REQUIRE(e.type.count(name) == 1);
      CHECK(e.type.at(name) == spec.first);
      CHECK(!e.help.at(name).empty());
    }
    // Known combinations start at zero.
    CHECK(e.value("weft_backend_errors_total",
                  {{"backend", "memory"}, {"op", "update"}, {"kind", "timeout"}}) == 0);
    CHECK(e.value("weft_spinup_operations_total",
                  {{"mechanism", "local"}, {"outcome", "success"}}) == 0);
    for (const char* s :
         {"pending", "assigned", "in-progress", "completed", "failed", "cancelled"}) {
      CHECK(e.value("weft_work_items", {{"status", s}}) == 0);
    }
    CHECK(e.value("weft_backend_up", {{"backend", "memory"}}) == 1);
  }

  m.observeRequest({"GET", "/api/work/{id}", 200, 0.003});
  m.observeRequest({"BREW", "unmatched", 404, 0.001});  // arbitrary methods don't grow labels
  m.recordSpinUp("local", "success");
  m.recordSpinUp("teleport", "maybe");

  auto bucket = store->openBucket("b", {});
  REQUIRE(bucket);
  CHECK((*bucket)->get("nope").code() == Code::NotFound);  // not an error
  // A lost and regained connection is one reconnect; the first connect and
  // repeated samples of one state are none.
  m.pollBackendState();
  memory->setAvailable(false);
  CHECK((*bucket)->put("k", "v").code() == Code::Unavailable);
  CHECK(parseExposition(m.render()).value("weft_backend_up", {{"backend", "memory"}}) == 0);
  m.pollBackendState();
  m.pollBackendState();
  memory->setAvailable(true);
  m.pollBackendState();
  m.pollBackendState();
  CHECK(parseExposition(m.render()).value("weft_backend_up", {{"backend", "memory"}}) == 1);
  CHECK(
      parseExposition(m.render()).value("weft_backend_reconnects_total", {{"backend", "memory"}}) ==
      1);

  const Exposition e = parseExposition(m.render());
  CHECK(e.value("weft_http_requests_total",
                {{"method", "GET"}, {"route", "/api/work/{id}"}, {"status", "200"}}) == 1);
  CHECK(e.value("weft_http_requests_total",
                {{"method", "other"}, {"route", "unmatched"}, {"status", "404"}}) == 1);
  CHECK(e.value(
            "weft_http_request_duration_seconds_bucket",
            {{"method", "GET"}, {"route", "/api/work/{id}"}, {"status", "200"}, {"le", "0.005"}}) ==
        1);
  CHECK(e.value("weft_spinup_operations_total", {{"mechanism", "local"}, {"outcome", "success"}}) ==
        1);
  CHECK(e.value("weft_spinup_operations_total", {{"mechanism", "other"}, {"outcome", "other"}}) ==
        1);
  CHECK(e.value("weft_backend_errors_total",
                {{"backend", "memory"}, {"op", "put"}, {"kind", "unavailable"}}) == 1);
  CHECK(e.value("weft_backend_errors_total",
                {{"backend", "memory"}, {"op", "get"}, {"kind", "error"}}) == 0);
  CHECK(e.value("weft_backend_operation_duration_seconds_count",
                {{"backend", "memory"}, {"op", "get"}}) == 1);
  checkHistogram(e, "weft_http_request_duration_seconds");
  checkHistogram(e, "weft_backend_operation_duration_seconds");
  m.stop();
}

// ------------------------------------------------------- GET /metrics, e2e --

namespace {

Exposition scrape(Weftd& weftd, const weft::testing::HttpHeaders& headers = {}) {
  HttpResponse r = weftd.get("/metrics", headers);
  INFO(r.describe());
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type").value_or("") == "text/plain; version=0.0.4; charset=utf-8");
  return parseExposition(r.body);
}

}  // namespace

TEST_CASE("GET /metrics: a real weftd counts requests, backend operations and items",
          "[metrics][weftd]") {
  TempDir dir("weft-metrics-");
  WeftdOptions options;
  options.settings = {{"kv.backend", "sqlite"}, {"sqlite.path", dir.file("weft.db")}};
  Weftd weftd(options);
  REQUIRE(weftd.waitServing());

  const Exposition before = scrape(weftd);
  for (const auto& [name, spec] : kCatalogue) {
    INFO(name);
    REQUIRE(before.type.count(name) == 1);
    CHECK(before.type.at(name) == spec.first);
    for (const auto& s : before.samples) {
      const bool member = s.name == name || s.name == name + "_bucket" || s.name == name + "_sum" ||
                          s.name == name + "_count";
      if (!member) continue;
      std::set<std::string> labels;
      for (const auto& [k, v] : s.labels) {
        if (k != "le") labels.insert(k);
      }
      if (labels != spec.second) FAIL_CHECK(s.name << " has labels other than the table's");
    }
  }
  CHECK(before.value("weft_backend_up", {{"backend", "sqlite"}}) == 1);
  CHECK(before.value("weft_websocket_connections") == 0);
  CHECK(before.value("weft_dlq_items") == 0);

  // Some traffic: a submission (create), a lookup (get), an unknown route and
  // a readiness probe (ping).
  HttpResponse submitted = weftd.post("/api/work", Json::parse(R"({"boundary":"b","capability":"c",
                                              "description":"d"})")
                                                       .value());
  REQUIRE(submitted.status == 201);
  const std::string id = submitted.json.getString("id");
  REQUIRE(weftd.get("/api/work/" + id).status == 200);
  REQUIRE(weftd.get("/no/such/thing?x=1").status == 404);
  REQUIRE(weftd.get("/ready").status == 200);

  HttpResponse raw = weftd.get("/metrics");
  REQUIRE(raw.status == 200);
  // Raw paths never become labels.
  CHECK(raw.body.find(id) == std::string::npos);
  CHECK(raw.body.find("/no/such/thing") == std::string::npos);
  const Exposition after = parseExposition(raw.body);

  auto moved = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    return after.valueOr0(name, labels) - before.valueOr0(name, labels);
  };
  CHECK(moved("weft_http_requests_total",
              {{"method", "POST"}, {"route", "/api/work"}, {"status", "201"}}) == 1);
  CHECK(moved("weft_http_requests_total",
              {{"method", "GET"}, {"route", "/api/work/{id}"}, {"status", "200"}}) == 1);
  CHECK(moved("weft_http_requests_total",
              {{"method", "GET"}, {"route", "unmatched"}, {"status", "404"}}) == 1);
  // The first scrape itself is counted once it has been answered.
  CHECK(moved("weft_http_requests_total",
              {{"method", "GET"}, {"route", "/metrics"}, {"status", "200"}}) == 1);
  CHECK(moved("weft_http_request_duration_seconds_count",
              {{"method", "POST"}, {"route", "/api/work"}, {"status", "201"}}) == 1);
  checkHistogram(after, "weft_http_request_duration_seconds");
  checkHistogram(after, "weft_backend_operation_duration_seconds");

  CHECK(moved("weft_backend_operation_duration_seconds_count",
              {{"backend", "sqlite"}, {"op", "create"}}) >= 1);
  CHECK(moved("weft_backend_operation_duration_seconds_count",
              {{"backend", "sqlite"}, {"op", "get"}}) >= 1);
  CHECK(moved("weft_backend_operation_duration_seconds_count",
              {{"backend", "sqlite"}, {"op", "ping"}}) >= 1);
  for (const auto& s : after.family("weft_backend_errors_total")) CHECK(s.value == 0);

  // Gauges come from the views; all six statuses are present.
  CHECK(after.value("weft_work_items", {{"status", "pending"}}) == 1);
  for (const char* s : {"assigned", "in-progress", "completed", "failed", "cancelled"}) {
    CHECK(after.value("weft_work_items", {{"status", s}}) == 0);
  }

  // An agent shows up by its stored status.
  REQUIRE(weftd.post("/api/agents", Json::parse(R"({"handle":"a","capabilities":["c"]})").value())
              .status == 201);
  CHECK(eventually([&] {
    return scrape(weftd).valueOr0("weft_agents", {{"status", "online"}}) == 1;
  }));
  CHECK(scrape(weftd).value("weft_agents_stale") == 0);

  // An idempotent submit sent twice: the second is a replay, counted once.
  CHECK(after.value("weft_idempotent_replays_total") == 0);
  const Json body = Json::parse(R"({"boundary":"b","capability":"c","description":"once"})").value();
  const weft::testing::HttpHeaders keyed{{"Idempotency-Key", "metrics-1"}};
  HttpResponse first = weftd.post("/api/work", body, keyed);
  HttpResponse again = weftd.post("/api/work", body, keyed);
  REQUIRE(first.status == 201);
  REQUIRE(again.status == 201);
  CHECK(again.json.getString("id") == first.json.getString("id"));
  CHECK(scrape(weftd).value("weft_idempotent_replays_total") == 1);
}

TEST_CASE("GET /metrics: public by default, behind bearer auth with metrics.requireAuth",
          "[metrics][weftd]") {
  TempDir dir("weft-metrics-auth-");
  {
    WeftdOptions options;
    options.settings = {
        {"kv.backend", "sqlite"}, {"sqlite.path", dir.file("a.db")}, {"http.tokens", "tok-1"}};
    Weftd weftd(options);
    CHECK(weftd.get("/metrics").status == 200);
    CHECK(weftd.get("/api/work").status == 401);
  }
  {
    WeftdOptions options;
    options.settings = {{"kv.backend", "sqlite"},
                        {"sqlite.path", dir.file("b.db")},
                        {"http.tokens", "tok-1"},
                        {"metrics.requireAuth", "true"}};
    Weftd weftd(options);
    HttpResponse denied = weftd.get("/metrics");
    CHECK(denied.status == 401);
    CHECK(denied.errorKind() == "Unauthorized");
    CHECK(denied.header("WWW-Authenticate").value_or("") == "Bearer");
    CHECK(weftd.get("/metrics", {{"Authorization", "Bearer tok-1"}}).status == 200);
    // Still never protected: /health and /ready.
    CHECK(weftd.get("/health").status == 200);
  }
}
