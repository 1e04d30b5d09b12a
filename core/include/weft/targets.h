// Targets: the spin-up target registry (docs/api.md §2.6, §3.6, §4.4) and the
// entry points of spin-up (§4.2, §4.5).
//
// Storage (§6.2): one JSON value per target in `weft-targets`, keyed by its
// id, so a lookup by id is one get; lists, name resolution, routing and
// stats read a watch-fed view. Names are unique per project through a
// reservation in `weft-target-names` under `<projectId>.<first 32 hex of
// sha256(name)>`, written with create, so two registrations of one name
// (on any number of instances) get exactly one winner. Registration
// reserves first, then writes the target, and releases the reservation when
// that write fails; deletion removes the target, then the reservation. A
// reservation whose target does not exist and that is older than a minute
// (a crash between the two writes) is taken over by the next registration.
//
// Every change of a stored target is a compare-and-set on its value. Target
// events (`target:*`) are derived from the view's live changes, so every
// instance emits them for every change (deriveTargetEvents); `spin-up:*`
// events come from SpinUp and only from the instance that ran it.
//
// The service deals in TargetRecord values and typed requests; their REST
// form (parsing with the field rules, rendering) is at the HTTP edge
// (server/api/rest_targets.h).
//
// Thread-safety: every public method may be called from any thread after
// start(); setters and the constructor only before.
//
// Errors (Status codes): InvalidArgument for a field rule (the message names
// the field), NotFound for an unknown id or name, AlreadyExists/Conflict for a
// taken name or a state that forbids the change, PermissionDenied for a
// mechanism switched off by configuration, ResourceExhausted when the spin-up
// or probe concurrency limit is reached, Unavailable or Timeout for a backend
// outage.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "weft/batch_result.h"
#include "weft/bucket_view.h"
#include "weft/events.h"
#include "weft/json.h"
#include "weft/list_index.h"
#include "weft/pagination.h"
#include "weft/service_context.h"
#include "weft/spin_up.h"
#include "weft/spin_up_io.h"
#include "weft/stats.h"
#include "weft/target_record.h"

