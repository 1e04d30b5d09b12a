// Crash durability: one round of "write under load, kill -9 the backend,
// restart it on the same data, read everything back, classify every item".
//
// This process only writes and reads; the script that started the servers
// kills and restarts the backend and appends the moments to an events file
// ("kill <ns>" and "restart <ns>", CLOCK_REALTIME as `date +%s%N` prints),
// so the server processes stay owned (and reaped) by the script.
//
// Writes:
//  * REST: POST /api/work through weftd, each item tagged with a unique
//    taskId "<tag>-<thread>-<seq>" (also in contextData.benchTag);
//  * direct (optional): put() of key "<tag>.d<thread>.<seq>" through the
//    plugin, in its own bucket.
// Both are paced at a fixed rate; slots missed during the outage are skipped,
// not replayed in a burst.
//
// A request is "acked" on 2xx (plugin: Ok), "failed" when the server answered
// with an error or could not be connected to at all (plugin: any error but
// Timeout), "indeterminate" when it may have been sent but no answer came
// (plugin: Timeout). Read-back scans the backend through the plugin (not
// through weftd's caches), then every item gets one of acked_present,
// acked_lost, failed_absent, failed_present, indeterminate_present,
// indeterminate_absent; `duplicated` counts tags stored more than once.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "weft/json.h"

namespace weft::bench {

struct CrashOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 8;       // REST load threads
  double rate = 400;     // REST submits per second
  int timeoutMs = 5000;  // per REST request
  bool direct = false;   // also put() straight through the plugin
  int directThreads = 2;
  double directRate = 200;  // direct puts per second
  std::string directBucket = "bench-crash";
  std::string backend;  // for read-back (and direct puts)
  std::string pluginDir;
  std::map<std::string, std::string> settings;
  std::string eventsFile;   // appended to by the script: "kill <ns>", "restart <ns>"
  std::string startedFile;  // created once the load runs, for the script to time its kill
  std::string tag;          // unique per round
  // Which process the script kills: "backend" (nats-server, redis-server) or
  // "weftd" (sqlite, where weftd itself writes the file). With weftd killed
  // no 503 can come, so kill -> first 503 is not reported.
  std::string victim = "backend";
  int64_t maxLoadMs = 30000;       // hard bound on the load phase
  int64_t afterRecoveryMs = 1500;  // keep writing this long after service returned
};

// Runs one round; never throws. The result holds "error" when the round could
// not be completed (e.g. the backend never came back), next to what was
// measured.
Json runCrashRound(const CrashOptions& options);

}  // namespace weft::bench
