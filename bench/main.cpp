// weft-bench: the measuring half of ./scripts/bench. The script starts and
// kills the servers; this program drives load, reads data back and prints one
// JSON document per command (to --out, or stdout).
//
//   weft-bench kv      --backend B [--set k=v]... [--threads 1,8] [--duration-ms D]
//                      [--warmup-ms W] [--value-bytes N] [--plugin-dir DIR]
//   weft-bench rest    --url http://127.0.0.1:P [--threads N] [--duration-ms D]
//                      [--warmup-ms W] [--open-rate R] [--agents 1000] [--cycle-items N]
//   weft-bench cycles  --urls http://127.0.0.1:P1,http://127.0.0.1:P2 [--threads N]
//                      [--duration-ms D] [--warmup-ms W] [--items N]
//   weft-bench crash   --url U --backend B [--set k=v]... --events FILE --started FILE
//                      --tag T [--victim backend|weftd] [--threads N] [--rate R]
//                      [--direct] [--direct-rate R]
//                      [--max-load-ms M] [--after-recovery-ms A]
//   weft-bench fill    --url U --backend B [--set k=v]... --min-items N
//   weft-bench serve-time --url U --since-ns T [--min-items N] [--timeout-ms M]
//   weft-bench scale-prepare --url U --backend B [--set k=v]... --items N
//                      [--rest-sample K] [--threads T] [--timeout-ms M]
//   weft-bench scale-fill --backend B [--set k=v]... --templates PREPARE.json --items N
//                      [--agents A] [--threads T] [--spread-ms S] [--seed X]
//   weft-bench scale-measure --url U [--samples N] [--min-samples M] [--budget-ms B]
//                      [--deep-pages P] [--timeout-ms T] [--pid WEFTD_PID]
//
// Exit status: 0 when the command ran (its JSON may still report an "error"
// member for a failed measurement), 2 on a usage error.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "crash.h"
#include "http_client.h"
#include "kv_workloads.h"
#include "rest_workloads.h"
#include "restart_timing.h"
#include "scale.h"
#include "scaleout.h"
#include "weft/ids.h"

namespace {

using weft::Json;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --key value pairs; --set may repeat; flags listed in kFlags take no value.
class Args {
 public:
  Args(int argc, char** argv, int first) {
    static const char* kFlags[] = {"--direct"};
    for (int i = first; i < argc; ++i) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + key + "'");
      bool flag = false;
      for (const char* f : kFlags) flag = flag || key == f;
      if (flag) {
        values_[key] = "true";
        continue;
      }
      if (i + 1 >= argc) throw UsageError(key + " needs a value");
      std::string value = argv[++i];
      if (key == "--set") {
        const size_t eq = value.find('=');
        if (eq == std::string::npos || eq == 0) throw UsageError("--set needs key=value");
        settings_[value.substr(0, eq)] = value.substr(eq + 1);
      } else {
        values_[key] = value;
      }
    }
  }

  std::string str(const std::string& key, const std::string& fallback = "") const {
    auto it = values_.find(key);
    used_[key] = true;
    return it == values_.end() ? fallback : it->second;
  }
  std::string required(const std::string& key) const {
    std::string v = str(key);
    if (v.empty()) throw UsageError(key + " is required");
    return v;
  }
  int64_t num(const std::string& key, int64_t fallback) const {
    std::string v = str(key);
    if (v.empty()) return fallback;
    try {
      return std::stoll(v);
    } catch (const std::exception&) {
      throw UsageError(key + " must be an integer, not '" + v + "'");
    }
  }
  double real(const std::string& key, double fallback) const {
    std::string v = str(key);
    if (v.empty()) return fallback;
    try {
      return std::stod(v);
    } catch (const std::exception&) {
      throw UsageError(key + " must be a number, not '" + v + "'");
    }
  }
  bool flag(const std::string& key) const { return !str(key).empty(); }
  const std::map<std::string, std::string>& settings() const { return settings_; }
  // Options given but never read: almost always a typo.
  void rejectUnused() const {
    for (const auto& [key, value] : values_) {
      if (!used_.count(key)) throw UsageError("unknown option " + key);
    }
  }

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> settings_;
  mutable std::map<std::string, bool> used_;
};

