#include "scale.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http_client.h"
#include "latency.h"
#include "load_driver.h"
#include "scaleout.h"
#include "store_access.h"
#include "weft/clock.h"
#include "weft/ids.h"
#include "weft/service_context.h"

namespace weft::bench {

std::string scaleProject(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "scale-p%02lld", static_cast<long long>(i % kScaleProjects));
  return buf;
}

std::string scaleCapability(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "scale-c%02lld", static_cast<long long>(i % kScaleCapabilities));
  return buf;
}

std::string scaleAgent(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "scale-agent-%06lld", static_cast<long long>(i));
  return buf;
}

namespace {

using SteadyClock = std::chrono::steady_clock;

// The statuses a template is made of, in the order scale-prepare makes them:
// the claimed ones first, so each claim takes the item submitted just before
// it, and pending last.
const char* const kStatuses[] = {"assigned", "in-progress", "completed",
                                 "failed",   "cancelled",   "pending"};
constexpr int kStatusCount = 6;

// A work item as a coding agent gets one: a paragraph and a little context.
const char* const kDescription =
    "Update the retry policy of the payment client so that idempotent calls are retried with "
    "jittered exponential backoff, add tests for the timeout path and document the new "
    "settings in the service README.";

Json contextData() {
  Json c = Json::object();
  c.set("repo", Json("git@example.invalid:platform/payments.git"));
  c.set("branch", Json("main"));
  c.set("files", Json(Json::Array{Json("src/client/retry.ts"), Json("test/retry.test.ts")}));
  return c;
}

Json workBody(const std::string& project, const std::string& capability,
              const std::string& taskId) {
  Json b = Json::object();
  b.set("projectId", Json(project));
  b.set("capability", Json(capability));
  b.set("boundary", Json("default"));
  b.set("description", Json(kDescription));
  b.set("taskId", Json(taskId));
  b.set("contextData", contextData());
  return b;
}

Json failure(const std::string& what) {
  Json j = Json::object();
  j.set("error", Json(what));
  return j;
}

std::string describe(const HttpResult& r) {
  return r.outcome() + (r.body.empty() ? r.error : " " + r.body.substr(0, 200));
}

// One REST step of scale-prepare: the parsed answer, or an error text.
struct Step {
  Json body;
  std::string error;
};
Step call(HttpClient& client, const std::string& method, const std::string& path, const Json& body,
          std::initializer_list<int> expected) {
  HttpResult r = client.request(method, path, body.isNull() ? std::string() : body.dump());
  Step s;
  if (!r.answered() || std::find(expected.begin(), expected.end(), r.status) == expected.end()) {
    s.error = method + " " + path + ": " + describe(r);
    return s;
  }
  if (!r.body.empty()) {
    Result<Json> parsed = Json::parse(r.body, 64);
    if (parsed) s.body = std::move(parsed.value());
  }
  return s;
}

// The items of one template status: submitted, then moved through the
// lifecycle by the template agent. Returns the id or an error text.
struct Made {
  std::string id, error;
};
Made makeTemplate(HttpClient& c, const std::string& status, const std::string& project,
                  const std::string& capability, const std::string& agent, const std::string& tag) {
  Json body = workBody(project, capability, "scale-tpl-" + status + "-" + tag);
  if (status == "failed") body.set("maxAttempts", Json(1));
  Step s = call(c, "POST", "/api/work", body, {201});
  if (!s.error.empty()) return {"", s.error};
  const std::string id = s.body.getString("id");
  if (status == "pending") return {id, ""};
  if (status == "cancelled") {
    s = call(c, "POST", "/api/work/" + id + "/cancel", Json(), {200});
    return {id, s.error};
  }
  Json claim = Json::object();
  claim.set("agentGuid", Json(agent));
  claim.set("capabilities", Json(Json::Array{Json(capability)}));
  claim.set("projectId", Json(project));
  // A lease of a day (the longest allowed), so no clone's lease expires
  // during a run and the sweeper leaves them as they are.
  claim.set("leaseMs", Json(86400000));
  s = call(c, "POST", "/api/work/claim", claim, {200});
  if (!s.error.empty()) return {id, s.error};
  if (s.body.getString("id") != id) return {id, "the template claim took another item"};
  if (status == "assigned") return {id, ""};
  Json fenced = Json::object();
  fenced.set("agentGuid", Json(agent));
  fenced.set("claimToken", Json(s.body.getString("claimToken")));
  const std::string base = "/api/work/" + id;
  if (s = call(c, "POST", base + "/start", fenced, {200}); !s.error.empty()) return {id, s.error};
  if (status == "in-progress") {
    Json progress = fenced;
    progress.set("progress", Json(40));
    s = call(c, "POST", base + "/progress", progress, {200});
    return {id, s.error};
  }
  if (status == "completed") {
    Json result = Json::object();
    result.set("summary", Json("Retries now back off with jitter; 14 tests added, all passing."));
    result.set("artifacts", Json(Json::Array{Json("https://example.invalid/pr/1234")}));
    Json done = fenced;
    done.set("result", std::move(result));
    s = call(c, "POST", base + "/complete", done, {200});
    return {id, s.error};
  }
  Json error = Json::object();
  error.set("message", Json("tests failed: 3 of 120 (timeout path)"));
  error.set("code", Json("TESTS_FAILED"));
  error.set("recoverable", Json(false));
  Json failed = fenced;
  failed.set("error", std::move(error));
  s = call(c, "POST", base + "/fail", failed, {200});
  return {id, s.error};
}

}  // namespace

