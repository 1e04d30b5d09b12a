#include "weft/spin_up.h"

#include <algorithm>
#include <exception>
#include <vector>

#include "weft/clock.h"
#include "weft/ids.h"
#include "weft/log.h"

namespace weft {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kForgetAfterMs = 3600000;  // §3.7: finished operations may go after 1 h
constexpr int64_t kTimerPeriodMs = 50;
// After the deadline, a mechanism call still running is told to stop. Its
// own timeouts (derived from the same budget) normally end it first; the
// grace keeps the cancel from racing them (a cancelled child is left
// running, a timed-out one is killed).
constexpr int64_t kCancelGraceMs = 2000;

}  // namespace

Json SpinUpOperation::toJson() const {
  Json o = Json::object();
  o.set("id", Json(id));
  o.set("targetId", Json(targetId));
  o.set("targetName", Json(targetName));
  o.set("mechanism", Json(mechanism));
  if (!workItemId.empty()) o.set("workItemId", Json(workItemId));
  o.set("status", Json(status));
  o.set("startedAt", Json(formatIso(startedAtMs)));
  o.set("timeoutAt", Json(formatIso(timeoutAtMs)));
  if (completedAtMs) o.set("completedAt", Json(formatIso(*completedAtMs)));
  if (!error.empty()) o.set("error", Json(error));
  if (!mechanismResult.isNull()) o.set("mechanismResult", mechanismResult);
  return o;
}

SpinUp::SpinUp(ServiceContext context, SpinUpSettings settings,
               std::shared_ptr<ProcessRunner> runner, std::shared_ptr<HttpCaller> http)
    : ctx_(std::move(context)),
      settings_(std::move(settings)),
      runner_(std::move(runner)),
      http_(std::move(http)),
      mechanisms_(settings_, *runner_, *http_) {}

SpinUp::~SpinUp() {
  stop();
}

void SpinUp::start() {
  std::lock_guard<std::mutex> lock(timerMutex_);
  if (timer_.joinable() || timerStop_) return;
  timer_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(timerMutex_);
    while (!timerCv_.wait_for(lock, std::chrono::milliseconds(kTimerPeriodMs),
                              [this] { return timerStop_; })) {
      lock.unlock();
      try {
        tick();
      } catch (const std::exception& e) {
        log::error("spin-up timer failed", {{"error", e.what()}});
      }
      lock.lock();
    }
  });
}

void SpinUp::stop() {
  std::vector<std::shared_ptr<CancelToken>> tokens;
  std::list<Worker> workers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    for (auto& [id, r] : ops_) tokens.push_back(r.cancel);
  }
  for (auto& t : tokens) t->cancel();
  {
    std::lock_guard<std::mutex> lock(timerMutex_);
    timerStop_ = true;
  }
  timerCv_.notify_all();
  if (timer_.joinable()) timer_.join();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    workers.swap(workers_);
  }
  // Outside the lock: a worker finishing takes it.
  for (auto& w : workers) {
    if (w.thread.joinable()) w.thread.join();
  }
}

size_t SpinUp::activeCountLocked() const {
  return static_cast<size_t>(std::count_if(ops_.begin(), ops_.end(),
                                           [](const auto& kv) { return kv.second.op.active(); }));
}

size_t SpinUp::activeCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return activeCountLocked();
}

std::optional<SpinUpOperation> SpinUp::find(const std::string& operationId) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = ops_.find(operationId);
  if (it == ops_.end()) return std::nullopt;
  return it->second.op;
}

SpinUpOperation SpinUp::createLocked(const TargetRecord& target, const std::string& workItemId,
                                     const std::string& capability) {
  const int64_t now = ctx_.now();
  Running r;
  r.op.id = newUuid();
  r.op.targetId = target.id;
  r.op.targetName = target.name;
  r.op.agentType = target.agentType;
  r.op.mechanism = target.mechanism;
  r.op.projectId = target.projectId;
  r.op.workItemId = workItemId;
  r.op.capability = capability;
  // pending -> in-progress at once (§4.5): the thread starts right away.
  r.op.status = "in-progress";
  r.op.startedAtMs = now;
  r.op.timeoutAtMs = now + settings_.timeoutMs;
  r.cancel = std::make_shared<CancelToken>();
  r.deadline = SteadyClock::now() + std::chrono::milliseconds(settings_.timeoutMs);
  activeByTarget_[target.id] = r.op.id;
  lastStartMs_[target.id] = now;
  SpinUpOperation op = r.op;
  ops_.emplace(op.id, std::move(r));
  return op;
}

