#include "weft/services.h"

#include <stdexcept>

namespace weft {

CoreOptions coreOptionsFrom(const Config& config) {
  CoreOptions o;
  o.defaultProject = config.getString("project.default");
  o.staleAfterMs = config.getInt("agents.staleAfterMs");
  o.markStaleOffline = config.getBool("agents.markStaleOffline");
  o.registryMaxAgeMs = config.getInt("agents.registryMaxAgeMs");
  o.idleTimeoutMs = config.getInt("agents.idleTimeoutMs");
  o.idleCheckIntervalMs = config.getInt("agents.idleCheckIntervalMs");
  o.maxAttempts = config.getInt("work.maxAttempts");
  o.leaseMs = config.getInt("work.leaseMs");
  o.sweepIntervalMs = config.getInt("work.sweepIntervalMs");
  o.statsVerifyIntervalMs = config.getInt("stats.verifyIntervalMs");
  o.viewSaveDir = config.getString("views.saveDir");
  o.viewSaveIntervalMs = config.getInt("views.saveIntervalMs");
  o.retentionMs = config.getInt("work.retentionMs");
  o.dlqRetentionMs = config.getInt("dlq.retentionMs");
  o.idempotencyRetentionMs = config.getInt("work.idempotencyRetentionMs");
  o.spinupOnSubmit = config.getBool("spinup.onSubmit");
  o.timeoutMs = config.getInt("kv.timeoutMs");
  o.retry.backoff = parseBackoff(config.getString("work.retryBackoff")).value_or(Backoff::None);
  o.retry.baseDelayMs = config.getInt("work.retryBaseDelayMs");
  o.retry.maxDelayMs = config.getInt("work.retryMaxDelayMs");
  o.retry.jitterPercent = config.getInt("work.retryJitterPercent");
  return o;
}

SpinUpSetup spinUpSetupFrom(const Config& config) {
  SpinUpSetup setup;
  SpinUpSettings& s = setup.settings;
  s.timeoutMs = config.getInt("spinup.timeoutMs");
  s.cooldownMs = config.getInt("spinup.cooldownMs");
  s.maxConcurrent = config.getInt("spinup.maxConcurrent");
  s.allowLocal = config.getBool("spinup.allowLocal");
  s.allowSsh = config.getBool("spinup.allowSsh");
  s.allowWebhook = config.getBool("spinup.allowWebhook");
  s.allowKubernetes = config.getBool("spinup.allowKubernetes");
  s.allowGithubActions = config.getBool("spinup.allowGithubActions");
  s.githubTokenEnvVars = config.getList("spinup.githubTokenEnvVars");
  s.githubApiUrl = config.getString("spinup.githubApiUrl");
  s.kubectlPath = config.getString("spinup.kubectlPath");
  s.sshPath = config.getString("spinup.sshPath");
  // WEFT_URL for local agents: this server as seen from the same machine.
  std::string host = config.getString("http.host");
  if (host.empty() || host == "0.0.0.0" || host == "::") host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  s.weftUrl = "http://" + host + ":" + config.getString("http.port");
  return setup;
}

Services::Services(ServiceContext ctx, SpinUpSetup spinUp)
    : context(std::move(ctx)), agents(context),
      deadLetters(context),
      work(context, agents, deadLetters),
      monitor(context, agents, [this](const std::string& guid) { return work.hasActiveWork(guid); }),
      stats(context),
      targets(context, spinUp.settings,
              spinUp.runner, spinUp.http, &agents) {
  if (!spinUp.runner || !spinUp.http) {
    throw std::invalid_argument("Services: the spin-up runner and HTTP caller must be set");
  }
  monitor.attach();
  stats.addContributor(Stats::agentContributor(agents));
  stats.addContributor(Stats::workContributor(work));
  stats.addContributor(Stats::deadLetterContributor(deadLetters));
  // Spin-up: a submit without an eligible worker asks Targets for
  // one spin-up (§4.2); targets count in the stats.
  work.setSpinUpRequester([this](const SpinUpRequest& r) { targets.requestSpinUp(r); });
  stats.addContributor(Stats::targetContributor(targets));
}

Services::~Services() { stop(); }

std::string Services::loading() const {
  std::string out;
  auto note = [&out](const char* what, bool ready, size_t read) {
    if (ready) return;
    if (!out.empty()) out += ", ";
    out += std::string(what) + " (" + std::to_string(read) + " read)";
  };
  note("agents", agents.view().ready(), agents.view().size());
  note("work items", work.view().ready(), work.view().size());
  note("dead-letter entries", deadLetters.view().ready(), deadLetters.view().size());
  note("targets", targets.view().ready(), targets.view().size());
  return out;
}

void Services::start() {
  agents.start();
  deadLetters.start();
  work.start(context.options.sweepIntervalMs);
  targets.start();
  monitor.start();
  stats.start(context.options.statsVerifyIntervalMs);
}

void Services::stop() {
  stats.stop();
  monitor.stop();
  targets.stop();
  work.stop();
  deadLetters.stop();
  agents.stop();
}

}  // namespace weft