Json runScalePrepare(const ScalePrepareOptions& o) {
  const std::string tag = o.runId.empty() ? newUuid().substr(0, 8) : o.runId;
  // Names of the template's own, each exactly one string in the stored
  // values, so scale-fill can replace them wherever they occur.
  const std::string tplProject = "scale-tpl-project-" + tag;
  const std::string tplCapability = "scale-tpl-capability-" + tag;
  const std::string tplAgent = "scale-tpl-agent-" + tag;
  const std::string tplHandle = "scale-tpl-handle-" + tag;
  HttpClient c(o.host, o.port, o.timeoutMs);

  auto agentBody = [](const std::string& guid, const std::string& handle,
                      const std::string& project, const std::string& capability) {
    Json b = Json::object();
    b.set("guid", Json(guid));
    b.set("handle", Json(handle));
    b.set("agentType", Json("claude-code"));
    b.set("projectId", Json(project));
    b.set("capabilities", Json(Json::Array{Json(capability)}));
    b.set("hostname", Json("build-host-07"));
    b.set("username", Json("fleet"));
    b.set("maxConcurrentTasks", Json(1));
    // Never idle-timed out: otherwise weftd would write a shutdown request
    // to every cloned agent idleTimeoutMs after the fill, in the middle of
    // a measurement.
    b.set("spindownAfterIdleMs", Json(0));
    Json meta = Json::object();
    meta.set("model", Json("bench"));
    b.set("metadata", std::move(meta));
    return b;
  };
  Step s = call(c, "POST", "/api/agents", agentBody(tplAgent, tplHandle, tplProject, tplCapability),
                {201});
  if (!s.error.empty()) return failure("template agent: " + s.error);
  // The claimer of scale-measure: 200 when an earlier step registered it.
  s = call(c, "POST", "/api/agents",
           agentBody(kScaleClaimer, kScaleClaimer, scaleProject(0), scaleCapability(0)),
           {200, 201, 409});
  if (!s.error.empty()) return failure("claimer agent: " + s.error);

  std::map<std::string, std::string> ids;
  for (const char* status : kStatuses) {
    Made m = makeTemplate(c, status, tplProject, tplCapability, tplAgent, tag);
    if (!m.error.empty()) return failure(std::string("template ") + status + ": " + m.error);
    ids[status] = m.id;
  }

  // The stored values, read through the plugin: what weftd wrote, including
  // the members REST never shows (claimToken).
  auto store = openStore(o.store.backend, o.store.pluginDir, o.store.settings, 15000);
  if (!store) return failure(store.status().toString());
  auto open = [&](const char* name) { return openBucketWithin(**store, name, 15000); };
  auto work = open(kWorkBucket);
  auto dlq = open(kDlqBucket);
  auto agents = open(kAgentBucket);
  if (!work || !dlq || !agents) return failure("cannot open the buckets");
  Json templates = Json::object();
  Json workValues = Json::object();
  for (const auto& [status, id] : ids) {
    auto e = (*work)->get(id);
    if (!e) return failure("template " + status + " not readable: " + e.status().toString());
    auto parsed = Json::parse(e->value, 64);
    if (!parsed || parsed->getString("status") != status) {
      return failure("template " + status + " is stored with another status");
    }
    workValues.set(status, Json(e->value));
  }
  templates.set("work", std::move(workValues));
  auto dead = (*dlq)->get(ids["failed"]);
  if (!dead)
    return failure("dead-letter entry of the failed template: " + dead.status().toString());
  Json dlqValues = Json::object();
  dlqValues.set("failed", Json(dead->value));
  templates.set("dlq", std::move(dlqValues));
  auto agent = (*agents)->get(tplAgent);
  if (!agent) return failure("template agent not readable: " + agent.status().toString());
  templates.set("agent", Json(agent->value));
  Json roles = Json::object();
  roles.set("project", Json(tplProject));
  roles.set("capability", Json(tplCapability));
  roles.set("agent", Json(tplAgent));
  roles.set("handle", Json(tplHandle));
  Json idRoles = Json::object();
  for (const auto& [status, id] : ids) idRoles.set(status, Json(id));
  roles.set("ids", std::move(idRoles));
  templates.set("roles", std::move(roles));

  Json out = Json::object();
  out.set("tag", Json(tag));
  out.set("templates", std::move(templates));

  // The REST sample: pending items (it counts toward the pending share), at
  // most restSample, spread over the projects and capabilities.
  const int64_t pendingTarget = o.items / 10;
  const int64_t pendingNow = listTotal(c, "/api/work?status=pending&limit=1");
  const int64_t sample = std::max<int64_t>(
      0, std::min(o.restSample, pendingTarget - std::max<int64_t>(0, pendingNow)));
  Json rest = Json::object();
  rest.set("count", Json(static_cast<long long>(sample)));
  if (sample > 0) {
    std::vector<std::unique_ptr<HttpClient>> clients;
    for (int t = 0; t < o.threads; ++t) {
      clients.push_back(std::make_unique<HttpClient>(o.host, o.port, o.timeoutMs));
    }
    LoadOptions lo;
    lo.threads = o.threads;
    lo.warmupMs = 0;
    lo.durationMs = std::max<int64_t>(60000, sample * 50);  // bounded; ends at maxOps
    lo.maxOps = static_cast<uint64_t>(sample);
    std::atomic<int64_t> next{0};
    LoadResult r = runLoad(lo, [&](int t, uint64_t) {
      const int64_t i = next.fetch_add(1);
      Json b = workBody(scaleProject(i), scaleCapability(i / kScaleProjects),
                        "scale-rest-" + tag + "-" + std::to_string(i));
      HttpResult h = clients[t]->request("POST", "/api/work", b.dump());
      OpResult op;
      op.outcome = h.outcome();
      op.ok = h.answered() && h.status == 201;
      return op;
    });
    rest.set("threads", Json(o.threads));
    rest.set("opsPerSec", Json(r.latency.opsPerSec));
    rest.set("p50Us", Json(r.latency.p50Us));
    rest.set("p99Us", Json(r.latency.p99Us));
    rest.set("errors", Json(static_cast<long long>(r.errors)));
  }
  out.set("restSample", std::move(rest));

  // What weftd lists now (its view includes its own writes at once).
  Json byStatus = Json::object();
  for (const char* status : kStatuses) {
    byStatus.set(status, Json(static_cast<long long>(
                             listTotal(c, std::string("/api/work?limit=1&status=") + status))));
  }
  const int64_t total = listTotal(c, "/api/work?limit=1");
  if (total < 0) return failure("GET /api/work failed");
  out.set("total", Json(static_cast<long long>(total)));
  out.set("byStatus", std::move(byStatus));
  out.set("agents", Json(static_cast<long long>(listTotal(c, "/api/agents?limit=1"))));
  return out;
}

