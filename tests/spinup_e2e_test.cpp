// Spin-up end to end: the built weftd as a child process on a real
// backend (WEFT_TEST_BACKEND: nats, redis or sqlite; every case starts its
// own), with every mechanism pointed at something local:
//   local           the test agent program (tests/agents/test_agent.cpp)
//   webhook,        a RecordingHttpServer in this process
//   github-actions  (spinup.githubApiUrl points at it)
//   kubernetes      a fake kubectl script that records its argv and stdin
//   ssh             a fake ssh script (spinup.sshPath) that records its argv
// The fake scripts are run by Weft with argv, like the real tools would be.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/recording_http_server.h"
#include "support/servers.h"
#include "support/temp_dir.h"
#include "support/weftd.h"
#include "weft/json.h"

#ifndef WEFT_TEST_AGENT_BIN
#error "WEFT_TEST_AGENT_BIN must name the test agent binary"
#endif

namespace {

using namespace std::chrono_literals;
using weft::Json;
using weft::testing::CannedResponse;
using weft::testing::HttpResponse;
using weft::testing::RecordedRequest;
using weft::testing::RecordingHttpServer;
using weft::testing::TempDir;
using weft::testing::Weftd;
using weft::testing::WeftdOptions;
using Settings = std::map<std::string, std::string>;
using Clock = std::chrono::steady_clock;

Json parse(const std::string& text) {
  auto r = Json::parse(text);
  if (!r) FAIL("bad JSON in test: " << text);
  return *r;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 15s) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

bool exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

// An executable shell script: a stand-in for ssh, kubectl or an agent.
std::string script(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.file(name);
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
  return path;
}

#define REQUIRE_STATUS(resp, code)   \
  do {                               \
    const HttpResponse& r_ = (resp); \
    INFO(r_.describe());             \
    REQUIRE(r_.status == (code));    \
  } while (0)

#define CHECK_API_ERROR(resp, code, msg) \
  do {                                   \
    const HttpResponse& r_ = (resp);     \
    INFO(r_.describe());                 \
    CHECK(r_.status == (code));          \
    CHECK(r_.errorKind() == "APIError"); \
    CHECK(r_.message() == (msg));        \
  } while (0)

// The backend of one case.
struct Backend {
  std::string name;
  std::unique_ptr<weft::testing::NatsServer> nats;
  std::unique_ptr<weft::testing::RedisServer> redis;
  std::unique_ptr<TempDir> dir;

  Backend() {
    const char* value = std::getenv("WEFT_TEST_BACKEND");
    if (!value || !*value) FAIL("WEFT_TEST_BACKEND is not set: nats, redis or sqlite");
    name = value;
    if (name == "nats") {
      nats = std::make_unique<weft::testing::NatsServer>();
    } else if (name == "redis") {
      redis = std::make_unique<weft::testing::RedisServer>();
    } else if (name == "sqlite") {
      dir = std::make_unique<TempDir>("weft-spinup-sqlite-");
    } else {
      FAIL("unknown WEFT_TEST_BACKEND '" << name << "'");
    }
  }
  Settings settings() const {
    Settings s{{"kv.backend", name}, {"kv.reconnectWaitMs", "200"}};
    if (nats) s["nats.url"] = nats->url();
    if (redis) s["redis.url"] = redis->url();
    if (dir) s["sqlite.path"] = dir->file("weft.db");
    return s;
  }
};

std::unique_ptr<Weftd> startWeftd(const Backend& b, const Settings& extra,
                                  const Settings& env = {}) {
  WeftdOptions options;
  options.settings = b.settings();
  for (const auto& [k, v] : extra) options.settings[k] = v;
  options.env = env;
  auto weftd = std::make_unique<Weftd>(options);
  if (!weftd->waitServing(20s)) FAIL("weftd did not serve within 20 s");
  return weftd;
}

Json registerTarget(Weftd& w, const Json& body) {
  HttpResponse r = w.post("/api/targets", body);
  REQUIRE_STATUS(r, 201);
  return r.json;
}

Json getTarget(Weftd& w, const std::string& ref) {
  HttpResponse r = w.get("/api/targets/" + ref);
  REQUIRE_STATUS(r, 200);
  return r.json;
}

// Waits until the target's lastSpinUp is the operation's (or any, when
// opId is empty) and returns the target.
Json waitForOutcome(Weftd& w, const std::string& ref, const std::string& opId = "") {
  Json target;
  bool done = eventually([&] {
    target = getTarget(w, ref);
    const Json& last = target.get("lastSpinUp");
    return last.isObject() && (opId.empty() || last.getString("operationId") == opId);
  });
  INFO(target.dump() << "\n" << w.logTail());
  REQUIRE(done);
  return target;
}

std::string spinUp(Weftd& w, const std::string& ref) {
  HttpResponse r = w.post("/api/targets/" + ref + "/spin-up");
  REQUIRE_STATUS(r, 200);
  CHECK(r.json.getBool("success"));
  return r.json.getString("operationId");
}

Json workBody(const std::string& capability) {
  Json b = parse(R"({"boundary":"personal","description":"spin-up e2e"})");
  b.set("capability", Json(capability));
  return b;
}

}  // namespace

