// The five spin-up mechanisms (docs/api.md §3.6, §4.4, §4.5): how a target's
// config becomes a process to run or an HTTP request to send, and how each
// mechanism is probed. The pure parts (config shapes, required fields, ssh
// quoting, webhook templating, the Kubernetes Job, the GitHub requests) are
// free functions so tests can check them directly; Mechanisms runs them
// through the injected ProcessRunner and HttpCaller.
//
// Security (docs/reliability.md "Spin-up is code execution"): nothing here ever
// builds a local shell command line. A `local` target runs `/bin/sh -c` only
// when its config says `shell: true`; the values put into a remote ssh
// command are single-quoted; webhook response bodies are logged (capped) and
// never returned.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "weft/json.h"
#include "weft/spin_up_io.h"
#include "weft/status.h"
#include "weft/target_record.h"

namespace weft {

// The spinup.* settings of docs/api.md §7.2, plus the knobs tests shorten.
// (spinup.onSubmit is a WorkQueue rule: CoreOptions::spinupOnSubmit.)
struct SpinUpSettings {
  int64_t timeoutMs = 60000;
  int64_t cooldownMs = 30000;
  int64_t maxConcurrent = 3;
  bool allowLocal = false;
  bool allowSsh = false;
  bool allowWebhook = false;
  bool allowKubernetes = false;
  bool allowGithubActions = false;
  std::vector<std::string> githubTokenEnvVars{"GITHUB_TOKEN"};
  std::string githubApiUrl = "https://api.github.com";
  std::string kubectlPath = "kubectl";
  std::string sshPath = "ssh";  // spinup.sshPath (not in §7.2; see the README)
  // Given to `local` children as WEFT_URL, so a started agent finds this
  // Weft; "" = not set.
  std::string weftUrl;

  // Fixed by the contract; settable for tests.
  int64_t localObserveMs = 500;        // a detached child must survive this long
  int64_t kubectlTimeoutMs = 30000;    // kubectl apply must finish within this
  int64_t githubRunsWaitCapMs = 2000;  // wait before listing runs: min(startTimeoutMs, this)
  // How often the health checker looks for due targets (§4.4: ≤ 15 s).
  int64_t healthCheckPeriodMs = 5000;
  // Reads Weft's environment (GitHub tokens). Empty = getenv.
  std::function<std::optional<std::string>(const std::string& name)> getEnv;