namespace weft {

class AgentRegistry;
struct SpinUpRequest;

struct TargetFilter {
  std::optional<std::string> type, status, capability, boundary, mechanism, projectId;
};

// The target list: filters type, status (the stored text), capability and
// boundary (any of the target's), mechanism and projectId; order
// registeredAt then id (weft/list_index.h). Targets are tens, not
// millions: every combination is counted, and a page reads the smallest of
// the single-filter orders.
struct TargetListTraits {
  using Record = TargetRecord;
  static constexpr size_t kFields = 6;
  static constexpr unsigned kOrdered[] = {0, 1, 2, 4, 8, 16, 32};
  static constexpr auto kCounted = [] {
    std::array<unsigned, 64> all{};
    for (unsigned i = 0; i < 64; ++i) all[i] = i;
    return all;
  }();
  static int64_t major(const TargetRecord& t) { return t.registeredAtMs; }
  static int64_t minor(const TargetRecord&) { return 0; }
  static const std::string& id(const TargetRecord& t) { return t.id; }
  template <typename Emit>
  static void values(const TargetRecord& t, size_t field, Emit&& emit) {
    switch (field) {
      case 0: emit(t.agentType); break;
      case 1: emit(t.statusText()); break;
      case 2:
        for (const auto& c : t.capabilities) emit(c);
        break;
      case 3:
        for (const auto& b : t.boundaries) emit(b);
        break;
      case 4: emit(t.mechanism); break;
      default: emit(t.projectId);
    }
  }
  static bool has(const TargetRecord& t, size_t field, const std::string& value) {
    switch (field) {
      case 0: return t.agentType == value;
      case 1: return t.statusText() == value;
      case 2: return t.hasCapability(value);
      case 3: return t.hasBoundary(value);
      case 4: return t.mechanism == value;
      default: return t.projectId == value;
    }
  }
};

// The largest stored `config` object, serialised.
inline constexpr size_t kMaxTargetConfigBytes = 256 * 1024;
// The mechanism settings Weft checks beyond presence (a github-actions
// workflow must be one path segment); "" when fine, else the message.
std::string targetConfigProblem(const Json& config, const std::string& mechanism);

// The healthCheck settings of a request; a member left out keeps the stored
// (or default) value.
struct HealthCheckRequest {
  std::optional<bool> enabled;
  std::optional<int64_t> intervalMs;  // positive
  std::optional<int64_t> timeoutMs;   // positive, at most kMaxTargetHealthTimeoutMs
};
inline constexpr int64_t kMaxTargetHealthTimeoutMs = 60000;

// A registration (docs/api.md §2.6), already checked against the field rules
// (server/api/rest_targets.h parses and checks the REST form).
struct CreateTargetRequest {
  std::string name;
  std::optional<std::string> description;
  std::string agentType;  // copilot-cli | claude-code
  std::vector<std::string> capabilities;
  std::optional<std::vector<std::string>> boundaries;  // the four defaults when missing
  std::string mechanism;
  std::optional<Json> config;  // an object; its `mechanism`, when present, is `mechanism`
  std::optional<HealthCheckRequest> healthCheck;  // with `enabled`
  std::optional<std::string> projectId;           // the default project when missing
  std::optional<std::vector<std::string>> tags;
};

// A change of a target: each member given replaces the stored one, except
// `config`, merged into the stored config one top-level member at a time.
struct UpdateTargetRequest {
  std::optional<std::string> description;
  std::optional<std::vector<std::string>> capabilities, boundaries, tags;
  std::optional<Json> config;  // an object
  std::optional<HealthCheckRequest> healthCheck;
};

// A page of targets, oldest registration first, and what the pagination
// metadata needs.
struct TargetPage {
  std::vector<std::shared_ptr<const TargetRecord>> targets;
  Pager pager;
  size_t total = 0;
};

// A removal, enable or disable, done: the reference as the caller gave it
// and the target (as it was before a removal, as it is after the others).
struct TargetChange {
  enum class Action { Removed, Enabled, Disabled };
  Action action = Action::Removed;
  std::string ref;
  std::shared_ptr<const TargetRecord> target;
};

// Which targets a batch disable takes: the listed ones (ids or names), or
// else every target in the view that passes all the filters given.
struct DisableBatchRequest {
  struct Ref {
    std::string ref;    // an id or name; for an invalid entry, as written
    bool valid = true;  // false: not a string, fails as not found
  };
  std::optional<std::vector<Ref>> targetIds;
  std::optional<std::string> projectId, agentType, status, mechanism;
};
struct DisableBatchResult {
  BatchResult batch;  // per target, in request order (by registration for a filter)
  std::vector<std::string> disabledTargets, alreadyDisabled;  // ids
  int64_t completedAtMs = 0;
};

// The outcome of a probe run on request.
struct TargetTestResult {
  std::string targetId;
  bool healthy = false;
  std::string error;  // when not healthy
  int64_t latencyMs = 0;
  int64_t timestampMs = 0;
};

// A spin-up operation started on request.
struct SpinUpStarted {
  std::string operationId, targetId, targetName;
  std::string status;  // of the operation, just after it started
  int64_t timestampMs = 0;
};

// The WebSocket stats counts of targets in one scope.
struct TargetCounts {
  int64_t total = 0, available = 0, inUse = 0, disabled = 0;
};

// The target events (§5.4) of one stored change (nullptr = absent):
// absent -> present `target:registered`; present -> absent `target:removed`;
// a changed healthStatus `target:health-changed`; a write that leaves the
// target disabled and changes nothing but status, lastError and updatedAt
// `target:disabled` (reason `manual`); a probe that leaves healthStatus
// unchanged nothing; any other change (update, enable, a spin-up outcome)
// `target:updated`.
std::vector<Event> deriveTargetEvents(const TargetRecord* before, const TargetRecord* after,
                                      int64_t nowMs);

class Targets {
 public:
  using View = BucketView<TargetRecord>;

  // agents, when given, is watched for agents that register with
  // metadata.targetId (linked to that target's spin-up, see SpinUp); it must
  // not be started yet. runner and http carry out the mechanisms.
  Targets(ServiceContext context, SpinUpSettings settings, std::shared_ptr<ProcessRunner> runner,
          std::shared_ptr<HttpCaller> http, AgentRegistry* agents = nullptr);
  ~Targets();
  Targets(const Targets&) = delete;
  Targets& operator=(const Targets&) = delete;

  // Where `target:*` and `spin-up:*` events go. Before start().
  void setEventSink(std::function<void(Event)> sink);

  // Starts the view, the spin-up timer and the periodic health checker.
  void start();
  void stop();

  View& view() { return *view_; }
  const View& view() const { return *view_; }
  SpinUp& spinUp() { return *spinUp_; }

  // Decodes a stored value; nullptr when invalid (not an object, or no
  // string id/name). projectId defaults to defaultProject.
  static std::shared_ptr<const TargetRecord> decode(const std::string& value,
                                                    const std::string& defaultProject);