TEST_CASE("a submission with no agents spins up a local agent that completes the work",
          "[spinup][e2e]") {
  Backend backend;
  TempDir dir("weft-spinup-e2e-");
  auto w = startWeftd(backend, {{"spinup.allowLocal", "true"}});
  const std::string agentLog = dir.file("agent.log");
  Json body = parse(R"({"name":"local-agent","agentType":"claude-code","capabilities":["e2e"],
      "mechanism":"local"})");
  Json local = Json::object();
  local.set("command", Json(WEFT_TEST_AGENT_BIN));
  local.set("args",
            Json(Json::Array{Json("--capability"), Json("e2e"), Json("--log"), Json(agentLog)}));
  Json config = Json::object();
  config.set("local", local);
  body.set("config", config);
  const std::string targetId = registerTarget(*w, body).getString("id");

  HttpResponse submitted = w->post("/api/work", workBody("e2e"));
  REQUIRE_STATUS(submitted, 201);
  CHECK(submitted.json.getBool("spinUpTriggered"));
  CHECK(submitted.json.getInt("estimatedWaitSeconds") == 30);
  const std::string workId = submitted.json.getString("id");

  Json item;
  bool completed = eventually(
      [&] {
        item = w->get("/api/work/" + workId).json;
        return item.getString("status") == "completed";
      },
      30s);
  INFO("work: " << item.dump() << "\nagent log:\n"
                << readFile(agentLog) << "\nweftd:\n"
                << w->logTail());
  REQUIRE(completed);
  CHECK(item.get("result").getString("summary") == "done by test agent");

  Json target = waitForOutcome(*w, targetId);
  CHECK(target.getInt("useCount") == 1);
  CHECK(target.get("lastSpinUp").getString("outcome") == "success");
  CHECK(target.get("lastSpinUp").getString("workItemId") == workId);
  CHECK(target.get("lastSpinUp").get("mechanismResult").get("pid").isInteger());
  CHECK(target.contains("lastUsedAt"));
  // The outcome is counted in /metrics too.
  CHECK(w->get("/metrics").body.find(
            "weft_spinup_operations_total{mechanism=\"local\",outcome=\"success\"} 1") !=
        std::string::npos);

  // The agent got its target and work item through the environment, and
  // registered with the target id.
  auto log = lines(readFile(agentLog));
  REQUIRE_FALSE(log.empty());
  CHECK(log[0] == "started url=http://127.0.0.1:" + std::to_string(w->port()) +
                      " targetId=" + targetId + " workItemId=" + workId + " projectId=default");
  CHECK(eventually([&] { return readFile(agentLog).find("deregistered") != std::string::npos; }));
  CHECK(item.getString("assignedTo") ==
        lines(readFile(agentLog))[1].substr(std::string("registered guid=").size()));
}

