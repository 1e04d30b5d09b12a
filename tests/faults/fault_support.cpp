#include "faults/fault_support.h"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <stdexcept>

#include "weft/plugin_loader.h"
#include "weft/service_context.h"

namespace weft::faults {

using testing::HttpClient;
using testing::HttpResponse;
using testing::Weftd;
using testing::WeftdOptions;

void figure(const std::string& text) {
  const char* backend = std::getenv("WEFT_TEST_BACKEND");
  std::printf("[faults.%s] %s\n", backend ? backend : "?", text.c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------
// Backend

Backend::Backend(const std::string& name, const std::string& dataDir,
                 const std::vector<std::string>& serverArgs)
    : name_(name) {
  if (dataDir.empty()) {
    ownedDir_ = std::make_unique<testing::TempDir>("weft-faults-" + name + "-");
    dataDir_ = ownedDir_->file("data");
  } else {
    dataDir_ = dataDir;
  }
  testing::ServerOptions options;
  options.dataDir = dataDir_;
  // The durable configuration scripts/run uses: every acknowledged write is
  // in the append-only file before the reply.
  if (name == "redis") options.extraArgs = {"--appendfsync", "always"};
  options.extraArgs.insert(options.extraArgs.end(), serverArgs.begin(), serverArgs.end());
  // A server that cannot start throws: the case fails, it does not skip.
  if (name == "nats") {
    server_ = std::make_unique<testing::NatsServer>(options);
  } else if (name == "redis") {
    server_ = std::make_unique<testing::RedisServer>(options);
  } else if (name != "sqlite") {
    throw std::invalid_argument("unknown backend '" + name + "': use nats, redis or sqlite");
  }
}

Backend::~Backend() = default;

testing::ServerProcess& Backend::server() {
  if (!server_) throw std::logic_error("the " + name_ + " backend has no server process");
  return *server_;
}

Settings Backend::settings() const {
  if (!server_) return {{"kv.backend", name_}, {"sqlite.path", dataDir_ + "/weft.db"}};
  return settingsVia(server_->port());
}

Settings Backend::settingsVia(int port) const {
  const std::string hostPort = "127.0.0.1:" + std::to_string(port);
  if (name_ == "nats") return {{"kv.backend", "nats"}, {"nats.url", "nats://" + hostPort}};
  if (name_ == "redis")
    return {{"kv.backend", "redis"}, {"redis.url", "redis://" + hostPort + "/0"}};
  throw std::logic_error("the " + name_ + " backend has no network address");
}

Settings commonSettings() {
  return {{"kv.reconnectWaitMs", "200"}, {"work.sweepIntervalMs", "200"}};
}

std::unique_ptr<Weftd> startWeftd(const Settings& settings, const Settings& extra) {
  WeftdOptions options;
  options.settings = commonSettings();
  for (const auto& [k, v] : settings) options.settings[k] = v;
  for (const auto& [k, v] : extra) options.settings[k] = v;
  auto weftd = std::make_unique<Weftd>(options);
  // On failure the Weftd destructor prints the log tail.
  if (!weftd->waitServing(std::chrono::seconds(20)))
    FAIL("weftd did not serve GET /api/stats within 20 s");
  return weftd;
}

std::shared_ptr<KvStore> openStore(const Settings& settings) {
  PluginContext context;
  context.settings = settings;
  context.settings.emplace("kv.timeoutMs", "2000");
  context.settings.emplace("kv.reconnectWaitMs", "200");
  const std::string backend = settings.count("kv.backend") ? settings.at("kv.backend") : "";
  context.log = [backend](LogLevel level, const std::string& message) {
    if (level >= LogLevel::Warn)
      std::fprintf(stderr, "[%s plugin, test reader] %s\n", backend.c_str(), message.c_str());
  };
  std::shared_ptr<KvStore> store;
  try {
    store = loadKvStore(backend, "", context);
  } catch (const PluginLoadError& e) {
    FAIL("cannot load the " << backend << " plugin (" << pluginErrorKindName(e.kind())
                            << "): " << e.what());
  }
  REQUIRE(store);
  if (!eventually([&] { return store->ping().isOk(); }, Ms(20000)))
    FAIL("the " << backend << " backend did not answer ping() within 20 s");
  return store;
}

// ---------------------------------------------------------------------------
// WriteLoad

Json workBody(const std::string& capability, const std::string& description) {
  return Json(Json::Object{{"boundary", Json("faults")},
                           {"capability", Json(capability)},
                           {"description", Json(description)},
                           {"priority", Json(5)}});
}

WriteLoad::WriteLoad(int port, int threads, std::string capability, Ms pause, Ms requestTimeout)
    : port_(port),
      capability_(std::move(capability)),
      pause_(pause),
      requestTimeout_(requestTimeout) {
  static std::atomic<int> loads{0};
  runTag_ = "fault-" + std::to_string(::getpid()) + "-" + std::to_string(loads++);
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this, t] { run(t); });
}

WriteLoad::~WriteLoad() {
  stop();
}

void WriteLoad::stop() {
  stopping_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void WriteLoad::run(int thread) {
  HttpClient client(port_, requestTimeout_);
  for (int n = 0; !stopping_; ++n) {
    WriteAttempt a;
    a.marker = runTag_ + "-t" + std::to_string(thread) + "-" + std::to_string(n);
    a.startedAt = Clock::now();
    HttpResponse r = client.post("/api/work", workBody(capability_, a.marker));
    a.status = r.status;
    a.ms = r.ms;
    if (r.status == 201 && !r.json.getString("id").empty()) {
      a.outcome = WriteAttempt::Outcome::Acked;
      a.id = r.json.getString("id");
    } else if (r.status == 0) {
      a.outcome = WriteAttempt::Outcome::Indeterminate;
      a.error = r.error;
      client.reset();
    } else {
      a.error = r.message();
      // weftd says "outcome unknown" when the backend timed out (errors.cpp).
      a.outcome = r.status == 503 && a.error.find("outcome unknown") != std::string::npos
                      ? WriteAttempt::Outcome::Indeterminate
                      : WriteAttempt::Outcome::Failed;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      attempts_.push_back(std::move(a));
    }
    if (pause_.count() > 0) std::this_thread::sleep_for(pause_);
  }
}

std::vector<WriteAttempt> WriteLoad::attempts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return attempts_;
}

size_t WriteLoad::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return attempts_.size();
}