void SpinUp::launch(const TargetRecord& target, const SpinUpOperation& op) {
  Json::Object fields{{"operationId", Json(op.id)},
                      {"targetId", Json(op.targetId)},
                      {"targetName", Json(op.targetName)},
                      {"agentType", Json(op.agentType)},
                      {"mechanism", Json(op.mechanism)}};
  if (!op.capability.empty()) fields.emplace_back("capability", Json(op.capability));
  if (!op.workItemId.empty()) fields.emplace_back("workId", Json(op.workItemId));
  emit(makeEvent("spin-up:started", op.projectId, ctx_.now(), std::move(fields)));
  log::info("spin-up started", {{"operationId", op.id},
                                {"targetId", op.targetId},
                                {"mechanism", op.mechanism},
                                {"workId", op.workItemId}});

  std::lock_guard<std::mutex> lock(mutex_);
  joinFinishedWorkersLocked();
  if (stopping_) return;  // abandoned with the rest at shutdown
  auto done = std::make_shared<std::atomic<bool>>(false);
  Worker w;
  w.done = done;
  w.thread = std::thread([this, target, id = op.id, done] {
    try {
      execute(target, id);
    } catch (const std::exception& e) {
      log::error("spin-up worker failed", {{"operationId", id}, {"error", e.what()}});
    } catch (...) {
      log::error("spin-up worker failed", {{"operationId", id}});
    }
    done->store(true);
  });
  workers_.push_back(std::move(w));
}

void SpinUp::joinFinishedWorkersLocked() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done->load()) {
      if (it->thread.joinable()) it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

Result<SpinUpOperation> SpinUp::startManual(const TargetRecord& target) {
  SpinUpOperation op;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::unavailable("shutting down");
    if (auto a = activeByTarget_.find(target.id); a != activeByTarget_.end()) {
      auto it = ops_.find(a->second);
      if (it != ops_.end() && it->second.op.active()) return it->second.op;
    }
    if (activeCountLocked() >= static_cast<size_t>(settings_.maxConcurrent)) {
      return Status(Code::ResourceExhausted, "Too many concurrent spin-ups (limit " +
                                                 std::to_string(settings_.maxConcurrent) + ")");
    }
    op = createLocked(target, "", "");
  }
  launch(target, op);
  return op;
}

std::optional<SpinUpOperation> SpinUp::startAutomatic(const TargetRecord& target,
                                                      const std::string& workItemId,
                                                      const std::string& capability,
                                                      std::string* skipped) {
  SpinUpOperation op;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto skip = [&](std::string why) -> std::optional<SpinUpOperation> {
      if (skipped) *skipped = std::move(why);
      return std::nullopt;
    };
    if (stopping_) return skip("shutting down");
    if (auto a = activeByTarget_.find(target.id); a != activeByTarget_.end()) {
      auto it = ops_.find(a->second);
      if (it != ops_.end() && it->second.op.active()) {
        return skip("target already has an active spin-up " + a->second);
      }
    }
    if (auto last = lastStartMs_.find(target.id); last != lastStartMs_.end()) {
      if (ctx_.now() - last->second < settings_.cooldownMs) {
        return skip("target is in its cooldown");
      }
    }
    if (activeCountLocked() >= static_cast<size_t>(settings_.maxConcurrent)) {
      return skip("Too many concurrent spin-ups (limit " + std::to_string(settings_.maxConcurrent) +
                  ")");
    }
    op = createLocked(target, workItemId, capability);
  }
  launch(target, op);
  return op;
}

void SpinUp::execute(TargetRecord target, std::string operationId) {
  std::shared_ptr<CancelToken> cancel;
  spinup::RunContext run;
  SteadyClock::time_point deadline;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = ops_.find(operationId);
    if (it == ops_.end()) return;
    const SpinUpOperation& op = it->second.op;
    cancel = it->second.cancel;
    deadline = it->second.deadline;
    run.targetId = op.targetId;
    run.targetName = op.targetName;
    run.agentType = op.agentType;
    run.projectId = op.projectId;
    run.workItemId = op.workItemId;
    run.operationId = op.id;
    run.timestamp = formatIso(op.startedAtMs);
  }
  int64_t budgetMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  spinup::MechanismOutcome outcome;
  try {
    outcome = mechanisms_.run(target, run, std::max<int64_t>(budgetMs, 1), *cancel);
  } catch (const std::exception& e) {
    outcome.error = std::string("internal error: ") + e.what();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;  // abandoned: see stop()
  }
  // A cancelled call means the deadline (already finished as timeout) or
  // shutdown (handled above); either way nothing is left to report.
  if (outcome.cancelled) return;
  if (outcome.success) {
    finish(operationId, "success", "", std::move(outcome.mechanismResult));
  } else if (outcome.timedOut) {
    finish(operationId, "timeout",
           "Spin-up timed out after " + std::to_string(settings_.timeoutMs) + " ms",
           std::move(outcome.mechanismResult));
  } else {
    finish(operationId, "failed", std::move(outcome.error), std::move(outcome.mechanismResult));
  }
}