void endpoint(const Args& a, std::string* host, int* port) {
  const std::string url = a.required("--url");
  if (!weft::bench::parseHttpUrl(url, host, port)) {
    throw UsageError("--url must look like http://127.0.0.1:PORT, not '" + url + "'");
  }
}

std::string runId(const Args& a) {
  std::string id = a.str("--run-id");
  return id.empty() ? weft::newUuid().substr(0, 8) : id;
}

Json run(const std::string& command, const Args& a) {
  if (command == "kv") {
    weft::bench::KvOptions o;
    o.backend = a.required("--backend");
    o.pluginDir = a.str("--plugin-dir");
    o.settings = a.settings();
    o.durationMs = a.num("--duration-ms", o.durationMs);
    o.warmupMs = a.num("--warmup-ms", o.warmupMs);
    o.valueBytes = static_cast<int>(a.num("--value-bytes", o.valueBytes));
    o.runId = runId(a);
    const std::string threads = a.str("--threads", "1,8");
    o.threadCounts.clear();
    std::stringstream ss(threads);
    for (std::string part; std::getline(ss, part, ',');) {
      try {
        o.threadCounts.push_back(std::stoi(part));
      } catch (const std::exception&) {
        throw UsageError("--threads must be a comma-separated list of counts");
      }
    }
    a.rejectUnused();
    return weft::bench::runKvWorkloads(o);
  }
  if (command == "rest") {
    weft::bench::RestOptions o;
    endpoint(a, &o.host, &o.port);
    o.threads = static_cast<int>(a.num("--threads", o.threads));
    o.durationMs = a.num("--duration-ms", o.durationMs);
    o.warmupMs = a.num("--warmup-ms", o.warmupMs);
    o.openRate = a.real("--open-rate", o.openRate);
    o.agents = static_cast<int>(a.num("--agents", o.agents));
    o.cycleItems = static_cast<int>(a.num("--cycle-items", o.cycleItems));
    o.runId = runId(a);
    a.rejectUnused();
    return weft::bench::runRestWorkloads(o);
  }
  if (command == "cycles") {
    weft::bench::CycleOptions o;
    const std::string urls = a.required("--urls");
    size_t from = 0;
    while (from <= urls.size()) {
      size_t comma = urls.find(',', from);
      std::string u = urls.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
      std::string host;
      int port = 0;
      if (!weft::bench::parseHttpUrl(u, &host, &port)) throw UsageError("bad URL in --urls: " + u);
      o.endpoints.emplace_back(host, port);
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    o.threads = static_cast<int>(a.num("--threads", o.threads));
    o.durationMs = a.num("--duration-ms", o.durationMs);
    o.warmupMs = a.num("--warmup-ms", o.warmupMs);
    o.items = static_cast<int>(a.num("--items", o.items));
    o.runId = runId(a);
    a.rejectUnused();
    return weft::bench::runCycles(o);
  }
  if (command == "crash") {
    weft::bench::CrashOptions o;
    endpoint(a, &o.host, &o.port);
    o.backend = a.required("--backend");
    o.pluginDir = a.str("--plugin-dir");
    o.settings = a.settings();
    o.eventsFile = a.required("--events");
    o.startedFile = a.required("--started");
    o.tag = a.required("--tag");
    o.victim = a.str("--victim", o.victim);
    if (o.victim != "backend" && o.victim != "weftd") {
      throw UsageError("--victim must be backend or weftd");
    }
    o.threads = static_cast<int>(a.num("--threads", o.threads));
    o.rate = a.real("--rate", o.rate);
    o.direct = a.flag("--direct");
    o.directRate = a.real("--direct-rate", o.directRate);
    o.maxLoadMs = a.num("--max-load-ms", o.maxLoadMs);
    o.afterRecoveryMs = a.num("--after-recovery-ms", o.afterRecoveryMs);
    a.rejectUnused();
    return weft::bench::runCrashRound(o);
  }
  if (command == "fill") {
    weft::bench::FillOptions o;
    endpoint(a, &o.host, &o.port);
    o.backend = a.required("--backend");
    o.pluginDir = a.str("--plugin-dir");
    o.settings = a.settings();
    o.minItems = a.num("--min-items", 0);
    o.runId = runId(a);
    a.rejectUnused();
    return weft::bench::fillWork(o);
  }
  if (command == "serve-time") {
    std::string host;
    int port = 0;
    endpoint(a, &host, &port);
    const int64_t since = a.num("--since-ns", 0);
    if (since <= 0) throw UsageError("--since-ns is required");
    const int64_t minItems = a.num("--min-items", 0);
    const int timeoutMs = static_cast<int>(a.num("--timeout-ms", 60000));
    a.rejectUnused();
    return weft::bench::measureServeTime(host, port, since, minItems, timeoutMs);
  }
  if (command == "scale-prepare") {
    weft::bench::ScalePrepareOptions o;
    endpoint(a, &o.host, &o.port);
    o.store = {a.required("--backend"), a.str("--plugin-dir"), a.settings()};
    o.items = a.num("--items", 0);
    o.restSample = a.num("--rest-sample", 2000);
    o.threads = static_cast<int>(a.num("--threads", o.threads));
    o.timeoutMs = static_cast<int>(a.num("--timeout-ms", o.timeoutMs));
    o.runId = a.str("--run-id");
    a.rejectUnused();
    return weft::bench::runScalePrepare(o);
  }
  if (command == "scale-fill") {
    weft::bench::ScaleFillOptions o;
    o.store = {a.required("--backend"), a.str("--plugin-dir"), a.settings()};
    const std::string path = a.required("--templates");
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    auto prepared = Json::parse(text.str(), 64);
    if (!in || !prepared) throw UsageError("--templates: cannot read JSON from " + path);
    o.prepared = std::move(prepared.value());
    o.items = a.num("--items", 0);
    o.agents = a.num("--agents", 0);
    o.threads = static_cast<int>(a.num("--threads", o.threads));
    o.spreadMs = a.num("--spread-ms", o.spreadMs);
    o.seed = static_cast<uint64_t>(a.num("--seed", 1));
    a.rejectUnused();
    return weft::bench::runScaleFill(o);
  }
  if (command == "scale-measure") {
    weft::bench::ScaleMeasureOptions o;
    endpoint(a, &o.host, &o.port);
    o.samples = static_cast<int>(a.num("--samples", o.samples));
    o.minSamples = static_cast<int>(a.num("--min-samples", o.minSamples));
    o.budgetMs = a.num("--budget-ms", o.budgetMs);
    o.deepPages = static_cast<int>(a.num("--deep-pages", o.deepPages));
    o.timeoutMs = static_cast<int>(a.num("--timeout-ms", o.timeoutMs));
    o.pid = static_cast<int>(a.num("--pid", 0));
    o.runId = a.str("--run-id");
    a.rejectUnused();
    return weft::bench::runScaleMeasure(o);
  }
  throw UsageError("unknown command '" + command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  // A write to a connection the server has just dropped (the kill in a crash
  // round) must come back as an error, not end this process.
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: weft-bench kv|rest|cycles|crash|fill|serve-time|scale-prepare|"
                 "scale-fill|scale-measure [options]\n");
    return 2;
  }
  const std::string command = argv[1];
  std::string outPath;
  Json result;
  try {
    Args args(argc, argv, 2);
    outPath = args.str("--out");
    result = run(command, args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "weft-bench %s: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    // Not expected (every measurement reports its failures in the JSON), but
    // a report with the reason beats a core dump.
    result = Json::object();
    result.set("error", Json(std::string("unexpected exception: ") + e.what()));
  }
  const std::string text = result.dump() + "\n";
  if (outPath.empty()) {
    std::cout << text;
  } else {
    std::ofstream out(outPath);
    out << text;
    if (!out) {
      std::fprintf(stderr, "weft-bench: cannot write %s\n", outPath.c_str());
      return 1;
    }
  }
  if (result.contains("error")) {
    std::fprintf(stderr, "weft-bench %s: %s\n", command.c_str(), result.getString("error").c_str());
  }
  return 0;
}