TEST_CASE("every mechanism is disabled by default (403)", "[spinup][e2e]") {
  Backend backend;
  auto w = startWeftd(backend, {});
  const std::map<std::string, std::string> configs{
      {"local", R"({"command":"/bin/true"})"},
      {"ssh", R"({"host":"h","user":"u","command":"c"})"},
      {"webhook", R"({"url":"http://127.0.0.1:9/"})"},
      {"github-actions", R"({"repo":"o/r","workflow":"w.yml"})"},
      {"kubernetes", R"({"namespace":"n","jobNamePrefix":"j","image":"i"})"},
  };
  for (const auto& [mechanism, config] : configs) {
    Json body = parse(R"({"agentType":"claude-code","capabilities":["x"]})");
    body.set("name", Json("t-" + mechanism));
    body.set("mechanism", Json(mechanism));
    body.set("config", parse(config));
    registerTarget(*w, body);
    const std::string message = "mechanism " + mechanism + " is disabled by server configuration";
    CHECK_API_ERROR(w->post("/api/targets/t-" + mechanism + "/spin-up"), 403, message);
    CHECK_API_ERROR(w->post("/api/targets/t-" + mechanism + "/test"), 403, message);
  }
  // A submission that would pick them spins nothing up.
  HttpResponse submitted = w->post("/api/work", workBody("x"));
  REQUIRE_STATUS(submitted, 201);
  CHECK(submitted.json.getBool("spinUpTriggered"));  // requested, but no eligible target
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(getTarget(*w, "t-local").contains("lastSpinUp"));
}

TEST_CASE("target registry over HTTP: 409s, resolution and the batch", "[spinup][e2e]") {
  Backend backend;
  auto w = startWeftd(backend, {{"spinup.allowLocal", "true"}});
  Json body = parse(R"({"name":"nocmd","agentType":"claude-code","capabilities":["x"],
      "mechanism":"local"})");
  const std::string id = registerTarget(*w, body).getString("id");
  CHECK_API_ERROR(w->post("/api/targets", body), 409, "Target with name 'nocmd' already exists");
  CHECK_API_ERROR(w->post("/api/targets/nocmd/spin-up"), 409,
                  "Target nocmd is missing required config for mechanism local: command");
  HttpResponse tested = w->post("/api/targets/nocmd/test");
  REQUIRE_STATUS(tested, 200);
  CHECK_FALSE(tested.json.getBool("healthy"));
  CHECK(tested.json.getString("error") ==
        "Target nocmd is missing required config for mechanism local: command");
  CHECK_API_ERROR(w->get("/api/targets/ghost"), 404, "Target with ID or name ghost not found");
  body.set("projectId", Json("p2"));
  registerTarget(*w, body);
  CHECK_API_ERROR(w->get("/api/targets/nocmd"), 409,
                  "Target name 'nocmd' exists in several projects; use the id or pass projectId");
  CHECK(w->get("/api/targets/nocmd?projectId=p2").json.getString("projectId") == "p2");
  CHECK(w->get("/api/targets/" + id + "?projectId=p2").json.getString("projectId") == "default");

  HttpResponse batch = w->post("/api/targets/disable-batch",
                               parse(R"({"targetIds":["nocmd","ghost"],"projectId":"default"})"));
  REQUIRE_STATUS(batch, 200);
  CHECK(batch.json.get("disabledTargets") == Json(Json::Array{Json(id)}));
  CHECK(batch.json.get("failed") == parse(R"(["ghost"])"));
  CHECK_API_ERROR(w->post("/api/targets/" + id + "/spin-up"), 409, "Target nocmd is disabled");
  HttpResponse listed = w->get("/api/targets?status=disabled");
  REQUIRE_STATUS(listed, 200);
  CHECK(listed.json.getInt("total") == 1);
  HttpResponse stats = w->get("/api/stats");
  REQUIRE_STATUS(stats, 200);
  CHECK(stats.json.get("totals").getInt("targets") == 2);
  CHECK(stats.json.get("totals").getInt("disabledTargets") == 1);
  HttpResponse removed = w->del("/api/targets/" + id);
  REQUIRE_STATUS(removed, 200);
  CHECK(removed.json.getString("message") == "Target " + id + " removed");
  registerTarget(*w, parse(R"({"name":"nocmd","agentType":"claude-code","capabilities":["x"],
      "mechanism":"local"})"));  // the name is free again
}

