#include "crash.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http_client.h"
#include "store_access.h"
#include "weft/service_context.h"

namespace weft::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

enum class Kind { Acked, Failed, Indeterminate };

struct Record {
  std::string tag;  // REST: the taskId; direct: the key
  std::string id;   // REST: the work item id of an acked submit
  Kind kind = Kind::Failed;
  std::string outcome;
  int64_t sentNs = 0;
  int64_t doneNs = 0;
};

struct Events {
  int64_t killNs = 0;
  int64_t restartNs = 0;
};

Events readEvents(const std::string& path) {
  Events e;
  std::ifstream in(path);
  std::string word;
  int64_t ns = 0;
  while (in >> word >> ns) {
    if (word == "kill" && e.killNs == 0) e.killNs = ns;
    if (word == "restart" && e.restartNs == 0) e.restartNs = ns;
  }
  return e;
}

double msBetween(int64_t fromNs, int64_t toNs) {
  return static_cast<double>(toNs - fromNs) / 1e6;
}

Json msOrNull(int64_t fromNs, int64_t toNs) {
  if (fromNs == 0 || toNs == 0) return Json();
  return Json(std::round(msBetween(fromNs, toNs) * 10.0) / 10.0);
}

// The first record (by completion time) at or after sinceNs that matches.
template <typename Pred>
int64_t firstDoneAfter(const std::vector<Record>& records, int64_t sinceNs, Pred pred) {
  int64_t best = 0;
  if (sinceNs == 0) return 0;
  for (const Record& r : records) {
    if (r.doneNs >= sinceNs && pred(r) && (best == 0 || r.doneNs < best)) best = r.doneNs;
  }
  return best;
}

// Paced writer threads: slot i is due at start + i / rate; a slot that is
// more than 100 ms overdue (the writers were stuck in an outage) is skipped.
class PacedLoad {
 public:
  PacedLoad(int threads, double rate, std::function<Record(int thread, uint64_t seq)> write,
            std::function<void(const Record&)> observe)
      : threads_(threads),
        intervalNs_(1e9 / rate),
        write_(std::move(write)),
        observe_(std::move(observe)),
        perThread_(threads) {}

  ~PacedLoad() { stop(); }

  void start() {
    start_ = SteadyClock::now();
    for (int t = 0; t < threads_; ++t) {
      workers_.emplace_back([this, t] {
        for (uint64_t seq = 0; !stop_.load(); ++seq) {
          const uint64_t i = next_.fetch_add(1);
          const auto due = start_ + std::chrono::nanoseconds(static_cast<int64_t>(intervalNs_ * i));
          const auto now = SteadyClock::now();
          if (due + std::chrono::milliseconds(100) < now) {
            skipped_.fetch_add(1);
            continue;
          }
          std::this_thread::sleep_until(due);
          if (stop_.load()) break;
          Record r = write_(t, seq);
          observe_(r);
          perThread_[t].push_back(std::move(r));
        }
      });
    }
  }

  void stop() {
    stop_ = true;
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::vector<Record> records() const {
    std::vector<Record> all;
    for (const auto& v : perThread_) all.insert(all.end(), v.begin(), v.end());
    return all;
  }
  uint64_t skipped() const { return skipped_.load(); }

 private:
  int threads_;
  double intervalNs_;
  std::function<Record(int, uint64_t)> write_;
  std::function<void(const Record&)> observe_;
  std::vector<std::vector<Record>> perThread_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> next_{0};
  std::atomic<uint64_t> skipped_{0};
  SteadyClock::time_point start_;
};

struct Classes {
  uint64_t ackedPresent = 0, ackedLost = 0, failedAbsent = 0, failedPresent = 0,
           indeterminatePresent = 0, indeterminateAbsent = 0, duplicated = 0;
  std::vector<std::string> lostSamples;  // a few acked_lost tags, for the report