void SpinUp::finish(const std::string& operationId, const std::string& status, std::string error,
                    Json mechanismResult) {
  SpinUpOperation op;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = ops_.find(operationId);
    if (it == ops_.end() || !it->second.op.active()) return;
    SpinUpOperation& held = it->second.op;
    held.status = status;
    held.completedAtMs = ctx_.now();
    held.error = std::move(error);
    held.mechanismResult = std::move(mechanismResult);
    if (auto a = activeByTarget_.find(held.targetId);
        a != activeByTarget_.end() && a->second == operationId) {
      activeByTarget_.erase(a);
    }
    op = held;
  }
  log::info("spin-up finished", {{"operationId", op.id},
                                 {"targetId", op.targetId},
                                 {"status", op.status},
                                 {"error", op.error}});
  if (recorder_) {
    try {
      recorder_(op);
    } catch (const std::exception& e) {
      log::error("recording a spin-up outcome failed",
                 {{"operationId", op.id}, {"error", e.what()}});
    }
  }
  if (observer_) {
    try {
      observer_(op);
    } catch (...) {
      // Metrics only; never let them disturb the operation.
    }
  }
  // The operation's agent may have been linked while the outcome was written.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = ops_.find(operationId); it != ops_.end()) op.agentGuid = it->second.op.agentGuid;
  }
  const int64_t now = ctx_.now();
  Json::Object fields{{"operationId", Json(op.id)},
                      {"targetId", Json(op.targetId)},
                      {"targetName", Json(op.targetName)},
                      {"agentType", Json(op.agentType)}};
  if (op.status == "success") {
    if (!op.agentGuid.empty()) fields.emplace_back("agentGuid", Json(op.agentGuid));
    fields.emplace_back("durationMs", Json(*op.completedAtMs - op.startedAtMs));
    emit(makeEvent("spin-up:completed", op.projectId, now, std::move(fields)));
  } else {
    fields.emplace_back("errorMessage", Json(op.error));
    if (!op.workItemId.empty()) fields.emplace_back("workId", Json(op.workItemId));
    emit(makeEvent("spin-up:failed", op.projectId, now, std::move(fields)));
  }
}

bool SpinUp::linkAgent(const std::string& targetId, const std::string& agentGuid) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t now = ctx_.now();
  Running* best = nullptr;
  for (auto& [id, r] : ops_) {
    const SpinUpOperation& op = r.op;
    if (op.targetId != targetId || !op.agentGuid.empty()) continue;
    bool recent =
        op.active() || (op.completedAtMs && now - *op.completedAtMs <= settings_.timeoutMs);
    if (!recent) continue;
    // Prefer an active operation; among equals, the newest.
    if (!best || (op.active() && !best->op.active()) ||
        (op.active() == best->op.active() && op.startedAtMs > best->op.startedAtMs)) {
      best = &r;
    }
  }
  if (!best) return false;
  best->op.agentGuid = agentGuid;
  log::info("spin-up linked to agent",
            {{"operationId", best->op.id}, {"targetId", targetId}, {"agentGuid", agentGuid}});
  return true;
}

void SpinUp::tick() {
  const auto now = SteadyClock::now();
  const int64_t nowMs = ctx_.now();
  std::vector<std::string> expired;
  std::vector<std::shared_ptr<CancelToken>> toCancel;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = ops_.begin(); it != ops_.end();) {
      Running& r = it->second;
      if (r.op.active() && now >= r.deadline) expired.push_back(it->first);
      if (!r.cancelIssued && now >= r.deadline + std::chrono::milliseconds(kCancelGraceMs)) {
        r.cancelIssued = true;
        toCancel.push_back(r.cancel);
      }
      if (!r.op.active() && r.op.completedAtMs && nowMs - *r.op.completedAtMs >= kForgetAfterMs) {
        it = ops_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = lastStartMs_.begin(); it != lastStartMs_.end();) {
      bool cold = nowMs - it->second >= settings_.cooldownMs && !activeByTarget_.count(it->first);
      it = cold ? lastStartMs_.erase(it) : std::next(it);
    }
    joinFinishedWorkersLocked();
  }
  for (const auto& id : expired) {
    finish(id, "timeout", "Spin-up timed out after " + std::to_string(settings_.timeoutMs) + " ms",
           Json());
  }
  for (auto& t : toCancel) t->cancel();
}

void SpinUp::emit(Event event) {
  if (!sink_) return;
  try {
    sink_(std::move(event));
  } catch (const std::exception& e) {
    log::warn("spin-up event delivery failed", {{"error", e.what()}});
  }
}

}  // namespace weft