TEST_CASE("no command runs through a shell unless the target asks", "[spinup][e2e]") {
  Backend backend;
  TempDir dir("weft-spinup-e2e-");
  auto w = startWeftd(backend, {{"spinup.allowLocal", "true"}});
  const std::string argsFile = dir.file("args.txt");
  const std::string recorder =
      script(dir, "record-args.sh", "for a in \"$@\"; do echo \"$a\" >> " + argsFile + "; done\n");
  const std::string marker = dir.file("injected");
  Json literal = parse(R"({"name":"literal","agentType":"claude-code","capabilities":["x"],
      "mechanism":"local"})");
  Json config = Json::object();
  config.set("command", Json(recorder));
  config.set("args", Json(Json::Array{Json("; touch " + marker), Json("$(touch " + marker + ")"),
                                      Json("`touch " + marker + "`")}));
  config.set("detached", Json(false));
  literal.set("config", config);
  registerTarget(*w, literal);
  const std::string op = spinUp(*w, "literal");
  Json target = waitForOutcome(*w, "literal", op);
  CHECK(target.get("lastSpinUp").getString("outcome") == "success");
  CHECK(lines(readFile(argsFile)) == std::vector<std::string>{"; touch " + marker,
                                                              "$(touch " + marker + ")",
                                                              "`touch " + marker + "`"});
  CHECK_FALSE(exists(marker));

  const std::string shellFile = dir.file("shell-ran");
  Json shell = parse(R"({"name":"shell","agentType":"claude-code","capabilities":["x"],
      "mechanism":"local"})");
  Json shellConfig = Json::object();
  shellConfig.set("command", Json("echo ran > " + shellFile));
  shellConfig.set("shell", Json(true));
  shellConfig.set("detached", Json(false));
  shell.set("config", shellConfig);
  registerTarget(*w, shell);
  const std::string shellOp = spinUp(*w, "shell");
  CHECK(waitForOutcome(*w, "shell", shellOp).get("lastSpinUp").getString("outcome") == "success");
  CHECK(readFile(shellFile) == "ran\n");
}

TEST_CASE("de-duplication and the concurrency limit (429)", "[spinup][e2e]") {
  Backend backend;
  auto w = startWeftd(backend, {{"spinup.allowLocal", "true"}, {"spinup.maxConcurrent", "1"}});
  for (const char* name : {"a", "b"}) {
    Json body = parse(R"({"agentType":"claude-code","capabilities":["x"],"mechanism":"local",
        "config":{"command":"/bin/sleep","args":["3"],"detached":false}})");
    body.set("name", Json(name));
    registerTarget(*w, body);
  }
  HttpResponse first = w->post("/api/targets/a/spin-up");
  REQUIRE_STATUS(first, 200);
  CHECK(first.json.getString("status") == "in-progress");
  HttpResponse again = w->post("/api/targets/a/spin-up");
  REQUIRE_STATUS(again, 200);
  CHECK(again.json.getString("operationId") == first.json.getString("operationId"));
  CHECK_API_ERROR(w->post("/api/targets/b/spin-up"), 429, "Too many concurrent spin-ups (limit 1)");
  Json target = waitForOutcome(*w, "a", first.json.getString("operationId"));
  CHECK(target.getInt("useCount") == 1);
  CHECK(spinUp(*w, "b") != "");  // free again
}