size_t WriteLoad::ackedCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = 0;
  for (const auto& a : attempts_) n += a.outcome == WriteAttempt::Outcome::Acked;
  return n;
}

bool WriteLoad::waitForMore(size_t n, Ms timeout) const {
  const size_t target = count() + n;
  return eventually([&] { return count() >= target; }, timeout);
}

// ---------------------------------------------------------------------------
// Classification

int Classification::total() const {
  return ackedPresent + ackedLost + failedAbsent + failedPresent + indeterminatePresent +
         indeterminateAbsent;
}

std::string statusHistogram(const std::map<int, int>& statuses) {
  std::string out;
  for (const auto& [status, n] : statuses) {
    if (!out.empty()) out += " ";
    out += std::to_string(status) + "x" + std::to_string(n);
  }
  return out.empty() ? "none" : out;
}

std::string Classification::summary() const {
  std::ostringstream s;
  s << total() << " writes: acked+present " << ackedPresent << ", ACKED+LOST " << ackedLost
    << ", failed+absent " << failedAbsent << ", failed+present " << failedPresent
    << ", indeterminate+present " << indeterminatePresent << ", indeterminate+absent "
    << indeterminateAbsent << ", duplicated " << duplicated << " (statuses "
    << statusHistogram(statuses) << ")";
  for (const auto& m : lost) s << "\n  lost: " << m;
  for (const auto& m : strays) s << "\n  failed but present: " << m;
  return s.str();
}

Classification classify(const std::vector<WriteAttempt>& attempts, KvStore& store) {
  auto bucket = store.openBucket(kWorkBucket, BucketOptions{});
  if (!bucket.isOk()) FAIL("cannot open " << kWorkBucket << ": " << bucket.status().toString());
  auto entries = bucket.value()->scan("");
  if (!entries.isOk()) FAIL("cannot scan " << kWorkBucket << ": " << entries.status().toString());

  // marker -> the ids stored with it
  std::map<std::string, std::vector<std::string>> stored;
  for (const KvEntry& e : entries.value()) {
    auto parsed = Json::parse(e.value);
    if (!parsed.isOk() || !parsed.value().isObject()) continue;
    const Json& item = parsed.value();
    stored[item.getString("description")].push_back(item.getString("id"));
  }

  Classification c;
  for (const WriteAttempt& a : attempts) {
    ++c.statuses[a.status];
    auto it = stored.find(a.marker);
    const size_t copies = it == stored.end() ? 0 : it->second.size();
    if (copies > 1) ++c.duplicated;
    switch (a.outcome) {
      case WriteAttempt::Outcome::Acked: {
        const bool present =
            copies > 0 && std::find(it->second.begin(), it->second.end(), a.id) != it->second.end();
        if (present) {
          ++c.ackedPresent;
        } else {
          ++c.ackedLost;
          if (c.lost.size() < 5) c.lost.push_back(a.marker + " (id " + a.id + ")");
        }
        break;
      }
      case WriteAttempt::Outcome::Failed:
        if (copies > 0) {
          ++c.failedPresent;
          if (c.strays.size() < 5)
            c.strays.push_back(a.marker + " (" + std::to_string(a.status) + " " + a.error + ")");
        } else {
          ++c.failedAbsent;
        }
        break;
      case WriteAttempt::Outcome::Indeterminate:
        if (copies > 0) {
          ++c.indeterminatePresent;
        } else {
          ++c.indeterminateAbsent;
        }
        break;
    }
  }
  return c;
}

}  // namespace weft::faults
