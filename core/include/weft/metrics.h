// A small, thread-safe metrics registry that renders the Prometheus text
// exposition format 0.0.4. It knows nothing of HTTP or of any metric name:
// weftd declares its catalogue (docs/api.md §2.1) in server/metrics/.
//
//   metrics::Registry registry;
//   auto& requests = registry.counter("weft_http_requests_total", "HTTP requests answered.",
//                                     {"method", "route", "status"});
//   requests.with({"GET", "/api/work/{id}", "200"}).inc();
//   std::string text = registry.render();
//
// Families: a counter, gauge or histogram family has a fixed list of label
// names; with(values) returns the child for one combination of label values
// (created on first use, then stable for the life of the registry, so callers
// may keep the reference). A callback family has no children: its collector is
// called at render time and returns the current samples (for values that are
// cheap to compute on a scrape, e.g. counts over an in-memory view).
//
// Label cardinality is the caller's responsibility: never pass unbounded input
// (raw paths, ids) as a label value.
//
// Thread-safety: declare families (counter(), gauge(), histogram(), callback())
// before rendering starts, from one thread. After that, with(), the child
// updates and render() may run on any number of threads concurrently. Updates
// are lock-free atomics; with() takes a shared lock when the child exists.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace weft::metrics {

using LabelValues = std::vector<std::string>;

// A monotonically increasing value. inc() ignores negative amounts: a counter
// that went down would read as a reset to Prometheus.
class Counter {
 public:
  void inc(double amount = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double amount);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into fixed buckets (upper bounds, ascending, +Inf
// implied). Rendered cumulatively, as Prometheus expects.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  // Not atomic across buckets: an observation racing with a snapshot may be
  // in some counts and not yet in others, as in every Prometheus client.
  // Cumulative counts are still non-decreasing.
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative; last = above all bounds
  std::atomic<double> sum_{0.0};
};

// The buckets of docs/api.md §2.1, in seconds.
const std::vector<double>& defaultDurationBuckets();

enum class Type { Counter, Gauge, Histogram };

// One labelled family of children of type M.
template <typename M>
class Family {
 public:
  // make() creates a child; called under the family's exclusive lock.
  Family(std::vector<std::string> labelNames, std::function<std::unique_ptr<M>()> make)
      : labelNames_(std::move(labelNames)), make_(std::move(make)) {}

  // The child for these label values, created on first use. Throws
  // std::invalid_argument when the number of values does not match the
  // family's label names (a programming error).
  M& with(const LabelValues& values);

  const std::vector<std::string>& labelNames() const { return labelNames_; }

  // Calls f(values, child) for every child, ordered by label values.
  template <typename F>
  void forEach(F&& f) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (const auto& [values, child] : children_) f(values, *child);
  }

 private:
  const std::vector<std::string> labelNames_;
  const std::function<std::unique_ptr<M>()> make_;
  mutable std::shared_mutex mutex_;
  std::map<LabelValues, std::unique_ptr<M>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// One sample of a callback family.
struct Sample {
  LabelValues labels;  // in the order of the family's label names
  double value = 0;
};
// Returns the current samples. Called during render(), on the scraping
// thread; must be quick, must not block on I/O and must not call back into
// the registry. An exception drops the family's samples from that render.
using Collector = std::function<std::vector<Sample>()>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Declare a family. Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and label
  // names [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__", not "le" for
  // histograms); a bad or duplicate name throws std::invalid_argument.
  // The returned reference stays valid for the life of the registry.
  CounterFamily& counter(const std::string& name, const std::string& help,
                         std::vector<std::string> labelNames = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> labelNames = {});
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> labelNames,
                             std::vector<double> bounds = defaultDurationBuckets());
  void callback(const std::string& name, const std::string& help, Type type,
                std::vector<std::string> labelNames, Collector collector);

  // The exposition text: per family, in declaration order, `# HELP`, `# TYPE`
  // and its samples (ordered by label values). A family without samples still
  // gets its HELP and TYPE lines.
  std::string render() const;

  // The Content-Type of render()'s output.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct Entry;
  Entry& declare(const std::string& name, const std::string& help, Type type,
                 const std::vector<std::string>& labelNames);

  mutable std::mutex mutex_;  // guards entries_ (declaration vs. render)
  std::vector<std::unique_ptr<Entry>> entries_;
};

// ---- implementation of the template -----------------------------------------

template <typename M>
M& Family<M>::with(const LabelValues& values) {
  if (values.size() != labelNames_.size()) {
    throw std::invalid_argument("metric label count mismatch: expected " +
                                std::to_string(labelNames_.size()) + ", got " +
                                std::to_string(values.size()));
  }
  {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    auto it = children_.find(values);
    if (it != children_.end()) return *it->second;
  }
  std::unique_lock<std::shared_mutex> lock(mutex_);
  auto& slot = children_[values];
  if (!slot) slot = make_();
  return *slot;
}

}  // namespace weft::metrics