TEST_CASE("webhook: placeholders, success codes, timeout, body never echoed", "[spinup][e2e]") {
  Backend backend;
  RecordingHttpServer hooks([](const RecordedRequest& req) {
    CannedResponse r;
    r.status = 201;
    r.body = "TOP-SECRET-INTERNAL-BODY";
    if (req.target == "/slow") r.delayMs = 2000;
    return r;
  });
  auto w = startWeftd(backend, {{"spinup.allowWebhook", "true"}});
  Json body = parse(R"({"name":"hook","agentType":"claude-code","capabilities":["hooked"],
      "mechanism":"webhook"})");
  Json webhook = Json::object();
  webhook.set("url", Json(hooks.url("/spin")));
  webhook.set("headers", parse(R"({"X-Api-Key":"k1"})"));
  webhook.set("bodyTemplate",
              Json(R"({"target":"{{targetId}}","name":"{{targetName}}","type":"{{agentType}}",)"
                   R"("project":"{{projectId}}","work":"{{workItemId}}","op":"{{operationId}}",)"
                   R"("at":"{{timestamp}}"})"));
  Json config = Json::object();
  config.set("webhook", webhook);
  body.set("config", config);
  const std::string targetId = registerTarget(*w, body).getString("id");

  HttpResponse submitted = w->post("/api/work", workBody("hooked"));
  REQUIRE_STATUS(submitted, 201);
  const std::string workId = submitted.json.getString("id");
  Json target = waitForOutcome(*w, "hook");
  CHECK(target.get("lastSpinUp").getString("outcome") == "success");
  CHECK(target.get("lastSpinUp").get("mechanismResult") == parse(R"({"response":{"status":201}})"));
  auto seen = hooks.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "POST");
  CHECK(seen[0].target == "/spin");
  CHECK(seen[0].header("Content-Type") == std::optional<std::string>("application/json"));
  CHECK(seen[0].header("User-Agent") == std::optional<std::string>("loom-weft"));
  CHECK(seen[0].header("X-Api-Key") == std::optional<std::string>("k1"));
  Json sent = parse(seen[0].body);
  CHECK(sent.getString("target") == targetId);
  CHECK(sent.getString("name") == "hook");
  CHECK(sent.getString("type") == "claude-code");
  CHECK(sent.getString("project") == "default");
  CHECK(sent.getString("work") == workId);
  CHECK(sent.getString("op") == target.get("lastSpinUp").getString("operationId"));
  CHECK(sent.getString("at").size() == 24);

  // The receiver's body reaches no API response.
  const std::string secret = "TOP-SECRET-INTERNAL-BODY";
  CHECK(w->get("/api/targets/hook").body.find(secret) == std::string::npos);
  CHECK(w->get("/api/targets").body.find(secret) == std::string::npos);
  HttpResponse manual = w->post("/api/targets/hook/spin-up");
  REQUIRE_STATUS(manual, 200);
  CHECK(manual.body.find(secret) == std::string::npos);
  waitForOutcome(*w, "hook", manual.json.getString("operationId"));

  // successCodes without 201: a failure; a slow receiver: a timeout.
  HttpResponse put = w->http().request(
      "PUT", "/api/targets/hook",
      R"({"config":{"webhook":{"url":")" + hooks.url("/spin") + R"(","successCodes":[200]}}})");
  REQUIRE_STATUS(put, 200);
  std::string op = spinUp(*w, "hook");
  CHECK(waitForOutcome(*w, "hook", op).getString("lastError") == "webhook returned status 201");
  put = w->http().request(
      "PUT", "/api/targets/hook",
      R"({"config":{"webhook":{"url":")" + hooks.url("/slow") + R"(","timeoutMs":300}}})");
  REQUIRE_STATUS(put, 200);
  op = spinUp(*w, "hook");
  CHECK(waitForOutcome(*w, "hook", op).getString("lastError") == "webhook timed out after 300 ms");

  // The probe is a HEAD with the target's headers.
  put = w->http().request("PUT", "/api/targets/hook",
                          R"({"config":{"webhook":{"url":")" + hooks.url("/probe") +
                              R"(","headers":{"X-Api-Key":"k2"}}}})");
  REQUIRE_STATUS(put, 200);
  HttpResponse tested = w->post("/api/targets/hook/test");
  REQUIRE_STATUS(tested, 200);
  CHECK(tested.json.getBool("healthy"));
  CHECK(getTarget(*w, "hook").getString("healthStatus") == "healthy");
  auto last = hooks.requests().back();
  CHECK(last.method == "HEAD");
  CHECK(last.target == "/probe");
  CHECK(last.header("X-Api-Key") == std::optional<std::string>("k2"));
}