  // The targets in the view after the filters, one page of them.
  Result<TargetPage> list(const TargetFilter& filter, const PageRequest& page) const;
  // `ref` is an id or a name (§2.6 resolution), the name within projectId
  // when given. NotFound with the spec message; InvalidArgument for a name
  // shared by targets of several projects.
  Result<std::shared_ptr<const TargetRecord>> get(
      const std::string& ref, const std::optional<std::string>& projectId) const;
  // Stores a new target with status available. AlreadyExists for a taken name.
  Result<std::shared_ptr<const TargetRecord>> create(const CreateTargetRequest& request);
  // InvalidArgument when the config breaks the target's mechanism rules.
  Result<std::shared_ptr<const TargetRecord>> update(const std::string& ref,
                                                     const std::optional<std::string>& projectId,
                                                     const UpdateTargetRequest& request);
  // Removes the target and releases its name.
  Result<TargetChange> remove(const std::string& ref, const std::optional<std::string>& projectId);
  // Status available / disabled; lastError cleared.
  Result<TargetChange> enable(const std::string& ref, const std::optional<std::string>& projectId);
  Result<TargetChange> disable(const std::string& ref, const std::optional<std::string>& projectId);
  // Disables each target once; one already disabled counts as a success
  // without a write. Stops at the first backend failure and returns it.
  Result<DisableBatchResult> disableBatch(const DisableBatchRequest& request);
  // Runs the probe synchronously (bounded by healthCheck.timeoutMs) and
  // records it. Unavailable when kMaxConcurrentTests are already running.
  Result<TargetTestResult> test(const std::string& ref,
                                const std::optional<std::string>& projectId);
  // Starts a spin-up of the target. Conflict when it is disabled or its
  // config lacks what the mechanism needs.
  Result<SpinUpStarted> spinUpTarget(const std::string& ref,
                                     const std::optional<std::string>& projectId);

  // The spin-up request of a submission (§4.2): emits spin-up:triggered,
  // selects the first eligible target and asks SpinUp to start it. Skips
  // (and logs) when none fits or dedupe/cooldown/limit hold it back. Never
  // blocks on the mechanism.
  void requestSpinUp(const SpinUpRequest& request);

  // One pass of the periodic health checker (§4.4): probes every due target
  // (healthCheck.enabled, not disabled, mechanism enabled, interval elapsed)
  // and records the results. Returns the number probed. Public for tests.
  int healthCheckOnce();

  // The WebSocket stats counts for one project (nullopt = all).
  TargetCounts liveStats(const std::optional<std::string>& projectId) const;

 private:
  // test() calls probing at once; more are Unavailable.
  static constexpr int kMaxConcurrentTests = 4;
  std::atomic<int> testsRunning_{0};

  struct Resolved {
    std::shared_ptr<const TargetRecord> record;
    uint64_t revision = 0;
  };

  Status ready() const;
  std::shared_ptr<KvBucket> bucket() const;
  Result<std::shared_ptr<KvBucket>> nameBucket();
  std::string reservationKey(const std::string& projectId, const std::string& name) const;

  // §2.6 resolution of a path segment.
  Result<Resolved> resolve(const std::string& ref,
                           const std::optional<std::string>& projectId) const;
  // The stored target of id with its revision, from the backend.
  Result<Resolved> load(const std::string& id) const;
  // Read-modify-write of target id by compare-and-set, re-reading on
  // conflicts. mutate may refuse with a non-Ok Status, which is returned.
  // NotFound when the target is gone.
  using Mutation = std::function<Status(const TargetRecord& current, Json& target)>;
  Result<std::shared_ptr<const TargetRecord>> modify(const std::string& id, const Mutation& mutate);

  Result<TargetChange> setEnabled(const std::string& ref,
                                  const std::optional<std::string>& projectId, bool enabled);
  // Writes a probe result (§4.4) and publishes the health subject.
  Status recordHealth(const std::string& id, const spinup::ProbeOutcome& probe);
  // The SpinUp recorder: the outcome fields of §4.5 on the target.
  void recordOutcome(const SpinUpOperation& op);
  // Best-effort NATS publication (§6.4).
  void publish(const std::string& subject, const Json& payload) const;
  void publishTarget(const char* action, const TargetRecord& record) const;
  void emit(Event event);
  void healthLoop();

  ServiceContext ctx_;
  std::unique_ptr<View> view_;
  // Filters and order of the list; guarded by the view's lock.
  std::unique_ptr<ListIndex<TargetListTraits>> listIndex_;
  std::unique_ptr<SpinUp> spinUp_;
  std::function<void(Event)> sink_;

  std::mutex namesMutex_;
  std::shared_ptr<KvBucket> names_;

  std::mutex healthMutex_;
  std::condition_variable healthCv_;
  bool healthStopping_ = false;
  std::shared_ptr<CancelToken> healthCancel_ = std::make_shared<CancelToken>();
  std::thread health_;
  bool started_ = false;
};

}  // namespace weft
