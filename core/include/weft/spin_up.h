// SpinUp: the spin-up operations of this weftd instance (docs/api.md §3.7, §4.2
// steps 3-4, §4.5). Operations live in memory only (§6.5): they are not
// resumed after a restart, and finished ones are forgotten after an hour.
//
// Rules held here, per instance:
//  * de-duplication: a target has at most one active (pending/in-progress)
//    operation; a second request gets that same operation;
//  * cooldown: an automatic request for a target whose last operation
//    started less than spinup.cooldownMs ago starts nothing (manual spin-ups
//    are not held back, but they do set the clock);
//  * spinup.maxConcurrent active operations at most;
//  * the timeout: an operation still running spinup.timeoutMs after it
//    started is finished as `timeout`; its mechanism call is told to stop a
//    little later (its own timeouts normally end it first).
//
// Each operation runs its mechanism on its own thread. The outcome is
// persisted through the Recorder (a compare-and-set on the target, owned by
// Targets) and only then reported as `spin-up:completed`/`spin-up:failed`.
// The `spin-up:*` events have no stored change behind them, so only this
// instance delivers them (EventHub::emit).
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "weft/events.h"
#include "weft/json.h"
#include "weft/service_context.h"
#include "weft/spin_up_io.h"
#include "weft/spin_up_mechanisms.h"
#include "weft/target_record.h"

namespace weft {

struct SpinUpOperation {
  std::string id;  // operationId
  std::string targetId, targetName, agentType, mechanism, projectId;
  std::string workItemId;  // "" unless triggered by a submission
  std::string capability;  // the work item's, for spin-up:started
  std::string status;      // pending, in-progress, success, failed, timeout
  int64_t startedAtMs = 0;
  int64_t timeoutAtMs = 0;
  std::optional<int64_t> completedAtMs;
  std::string error;
  Json mechanismResult;   // null when none
  std::string agentGuid;  // the agent that registered with this target's id, if seen

  bool active() const { return status == "pending" || status == "in-progress"; }
  // The §3.7 fields.
  Json toJson() const;
};

class SpinUp {
 public:
  // Persists a finished operation on its target (outcome fields, §4.5). Called
  // once per finished operation, on an internal thread, before the
  // completion event is emitted. Must not throw.
  using Recorder = std::function<void(const SpinUpOperation& op)>;
  using EventSink = std::function<void(Event event)>;

  SpinUp(ServiceContext context, SpinUpSettings settings, std::shared_ptr<ProcessRunner> runner,
         std::shared_ptr<HttpCaller> http);
  ~SpinUp();
  SpinUp(const SpinUp&) = delete;
  SpinUp& operator=(const SpinUp&) = delete;

  // Both only before start().
  void setRecorder(Recorder recorder) { recorder_ = std::move(recorder); }
  void setEventSink(EventSink sink) { sink_ = std::move(sink); }
  // Told about every finished operation after it was recorded (for metrics).
  // Only before start(); must not throw or block.
  void setOutcomeObserver(Recorder observer) { observer_ = std::move(observer); }

  // Starts the timer thread (timeouts, forgetting old operations).
  void start();
  // Tells running mechanism calls to stop, and joins every thread. Operations
  // still running are abandoned: not recorded, no event (processes already
  // started keep running, §4.5).
  void stop();

  const SpinUpSettings& settings() const { return settings_; }
  const spinup::Mechanisms& mechanisms() const { return mechanisms_; }
  bool allows(const std::string& mechanism) const { return settings_.allows(mechanism); }

  // POST /api/targets/{id}/spin-up after the caller's checks (disabled,
  // mechanism, config): the target's active operation when it has one,
  // else a new one. ResourceExhausted `Too many concurrent spin-ups (limit
  // <n>)` when maxConcurrent operations are active.
  Result<SpinUpOperation> startManual(const TargetRecord& target);

  // The automatic request of §4.2 for a selected target: a new operation
  // with workItemId, or nullopt when dedupe, cooldown or the limit hold it
  // back (the reason in *skipped).
  std::optional<SpinUpOperation> startAutomatic(const TargetRecord& target,
                                                const std::string& workItemId,
                                                const std::string& capability,
                                                std::string* skipped);

  std::optional<SpinUpOperation> find(const std::string& operationId) const;
  size_t activeCount() const;

  // Links an agent that registered with metadata.targetId = targetId to that
  // target's newest operation without an agent (active, or finished within
  // the last spinup.timeoutMs). An active operation reports it in
  // spin-up:completed.agentGuid. Best effort; false when nothing matched.
  bool linkAgent(const std::string& targetId, const std::string& agentGuid);

  // One timer pass: finishes operations past their deadline as `timeout`,
  // cancels mechanism calls past the grace, forgets old operations. The timer
  // thread calls it every 50 ms; public for tests.
  void tick();

 private:
  struct Running {
    SpinUpOperation op;
    std::shared_ptr<CancelToken> cancel;
    std::chrono::steady_clock::time_point deadline;
    bool cancelIssued = false;
  };
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // Under mutex_: creates and registers the operation; the caller launches it.
  SpinUpOperation createLocked(const TargetRecord& target, const std::string& workItemId,
                               const std::string& capability);
  void launch(const TargetRecord& target, const SpinUpOperation& op);
  void execute(TargetRecord target, std::string operationId);
  // Finishes operationId once; later calls are ignored. Records, then emits.
  void finish(const std::string& operationId, const std::string& status, std::string error,
              Json mechanismResult);
  void emit(Event event);
  size_t activeCountLocked() const;
  void joinFinishedWorkersLocked();

  ServiceContext ctx_;
  const SpinUpSettings settings_;
  std::shared_ptr<ProcessRunner> runner_;
  std::shared_ptr<HttpCaller> http_;
  const spinup::Mechanisms mechanisms_;
  Recorder recorder_;
  EventSink sink_;
  Recorder observer_;

  mutable std::mutex mutex_;
  std::map<std::string, Running> ops_;                 // by operation id
  std::map<std::string, std::string> activeByTarget_;  // target id -> operation id
  std::map<std::string, int64_t> lastStartMs_;         // target id -> ctx clock
  std::list<Worker> workers_;
  bool stopping_ = false;

  std::mutex timerMutex_;
  std::condition_variable timerCv_;
  bool timerStop_ = false;
  std::thread timer_;
};

}  // namespace weft