TEST_CASE("kubernetes: a Job manifest piped to the configured kubectl", "[spinup][e2e]") {
  Backend backend;
  TempDir dir("weft-spinup-e2e-");
  const std::string kubectl =
      script(dir, "kubectl",
             "echo \"$*\" >> " + dir.file("kubectl.args") + "\n" +
                 "if [ \"$1\" = auth ]; then echo yes; exit 0; fi\n" + "cat > " +
                 dir.file("kubectl.stdin") + "\necho '{\"kind\":\"Job\"}'\n");
  auto w =
      startWeftd(backend, {{"spinup.allowKubernetes", "true"}, {"spinup.kubectlPath", kubectl}});
  const std::string targetId = registerTarget(*w, parse(R"({"name":"kube",
      "agentType":"copilot-cli","capabilities":["x"],"mechanism":"kubernetes",
      "config":{"kubernetes":{"namespace":"agents","jobNamePrefix":"loom","image":"reg/a:1",
      "env":{"EXTRA":"yes"}}}})"))
                                   .getString("id");
  const std::string op = spinUp(*w, "kube");
  Json target = waitForOutcome(*w, "kube", op);
  INFO(target.dump());
  CHECK(target.get("lastSpinUp").getString("outcome") == "success");
  const std::string jobName = target.get("lastSpinUp").get("mechanismResult").getString("jobName");
  CHECK(jobName.rfind("loom-", 0) == 0);
  CHECK(lines(readFile(dir.file("kubectl.args"))) ==
        std::vector<std::string>{"apply -f - -n agents -o json"});
  Json job = parse(readFile(dir.file("kubectl.stdin")));
  CHECK(job.getString("kind") == "Job");
  CHECK(job.get("metadata").getString("name") == jobName);
  CHECK(job.get("metadata").get("labels").getString("loom.agent/target-id") == targetId);
  const Json& container =
      job.get("spec").get("template").get("spec").get("containers").asArray()[0];
  CHECK(container.getString("image") == "reg/a:1");
  std::map<std::string, std::string> env;
  for (const auto& e : container.get("env").asArray())
    env[e.getString("name")] = e.getString("value");
  CHECK(env["LOOMINAL_TARGET_ID"] == targetId);
  CHECK(env["LOOMINAL_AGENT_TYPE"] == "copilot-cli");
  CHECK(env["EXTRA"] == "yes");

  HttpResponse tested = w->post("/api/targets/kube/test");
  REQUIRE_STATUS(tested, 200);
  CHECK(tested.json.getBool("healthy"));
  CHECK(lines(readFile(dir.file("kubectl.args"))).back() == "auth can-i create jobs -n agents");
}

