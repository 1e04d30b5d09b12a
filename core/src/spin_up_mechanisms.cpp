// Running the spin-up mechanisms (local, ssh, webhook, github-actions,
// kubernetes) within a time budget, and probing a target's health.
#include "weft/spin_up_mechanisms.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "spin_up_internal.h"
#include "weft/ids.h"
#include "weft/log.h"

namespace weft {
namespace spinup {

using namespace detail;


MechanismOutcome Mechanisms::run(const TargetRecord& target, const RunContext& run,
                                 int64_t budgetMs, const CancelToken& cancel) const {
  const Json& cfg = settingsOf(target.config(), target.mechanism);
  budgetMs = std::max<int64_t>(budgetMs, 1);
  if (target.mechanism == "local") return runLocal(cfg, run, budgetMs, cancel);
  if (target.mechanism == "ssh") return runSsh(cfg, budgetMs, cancel);
  if (target.mechanism == "webhook") return runWebhook(cfg, run, budgetMs, cancel);
  if (target.mechanism == "github-actions") return runGithub(cfg, budgetMs, cancel);
  if (target.mechanism == "kubernetes") return runKubernetes(cfg, run, budgetMs, cancel);
  return failure("unknown mechanism " + target.mechanism);
}

MechanismOutcome Mechanisms::runLocal(const Json& cfg, const RunContext& run, int64_t budgetMs,
                                      const CancelToken& cancel) const {
  const std::string command = cfg.getString("command");
  const bool shell = cfg.getBool("shell", false);
  ProcessRequest req;
  if (shell) {
    // The one place a shell is used: the target asked for it explicitly.
    req.argv = {"/bin/sh", "-c", command};
  } else {
    req.argv = {command};
    if (const Json& args = cfg.get("args"); args.isArray()) {
      for (const auto& a : args.asArray()) req.argv.push_back(scalarText(a));
    }
  }
  auto env = agentEnvironment(run, cfg.get("env"), settings_.weftUrl, false);
  if (!env) return failure(env.status().message());
  req.env = std::move(*env);
  req.workingDirectory = cfg.getString("workingDirectory");
  req.detached = cfg.getBool("detached", true);
  req.observeMs = std::min(settings_.localObserveMs, budgetMs);
  req.timeoutMs = budgetMs;
  auto result = runner_.run(req, cancel);
  if (!result) return failure(result.status().message());
  const ProcessOutcome& p = *result;
  if (p.cancelled) return cancelledOutcome();
  Json mr = Json::object();
  mr.set("pid", Json(p.pid));
  if (req.detached) {
    // Still running after the window, or already done with exit 0 (§4.5).
    if (p.running || (p.exited && p.exitCode == 0)) return success(std::move(mr));
    return failure(exitDescription(p), std::move(mr));
  }
  Json response = Json::object();
  response.set("stdout", Json(p.stdoutData));
  response.set("stderr", Json(p.stderrData));
  mr.set("response", std::move(response));
  if (p.timedOut) {
    MechanismOutcome out = timeoutOutcome(budgetMs, budgetMs, "local");
    out.mechanismResult = std::move(mr);
    return out;
  }
  if (p.exited && p.exitCode == 0) return success(std::move(mr));
  return failure(exitDescription(p), std::move(mr));
}

MechanismOutcome Mechanisms::runSsh(const Json& cfg, int64_t budgetMs,
                                    const CancelToken& cancel) const {
  auto argv = sshArgv(cfg, settings_.sshPath);
  if (!argv) return failure(argv.status().message());
  const int64_t connectMs = positiveInt(cfg, "connectionTimeoutMs", kDefaultSshConnectMs);
  ProcessRequest req;
  req.argv = std::move(*argv);
  req.detached = false;
  req.timeoutMs = std::min(connectMs, budgetMs);
  auto result = runner_.run(req, cancel);
  if (!result) return failure(result.status().message());
  const ProcessOutcome& p = *result;
  if (p.cancelled) return cancelledOutcome();
  if (p.timedOut) return timeoutOutcome(connectMs, budgetMs, "ssh");
  Json mr = Json::object();
  mr.set("pid", Json(p.pid));
  if (p.exited && p.exitCode == 0) return success(std::move(mr));
  if (p.exited) return failure("ssh exited with code " + std::to_string(p.exitCode), std::move(mr));
  return failure("ssh " + exitDescription(p), std::move(mr));
}

MechanismOutcome Mechanisms::runWebhook(const Json& cfg, const RunContext& run, int64_t budgetMs,
                                        const CancelToken& cancel) const {
  std::string method = cfg.getString("method", "POST");
  std::transform(method.begin(), method.end(), method.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (method != "GET" && method != "POST" && method != "PUT") {
    return failure("unsupported webhook method: " + method);
  }
  const int64_t ownMs = positiveInt(cfg, "timeoutMs", kDefaultWebhookTimeoutMs);
  HttpCall call;
  call.method = method;
  call.url = cfg.getString("url");
  call.timeoutMs = std::min(ownMs, budgetMs);
  call.headers = {{"Content-Type", "application/json"}, {"User-Agent", "loom-weft"}};
  if (const Json& headers = cfg.get("headers"); headers.isObject()) {
    for (const auto& [name, value] : headers.asObject()) {
      std::string text = scalarText(value);
      if (name.empty() || !validHeaderText(name) || !validHeaderText(text)) {
        return failure("invalid webhook header: " + name);
      }
      call.headers.emplace_back(name, text);
    }
  }
  if (method != "GET") call.body = webhookBody(cfg, run);
  auto reply = http_.call(call, cancel);
  if (!reply) {
    if (cancel.cancelled()) return cancelledOutcome();
    if (reply.code() == Code::Timeout) return timeoutOutcome(ownMs, budgetMs, "webhook");
    return failure("webhook request failed: " + reply.status().message());
  }
  // The body may expose internal services: logged for the operator, never
  // stored on the target or returned (§4.5).
  log::info("webhook response",
            {{"url", log::redactUrl(call.url)}, {"status", reply->status}, {"body", reply->body}});
  Json response = Json::object();
  response.set("status", Json(reply->status));
  Json mr = Json::object();
  mr.set("response", std::move(response));
  std::vector<int64_t> codes{200, 201, 202};
  if (const Json& sc = cfg.get("successCodes"); sc.isArray()) {
    codes.clear();
    for (const auto& c : sc.asArray()) {
      if (c.isInteger()) codes.push_back(c.asInt());
    }
  }
  if (std::find(codes.begin(), codes.end(), reply->status) != codes.end()) {
    return success(std::move(mr));
  }
  return failure("webhook returned status " + std::to_string(reply->status), std::move(mr));
}

Result<std::string> Mechanisms::githubToken(const Json& cfg) const {
  const std::string var = cfg.getString("tokenEnvVar", "GITHUB_TOKEN");
  const auto& allowed = settings_.githubTokenEnvVars;
  if (std::find(allowed.begin(), allowed.end(), var) == allowed.end()) {
    return Status::invalidArgument("token variable " + var +
                                   " is not allowed by server configuration");
  }
  std::optional<std::string> value;
  if (settings_.getEnv) {
    value = settings_.getEnv(var);
  } else if (const char* raw = std::getenv(var.c_str())) {
    value = std::string(raw);
  }
  if (!value || value->empty()) {
    return Status::invalidArgument("environment variable " + var + " is not set");
  }
  return *value;
}

MechanismOutcome Mechanisms::runGithub(const Json& cfg, int64_t budgetMs,
                                       const CancelToken& cancel) const {
  auto token = githubToken(cfg);
  if (!token) return failure(token.status().message());
  const std::string repo = cfg.getString("repo");
  if (!isValidRepo(repo)) return failure("invalid repo: " + repo);
  std::string workflow = cfg.getString("workflow");
  if (workflow.empty()) workflow = cfg.getString("workflowFile");
  if (!isValidWorkflow(workflow)) return failure("invalid workflow: " + workflow);
  const std::string base = githubWorkflowUrl(settings_.githubApiUrl, repo, workflow);
  const std::vector<std::pair<std::string, std::string>> headers{
      {"Authorization", "Bearer " + *token},
      {"Accept", "application/vnd.github+json"},
      {"X-GitHub-Api-Version", "2022-11-28"},
      {"User-Agent", "loom-weft"},
  };
  const auto started = std::chrono::steady_clock::now();
  auto remaining = [&] {
    auto used = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count();
    return std::max<int64_t>(1, budgetMs - used);
  };

  HttpCall dispatch;
  dispatch.method = "POST";
  dispatch.url = base + "/dispatches";
  dispatch.headers = headers;
  dispatch.headers.emplace_back("Content-Type", "application/json");
  Json body = Json::object();
  body.set("ref", Json(cfg.getString("ref", "main")));
  const Json& inputs = cfg.get("inputs");
  body.set("inputs", inputs.isObject() ? inputs : Json::object());
  dispatch.body = body.dump();
  dispatch.timeoutMs = std::min(kGithubCallTimeoutMs, budgetMs);
  auto reply = http_.call(dispatch, cancel);
  if (!reply) {
    if (cancel.cancelled()) return cancelledOutcome();
    if (reply.code() == Code::Timeout) {
      return timeoutOutcome(kGithubCallTimeoutMs, budgetMs, "GitHub dispatch");
    }
    return failure("GitHub dispatch failed: " + reply.status().message());
  }
  if (reply->status != 204) {
    return failure("GitHub dispatch returned status " + std::to_string(reply->status));
  }

  // The run id is best effort: GitHub creates the run asynchronously, and
  // the dispatch answer does not name it.
  Json mr = Json::object();
  int64_t waitMs = std::min(positiveInt(cfg, "startTimeoutMs", kDefaultGithubStartMs),
                            settings_.githubRunsWaitCapMs);
  if (!sleepUnlessCancelled(std::min(waitMs, remaining()), cancel)) return cancelledOutcome();
  HttpCall runs;
  runs.method = "GET";
  runs.url = base + "/runs?event=workflow_dispatch&per_page=5";
  runs.headers = headers;
  runs.timeoutMs = std::min(kGithubCallTimeoutMs, remaining());
  auto listed = http_.call(runs, cancel);
  if (listed && listed->status == 200) {
    auto parsed = Json::parse(listed->body, 64);
    if (parsed && parsed->get("workflow_runs").isArray()) {
      int64_t newest = -1;
      for (const auto& r : parsed->get("workflow_runs").asArray()) {
        if (r.get("id").isInteger()) newest = std::max(newest, r.get("id").asInt());
      }
      if (newest >= 0) mr.set("runId", Json(newest));
    }
  } else {
    log::info("github run lookup failed",
              {{"repo", repo},
               {"error",
                listed ? "status " + std::to_string(listed->status) : listed.status().message()}});
  }
  return success(std::move(mr));
}

MechanismOutcome Mechanisms::runKubernetes(const Json& cfg, const RunContext& run, int64_t budgetMs,
                                           const CancelToken& cancel) const {
  auto env = agentEnvironment(run, cfg.get("env"), "", false);
  if (!env) return failure(env.status().message());
  const std::string jobName = cfg.getString("jobNamePrefix") + "-" + newToken().substr(0, 8);
  const std::string ns = cfg.getString("namespace");
  ProcessRequest req;
  req.argv = {settings_.kubectlPath, "apply", "-f", "-", "-n", ns, "-o", "json"};
  req.stdinData = kubernetesJob(cfg, run, jobName, *env).dump();
  req.detached = false;
  req.timeoutMs = std::min(settings_.kubectlTimeoutMs, budgetMs);
  auto result = runner_.run(req, cancel);
  if (!result) return failure(result.status().message());
  const ProcessOutcome& p = *result;
  if (p.cancelled) return cancelledOutcome();
  if (p.timedOut) return timeoutOutcome(settings_.kubectlTimeoutMs, budgetMs, "kubectl");
  Json mr = Json::object();
  mr.set("jobName", Json(jobName));
  if (p.exited && p.exitCode == 0) return success(std::move(mr));
  std::string error = "kubectl " + exitDescription(p);
  if (std::string line = firstLine(p.stderrData); !line.empty()) error += ": " + line;
  return failure(std::move(error), std::move(mr));
}

ProbeOutcome Mechanisms::probe(const TargetRecord& target, int64_t timeoutMs,
                               const CancelToken& cancel) const {
  ProbeOutcome out;
  auto missing = missingFields(target.config(), target.mechanism);
  if (!missing.empty()) {
    out.error = missingConfigMessage(target.name, target.mechanism, missing);
    return out;
  }
  const Json& cfg = settingsOf(target.config(), target.mechanism);
  timeoutMs = std::max<int64_t>(timeoutMs, 1);
  const std::string& m = target.mechanism;

  if (m == "local") {
    const std::string wd = cfg.getString("workingDirectory");
    const bool shell = cfg.getBool("shell", false);
    Status s =
        runner_.checkExecutable(shell ? "/bin/sh" : cfg.getString("command"), shell ? "" : wd);
    if (!s) {
      out.error = s.message();
    } else if (!wd.empty() && !runner_.isDirectory(wd)) {
      out.error = "working directory not found: " + wd;
    } else {
      out.healthy = true;
    }
    return out;
  }

  if (m == "ssh" || m == "kubernetes") {
    ProcessRequest req;
    req.detached = false;
    req.timeoutMs = timeoutMs;
    std::string what;
    if (m == "ssh") {
      auto argv = sshProbeArgv(cfg, settings_.sshPath, timeoutMs);
      if (!argv) {
        out.error = argv.status().message();
        return out;
      }
      req.argv = std::move(*argv);
      what = "ssh";
    } else {
      req.argv = {settings_.kubectlPath,     "auth", "can-i", "create", "jobs", "-n",
                  cfg.getString("namespace")};
      what = "kubectl auth can-i";
    }
    auto result = runner_.run(req, cancel);
    if (!result) {
      out.error = result.status().message();
      return out;
    }
    const ProcessOutcome& p = *result;
    const std::string expected = m == "ssh" ? "ok" : "yes";
    if (p.cancelled) {
      out.error = "probe cancelled";
    } else if (p.timedOut) {
      out.error = what + " timed out after " + std::to_string(timeoutMs) + " ms";
    } else if (!p.exited || p.exitCode != 0) {
      out.error = p.exited ? what + " exited with code " + std::to_string(p.exitCode)
                           : what + " " + exitDescription(p);
    } else if (trim(p.stdoutData) != expected) {
      out.error = what + " answered '" + firstLine(p.stdoutData) + "', expected '" + expected + "'";
    } else {
      out.healthy = true;
    }
    return out;
  }

  HttpCall call;
  call.timeoutMs = timeoutMs;
  std::vector<int64_t> codes{200};
  std::string what;
  if (m == "webhook") {
    call.method = "HEAD";
    call.url = cfg.getString("url");
    call.headers = {{"User-Agent", "loom-weft"}};
    if (const Json& headers = cfg.get("headers"); headers.isObject()) {
      for (const auto& [name, value] : headers.asObject()) {
        std::string text = scalarText(value);
        if (name.empty() || !validHeaderText(name) || !validHeaderText(text)) {
          out.error = "invalid webhook header: " + name;
          return out;
        }
        call.headers.emplace_back(name, text);
      }
    }
    codes = {200, 201, 202};
    if (const Json& sc = cfg.get("successCodes"); sc.isArray()) {
      codes.clear();
      for (const auto& c : sc.asArray()) {
        if (c.isInteger()) codes.push_back(c.asInt());
      }
    }
    what = "webhook";
  } else if (m == "github-actions") {
    auto token = githubToken(cfg);
    if (!token) {
      out.error = token.status().message();
      return out;
    }
    const std::string repo = cfg.getString("repo");
    if (!isValidRepo(repo)) {
      out.error = "invalid repo: " + repo;
      return out;
    }
    std::string workflow = cfg.getString("workflow");
    if (workflow.empty()) workflow = cfg.getString("workflowFile");
    if (!isValidWorkflow(workflow)) {
      out.error = "invalid workflow: " + workflow;
      return out;
    }
    call.method = "GET";
    call.url = githubWorkflowUrl(settings_.githubApiUrl, repo, workflow);
    call.headers = {{"Authorization", "Bearer " + *token},
                    {"Accept", "application/vnd.github+json"},
                    {"X-GitHub-Api-Version", "2022-11-28"},
                    {"User-Agent", "loom-weft"}};
    what = "GitHub API";
  } else {
    out.error = "unknown mechanism " + m;
    return out;
  }
  auto reply = http_.call(call, cancel);
  if (!reply) {
    out.error = reply.code() == Code::Timeout
                    ? what + " timed out after " + std::to_string(timeoutMs) + " ms"
                    : what + " request failed: " + reply.status().message();
    return out;
  }
  if (std::find(codes.begin(), codes.end(), reply->status) == codes.end()) {
    out.error = what + " returned status " + std::to_string(reply->status);
    return out;
  }
  out.healthy = true;
  return out;
}

}  // namespace spinup
}  // namespace weft
