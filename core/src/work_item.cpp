#include "weft/work_item.h"

#include <algorithm>
#include <array>

namespace weft {

namespace {

constexpr std::array<const char*, static_cast<size_t>(WorkField::Count)> kFieldNames = {
    "id",          "taskId",          "projectId",          "description",
    "capability",  "boundary",        "priority",           "deadline",
    "contextData", "preferredAgentType", "requiredAgentType", "targetAgentType",
    "status",      "offeredBy",       "offeredAt",          "updatedAt",
    "attempts",    "maxAttempts",     "leaseMs",            "errors",
    "transitions", "assignedTo",      "assignedAt",         "startedAt",
    "leaseDurationMs", "leaseExpiresAt", "claimToken",      "progress",
    "result",      "completedAt",     "failedAt",           "cancelledAt",
    "cancelReason", "error",          "nextAttemptAt",      "retry"};

constexpr const char* kStatusTexts[] = {"pending",   "assigned", "in-progress", "completed",
                                        "failed",    "cancelled", "unknown"};

std::optional<WorkField> fieldNamed(std::string_view name) {
  for (size_t i = 0; i < kFieldNames.size(); ++i) {
    if (name == kFieldNames[i]) return static_cast<WorkField>(i);
  }
  return std::nullopt;
}

}  // namespace

const char* workStatusText(WorkStatus status) { return kStatusTexts[static_cast<size_t>(status)]; }

std::optional<WorkStatus> parseWorkStatus(std::string_view text) {
  for (size_t i = 0; i < 6; ++i) {
    if (text == kStatusTexts[i]) return static_cast<WorkStatus>(i);
  }
  return std::nullopt;
}

const char* workFieldName(WorkField field) { return kFieldNames[static_cast<size_t>(field)]; }

Json ErrorRecord::toJson() const {
  if (!verbatim.isNull()) return verbatim;
  Json out = Json::object();
  out.set("message", Json(message));
  if (code) out.set("code", Json(*code));
  out.set("recoverable", Json(recoverable));
  out.set("occurredAt", Json(occurredAt));
  if (attempt) out.set("attempt", Json(*attempt));
  if (agentGuid) out.set("agentGuid", Json(*agentGuid));
  return out;
}

ErrorRecord ErrorRecord::fromJson(const Json& value) {
  ErrorRecord e;
  e.message = value.getString("message");
  if (const Json* c = value.find("code"); c && c->isString()) e.code = c->asString();
  e.recoverable = value.getBool("recoverable", true);
  e.occurredAt = value.getString("occurredAt");
  if (const Json* a = value.find("attempt"); a && a->isInteger()) e.attempt = a->asInt();
  if (const Json* g = value.find("agentGuid"); g && g->isString()) e.agentGuid = g->asString();
  if (e.toJson().dump() != value.dump()) e.verbatim = value;
  return e;
}

std::string WorkItem::statusText() const {
  if (raw_.test(idx(WorkField::Status)) || status == WorkStatus::Unknown) {
    return extra.getString("status");
  }
  return workStatusText(status);
}

void WorkItem::set(WorkField field) {
  const size_t i = idx(field);
  readable_.set(i);
  if (raw_.test(i)) {
    raw_.reset(i);
    extra.erase(workFieldName(field));
  }
  if (present_.test(i)) return;
  present_.set(i);
  order_.push_back(Slot{field, {}});
}

void WorkItem::erase(WorkField field) {
  const size_t i = idx(field);
  if (!present_.test(i)) return;
  if (raw_.test(i)) extra.erase(workFieldName(field));
  present_.reset(i);
  readable_.reset(i);
  raw_.reset(i);
  order_.erase(std::find_if(order_.begin(), order_.end(),
                            [field](const Slot& s) { return s.field == field; }));
  setTyped(field, Json());  // back to the default
}

void WorkItem::set(WorkField field, std::string value) {
  setTyped(field, Json(std::move(value)));
  set(field);
}

void WorkItem::set(WorkField field, int64_t value) {
  setTyped(field, Json(value));
  set(field);
}

void WorkItem::setJson(WorkField field, Json value) {
  setTyped(field, value);
  set(field);
}

WorkItem::Fit WorkItem::setTyped(WorkField field, const Json& v) {
  auto str = [&](std::string& out) {
    out = v.isString() ? v.asString() : std::string();
    return v.isString() ? Fit::Exact : Fit::Unreadable;
  };
  // Read as Json::getInt reads; exact only when written back the same.
  auto num = [&](int64_t& out, int64_t fallback) {
    out = v.isInteger() ? v.asInt() : fallback;
    if (!v.isInteger()) return Fit::Unreadable;
    return Json(v.asInt()).dump() == v.dump() ? Fit::Exact : Fit::Readable;
  };
  auto any = [&](Json& out) {
    out = v;
    return Fit::Exact;
  };
  switch (field) {
    case WorkField::Id: return str(id);
    case WorkField::TaskId: return str(taskId);
    case WorkField::ProjectId: return str(projectId);
    case WorkField::Description: return str(description);
    case WorkField::Capability: return str(capability);
    case WorkField::Boundary: return str(boundary);
    case WorkField::Priority: return num(priority, 5);
    case WorkField::Deadline: return any(deadline);
    case WorkField::ContextData: return any(contextData);
    case WorkField::PreferredAgentType: return str(preferredAgentType);
    case WorkField::RequiredAgentType: return str(requiredAgentType);
    case WorkField::TargetAgentType: return str(targetAgentType);
    case WorkField::Status: {
      auto parsed = v.isString() ? parseWorkStatus(v.asString()) : std::nullopt;
      status = parsed.value_or(v.isNull() ? WorkStatus::Pending : WorkStatus::Unknown);
      return parsed ? Fit::Exact : Fit::Unreadable;
    }
    case WorkField::OfferedBy: return str(offeredBy);
    case WorkField::OfferedAt: return str(offeredAt);
    case WorkField::UpdatedAt: return str(updatedAt);
    case WorkField::Attempts: return num(attempts, 0);
    case WorkField::MaxAttempts: return num(maxAttempts, 0);
    case WorkField::LeaseMs: return num(leaseMs, 0);
    case WorkField::Errors:
      errors.clear();
      if (!v.isArray()) return Fit::Unreadable;
      for (const auto& e : v.asArray()) errors.push_back(ErrorRecord::fromJson(e));
      return Fit::Exact;
    case WorkField::Transitions: return any(transitions);
    case WorkField::AssignedTo: return str(assignedTo);
    case WorkField::AssignedAt: return str(assignedAt);
    case WorkField::StartedAt: return str(startedAt);
    case WorkField::LeaseDurationMs: return num(leaseDurationMs, 0);
    case WorkField::LeaseExpiresAt: return str(leaseExpiresAt);
    case WorkField::ClaimToken: return str(claimToken);
    case WorkField::Progress: return num(progress, 0);
    case WorkField::Result: return any(result);
    case WorkField::CompletedAt: return str(completedAt);
    case WorkField::FailedAt: return str(failedAt);
    case WorkField::CancelledAt: return str(cancelledAt);
    case WorkField::CancelReason: return str(cancelReason);
    case WorkField::Error:
      error = v.isNull() ? ErrorRecord{} : ErrorRecord::fromJson(v);
      return Fit::Exact;
    case WorkField::NextAttemptAt: return str(nextAttemptAt);
    case WorkField::Retry: return any(retry);
    case WorkField::Count: break;
  }
  return Fit::Unreadable;
}

Json WorkItem::member(WorkField field) const {
  switch (field) {
    case WorkField::Id: return Json(id);
    case WorkField::TaskId: return Json(taskId);
    case WorkField::ProjectId: return Json(projectId);
    case WorkField::Description: return Json(description);
    case WorkField::Capability: return Json(capability);
    case WorkField::Boundary: return Json(boundary);
    case WorkField::Priority: return Json(priority);
    case WorkField::Deadline: return deadline;
    case WorkField::ContextData: return contextData;
    case WorkField::PreferredAgentType: return Json(preferredAgentType);
    case WorkField::RequiredAgentType: return Json(requiredAgentType);
    case WorkField::TargetAgentType: return Json(targetAgentType);
    case WorkField::Status: return Json(workStatusText(status));
    case WorkField::OfferedBy: return Json(offeredBy);
    case WorkField::OfferedAt: return Json(offeredAt);
    case WorkField::UpdatedAt: return Json(updatedAt);
    case WorkField::Attempts: return Json(attempts);
    case WorkField::MaxAttempts: return Json(maxAttempts);
    case WorkField::LeaseMs: return Json(leaseMs);
    case WorkField::Errors: {
      Json::Array out;
      out.reserve(errors.size());
      for (const auto& e : errors) out.push_back(e.toJson());
      return Json(std::move(out));
    }
    case WorkField::Transitions: return transitions;
    case WorkField::AssignedTo: return Json(assignedTo);
    case WorkField::AssignedAt: return Json(assignedAt);
    case WorkField::StartedAt: return Json(startedAt);
    case WorkField::LeaseDurationMs: return Json(leaseDurationMs);
    case WorkField::LeaseExpiresAt: return Json(leaseExpiresAt);
    case WorkField::ClaimToken: return Json(claimToken);
    case WorkField::Progress: return Json(progress);
    case WorkField::Result: return result;
    case WorkField::CompletedAt: return Json(completedAt);
    case WorkField::FailedAt: return Json(failedAt);
    case WorkField::CancelledAt: return Json(cancelledAt);
    case WorkField::CancelReason: return Json(cancelReason);
    case WorkField::Error: return error.toJson();
    case WorkField::NextAttemptAt: return Json(nextAttemptAt);
    case WorkField::Retry: return retry;
    case WorkField::Count: break;
  }
  return Json();
}

Json WorkItem::value(WorkField field) const {
  const size_t i = idx(field);
  if (!present_.test(i)) return Json();
  if (raw_.test(i)) return extra.get(workFieldName(field));
  return member(field);
}

Json WorkItem::toJson() const {
  Json::Object out;
  out.reserve(order_.size());
  for (const Slot& s : order_) {
    if (s.field == WorkField::Count) {
      out.emplace_back(s.name, extra.get(s.name));
    } else if (raw_.test(idx(s.field))) {
      out.emplace_back(workFieldName(s.field), extra.get(workFieldName(s.field)));
    } else {
      out.emplace_back(workFieldName(s.field), member(s.field));
    }
  }
  return Json(std::move(out));
}

std::string WorkItem::encode() const {
  // Written member by member: the large free-form members are not copied.
  std::string out = "{";
  for (const Slot& s : order_) {
    if (out.size() > 1) out += ',';
    const bool verbatim = s.field == WorkField::Count || raw_.test(idx(s.field));
    // An unknown member's name may hold any character, NUL included.
    const std::string_view name =
        s.field == WorkField::Count ? std::string_view(s.name) : workFieldName(s.field);
    Json(std::string(name)).dumpTo(out);
    out += ':';
    if (verbatim) {
      extra.get(name).dumpTo(out);
    } else if (s.field == WorkField::Deadline) {
      deadline.dumpTo(out);
    } else if (s.field == WorkField::ContextData) {
      contextData.dumpTo(out);
    } else if (s.field == WorkField::Transitions) {
      transitions.dumpTo(out);
    } else if (s.field == WorkField::Result) {
      result.dumpTo(out);
    } else {
      member(s.field).dumpTo(out);
    }
  }
  out += '}';
  return out;
}

bool WorkItem::decodeInto(const Json& value, WorkItem& item) {
  if (!value.isObject()) return false;
  const Json& id = value.get("id");
  if (!id.isString() || id.asString().empty() || !value.get("status").isString()) return false;
  return assign(value, item);
}

std::shared_ptr<WorkItem> WorkItem::fromObject(const Json& value) {
  if (!value.isObject()) return nullptr;
  auto item = std::make_shared<WorkItem>();
  assign(value, *item);
  return item;
}

bool WorkItem::assign(const Json& value, WorkItem& item) {
  item.order_.reserve(value.asObject().size());
  for (const auto& [name, v] : value.asObject()) {
    auto field = fieldNamed(name);
    if (!field) {
      item.extra.set(name, v);
      item.order_.push_back(Slot{WorkField::Count, name});
      continue;
    }
    const size_t i = idx(*field);
    item.present_.set(i);
    item.order_.push_back(Slot{*field, {}});
    const Fit fit = item.setTyped(*field, v);
    if (fit != Fit::Unreadable) item.readable_.set(i);
    if (fit != Fit::Exact) {
      item.raw_.set(i);
      item.extra.set(name, v);
    }
  }
  return true;
}

std::shared_ptr<WorkItem> WorkItem::fromJson(const Json& value) {
  auto item = std::make_shared<WorkItem>();
  if (!decodeInto(value, *item)) return nullptr;
  return item;
}

std::shared_ptr<WorkItem> WorkItem::decode(const std::string& stored) {
  auto parsed = Json::parse(stored, 64);
  if (!parsed) return nullptr;
  return fromJson(*parsed);
}

}  // namespace weft
