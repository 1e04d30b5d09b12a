#include "load_driver.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t nsSince(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
}

struct ThreadTally {
  std::vector<int64_t> samples;
  std::map<std::string, uint64_t> outcomes;
  uint64_t errors = 0;
  int64_t maxLagNs = 0;

  void add(const OpResult& r, int64_t latencyNs) {
    samples.push_back(latencyNs);
    ++outcomes[r.outcome];
    if (!r.ok) ++errors;
  }
};

}  // namespace

Json LoadResult::toJson() const {
  Json j = Json::object();
  j.set("mode", Json(mode));
  j.set("threads", Json(threads));
  if (mode == "open") {
    j.set("targetRate", Json(targetRate));
    j.set("maxStartLagMs", Json(std::round(maxStartLagMs * 10.0) / 10.0));
  }
  j.set("errors", Json(static_cast<long long>(errors)));
  Json o = Json::object();
  for (const auto& [name, n] : outcomes) o.set(name, Json(static_cast<long long>(n)));
  j.set("outcomes", std::move(o));
  Json lat = latency.toJson();
  for (auto& member : lat.asObject()) j.set(member.first, std::move(member.second));
  return j;
}

LoadResult runLoad(const LoadOptions& options, const Operation& op) {
  const int threads = std::max(1, options.threads);
  const bool open = options.openRate > 0;
  const auto start = SteadyClock::now();
  const auto warmupEnd = start + std::chrono::milliseconds(options.warmupMs);
  const auto end = warmupEnd + std::chrono::milliseconds(options.durationMs);
  const double intervalNs = open ? 1e9 / options.openRate : 0;

  std::atomic<uint64_t> issued{0};  // open loop: next due index; both: op budget
  std::atomic<SteadyClock::rep> lastEndTicks{0};
  std::vector<ThreadTally> tallies(threads);
  std::vector<std::thread> workers;
  workers.reserve(threads);

  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ThreadTally& tally = tallies[t];
      for (uint64_t seq = 0;; ++seq) {
        SteadyClock::time_point due;
        if (open) {
          const uint64_t i = issued.fetch_add(1);
          if (options.maxOps != 0 && i >= options.maxOps) break;
          due = start + std::chrono::nanoseconds(static_cast<int64_t>(intervalNs * i));
          if (due >= end) break;
          std::this_thread::sleep_until(due);
        } else {
          due = SteadyClock::now();
          if (due >= end) break;
          if (options.maxOps != 0 && issued.fetch_add(1) >= options.maxOps) break;
        }
        const auto began = SteadyClock::now();
        OpResult r = op(t, seq);
        const auto finished = SteadyClock::now();
        if (r.exhausted) break;
        if (due < warmupEnd) continue;
        if (open) tally.maxLagNs = std::max(tally.maxLagNs, nsSince(due, began));
        tally.add(r, nsSince(due, finished));
        SteadyClock::rep ticks = finished.time_since_epoch().count();
        SteadyClock::rep seen = lastEndTicks.load();
        while (ticks > seen && !lastEndTicks.compare_exchange_weak(seen, ticks)) {
        }
      }
    });
  }
  for (auto& w : workers) w.join();

  LoadResult result;
  result.mode = open ? "open" : "closed";
  result.threads = threads;
  result.targetRate = options.openRate;
  std::vector<int64_t> all;
  int64_t maxLag = 0;
  for (ThreadTally& tally : tallies) {
    all.insert(all.end(), tally.samples.begin(), tally.samples.end());
    for (const auto& [name, n] : tally.outcomes) result.outcomes[name] += n;
    result.errors += tally.errors;
    maxLag = std::max(maxLag, tally.maxLagNs);
  }
  // The window ends when the last measured operation returned: earlier than
  // the deadline when the threads ran out of work (a bounded operation
  // count), so ops/s is not diluted by idle time; a little later when the
  // operations in flight at the deadline finish after it.
  SteadyClock::time_point windowEnd = end;
  if (lastEndTicks.load() != 0) {
    windowEnd = SteadyClock::time_point{SteadyClock::duration(lastEndTicks.load())};
  }
  const double window = std::max(1e-9, nsSince(warmupEnd, windowEnd) / 1e9);
  result.latency = summarize(all, window);
  result.maxStartLagMs = maxLag / 1e6;
  return result;
}

}  // namespace weft::bench