TEST_CASE("github-actions: workflow dispatch against spinup.githubApiUrl", "[spinup][e2e]") {
  Backend backend;
  RecordingHttpServer github([](const RecordedRequest& req) {
    CannedResponse r;
    if (req.method == "POST") {
      r.status = 204;
    } else if (req.target.find("/runs") != std::string::npos) {
      r.body = R"({"total_count":2,"workflow_runs":[{"id":9001},{"id":9000}]})";
    } else {
      r.body = R"({"id":1,"name":"agent"})";
    }
    return r;
  });
  auto w = startWeftd(
      backend, {{"spinup.allowGithubActions", "true"}, {"spinup.githubApiUrl", github.url()}},
      {{"GITHUB_TOKEN", "e2e-token"}});
  registerTarget(*w, parse(R"({"name":"gh","agentType":"claude-code","capabilities":["x"],
      "mechanism":"github-actions","config":{"githubActions":{"repo":"acme/agents",
      "workflow":"agent.yml","ref":"main","inputs":{"size":"large"},"startTimeoutMs":100}}})"));
  const std::string op = spinUp(*w, "gh");
  Json target = waitForOutcome(*w, "gh", op);
  INFO(target.dump());
  CHECK(target.get("lastSpinUp").getString("outcome") == "success");
  CHECK(target.get("lastSpinUp").get("mechanismResult") == parse(R"({"runId":9001})"));
  auto seen = github.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].method == "POST");
  CHECK(seen[0].target == "/repos/acme/agents/actions/workflows/agent.yml/dispatches");
  CHECK(seen[0].header("Authorization") == std::optional<std::string>("Bearer e2e-token"));
  CHECK(seen[0].header("Accept") == std::optional<std::string>("application/vnd.github+json"));
  CHECK(seen[0].header("X-GitHub-Api-Version") == std::optional<std::string>("2022-11-28"));
  CHECK(parse(seen[0].body) == parse(R"({"ref":"main","inputs":{"size":"large"}})"));
  CHECK(seen[1].method == "GET");

  HttpResponse tested = w->post("/api/targets/gh/test");
  REQUIRE_STATUS(tested, 200);
  CHECK(tested.json.getBool("healthy"));
  CHECK(github.requests().back().target == "/repos/acme/agents/actions/workflows/agent.yml");

  // A token variable the server does not allow never reaches GitHub.
  HttpResponse put = w->http().request("PUT", "/api/targets/gh",
                                       R"({"config":{"githubActions":{"repo":"acme/agents",
                                    "workflow":"agent.yml","tokenEnvVar":"HOME"}}})");
  REQUIRE_STATUS(put, 200);
  const size_t before = github.requests().size();
  const std::string refused = spinUp(*w, "gh");
  CHECK(waitForOutcome(*w, "gh", refused).getString("lastError") ==
        "token variable HOME is not allowed by server configuration");
  CHECK(github.requests().size() == before);
}

TEST_CASE("ssh: the configured binary gets argv with quoted remote values", "[spinup][e2e]") {
  Backend backend;
  TempDir dir("weft-spinup-e2e-");
  const std::string argsFile = dir.file("ssh.args");
  const std::string ssh =
      script(dir, "ssh", "for a in \"$@\"; do echo \"$a\" >> " + argsFile + "; done\necho ok\n");
  auto w = startWeftd(backend, {{"spinup.allowSsh", "true"}, {"spinup.sshPath", ssh}});
  registerTarget(*w, parse(R"({"name":"remote","agentType":"claude-code","capabilities":["x"],
      "mechanism":"ssh","config":{"ssh":{"host":"build.example","user":"agent","port":2222,
      "command":"run-agent --now","workingDirectory":"/opt/my agents",
      "env":{"TOKEN_HINT":"it's; rm -rf /"},"connectionTimeoutMs":5000}}})"));
  const std::string op = spinUp(*w, "remote");
  Json target = waitForOutcome(*w, "remote", op);
  INFO(target.dump());
  CHECK(target.get("lastSpinUp").getString("outcome") == "success");
  CHECK(lines(readFile(argsFile)) ==
        std::vector<std::string>{"-p", "2222", "-o", "StrictHostKeyChecking=accept-new", "-o",
                                 "BatchMode=yes", "-o", "ConnectTimeout=5", "agent@build.example",
                                 "export TOKEN_HINT='it'\\''s; rm -rf /'; cd '/opt/my agents' && "
                                 "run-agent --now"});
  HttpResponse tested = w->post("/api/targets/remote/test");
  REQUIRE_STATUS(tested, 200);
  CHECK(tested.json.getBool("healthy"));
  CHECK(lines(readFile(argsFile)).back() == "echo ok");
}
