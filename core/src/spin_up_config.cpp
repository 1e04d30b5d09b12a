// The building blocks of the spin-up mechanisms (weft/spin_up_mechanisms.h):
// which mechanisms the server allows, each one's required settings, the
// agent's environment, ssh argv, template rendering, webhook bodies,
// Kubernetes Job manifests and GitHub workflow URLs. Pure functions.
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

bool SpinUpSettings::allows(const std::string& m) const {
  if (m == "local") return allowLocal;
  if (m == "ssh") return allowSsh;
  if (m == "webhook") return allowWebhook;
  if (m == "kubernetes") return allowKubernetes;
  if (m == "github-actions") return allowGithubActions;
  return false;
}

namespace spinup {

using namespace detail;

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

}  // namespace spinup
}  // namespace weft