  // Whether spinup.allow<M> switches mechanism m on.
  bool allows(const std::string& mechanism) const;
};

namespace spinup {

// Every mechanism, in the order of the §2.6 message.
inline constexpr const char* kMechanisms[] = {"ssh", "github-actions", "local", "webhook",
                                              "kubernetes"};
bool isMechanism(const std::string& m);

// 403 text: `mechanism <m> is disabled by server configuration`.
std::string disabledMessage(const std::string& mechanism);

// The settings object of a config (§3.6): the nested object named after the
// mechanism (`local`, `ssh`, `webhook`, `githubActions`, `kubernetes`) when
// present, else the config itself (flat shape). A shared null value when
// config is not an object.
const Json& settingsOf(const Json& config, const std::string& mechanism);

// The required fields of §3.6 that the config lacks (absent, or not a
// non-blank string), in table order. `workflowFile` counts for `workflow`.
std::vector<std::string> missingFields(const Json& config, const std::string& mechanism);
// `Target <name> is missing required config for mechanism <m>: <f>, <f>`.
std::string missingConfigMessage(const std::string& targetName, const std::string& mechanism,
                                 const std::vector<std::string>& fields);

// ^[A-Za-z_][A-Za-z0-9_]*$
bool isValidEnvName(const std::string& name);
// 'value' with every ' written as '\'' (safe inside a POSIX shell line).
std::string singleQuote(const std::string& value);
// A JSON scalar as the text a process sees: strings raw, others as JSON.
std::string scalarText(const Json& value);

// What one run knows about its target and trigger.
struct RunContext {
  std::string targetId, targetName, agentType, projectId;
  std::string workItemId;  // "" when not triggered by a submission
  std::string operationId;
  std::string timestamp;  // ISO, the operation's start
};

// The variables an agent process gets (§4.5): LOOMINAL_TARGET_ID,
// LOOMINAL_TARGET_NAME, LOOMINAL_AGENT_TYPE, LOOMINAL_PROJECT_ID,
// WEFT_WORK_ITEM_ID when triggered by a work item, WEFT_URL when weftUrl is
// not empty; then the target's `env` (an object), which overrides them all.
// InvalidArgument `invalid env var name: <k>` when strictNames and a key of
// `env` is not a valid name, and always for an empty key or one with '='.
Result<std::vector<std::pair<std::string, std::string>>> agentEnvironment(
    const RunContext& run, const Json& env, const std::string& weftUrl, bool strictNames);

// ssh (§4.5): `<sshPath> [-p port] [-i key] -o StrictHostKeyChecking=accept-new
// -o BatchMode=yes -o ConnectTimeout=<s> user@host <remote>` with
// <remote> = `[export K='v' …; ][cd '<wd>' && ]<command>`. InvalidArgument
// `invalid env var name: <k>`, or `invalid ssh destination: ...` for a user
// or host that is empty, starts with '-' or holds whitespace or '@' (ssh
// would read it as an option).
Result<std::vector<std::string>> sshArgv(const Json& ssh, const std::string& sshPath);
// The §4.4 probe: `... user@host 'echo ok'`, ConnectTimeout from
// connectionTimeoutMs capped by timeoutMs.
Result<std::vector<std::string>> sshProbeArgv(const Json& ssh, const std::string& sshPath,
                                              int64_t timeoutMs);
// ceil(ms / 1000), at least 1.
int64_t ceilSeconds(int64_t ms);

// The webhook body (§4.5): bodyTemplate with the placeholders replaced by
// JSON-string-escaped values (no quotes added); a non-string template is
// serialised first. Without a template, the default JSON object.
std::string webhookBody(const Json& webhook, const RunContext& run);
// Replaces {{name}} for every name in values (JSON-escaped); other text stays.
std::string renderTemplate(const std::string& text,
                           const std::vector<std::pair<std::string, std::string>>& values);

// The batch/v1 Job of the kubernetes mechanism (§4.5), named jobName, with
// env as the container environment.
Json kubernetesJob(const Json& k8s, const RunContext& run, const std::string& jobName,
                   const std::vector<std::pair<std::string, std::string>>& env);

// The GitHub endpoints under apiUrl (no trailing slash needed).
std::string githubWorkflowUrl(const std::string& apiUrl, const std::string& repo,
                              const std::string& workflow);
// owner/repo, each part from [A-Za-z0-9_.-].
bool isValidRepo(const std::string& repo);
// A workflow file name or id: one path segment (no / \\ % ? #), not "." or "..".
bool isValidWorkflow(const std::string& workflow);

// The outcome of running a mechanism once.
struct MechanismOutcome {
  bool success = false;
  std::string error;       // when !success
  bool timedOut = false;   // the operation budget ran out (status `timeout`)
  bool cancelled = false;  // the token fired (shutdown or the deadline)
  Json mechanismResult;    // {pid?, runId?, jobName?, response?}; null when none
};

struct ProbeOutcome {
  bool healthy = false;
  std::string error;  // when !healthy
};

// Runs mechanisms through the injected runner and caller. Thread-safe
// (holds no state of its own beyond the references).
class Mechanisms {
 public:
  Mechanisms(const SpinUpSettings& settings, ProcessRunner& runner, HttpCaller& http)
      : settings_(settings), runner_(runner), http_(http) {}

  // One spin-up (§4.5) of target within budgetMs (the time left before the
  // operation's timeout). The config must be complete (missingFields empty);
  // the mechanism's own enablement is the caller's check.
  MechanismOutcome run(const TargetRecord& target, const RunContext& run, int64_t budgetMs,
                       const CancelToken& cancel) const;

  // The health probe of §4.4, limited to timeoutMs. A config lacking
  // required fields is unhealthy with the missing-config message.
  ProbeOutcome probe(const TargetRecord& target, int64_t timeoutMs,
                     const CancelToken& cancel) const;

 private:
  MechanismOutcome runLocal(const Json& cfg, const RunContext& run, int64_t budgetMs,
                            const CancelToken& cancel) const;
  MechanismOutcome runSsh(const Json& cfg, int64_t budgetMs, const CancelToken& cancel) const;
  MechanismOutcome runWebhook(const Json& cfg, const RunContext& run, int64_t budgetMs,
                              const CancelToken& cancel) const;
  MechanismOutcome runGithub(const Json& cfg, int64_t budgetMs, const CancelToken& cancel) const;
  MechanismOutcome runKubernetes(const Json& cfg, const RunContext& run, int64_t budgetMs,
                                 const CancelToken& cancel) const;
  // The token of a github-actions config, or the failure message.
  Result<std::string> githubToken(const Json& cfg) const;

  const SpinUpSettings& settings_;
  ProcessRunner& runner_;
  HttpCaller& http_;
};

}  // namespace spinup
}  // namespace weft
