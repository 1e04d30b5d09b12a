// Submission: the checks that need state, routing to an agent type
// (docs/api.md §4.2), the stored item, and the write (waited for, or
// completed from the backend's acknowledgement).
#include "weft/work_queue.h"

#include <algorithm>

#include "weft/batch_result.h"
#include "weft/ids.h"
#include "weft/log.h"
#include "weft/work_transitions.h"
#include "work_rules.h"

namespace weft {

using namespace work_rules;

Result<Submitted> WorkQueue::submit(const SubmitRequest& request) {
  Result<NewItem> item = prepareSubmit(request);
  if (!item) return item.status();
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("work bucket not open yet");
  return finishSubmit(*item, bucket->create(item->id, item->value));
}

void WorkQueue::submitAsync(const SubmitRequest& request, SubmitDone done) {
  Result<NewItem> prepared = prepareSubmit(request);
  if (!prepared) return done(prepared.status());
  auto bucket = view_->bucket();
  if (!bucket) return done(Status::unavailable("work bucket not open yet"));
  {
    std::lock_guard<std::mutex> lock(asyncMutex_);
    ++asyncInFlight_;
  }
  auto item = std::make_shared<NewItem>(std::move(*prepared));
  bucket->createAsync(item->id, item->value,
                      [this, item, done = std::move(done)](Result<uint64_t> written) {
                        done(finishSubmit(*item, std::move(written)));
                        std::lock_guard<std::mutex> lock(asyncMutex_);
                        if (--asyncInFlight_ == 0) asyncIdle_.notify_all();
                      });
}

// The fields were checked on their own at the edge (rest::parseSubmitRequest);
// what needs state is checked here.
Result<WorkQueue::NewItem> WorkQueue::prepareSubmit(const SubmitRequest& request) {
  if (auto s = ready(); !s) return s;
  if (!agents_.view().ready()) return Status::unavailable("agent registry not loaded yet");

  const std::string project = request.projectId.value_or(ctx_.options.defaultProject);
  const std::string& cap = request.capability;
  const std::string& bound = request.boundary;
  const int64_t now = ctx_.now();

  // Delayed work: claimable from dueAt on (a time in the past: at once).
  int64_t dueAt = 0;
  if (request.notBeforeMs) {
    if (*request.notBeforeMs - now > kMaxDelayMs) {
      return invalid("notBefore must be at most " + std::to_string(kMaxDelayMs) +
                     " ms (30 days) ahead");
    }
    if (*request.notBeforeMs > now) dueAt = *request.notBeforeMs;
  } else if (request.delayMs && *request.delayMs > 0) {
    dueAt = now + *request.delayMs;
  }

  // Routing (§4.2): eligible workers, in registry list order.
  std::vector<std::shared_ptr<const AgentRecord>> eligible;
  agents_.view().forEach([&](const std::string&, const std::shared_ptr<const AgentRecord>& a) {
    if (!a->hasCapability(cap) || a->status == "offline" ||
        a->isStale(now, ctx_.options.staleAfterMs) || a->projectId != project) {
      return;
    }
    if (a->declaredBoundaries &&
        std::find(a->boundaries.begin(), a->boundaries.end(), bound) == a->boundaries.end()) {
      return;
    }
    eligible.push_back(a);
  });
  std::sort(eligible.begin(), eligible.end(), [](const auto& a, const auto& b) {
    if (a->registeredAtMs.has_value() != b->registeredAtMs.has_value()) {
      return !a->registeredAtMs.has_value();
    }
    if (a->registeredAtMs && *a->registeredAtMs != *b->registeredAtMs) {
      return *a->registeredAtMs < *b->registeredAtMs;
    }
    return a->guid < b->guid;
  });
  std::string target;
  if (request.requiredAgentType) {
    target = *request.requiredAgentType;
  } else {
    std::vector<std::string> types;
    for (const auto& a : eligible) {
      if (std::find(types.begin(), types.end(), a->agentType) == types.end()) {
        types.push_back(a->agentType);
      }
    }
    if (types.empty()) types.push_back("claude-code");
    target = types.front();
    if (request.preferredAgentType &&
        std::find(types.begin(), types.end(), *request.preferredAgentType) != types.end()) {
      target = *request.preferredAgentType;
    }
  }
  bool haveWorker = std::any_of(eligible.begin(), eligible.end(),
                                [&](const auto& a) { return a->agentType == target; });

  // The stored item (§3.4).
  const std::string id = newUuid();
  const std::string nowIso = formatIso(now);
  WorkItem item;
  item.set(WorkField::Id, id);
  item.set(WorkField::TaskId, request.taskId.empty() ? newUuid() : request.taskId);
  item.set(WorkField::ProjectId, project);
  item.set(WorkField::Description, request.description);
  item.set(WorkField::Capability, cap);
  item.set(WorkField::Boundary, bound);
  item.set(WorkField::Priority, request.priority.value_or(int64_t{5}));
  if (!request.deadline.isNull()) item.setJson(WorkField::Deadline, request.deadline);
  if (!request.contextData.isNull()) item.setJson(WorkField::ContextData, request.contextData);
  if (request.preferredAgentType) {
    item.set(WorkField::PreferredAgentType, *request.preferredAgentType);
  }
  if (request.requiredAgentType) item.set(WorkField::RequiredAgentType, *request.requiredAgentType);
  item.set(WorkField::TargetAgentType, target);
  item.setStatus(WorkStatus::Pending);
  item.set(WorkField::OfferedBy, std::string("coordinator"));
  item.set(WorkField::OfferedAt, nowIso);
  item.set(WorkField::UpdatedAt, nowIso);
  item.set(WorkField::Attempts, int64_t{0});
  item.set(WorkField::MaxAttempts, request.maxAttempts.value_or(ctx_.options.maxAttempts));
  if (request.leaseMs) item.set(WorkField::LeaseMs, *request.leaseMs);
  if (!request.retry.isNull()) item.setJson(WorkField::Retry, request.retry);
  if (dueAt > 0) item.set(WorkField::NextAttemptAt, formatIso(dueAt));
  item.set(WorkField::Errors);
  if (dueAt > 0) {
    appendTransition(item, "submitted", nowIso, {{"nextAttemptAt", Json(formatIso(dueAt))}});
  } else {
    appendTransition(item, "submitted", nowIso);
  }

  return NewItem{id, item.encode(), haveWorker, SpinUpRequest{id, project, cap, bound, target}};
}

Submitted WorkQueue::plannedOutcome(const NewItem& item) const {
  Submitted out;
  out.id = item.id;
  out.targetAgentType = item.spinUp.agentType;
  out.spinUpTriggered = !item.haveWorker && ctx_.options.spinupOnSubmit;
  if (item.haveWorker) {
    out.estimatedWaitSeconds = 5;
  } else if (out.spinUpTriggered) {
    out.estimatedWaitSeconds = 30;
  }
  return out;
}

Result<Submitted> WorkQueue::finishSubmit(const NewItem& item, Result<uint64_t> written) {
  if (!written) {
    if (written.code() == Code::AlreadyExists) return Status::internal("work id collision");
    return written.status();
  }
  applyStored(item.id, item.value, *written);

  Submitted out = plannedOutcome(item);
  if (out.spinUpTriggered) {
    if (spinUp_) {
      spinUp_(item.spinUp);
    } else {
      log::info("spin-up requested but no spin-up service is configured",
                {{"workId", item.id},
                 {"agentType", item.spinUp.agentType},
                 {"capability", item.spinUp.capability}});
    }
  }
  return out;
}

}  // namespace weft
