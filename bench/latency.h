// Latency samples and their summary: ops/s, percentiles and a coarse
// histogram. Samples are kept exactly (one int64 per operation) and sorted
// once at the end: a benchmark run here records at most a few hundred
// thousand operations, so exact percentiles cost a few MB and no bucketing
// error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weft/json.h"

namespace weft::bench {

struct LatencySummary {
  uint64_t count = 0;    // operations measured (warm-up excluded)
  double seconds = 0;    // length of the measured window
  double opsPerSec = 0;  // count / seconds
  // Latencies in microseconds; 0 when count == 0.
  double meanUs = 0;
  double p50Us = 0;
  double p90Us = 0;
  double p99Us = 0;
  double p999Us = 0;
  double maxUs = 0;
  // Log-2 buckets: {upper bound in µs, operations at or below it and above
  // the previous bound}. Only non-empty buckets are listed.
  std::vector<std::pair<double, uint64_t>> histogram;

  Json toJson() const;
};

// Summarises latencies (nanoseconds, any order; the vector is sorted in
// place) measured over a window of windowSeconds.
LatencySummary summarize(std::vector<int64_t>& samplesNs, double windowSeconds);

// The sample at quantile q (0..1) of an ascending vector, nearest-rank: the
// smallest sample such that at least q of all samples are <= it.
int64_t quantileOfSorted(const std::vector<int64_t>& sorted, double q);

}  // namespace weft::bench
