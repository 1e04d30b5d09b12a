#include "latency.h"

#include <algorithm>
#include <cmath>

namespace weft::bench {
namespace {

double toUs(int64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

// Rounds to 0.1 µs: finer digits are noise on a shared 2-core machine and
// only make the JSON harder to read.
double round1(double v) {
  return std::round(v * 10.0) / 10.0;
}

}  // namespace

int64_t quantileOfSorted(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  size_t index = rank <= 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

LatencySummary summarize(std::vector<int64_t>& samplesNs, double windowSeconds) {
  LatencySummary s;
  s.count = samplesNs.size();
  s.seconds = windowSeconds;
  s.opsPerSec = windowSeconds > 0 ? static_cast<double>(s.count) / windowSeconds : 0;
  if (samplesNs.empty()) return s;

  std::sort(samplesNs.begin(), samplesNs.end());
  long double total = 0;
  for (int64_t v : samplesNs) total += v;
  s.meanUs = round1(toUs(static_cast<int64_t>(total / samplesNs.size())));
  s.p50Us = round1(toUs(quantileOfSorted(samplesNs, 0.50)));
  s.p90Us = round1(toUs(quantileOfSorted(samplesNs, 0.90)));
  s.p99Us = round1(toUs(quantileOfSorted(samplesNs, 0.99)));
  s.p999Us = round1(toUs(quantileOfSorted(samplesNs, 0.999)));
  s.maxUs = round1(toUs(samplesNs.back()));

  // Buckets (2^(k-1), 2^k] µs, starting at 1 µs.
  double bound = 1;
  uint64_t inBucket = 0;
  for (int64_t v : samplesNs) {
    const double us = toUs(v);
    while (us > bound) {
      if (inBucket > 0) s.histogram.emplace_back(bound, inBucket);
      inBucket = 0;
      bound *= 2;
    }
    ++inBucket;
  }
  if (inBucket > 0) s.histogram.emplace_back(bound, inBucket);
  return s;
}

Json LatencySummary::toJson() const {
  Json j = Json::object();
  j.set("count", Json(static_cast<long long>(count)));
  j.set("seconds", Json(std::round(seconds * 1000.0) / 1000.0));
  j.set("opsPerSec", Json(std::round(opsPerSec * 10.0) / 10.0));
  j.set("meanUs", Json(meanUs));
  j.set("p50Us", Json(p50Us));
  j.set("p90Us", Json(p90Us));
  j.set("p99Us", Json(p99Us));
  j.set("p999Us", Json(p999Us));
  j.set("maxUs", Json(maxUs));
  Json h = Json::array();
  for (const auto& [upper, n] : histogram) {
    Json b = Json::object();
    b.set("leUs", Json(upper));
    b.set("count", Json(static_cast<long long>(n)));
    h.push(std::move(b));
  }
  j.set("histogram", std::move(h));
  return j;
}

}  // namespace weft::bench