namespace {

// One stored value made into a pattern: strings that name the template's own
// item, project, capability, agent, token or handle are replaced by the
// clone's (the member of CloneValues they map to), and every timestamp is
// moved by the clone's offset.
struct CloneValues {
  std::string id, taskId, project, capability, agent, handle, token;
  int64_t shiftMs = 0;
};
using Role = std::string CloneValues::*;

struct Pattern {
  Json value;
  std::unordered_map<std::string, Role> roles;
  int64_t anchorMs = 0;  // the timestamp that becomes the clone's offeredAt / heartbeat
};

bool looksIso(const std::string& s) {
  return s.size() >= 20 && s.size() <= 32 && s[4] == '-' && s[10] == 'T' && s.back() == 'Z';
}

void substitute(Json& j, const Pattern& p, const CloneValues& v) {
  if (j.isString()) {
    std::string& s = j.asString();
    auto it = p.roles.find(s);
    if (it != p.roles.end()) {
      s = v.*(it->second);
    } else if (looksIso(s)) {
      if (auto ms = parseIso(s)) s = formatIso(*ms + v.shiftMs);
    }
  } else if (j.isArray()) {
    for (Json& e : j.asArray()) substitute(e, p, v);
  } else if (j.isObject()) {
    for (auto& member : j.asObject()) substitute(member.second, p, v);
  }
}

Result<Pattern> pattern(const std::string& text, const Json& roles, const std::string& id,
                        const char* anchor) {
  auto parsed = Json::parse(text, 64);
  if (!parsed || !parsed->isObject()) return Status::invalidArgument("a template is not JSON");
  Pattern p;
  p.value = std::move(parsed.value());
  p.roles[roles.getString("project")] = &CloneValues::project;
  p.roles[roles.getString("capability")] = &CloneValues::capability;
  p.roles[roles.getString("agent")] = &CloneValues::agent;
  p.roles[roles.getString("handle")] = &CloneValues::handle;
  if (!id.empty()) p.roles[id] = &CloneValues::id;
  const Json& item = p.value.contains("workItem") ? p.value.get("workItem") : p.value;
  if (const Json* t = item.find("taskId"); t && t->isString())
    p.roles[t->asString()] = &CloneValues::taskId;
  if (const Json* t = item.find("claimToken"); t && t->isString()) {
    p.roles[t->asString()] = &CloneValues::token;
  }
  auto at = parseIso(item.getString(anchor));
  if (!at) return Status::invalidArgument(std::string("a template has no ") + anchor);
  p.anchorMs = *at;
  return p;
}

// Runs fn(k) for k in [0, count) on `threads` threads; fn returns false on a
// failed write. Stops early after 100 failures. Progress every 10 % to stderr.
struct ParallelResult {
  int64_t done = 0, failures = 0;
  double seconds = 0;
};
ParallelResult parallelFor(int64_t count, int threads, const char* what,
                           const std::function<bool(int64_t)>& fn) {
  std::atomic<int64_t> next{0}, failures{0}, done{0};
  const auto start = SteadyClock::now();
  const int64_t step = std::max<int64_t>(1, count / 10);
  std::vector<std::thread> workers;
  for (int t = 0; t < std::max(1, threads); ++t) {
    workers.emplace_back([&] {
      for (int64_t k = next.fetch_add(1); k < count; k = next.fetch_add(1)) {
        if (failures.load() > 100) break;
        if (!fn(k)) {
          ++failures;
          continue;
        }
        const int64_t n = ++done;
        if (count >= 20000 && n % step == 0) {
          const double s = std::chrono::duration<double>(SteadyClock::now() - start).count();
          std::fprintf(stderr, "[weft-bench] scale-fill %s: %lld of %lld (%.0f/s)\n", what,
                       static_cast<long long>(n), static_cast<long long>(count), n / s);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  ParallelResult r;
  r.done = done.load();
  r.failures = failures.load();
  r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return r;
}

// A write that a busy backend may time out once: retried twice.
bool putRetrying(KvBucket& bucket, const std::string& key, const std::string& value) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (bucket.put(key, value)) return true;
  }
  return false;
}

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

Json runScaleFill(const ScaleFillOptions& o) {
  const Json& prepared = o.prepared;
  const Json& templates = prepared.get("templates");
  const Json& roles = templates.get("roles");
  if (!templates.isObject() || !roles.isObject() || !prepared.get("total").isInteger()) {
    return failure("--templates is not the output of scale-prepare");
  }
  std::vector<Pattern> work(kStatusCount);
  for (int s = 0; s < kStatusCount; ++s) {
    auto p = pattern(templates.get("work").getString(kStatuses[s]), roles,
                     roles.get("ids").getString(kStatuses[s]), "offeredAt");
    if (!p) return failure(p.status().toString());
    work[s] = std::move(p.value());
  }
  auto deadPattern = pattern(templates.get("dlq").getString("failed"), roles,
                             roles.get("ids").getString("failed"), "offeredAt");
  auto agentPattern = pattern(templates.getString("agent"), roles, "", "lastHeartbeat");
  if (!deadPattern || !agentPattern) return failure("a template does not parse");

  auto store = openStore(o.store.backend, o.store.pluginDir, o.store.settings, 15000);
  if (!store) return failure(store.status().toString());
  auto workBucket = openBucketWithin(**store, kWorkBucket, 15000);
  auto dlqBucket = openBucketWithin(**store, kDlqBucket, 15000);
  auto agentBucket = openBucketWithin(**store, kAgentBucket, 15000);
  if (!workBucket || !dlqBucket || !agentBucket) return failure("cannot open the buckets");

  Json out = Json::object();
  const int64_t now = SystemClock::instance().nowMs();
  const int64_t agents = std::max<int64_t>(0, o.agents);

  // How many of each status to add so that the whole set is about 10 %
  // pending, 0.1 % assigned and 0.1 % in progress (at least one each), the
  // rest completed, failed and cancelled 8 : 1 : 1.
  const int64_t before = prepared.getInt("total");
  const Json& counted = prepared.get("byStatus");
  const int64_t missing = std::max<int64_t>(0, o.items - before);
  int64_t want[kStatusCount] = {0};
  auto need = [&](const char* status, int64_t target) {
    return std::max<int64_t>(0, target - std::max<int64_t>(0, counted.getInt(status)));
  };
  int64_t left = missing;
  auto take = [&](int s, int64_t n) {
    want[s] = std::min(left, n);
    left -= want[s];
  };
  take(5, need("pending", o.items / 10));
  take(0, need("assigned", std::max<int64_t>(1, o.items / 1000)));
  take(1, need("in-progress", std::max<int64_t>(1, o.items / 1000)));
  const int64_t terminal = left;
  take(3, terminal / 10);
  take(4, terminal / 10);
  take(2, left);
  std::vector<uint8_t> plan;
  plan.reserve(static_cast<size_t>(missing));
  for (int s = 0; s < kStatusCount; ++s) plan.insert(plan.end(), static_cast<size_t>(want[s]), s);
  std::shuffle(plan.begin(), plan.end(), std::mt19937_64(o.seed));

  std::atomic<int64_t> written[kStatusCount];
  for (auto& w : written) w = 0;
  std::atomic<int64_t> deadLetters{0};
  ParallelResult w = parallelFor(missing, o.threads, "work items", [&](int64_t k) {
    const int s = plan[static_cast<size_t>(k)];
    const Pattern& p = work[s];
    const int64_t g = before + k;  // position in the whole set: spreads projects evenly
    const uint64_t h = mix(o.seed ^ static_cast<uint64_t>(g));
    CloneValues v;
    v.id = newUuid();
    v.taskId = "scale-task-" + v.id;
    v.project = scaleProject(g);
    v.capability = scaleCapability(g / kScaleProjects);
    v.agent =
        scaleAgent(static_cast<int64_t>(h % static_cast<uint64_t>(std::max<int64_t>(1, agents))));
    v.handle = v.agent;
    v.token = newToken();
    const int64_t offeredAt =
        now -
        static_cast<int64_t>((h >> 20) % static_cast<uint64_t>(std::max<int64_t>(1, o.spreadMs)));
    v.shiftMs = offeredAt - p.anchorMs;
    Json item = p.value;
    substitute(item, p, v);
    item.set("priority", Json(static_cast<int64_t>(1 + (h >> 8) % 10)));
    if (!putRetrying(**workBucket, v.id, item.dump())) return false;
    if (std::string(kStatuses[s]) == "failed") {
      Json entry = deadPattern->value;
      substitute(entry, *deadPattern, v);
      if (Json* snapshot = entry.find("workItem"); snapshot && snapshot->isObject()) {
        snapshot->set("priority", item.get("priority"));
      }
      if (!putRetrying(**dlqBucket, v.id, entry.dump())) return false;
      ++deadLetters;
    }
    ++written[s];
    return true;
  });
  // Then the agents, every one rewritten: heartbeats as fresh as they can be
  // when weftd restarts.
  ParallelResult a = parallelFor(agents, o.threads, "agents", [&](int64_t i) {
    CloneValues v;
    v.agent = scaleAgent(i);
    v.handle = v.agent;
    v.project = scaleProject(i);
    v.capability = scaleCapability(i / kScaleProjects);
    v.shiftMs = SystemClock::instance().nowMs() - agentPattern->anchorMs;
    Json entry = agentPattern->value;
    substitute(entry, *agentPattern, v);
    return putRetrying(**agentBucket, v.agent, entry.dump());
  });
  out.set("agents", Json(static_cast<long long>(a.done)));
  out.set("agentSeconds", Json(std::round(a.seconds * 100) / 100));

  Json byStatus = Json::object();
  int64_t ok = 0;
  for (int s = 0; s < kStatusCount; ++s) {
    byStatus.set(kStatuses[s], Json(static_cast<long long>(written[s].load())));
    ok += written[s].load();
  }
  out.set("before", Json(static_cast<long long>(before)));
  out.set("written", std::move(byStatus));
  out.set("deadLetters", Json(static_cast<long long>(deadLetters.load())));
  out.set("seconds", Json(std::round(w.seconds * 100) / 100));
  out.set("itemsPerSec", Json(std::round(w.seconds > 0 ? ok / w.seconds : 0)));
  out.set("threads", Json(o.threads));
  out.set("expectedTotal", Json(static_cast<long long>(before + ok)));
  out.set("failures", Json(static_cast<long long>(w.failures + a.failures)));
  if (w.failures + a.failures > 0) out.set("error", Json("some plugin writes failed"));
  return out;
}

namespace {

// CPU time (user + system) that process pid has used, in µs; -1 when it
// cannot be read. /proc counts in clock ticks (10 ms on Linux).
int64_t cpuUs(int pid) {
  if (pid <= 0) return -1;
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return -1;
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (!p) return -1;
  // After the command name: state (field 3) ... utime (14), stime (15).
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
      2) {
    return -1;
  }
  return static_cast<int64_t>((utime + stime) * 1000000ULL /
                              static_cast<unsigned long long>(sysconf(_SC_CLK_TCK)));
}

// The measured requests of one kind: sequential, one connection, after one
// unmeasured request (which opens the connection and warms any cache). With
// o.pid, weftd's CPU time over the whole run (warm-up included) per request.
class KindRun {
 public:
  KindRun(const ScaleMeasureOptions& o, std::string name, std::string request)
      : o_(o), name_(std::move(name)), request_(std::move(request)), cpuAtStart_(cpuUs(o.pid)) {}

  // Whether another measured request is due: below `samples`, and below
  // the time budget unless fewer than minSamples were measured.
  bool more() const {
    if (static_cast<int>(ns_.size()) >= o_.samples || errors_ > 5) return false;
    if (static_cast<int>(ns_.size()) < o_.minSamples) return true;
    return SteadyClock::now() - start_ < std::chrono::milliseconds(o_.budgetMs);
  }
  void add(int64_t ns, bool ok) {
    if (ok) {
      ns_.push_back(ns);
    } else {
      ++errors_;
    }
  }
  Json result(Json extra = Json::object()) {
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - start_).count();
    LatencySummary s = summarize(ns_, seconds);
    Json j = Json::object();
    j.set("name", Json(name_));
    j.set("request", Json(request_));
    j.set("count", Json(static_cast<long long>(s.count)));
    j.set("errors", Json(errors_));
    j.set("p50Us", Json(s.p50Us));
    j.set("p90Us", Json(s.p90Us));
    j.set("p99Us", Json(s.p99Us));
    j.set("meanUs", Json(s.meanUs));
    j.set("maxUs", Json(s.maxUs));
    j.set("seconds", Json(std::round(seconds * 100) / 100));
    const int64_t cpuNow = cpuUs(o_.pid);
    const int64_t requests = static_cast<int64_t>(s.count) + errors_ + 1;  // + the warm-up
    if (cpuAtStart_ >= 0 && cpuNow >= 0 && countsCpu_) {
      j.set("cpuUsPerRequest", Json(std::round(static_cast<double>(cpuNow - cpuAtStart_) /
                                               static_cast<double>(requests))));
    }
    for (auto& member : extra.asObject()) j.set(member.first, std::move(member.second));
    if (!lastError_.empty()) j.set("lastError", Json(lastError_));
    return j;
  }
  void error(const std::string& e) { lastError_ = e; }
  // claim and complete alternate: neither can be charged the CPU alone.
  void noCpu() { countsCpu_ = false; }

 private:
  const ScaleMeasureOptions& o_;
  std::string name_, request_;
  std::vector<int64_t> ns_;
  int errors_ = 0;
  std::string lastError_;
  SteadyClock::time_point start_ = SteadyClock::now();
  int64_t cpuAtStart_;
  bool countsCpu_ = true;
};

int64_t elapsedNs(SteadyClock::time_point from) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - from).count();
}

// A GET kind: the warm-up answer's size (and `total` for lists) is reported.
Json measureGet(const ScaleMeasureOptions& o, const std::string& name, const std::string& path) {
  HttpClient client(o.host, o.port, o.timeoutMs);
  KindRun run(o, name, "GET " + path);
  HttpResult first = client.request("GET", path);
  Json extra = Json::object();
  extra.set("responseBytes", Json(static_cast<long long>(first.body.size())));
  if (auto j = Json::parse(first.body, 64); j && j->isObject() && j->contains("total")) {
    extra.set("total", j->get("total"));
  }
  if (first.status != 200) {
    run.error(describe(first));
    run.add(0, false);
  }
  while (first.status == 200 && run.more()) {
    const auto t0 = SteadyClock::now();
    HttpResult r = client.request("GET", path);
    run.add(elapsedNs(t0), r.status == 200);
    if (r.status != 200) run.error(describe(r));
  }
  return run.result(std::move(extra));
}

}  // namespace

