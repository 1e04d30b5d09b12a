#include "api/services.h"

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
  o.retentionMs = config.getInt("work.retentionMs");
  o.dlqRetentionMs = config.getInt("dlq.retentionMs");
  o.spinupOnSubmit = config.getBool("spinup.onSubmit");
  o.timeoutMs = config.getInt("kv.timeoutMs");
  return o;
}

Services::Services(ServiceContext ctx)
    : context(std::move(ctx)), agents(context),
      deadLetters(context),
      work(context, agents, deadLetters),
      monitor(context, agents, [this](const std::string& guid) { return work.hasActiveWork(guid); }),
      stats(context) {
  monitor.attach();
  stats.addContributor(Stats::agentContributor(agents));
  stats.addContributor(Stats::workContributor(work));
  stats.addContributor(Stats::deadLetterContributor(deadLetters));
}

Services::~Services() { stop(); }

void Services::start() {
  agents.start();
  deadLetters.start();
  work.start(context.options.sweepIntervalMs);
  monitor.start();
}

void Services::stop() {
  monitor.stop();
  work.stop();
  deadLetters.stop();
  agents.stop();
}

}  // namespace weft
