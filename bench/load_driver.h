// Runs one operation many times on N threads and measures it, in one of two
// modes:
//  * closed loop: each thread starts its next operation as soon as the
//    previous one returns, so the offered load adapts to the server (the
//    concurrency is the number of threads);
//  * open loop: operation i is due at start + i / rate, whatever happened
//    before. Latency is measured from that INTENDED send time, so a stall
//    that delays later requests is charged to them too (no coordinated
//    omission). The threads only bound how many requests can be in flight;
//    when all are busy, due operations start late and their wait counts.
// Operations that start (closed) or are due (open) during the warm-up are
// run but not measured.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "latency.h"
#include "weft/json.h"

namespace weft::bench {

struct LoadOptions {
  int threads = 8;
  int64_t warmupMs = 500;
  int64_t durationMs = 3000;  // measured window, after the warm-up
  double openRate = 0;        // operations per second; 0 = closed loop
  uint64_t maxOps = 0;        // stop after this many operations in total (0 = no bound)
};

struct OpResult {
  bool ok = true;
  // What happened, for the outcome counts: "ok", "503", "refused", ...
  std::string outcome = "ok";
  // The thread has nothing left to do (e.g. no more work to claim): it stops
  // and this call is not measured.
  bool exhausted = false;
};

// Called concurrently from the load threads; thread is 0..threads-1 and seq
// counts the calls of that thread. Must not throw.
using Operation = std::function<OpResult(int thread, uint64_t seq)>;

struct LoadResult {
  std::string mode;  // "closed" or "open"
  int threads = 0;
  double targetRate = 0;   // open loop only
  LatencySummary latency;  // every measured operation, failed ones included
  uint64_t errors = 0;     // measured operations that failed
  std::map<std::string, uint64_t> outcomes;
  // Open loop: the worst delay between an operation's due time and its
  // actual start, in ms (a sign that the client threads were saturated).
  double maxStartLagMs = 0;

  Json toJson() const;
};

LoadResult runLoad(const LoadOptions& options, const Operation& op);

}  // namespace weft::bench