  Json toJson() const {
    Json j = Json::object();
    j.set("acked_present", Json(static_cast<long long>(ackedPresent)));
    j.set("acked_lost", Json(static_cast<long long>(ackedLost)));
    j.set("failed_absent", Json(static_cast<long long>(failedAbsent)));
    j.set("failed_present", Json(static_cast<long long>(failedPresent)));
    j.set("indeterminate_present", Json(static_cast<long long>(indeterminatePresent)));
    j.set("indeterminate_absent", Json(static_cast<long long>(indeterminateAbsent)));
    j.set("duplicated", Json(static_cast<long long>(duplicated)));
    return j;
  }
};

// stored: tag -> the stored ids (REST) or {tag} (direct).
Classes classify(const std::vector<Record>& records,
                 const std::unordered_map<std::string, std::vector<std::string>>& stored) {
  Classes c;
  for (const Record& r : records) {
    auto it = stored.find(r.tag);
    const bool present = it != stored.end();
    switch (r.kind) {
      case Kind::Acked: {
        // An acked REST submit must be present under the id it was acked with.
        const bool found =
            present && (r.id.empty() ||
                        std::find(it->second.begin(), it->second.end(), r.id) != it->second.end());
        if (found) {
          ++c.ackedPresent;
        } else {
          ++c.ackedLost;
          if (c.lostSamples.size() < 10) c.lostSamples.push_back(r.tag);
        }
        break;
      }
      case Kind::Failed:
        present ? ++c.failedPresent : ++c.failedAbsent;
        break;
      case Kind::Indeterminate:
        present ? ++c.indeterminatePresent : ++c.indeterminateAbsent;
        break;
    }
  }
  for (const auto& [tag, ids] : stored) {
    if (ids.size() > 1) ++c.duplicated;
  }
  return c;
}

Json recoveryJson(const std::vector<Record>& records, const Events& ev, bool http,
                  bool weftdKilled) {
  Json j = Json::object();
  const int64_t firstFailure =
      firstDoneAfter(records, ev.killNs, [](const Record& r) { return r.kind != Kind::Acked; });
  j.set("killToFirstFailureMs", msOrNull(ev.killNs, firstFailure));
  if (http && !weftdKilled) {
    const int64_t first503 =
        firstDoneAfter(records, ev.killNs, [](const Record& r) { return r.outcome == "503"; });
    j.set("killToFirst503Ms", msOrNull(ev.killNs, first503));
  }
  const int64_t firstOk =
      firstDoneAfter(records, ev.restartNs, [](const Record& r) { return r.kind == Kind::Acked; });
  j.set("restartToFirstSuccessMs", msOrNull(ev.restartNs, firstOk));
  return j;
}

Json outcomeCounts(const std::vector<Record>& records) {
  std::map<std::string, uint64_t> counts;
  for (const Record& r : records) ++counts[r.outcome];
  Json j = Json::object();
  for (const auto& [k, n] : counts) j.set(k, Json(static_cast<long long>(n)));
  return j;
}

Json samples(const std::vector<std::string>& tags) {
  Json a = Json::array();
  for (const auto& t : tags) a.push(Json(t));
  return a;
}

// Retries an outage for up to waitMs: right after a restart the backend may
// still be loading its data.
template <typename F>
auto withinOutage(int waitMs, F f) -> decltype(f()) {
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(waitMs);
  for (;;) {
    auto r = f();
    if (r.isOk() || !r.status().isOutage() || SteadyClock::now() >= deadline) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

Json runCrashRound(const CrashOptions& o) {
  Json out = Json::object();
  out.set("tag", Json(o.tag));
  out.set("victim", Json(o.victim));
  std::vector<std::string> errors;

  // Direct writes need the store before the kill; read-back only after it.
  std::shared_ptr<KvStore> store;
  std::shared_ptr<KvBucket> directBucket;
  if (o.direct) {
    auto s = openStore(o.backend, o.pluginDir, o.settings, 15000);
    if (!s.isOk()) {
      out.set("error", Json("direct writes: " + s.status().toString()));
      return out;
    }
    store = *s;
    auto b = openBucketWithin(*store, o.directBucket, 15000);
    if (!b.isOk()) {
      out.set("error", Json("direct writes: open bucket: " + b.status().toString()));
      return out;
    }
    directBucket = *b;
  }

  std::atomic<int64_t> restartNs{0};
  std::atomic<int64_t> firstRestOkAfterRestart{0};
  auto noteSuccess = [&](std::atomic<int64_t>& first, const Record& r) {
    const int64_t since = restartNs.load();
    if (r.kind != Kind::Acked || since == 0 || r.doneNs < since) return;
    int64_t seen = first.load();
    while ((seen == 0 || r.doneNs < seen) && !first.compare_exchange_weak(seen, r.doneNs)) {
    }
  };

  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int t = 0; t < o.threads; ++t) {
    clients.push_back(std::make_unique<HttpClient>(o.host, o.port, o.timeoutMs));
  }
  PacedLoad rest(
      o.threads, o.rate,
      [&](int t, uint64_t seq) {
        Record r;
        r.tag = o.tag + "-" + std::to_string(t) + "-" + std::to_string(seq);
        Json body = Json::object();
        body.set("boundary", Json("default"));
        body.set("capability", Json("bench-crash"));
        body.set("description", Json("weft-bench crash round item"));
        body.set("taskId", Json(r.tag));
        Json context = Json::object();
        context.set("benchTag", Json(r.tag));
        body.set("contextData", std::move(context));
        HttpResult h = clients[t]->request("POST", "/api/work", body.dump());
        r.sentNs = h.sentAtNs;
        r.doneNs = h.doneAtNs;
        r.outcome = h.outcome();
        if (h.is2xx()) {
          r.kind = Kind::Acked;
          Result<Json> j = Json::parse(h.body, 64);
          if (j.isOk()) r.id = j->getString("id");
        } else if (h.transport == HttpResult::Transport::NoAnswer) {
          r.kind = Kind::Indeterminate;
        } else {
          r.kind = Kind::Failed;
        }
        return r;
      },
      [&](const Record& r) { noteSuccess(firstRestOkAfterRestart, r); });

  std::atomic<int64_t> firstDirectOkAfterRestart{0};
  std::unique_ptr<PacedLoad> direct;
  if (o.direct) {
    direct = std::make_unique<PacedLoad>(
        o.directThreads, o.directRate,
        [&](int t, uint64_t seq) {
          Record r;
          r.tag = o.tag + ".d" + std::to_string(t) + "." + std::to_string(seq);
          r.sentNs = wallNowNs();
          Result<uint64_t> put = directBucket->put(r.tag, r.tag);
          r.doneNs = wallNowNs();
          r.outcome = put.isOk() ? "ok" : codeName(put.code());
          r.kind = put.isOk()                    ? Kind::Acked
                   : put.code() == Code::Timeout ? Kind::Indeterminate
                                                 : Kind::Failed;
          return r;
        },
        [&](const Record& r) { noteSuccess(firstDirectOkAfterRestart, r); });
  }

  // Load, until service has been back for afterRecoveryMs (or the bound).
  const auto loadStart = SteadyClock::now();
  rest.start();
  if (direct) direct->start();
  {
    std::ofstream started(o.startedFile);
    started << wallNowNs() << "\n";
  }
  Events ev;
  bool recovered = false;
  while (SteadyClock::now() - loadStart < std::chrono::milliseconds(o.maxLoadMs)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ev = readEvents(o.eventsFile);
    if (ev.restartNs != 0) restartNs = ev.restartNs;
    const int64_t back = firstRestOkAfterRestart.load();
    const bool directBack = !direct || firstDirectOkAfterRestart.load() != 0;
    if (back != 0 && directBack) {
      const int64_t last = std::max(back, firstDirectOkAfterRestart.load());
      if (msBetween(last, wallNowNs()) >= static_cast<double>(o.afterRecoveryMs)) {
        recovered = true;
        break;
      }
    }
  }
  rest.stop();
  if (direct) direct->stop();
  ev = readEvents(o.eventsFile);
  out.set("killNs", Json(static_cast<long long>(ev.killNs)));
  out.set("restartNs", Json(static_cast<long long>(ev.restartNs)));
  out.set("downMs", msOrNull(ev.killNs, ev.restartNs));
  out.set("loadMs",
          Json(static_cast<long long>(
              std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - loadStart)
                  .count())));
  if (ev.killNs == 0 || ev.restartNs == 0)
    errors.push_back("the backend was not killed and restarted");
  if (!recovered) {
    errors.push_back("service did not come back within " + std::to_string(o.maxLoadMs) +
                     " ms of load");
  }

  // Read-back, straight from the backend.
  if (!store) {
    auto s = openStore(o.backend, o.pluginDir, o.settings, 30000);
    if (s.isOk())
      store = *s;
    else
      errors.push_back("read-back: " + s.status().toString());
  }
  const std::vector<Record> restRecords = rest.records();
  if (store) {
    std::unordered_map<std::string, std::vector<std::string>> stored;
    auto bucket = openBucketWithin(*store, kWorkBucket, 30000);
    auto entries = bucket.isOk() ? withinOutage(30000, [&] { return (*bucket)->scan(""); })
                                 : Result<std::vector<KvEntry>>(bucket.status());
    if (!entries.isOk()) {
      errors.push_back("read-back scan of " + std::string(kWorkBucket) + ": " +
                       entries.status().toString());
    } else {
      const std::string prefix = o.tag + "-";
      for (const KvEntry& e : *entries) {
        // A cheap filter before parsing: most items belong to other rounds.
        if (e.value.find(prefix) == std::string::npos) continue;
        Result<Json> j = Json::parse(e.value, 64);
        if (!j.isOk()) continue;
        const std::string taskId = j->getString("taskId");
        if (taskId.compare(0, prefix.size(), prefix) == 0) stored[taskId].push_back(e.key);
      }
      Json restJson = Json::object();
      restJson.set("writes", Json("POST /api/work through weftd"));
      restJson.set("sent", Json(static_cast<long long>(restRecords.size())));
      restJson.set("skippedSlots", Json(static_cast<long long>(rest.skipped())));
      Classes c = classify(restRecords, stored);
      restJson.set("classes", c.toJson());
      restJson.set("lostSamples", samples(c.lostSamples));
      restJson.set("outcomes", outcomeCounts(restRecords));
      restJson.set("recovery", recoveryJson(restRecords, ev, true, o.victim == "weftd"));
      out.set("rest", std::move(restJson));
    }
    if (direct) {
      const std::vector<Record> directRecords = direct->records();
      auto keys = withinOutage(30000, [&] { return directBucket->keys(o.tag + ".d"); });
      if (!keys.isOk()) {
        errors.push_back("read-back keys of " + o.directBucket + ": " + keys.status().toString());
      } else {
        std::unordered_map<std::string, std::vector<std::string>> storedKeys;
        for (const std::string& k : *keys) storedKeys[k].push_back(k);
        Json d = Json::object();
        d.set("writes", Json("put() through the plugin, bucket " + o.directBucket));
        d.set("sent", Json(static_cast<long long>(directRecords.size())));
        d.set("skippedSlots", Json(static_cast<long long>(direct->skipped())));
        Classes c = classify(directRecords, storedKeys);
        d.set("classes", c.toJson());
        d.set("lostSamples", samples(c.lostSamples));
        d.set("outcomes", outcomeCounts(directRecords));
        d.set("recovery", recoveryJson(directRecords, ev, false, false));
        out.set("direct", std::move(d));
      }
    }
  }
  if (!errors.empty()) {
    std::string all;
    for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
    out.set("error", Json(all));
  }
  return out;
}

}  // namespace weft::bench
