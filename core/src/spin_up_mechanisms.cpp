#include "weft/spin_up_mechanisms.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "weft/ids.h"
#include "weft/log.h"

namespace weft {

bool SpinUpSettings::allows(const std::string& m) const {
  if (m == "local") return allowLocal;
  if (m == "ssh") return allowSsh;
  if (m == "webhook") return allowWebhook;
  if (m == "kubernetes") return allowKubernetes;
  if (m == "github-actions") return allowGithubActions;
  return false;
}

namespace spinup {

namespace {

constexpr int64_t kDefaultSshConnectMs = 30000;
constexpr int64_t kDefaultWebhookTimeoutMs = 30000;
constexpr int64_t kGithubCallTimeoutMs = 30000;
constexpr int64_t kDefaultGithubStartMs = 5000;

bool isNonBlankString(const Json& v) {
  if (!v.isString()) return false;
  const std::string& s = v.asString();
  return std::any_of(s.begin(), s.end(), [](char c) {
    return !(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v');
  });
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// A positive integer setting, else fallback.
int64_t positiveInt(const Json& cfg, const char* key, int64_t fallback) {
  const Json& v = cfg.get(key);
  return v.isInteger() && v.asInt() > 0 ? v.asInt() : fallback;
}

// The first line of a process's stderr, short enough for lastError.
std::string firstLine(const std::string& text) {
  std::string line = trim(text.substr(0, text.find('\n')));
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  return line;
}

std::string exitDescription(const ProcessOutcome& p) {
  if (p.exited) return "exit code " + std::to_string(p.exitCode);
  return "killed by signal " + std::to_string(p.signal);
}

std::string jsonEscaped(const std::string& value) {
  std::string quoted;
  appendJsonString(quoted, value);
  return quoted.substr(1, quoted.size() - 2);
}

// Percent-encodes one URL path segment (RFC 3986 unreserved kept).
std::string encodeSegment(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool validHeaderText(const std::string& s) {
  return s.find_first_of("\r\n") == std::string::npos;
}

// Whether the timeout that fired was the mechanism's own (a failure with its
// message) or the operation's budget (the operation times out).
MechanismOutcome timeoutOutcome(int64_t ownMs, int64_t budgetMs, const std::string& what) {
  MechanismOutcome out;
  if (ownMs < budgetMs) {
    out.error = what + " timed out after " + std::to_string(ownMs) + " ms";
  } else {
    out.timedOut = true;
    out.error = "timed out";
  }
  return out;
}

MechanismOutcome failure(std::string error, Json mechanismResult = Json()) {
  MechanismOutcome out;
  out.error = std::move(error);
  out.mechanismResult = std::move(mechanismResult);
  return out;
}

MechanismOutcome success(Json mechanismResult) {
  MechanismOutcome out;
  out.success = true;
  out.mechanismResult = std::move(mechanismResult);
  return out;
}

MechanismOutcome cancelledOutcome() {
  MechanismOutcome out;
  out.cancelled = true;
  out.error = "cancelled";
  return out;
}

bool validDestinationPart(const std::string& s) {
  if (s.empty() || s[0] == '-') return false;
  return s.find_first_of(" \t\r\n@") == std::string::npos;
}

// The leading part of every ssh command line: [-p port] [-i key] and the
// options, then user@host. Order as in §4.5 (the probe of §4.4 lists the
// options first; ssh does not care).
Result<std::vector<std::string>> sshPrefix(const Json& ssh, const std::string& sshPath,
                                           int64_t connectSeconds) {
  const std::string user = ssh.getString("user");
  const std::string host = ssh.getString("host");
  if (!validDestinationPart(user)) {
    return Status::invalidArgument("invalid ssh destination: user '" + user + "'");
  }
  if (!validDestinationPart(host)) {
    return Status::invalidArgument("invalid ssh destination: host '" + host + "'");
  }
  std::vector<std::string> argv{sshPath};
  const Json& port = ssh.get("port");
  if (!port.isNull()) {
    int64_t p = 0;
    if (port.isInteger()) {
      p = port.asInt();
    } else if (port.isString() && !port.asString().empty() &&
               std::all_of(port.asString().begin(), port.asString().end(),
                           [](char c) { return c >= '0' && c <= '9'; }) &&
               port.asString().size() <= 5) {
      p = std::stoll(port.asString());
    }
    if (p < 1 || p > 65535) return Status::invalidArgument("invalid ssh port: " + scalarText(port));
    argv.insert(argv.end(), {"-p", std::to_string(p)});
  }
  if (const std::string key = ssh.getString("privateKeyPath"); !key.empty()) {
    argv.insert(argv.end(), {"-i", key});
  }
  argv.insert(argv.end(), {"-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes", "-o",
                           "ConnectTimeout=" + std::to_string(connectSeconds)});
  argv.push_back(user + "@" + host);
  return argv;
}

// Sleeps up to ms, returning early (false) when the token fires.
bool sleepUnlessCancelled(int64_t ms, const CancelToken& cancel) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cancel.cancelled()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return !cancel.cancelled();
}

}  // namespace

bool isMechanism(const std::string& m) {
  return std::any_of(std::begin(kMechanisms), std::end(kMechanisms),
                     [&](const char* k) { return m == k; });
}

std::string disabledMessage(const std::string& mechanism) {
  return "mechanism " + mechanism + " is disabled by server configuration";
}

const Json& settingsOf(const Json& config, const std::string& mechanism) {
  static const Json kNull;
  if (!config.isObject()) return kNull;
  const char* nested = mechanism == "github-actions" ? "githubActions" : mechanism.c_str();
  const Json* inner = config.find(nested);
  return inner && inner->isObject() ? *inner : config;
}

std::vector<std::string> missingFields(const Json& config, const std::string& mechanism) {
  const Json& cfg = settingsOf(config, mechanism);
  std::vector<std::string> required;
  if (mechanism == "local") required = {"command"};
  if (mechanism == "ssh") required = {"host", "user", "command"};
  if (mechanism == "webhook") required = {"url"};
  if (mechanism == "github-actions") required = {"repo", "workflow"};
  if (mechanism == "kubernetes") required = {"namespace", "jobNamePrefix", "image"};
  std::vector<std::string> missing;
  for (const auto& field : required) {
    bool present = isNonBlankString(cfg.get(field));
    if (!present && field == "workflow") present = isNonBlankString(cfg.get("workflowFile"));
    if (!present) missing.push_back(field);
  }
  return missing;
}

std::string missingConfigMessage(const std::string& targetName, const std::string& mechanism,
                                 const std::vector<std::string>& fields) {
  std::string list;
  for (const auto& f : fields) list += (list.empty() ? "" : ", ") + f;
  return "Target " + targetName + " is missing required config for mechanism " + mechanism + ": " +
         list;
}

bool isValidEnvName(const std::string& name) {
  if (name.empty()) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

std::string singleQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

std::string scalarText(const Json& value) {
  if (value.isString()) return value.asString();
  if (value.isNull()) return "";
  return value.dump();
}

int64_t ceilSeconds(int64_t ms) {
  return std::max<int64_t>(1, (ms + 999) / 1000);
}

Result<std::vector<std::pair<std::string, std::string>>> agentEnvironment(
    const RunContext& run, const Json& env, const std::string& weftUrl, bool strictNames) {
  std::vector<std::pair<std::string, std::string>> out{
      {"LOOMINAL_TARGET_ID", run.targetId},
      {"LOOMINAL_TARGET_NAME", run.targetName},
      {"LOOMINAL_AGENT_TYPE", run.agentType},
      {"LOOMINAL_PROJECT_ID", run.projectId},
  };
  if (!run.workItemId.empty()) out.emplace_back("WEFT_WORK_ITEM_ID", run.workItemId);
  if (!weftUrl.empty()) out.emplace_back("WEFT_URL", weftUrl);
  if (!env.isObject()) return out;
  // Not a structured binding: C++17 forbids capturing one in the lambda
  // below (g++ accepts it, clang 14 rejects it).
  for (const auto& member : env.asObject()) {
    const std::string& name = member.first;
    const Json& value = member.second;
    bool bad = name.empty() || name.find('=') != std::string::npos ||
               name.find('\0') != std::string::npos || (strictNames && !isValidEnvName(name));
    if (bad) return Status::invalidArgument("invalid env var name: " + name);
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == name; });
    if (it != out.end()) {
      it->second = scalarText(value);
    } else {
      out.emplace_back(name, scalarText(value));
    }
  }
  return out;
}

Result<std::vector<std::string>> sshArgv(const Json& ssh, const std::string& sshPath) {
  std::string remote;
  const Json& env = ssh.get("env");
  if (env.isObject() && !env.asObject().empty()) {
    remote = "export";
    for (const auto& [name, value] : env.asObject()) {
      if (!isValidEnvName(name)) return Status::invalidArgument("invalid env var name: " + name);
      remote += " " + name + "=" + singleQuote(scalarText(value));
    }
    remote += "; ";
  }
  if (const std::string wd = ssh.getString("workingDirectory"); !wd.empty()) {
    remote += "cd " + singleQuote(wd) + " && ";
  }
  remote += ssh.getString("command");
  auto argv = sshPrefix(ssh, sshPath,
                        ceilSeconds(positiveInt(ssh, "connectionTimeoutMs", kDefaultSshConnectMs)));
  if (!argv) return argv.status();
  argv->push_back(remote);
  return argv;
}

Result<std::vector<std::string>> sshProbeArgv(const Json& ssh, const std::string& sshPath,
                                              int64_t timeoutMs) {
  int64_t connectMs =
      std::min(positiveInt(ssh, "connectionTimeoutMs", kDefaultSshConnectMs), timeoutMs);
  auto argv = sshPrefix(ssh, sshPath, ceilSeconds(connectMs));
  if (!argv) return argv.status();
  argv->push_back("echo ok");
  return argv;
}

std::string renderTemplate(const std::string& text,
                           const std::vector<std::pair<std::string, std::string>>& values) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    size_t close = text.find("}}", open + 2);
    if (close == std::string::npos) break;
    std::string name = text.substr(open + 2, close - open - 2);
    auto it =
        std::find_if(values.begin(), values.end(), [&](const auto& p) { return p.first == name; });
    out.append(text, pos, open - pos);
    if (it != values.end()) {
      out += jsonEscaped(it->second);
      pos = close + 2;
    } else {
      // Not a placeholder of ours: keep the braces and go on after them.
      out += "{{";
      pos = open + 2;
    }
  }
  out.append(text, pos, std::string::npos);
  return out;
}

std::string webhookBody(const Json& webhook, const RunContext& run) {
  const Json& tpl = webhook.get("bodyTemplate");
  if (!tpl.isNull()) {
    std::string text = tpl.isString() ? tpl.asString() : tpl.dump();
    return renderTemplate(text, {{"targetId", run.targetId},
                                 {"targetName", run.targetName},
                                 {"agentType", run.agentType},
                                 {"projectId", run.projectId},
                                 {"workItemId", run.workItemId},
                                 {"operationId", run.operationId},
                                 {"timestamp", run.timestamp}});
  }
  Json body = Json::object();
  body.set("targetId", Json(run.targetId));
  body.set("targetName", Json(run.targetName));
  body.set("agentType", Json(run.agentType));
  body.set("projectId", Json(run.projectId));
  if (!run.workItemId.empty()) body.set("workItemId", Json(run.workItemId));
  body.set("operationId", Json(run.operationId));
  body.set("timestamp", Json(run.timestamp));
  return body.dump();
}

Json kubernetesJob(const Json& k8s, const RunContext& run, const std::string& jobName,
                   const std::vector<std::pair<std::string, std::string>>& env) {
  Json labels = Json::object();
  labels.set("app.kubernetes.io/name", Json("loom-agent"));
  labels.set("app.kubernetes.io/instance", Json(jobName));
  labels.set("app.kubernetes.io/managed-by", Json("loom-weft"));
  labels.set("loom.agent/target-id", Json(run.targetId));
  labels.set("loom.agent/agent-type", Json(run.agentType));
  Json annotations = Json::object();
  annotations.set("loom.agent/target-name", Json(run.targetName));
  annotations.set("loom.agent/created-at", Json(run.timestamp));

  Json container = Json::object();
  container.set("name", Json("agent"));
  container.set("image", Json(k8s.getString("image")));
  const Json& command = k8s.get("command");
  if (command.isString() && !command.asString().empty()) {
    container.set("command", Json(Json::Array{command}));
  } else if (command.isArray()) {
    Json c = Json::array();
    for (const auto& v : command.asArray()) c.push(Json(scalarText(v)));
    container.set("command", std::move(c));
  }
  if (const Json& args = k8s.get("args"); args.isArray()) {
    Json a = Json::array();
    for (const auto& v : args.asArray()) a.push(Json(scalarText(v)));
    container.set("args", std::move(a));
  }
  Json envList = Json::array();
  for (const auto& [name, value] : env) {
    Json e = Json::object();
    e.set("name", Json(name));
    e.set("value", Json(value));
    envList.push(std::move(e));
  }
  container.set("env", std::move(envList));
  if (const Json& res = k8s.get("resources"); res.isObject()) {
    Json amounts = Json::object();
    for (const char* key : {"cpu", "memory"}) {
      const Json& v = res.get(key);
      if (!v.isNull()) amounts.set(key, Json(scalarText(v)));
    }
    if (!amounts.asObject().empty()) {
      // Requests equal limits: the pod gets exactly what it asked for.
      Json resources = Json::object();
      resources.set("requests", amounts);
      resources.set("limits", amounts);
      container.set("resources", std::move(resources));
    }
  }

  Json podSpec = Json::object();
  podSpec.set("restartPolicy", Json("Never"));
  if (const std::string sa = k8s.getString("serviceAccount"); !sa.empty()) {
    podSpec.set("serviceAccountName", Json(sa));
  }
  if (const std::string secret = k8s.getString("imagePullSecret"); !secret.empty()) {
    Json ref = Json::object();
    ref.set("name", Json(secret));
    podSpec.set("imagePullSecrets", Json(Json::Array{ref}));
  }
  podSpec.set("containers", Json(Json::Array{container}));

  Json podTemplate = Json::object();
  Json podMeta = Json::object();
  podMeta.set("labels", labels);
  podTemplate.set("metadata", std::move(podMeta));
  podTemplate.set("spec", std::move(podSpec));

  Json spec = Json::object();
  spec.set("backoffLimit", Json(0));
  if (const Json& ttl = k8s.get("ttlSecondsAfterFinished"); ttl.isInteger() && ttl.asInt() >= 0) {
    spec.set("ttlSecondsAfterFinished", Json(ttl.asInt()));
  }
  spec.set("template", std::move(podTemplate));

  Json meta = Json::object();
  meta.set("name", Json(jobName));
  meta.set("namespace", Json(k8s.getString("namespace")));
  meta.set("labels", std::move(labels));
  meta.set("annotations", std::move(annotations));

  Json job = Json::object();
  job.set("apiVersion", Json("batch/v1"));
  job.set("kind", Json("Job"));
  job.set("metadata", std::move(meta));
  job.set("spec", std::move(spec));
  return job;
}

std::string githubWorkflowUrl(const std::string& apiUrl, const std::string& repo,
                              const std::string& workflow) {
  std::string base = apiUrl;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/repos/" + repo + "/actions/workflows/" + encodeSegment(workflow);
}

// A workflow file name ("build.yml") or numeric id: one path segment, never
// "." or "..", without '/', '\\', '%', '?' or '#' and without control
// characters. Percent-encoding alone is not enough: the HTTP client decodes
// %2F again, so "../x" would reach another path of the API host.
bool isValidWorkflow(const std::string& workflow) {
  if (workflow.empty() || workflow.size() > 255 || workflow == "." || workflow == "..") {
    return false;
  }
  return std::none_of(workflow.begin(), workflow.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f || c == '/' || c == '\\' || c == '%' || c == '?' || c == '#';
  });
}

bool isValidRepo(const std::string& repo) {
  size_t slash = repo.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repo.size()) return false;
  if (repo.find('/', slash + 1) != std::string::npos) return false;
  auto ok = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  };
  std::string owner = repo.substr(0, slash), name = repo.substr(slash + 1);
  if (owner == "." || owner == ".." || name == "." || name == "..") return false;
  return std::all_of(owner.begin(), owner.end(), ok) && std::all_of(name.begin(), name.end(), ok);
}

// ---- Mechanisms ----------------------------------------------------------------

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
