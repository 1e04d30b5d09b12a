#include "weft/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

namespace weft::metrics {
namespace {

// std::atomic<double>::fetch_add is C++20; this is the portable equivalent.
void atomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

bool validName(const std::string& name, bool allowColon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allowColon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

// Sample values and bucket bounds: the shortest text that reads back as the
// same double, and Prometheus' spellings of the non-finite values.
void appendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, result.ptr);
}

// HELP text escapes only '\' and newline; label values also '"'.
void appendEscaped(std::string& out, const std::string& s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `name{a="x",b="y"} value\n`, with an optional extra label (le) last.
void appendSample(std::string& out, const std::string& name, const std::vector<std::string>& names,
                  const LabelValues& values, const char* extraName, const std::string& extraValue,
                  double value) {
  out += name;
  const bool extra = extraName != nullptr;
  if (!names.empty() || extra) {
    out += '{';
    bool first = true;
    for (size_t i = 0; i < names.size(); ++i) {
      if (!first) out += ',';
      first = false;
      out += names[i];
      out += "=\"";
      appendEscaped(out, i < values.size() ? values[i] : std::string(), true);
      out += '"';
    }
    if (extra) {
      if (!first) out += ',';
      out += extraName;
      out += "=\"";
      out += extraValue;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  appendNumber(out, value);
  out += '\n';
}

const char* typeName(Type type) {
  switch (type) {
    case Type::Counter:
      return "counter";
    case Type::Gauge:
      return "gauge";
    case Type::Histogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

// ---- children ----------------------------------------------------------------

void Counter::inc(double amount) {
  if (!(amount > 0)) return;  // also drops NaN
  atomicAdd(value_, amount);
}

void Gauge::add(double amount) {
  atomicAdd(value_, amount);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;  // would poison the sum for good
  // Prometheus buckets are "less than or equal": the first bound >= value.
  const size_t index = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                           bounds_.begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  atomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.reserve(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

const std::vector<double>& defaultDurationBuckets() {
  static const std::vector<double> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10};
  return kBuckets;
}

// ---- registry ----------------------------------------------------------------

struct Registry::Entry {
  std::string name;
  std::string help;
  Type type = Type::Counter;
  std::vector<std::string> labelNames;
  // Exactly one of these is set.
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::unique_ptr<HistogramFamily> histograms;
  Collector collector;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::declare(const std::string& name, const std::string& help, Type type,
                                   const std::vector<std::string>& labelNames) {
  if (!validName(name, true)) throw std::invalid_argument("invalid metric name: " + name);
  std::set<std::string> seen;
  for (const std::string& label : labelNames) {
    if (!validName(label, false) || label.rfind("__", 0) == 0 ||
        (type == Type::Histogram && label == "le") || !seen.insert(label).second) {
      throw std::invalid_argument("invalid label name '" + label + "' for metric " + name);
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& e : entries_) {
    if (e->name == name) throw std::invalid_argument("metric declared twice: " + name);
  }
  auto entry = std::make_unique<Entry>();
  entry->name = name;
  entry->help = help;
  entry->type = type;
  entry->labelNames = labelNames;
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

CounterFamily& Registry::counter(const std::string& name, const std::string& help,
                                 std::vector<std::string> labelNames) {
  Entry& e = declare(name, help, Type::Counter, labelNames);
  e.counters = std::make_unique<CounterFamily>(std::move(labelNames),
                                               [] { return std::make_unique<Counter>(); });
  return *e.counters;
}

GaugeFamily& Registry::gauge(const std::string& name, const std::string& help,
                             std::vector<std::string> labelNames) {
  Entry& e = declare(name, help, Type::Gauge, labelNames);
  e.gauges = std::make_unique<GaugeFamily>(std::move(labelNames),
                                           [] { return std::make_unique<Gauge>(); });
  return *e.gauges;
}

HistogramFamily& Registry::histogram(const std::string& name, const std::string& help,
                                     std::vector<std::string> labelNames,
                                     std::vector<double> bounds) {
  if (bounds.empty() || !std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end() ||
      std::any_of(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); })) {
    throw std::invalid_argument("histogram buckets must be finite and strictly ascending: " + name);
  }
  Entry& e = declare(name, help, Type::Histogram, labelNames);
  e.histograms = std::make_unique<HistogramFamily>(
      std::move(labelNames), [bounds] { return std::make_unique<Histogram>(bounds); });
  return *e.histograms;
}

void Registry::callback(const std::string& name, const std::string& help, Type type,
                        std::vector<std::string> labelNames, Collector collector) {
  if (type == Type::Histogram) {
    throw std::invalid_argument("callback families are counters or gauges: " + name);
  }
  if (!collector) throw std::invalid_argument("callback family without collector: " + name);
  Entry& e = declare(name, help, type, labelNames);
  e.collector = std::move(collector);
}

std::string Registry::render() const {
  std::string out;
  out.reserve(8192);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& entry : entries_) {
    const Entry& e = *entry;
    out += "# HELP ";
    out += e.name;
    out += ' ';
    appendEscaped(out, e.help, false);
    out += "\n# TYPE ";
    out += e.name;
    out += ' ';
    out += typeName(e.type);
    out += '\n';
    if (e.counters) {
      e.counters->forEach([&](const LabelValues& values, const Counter& c) {
        appendSample(out, e.name, e.labelNames, values, nullptr, {}, c.value());
      });
    } else if (e.gauges) {
      e.gauges->forEach([&](const LabelValues& values, const Gauge& g) {
        appendSample(out, e.name, e.labelNames, values, nullptr, {}, g.value());
      });
    } else if (e.histograms) {
      const std::string bucketName = e.name + "_bucket";
      const std::string sumName = e.name + "_sum";
      const std::string countName = e.name + "_count";
      e.histograms->forEach([&](const LabelValues& values, const Histogram& h) {
        const Histogram::Snapshot s = h.snapshot();
        const auto& bounds = h.bounds();
        for (size_t i = 0; i < bounds.size(); ++i) {
          std::string le;
          appendNumber(le, bounds[i]);
          appendSample(out, bucketName, e.labelNames, values, "le", le,
                       static_cast<double>(s.cumulative[i]));
        }
        appendSample(out, bucketName, e.labelNames, values, "le", "+Inf",
                     static_cast<double>(s.count));
        appendSample(out, sumName, e.labelNames, values, nullptr, {}, s.sum);
        appendSample(out, countName, e.labelNames, values, nullptr, {},
                     static_cast<double>(s.count));
      });
    } else if (e.collector) {
      std::vector<Sample> samples;
      try {
        samples = e.collector();
      } catch (...) {
        // One broken source must not take the whole scrape down.
        samples.clear();
      }
      std::sort(samples.begin(), samples.end(),
                [](const Sample& a, const Sample& b) { return a.labels < b.labels; });
      for (const Sample& s : samples) {
        appendSample(out, e.name, e.labelNames, s.labels, nullptr, {}, s.value);
      }
    }
  }
  return out;
}

}  // namespace weft::metrics