Json runScaleMeasure(const ScaleMeasureOptions& o) {
  const std::string tag = o.runId.empty() ? newUuid().substr(0, 8) : o.runId;
  Json requests = Json::array();
  HttpClient control(o.host, o.port, o.timeoutMs);

  const std::string project = scaleProject(3), capability = scaleCapability(7);
  requests.push(measureGet(o, "list", "/api/work?limit=50"));
  requests.push(measureGet(o, "list-pending", "/api/work?status=pending&limit=50"));
  requests.push(
      measureGet(o, "list-capability", "/api/work?capability=" + capability + "&limit=50"));
  requests.push(measureGet(o, "list-project", "/api/work?projectId=" + project + "&limit=50"));

  // A page deep in: nextCursor followed deepPages times (fewer when the list
  // ends before).
  std::string deep = "/api/work?limit=50";
  std::string anyId;
  int followed = 0;
  for (int page = 0; page < o.deepPages; ++page) {
    HttpResult r = control.request("GET", deep);
    auto j = Json::parse(r.body, 64);
    if (r.status != 200 || !j) break;
    if (anyId.empty() && j->get("workItems").size() > 0) {
      anyId = j->get("workItems").asArray()[0].getString("id");
    }
    const Json& next = j->get("nextCursor");
    if (!next.isString()) break;
    deep = "/api/work?cursor=" + next.asString();
    ++followed;
  }
  {
    Json j = measureGet(o, "list-deep", deep);
    j.set("pagesFollowed", Json(followed));
    requests.push(std::move(j));
  }
  if (!anyId.empty()) requests.push(measureGet(o, "get", "/api/work/" + anyId));
  requests.push(measureGet(o, "stats", "/api/stats"));
  requests.push(measureGet(o, "stats-projects", "/api/stats/projects"));
  requests.push(measureGet(o, "agents", "/api/agents?limit=50"));

  // The claimer must look alive, so submits find a worker (no spin-up).
  const std::string claimer = kScaleClaimer;
  control.request("POST", "/api/agents/" + claimer + "/heartbeat", "{\"status\":\"online\"}");

  // submit: into the claimer's project and capability, so the claims below
  // find these items (and the state after a step matches the one before).
  const std::string claimProject = scaleProject(0), claimCapability = scaleCapability(0);
  {
    HttpClient client(o.host, o.port, o.timeoutMs);
    KindRun run(o, "submit", "POST /api/work");
    int64_t i = 0;
    auto body = [&] {
      return workBody(claimProject, claimCapability,
                      "scale-measure-" + tag + "-" + std::to_string(i++))
          .dump();
    };
    HttpResult first = client.request("POST", "/api/work", body());
    if (first.status != 201) {
      run.error(describe(first));
      run.add(0, false);
    }
    while (first.status == 201 && run.more()) {
      const std::string b = body();
      const auto t0 = SteadyClock::now();
      HttpResult r = client.request("POST", "/api/work", b);
      run.add(elapsedNs(t0), r.status == 201);
      if (r.status != 201) run.error(describe(r));
    }
    requests.push(run.result());
  }

  // claim, then complete what was claimed (the two are reported apart).
  {
    HttpClient client(o.host, o.port, o.timeoutMs);
    Json claim = Json::object();
    claim.set("agentGuid", Json(claimer));
    claim.set("capabilities", Json(Json::Array{Json(claimCapability)}));
    claim.set("projectId", Json(claimProject));
    Json result = Json::object();
    result.set("summary", Json("done by weft-bench"));
    std::vector<int64_t> claimNs, completeNs;
    KindRun claims(o, "claim", "POST /api/work/claim");
    KindRun completes(o, "complete", "POST /api/work/{id}/complete");
    claims.noCpu();
    completes.noCpu();
    OpResult warm = claimAndComplete(client, claimer, claim, result, SteadyClock::time_point::max(),
                                     claimNs, completeNs);
    bool exhausted = warm.exhausted;
    if (!warm.ok) claims.error("warm-up: " + warm.outcome);
    while (!exhausted && warm.ok && claims.more()) {
      OpResult r = claimAndComplete(client, claimer, claim, result, SteadyClock::time_point::min(),
                                    claimNs, completeNs);
      if (r.exhausted) {
        exhausted = true;
        break;
      }
      if (!r.ok) {
        claims.add(0, false);
        claims.error(r.outcome);
        // claimAndComplete records only cycles it saw through.
        continue;
      }
      claims.add(claimNs.back(), true);
      completes.add(completeNs.back(), true);
    }
    Json extra = Json::object();
    extra.set("ranDry", Json(exhausted));
    requests.push(claims.result(std::move(extra)));
    requests.push(completes.result());
  }

  Json out = Json::object();
  out.set("requests", std::move(requests));
  out.set("samples", Json(o.samples));
  out.set("budgetMs", Json(static_cast<long long>(o.budgetMs)));
  return out;
}

}  // namespace weft::bench
