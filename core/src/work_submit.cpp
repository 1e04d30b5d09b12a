// POST /api/work: validation in the order of docs/api.md §2.3, routing to
// an agent type (§4.2), the stored item, and the write (waited for, or
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

Result<Json> WorkQueue::submit(const Json& body) {
  Result<NewItem> item = prepareSubmit(body);
  if (!item) return item.status();
  auto bucket = view_->bucket();
  if (!bucket) return Status::unavailable("work bucket not open yet");
  return finishSubmit(*item, bucket->create(item->id, item->value));
}

void WorkQueue::submitAsync(const Json& body, SubmitDone done) {
  Result<NewItem> prepared = prepareSubmit(body);
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

Result<WorkQueue::NewItem> WorkQueue::prepareSubmit(const Json& body) {
  // Validation, in the order of the docs/api.md §2.3 table.
  const Json& boundary = body.get("boundary");
  if (isFalsy(boundary)) return invalid("classification is required");
  if (!boundary.isString() || isBlank(boundary.asString())) {
    return invalid("boundary must be a non-empty string");
  }
  if (boundary.asString().size() > kMaxShortString) return invalid("boundary exceeds 256 bytes");
  const Json& capability = body.get("capability");
  if (isFalsy(capability)) return invalid("capability is required");
  if (!capability.isString() || isBlank(capability.asString())) {
    return invalid("capability must be a non-empty string");
  }
  if (capability.asString().size() > kMaxShortString) {
    return invalid("capability exceeds 256 bytes");
  }
  const Json& description = body.get("description");
  if (isFalsy(description)) return invalid("description is required");
  if (!description.isString()) return invalid("description must be a string");
  if (description.asString().size() > kMaxDescription) {
    return invalid("description exceeds 65536 bytes");
  }
  const Json& priority = body.get("priority");
  if (!priority.isNull() &&
      (!priority.isInteger() || priority.asInt() < 1 || priority.asInt() > 10)) {
    return invalid("priority must be an integer between 1 and 10");
  }
  const Json& preferred = body.get("preferredAgentType");
  if (!preferred.isNull() && !(preferred.isString() && isAgentTypeName(preferred.asString()))) {
    return invalid("Invalid preferredAgentType: " + shown(preferred) +
                   ". Must be copilot-cli or claude-code");
  }
  const Json& required = body.get("requiredAgentType");
  if (!required.isNull() && !(required.isString() && isAgentTypeName(required.asString()))) {
    return invalid("Invalid requiredAgentType: " + shown(required) +
                   ". Must be copilot-cli or claude-code");
  }
  const Json& maxAttempts = body.get("maxAttempts");
  if (!maxAttempts.isNull() &&
      (!maxAttempts.isInteger() || maxAttempts.asInt() < 1 || maxAttempts.asInt() > 100)) {
    return invalid("maxAttempts must be an integer between 1 and 100");
  }
  const Json& leaseMs = body.get("leaseMs");
  if (auto s = checkLeaseMsField(leaseMs); !s) return s;
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  const Json& taskId = body.get("taskId");
  if (!isFalsy(taskId) && !taskId.isString()) return invalid("taskId must be a string");
  if (taskId.isString() && taskId.asString().size() > kMaxShortString) {
    return invalid("taskId exceeds 256 bytes");
  }
  // deadline is stored verbatim; bounded like the other short strings.
  if (const Json* d = body.find("deadline"); d && !d->isNull() && d->dump().size() > kMaxShortString) {
    return invalid("deadline exceeds 256 bytes");
  }
  const Json* contextData = body.find("contextData");
  if (contextData && contextData->dump().size() > kMaxContextData) {
    return invalid("contextData exceeds 262144 bytes");
  }

  if (auto s = ready(); !s) return s;
  if (!agents_.view().ready()) return Status::unavailable("agent registry not loaded yet");

  const std::string project =
      projectId.isString() ? projectId.asString() : ctx_.options.defaultProject;
  const std::string cap = capability.asString();
  const std::string bound = boundary.asString();
  const int64_t now = ctx_.now();

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
  if (required.isString()) {
    target = required.asString();
  } else {
    std::vector<std::string> types;
    for (const auto& a : eligible) {
      if (std::find(types.begin(), types.end(), a->agentType) == types.end()) {
        types.push_back(a->agentType);
      }
    }
    if (types.empty()) types.push_back("claude-code");
    target = types.front();
    if (preferred.isString() &&
        std::find(types.begin(), types.end(), preferred.asString()) != types.end()) {
      target = preferred.asString();
    }
  }
  bool haveWorker = std::any_of(eligible.begin(), eligible.end(),
                                [&](const auto& a) { return a->agentType == target; });

  // The stored item (§3.4).
  const std::string id = newUuid();
  const std::string nowIso = formatIso(now);
  Json item = Json::object();
  item.set("id", Json(id));
  item.set("taskId", taskId.isString() && !taskId.asString().empty() ? taskId : Json(newUuid()));
  item.set("projectId", Json(project));
  item.set("description", description);
  item.set("capability", capability);
  item.set("boundary", boundary);
  item.set("priority", Json(priority.isNull() ? int64_t{5} : priority.asInt()));
  if (const Json* d = body.find("deadline"); d && !d->isNull()) item.set("deadline", *d);
  if (contextData && !contextData->isNull()) item.set("contextData", *contextData);
  if (preferred.isString()) item.set("preferredAgentType", preferred);
  if (required.isString()) item.set("requiredAgentType", required);
  item.set("targetAgentType", Json(target));
  item.set("status", Json("pending"));
  item.set("offeredBy", Json("coordinator"));
  item.set("offeredAt", Json(nowIso));
  item.set("updatedAt", Json(nowIso));
  item.set("attempts", Json(int64_t{0}));
  item.set("maxAttempts",
           Json(maxAttempts.isNull() ? ctx_.options.maxAttempts : maxAttempts.asInt()));
  if (!leaseMs.isNull()) item.set("leaseMs", Json(leaseMs.asInt()));
  item.set("errors", Json::array());
  appendTransition(item, "submitted", nowIso);

  return NewItem{id, item.dump(), haveWorker, SpinUpRequest{id, project, cap, bound, target}};
}

Result<Json> WorkQueue::finishSubmit(const NewItem& item, Result<uint64_t> written) {
  if (!written) {
    if (written.code() == Code::AlreadyExists) return Status::internal("work id collision");
    return written.status();
  }
  view_->applyPut(item.id, item.value, *written);

  Json response = Json::object();
  response.set("id", Json(item.id));
  response.set("workItemId", Json(item.id));
  response.set("targetAgentType", Json(item.spinUp.agentType));
  bool spinUp = !item.haveWorker && ctx_.options.spinupOnSubmit;
  response.set("spinUpTriggered", Json(spinUp));
  if (item.haveWorker) {
    response.set("estimatedWaitSeconds", Json(5));
  } else if (spinUp) {
    response.set("estimatedWaitSeconds", Json(30));
  }
  if (spinUp) {
    if (spinUp_) {
      spinUp_(item.spinUp);
    } else {
      log::info("spin-up requested but no spin-up service is configured",
                {{"workId", item.id},
                 {"agentType", item.spinUp.agentType},
                 {"capability", item.spinUp.capability}});
    }
  }
  return response;
}

}  // namespace weft
