#include "api/rest_work.h"

#include <algorithm>
#include <iterator>

#include "api/rest_common.h"
#include "weft/field_rules.h"
#include "weft/ids.h"
#include "weft/retry_policy.h"

namespace weft::rest {

namespace {

constexpr size_t kMaxShortString = 256;
constexpr size_t kMaxDescription = 64 * 1024;
constexpr size_t kMaxContextData = 256 * 1024;
constexpr size_t kMaxResult = 256 * 1024;
// Every failure is kept in the item's errors (and its dead-letter entry):
// bounded, so maxAttempts of them still fit a backend value.
constexpr size_t kMaxErrorMessage = 16 * 1024;

Status invalid(std::string message) { return Status::invalidArgument(std::move(message)); }

// A non-empty string field: "<field> is required" otherwise.
Result<std::string> requiredString(const Json& body, const char* field) {
  const Json& v = body.get(field);
  if (!v.isString() || v.asString().empty()) return invalid(std::string(field) + " is required");
  return v.asString();
}

// A list of strings: absent → nullopt; otherwise it must be an array of
// strings, at most 256.
Result<std::optional<std::vector<std::string>>> stringList(const Json& body, const char* field) {
  const Json& v = body.get(field);
  if (v.isNull()) return std::optional<std::vector<std::string>>{};
  std::string message = std::string(field) + " must be an array of strings";
  if (!v.isArray()) return invalid(message);
  std::vector<std::string> out;
  for (const auto& e : v.asArray()) {
    if (!e.isString()) return invalid(message);
    out.push_back(e.asString());
  }
  if (out.size() > 256) return invalid(std::string(field) + " exceeds 256 items");
  return std::optional<std::vector<std::string>>(std::move(out));
}

std::optional<std::string> optionalString(const Json& v) {
  if (!v.isString()) return std::nullopt;
  return v.asString();
}

// The `retry` object of a submit: {backoff?, baseDelayMs?, maxDelayMs?,
// jitterPercent?}, each checked; the stored form holds only what was given.
Result<Json> parseRetryPolicy(const Json& retry) {
  if (retry.isNull()) return Json();
  if (!retry.isObject()) return invalid("retry must be an object");
  Json out = Json::object();
  const Json& backoff = retry.get("backoff");
  if (!backoff.isNull()) {
    if (!backoff.isString() || !parseBackoff(backoff.asString())) {
      return invalid("retry.backoff must be one of: none, fixed, exponential");
    }
    out.set("backoff", backoff);
  }
  auto delay = [&](const char* field) -> Status {
    const Json& v = retry.get(field);
    if (v.isNull()) return Status::ok();
    if (!v.isInteger() || v.asInt() < 0 || v.asInt() > kMaxDelayMs) {
      return invalid(std::string("retry.") + field + " must be an integer between 0 and " +
                     std::to_string(kMaxDelayMs));
    }
    out.set(field, v);
    return Status::ok();
  };
  if (auto s = delay("baseDelayMs"); !s) return s;
  if (auto s = delay("maxDelayMs"); !s) return s;
  const Json& base = retry.get("baseDelayMs");
  const Json& max = retry.get("maxDelayMs");
  if (base.isInteger() && max.isInteger() && max.asInt() < base.asInt()) {
    return invalid("retry.maxDelayMs must not be less than retry.baseDelayMs");
  }
  const Json& jitter = retry.get("jitterPercent");
  if (!jitter.isNull()) {
    if (!jitter.isInteger() || jitter.asInt() < 0 || jitter.asInt() > 100) {
      return invalid("retry.jitterPercent must be an integer between 0 and 100");
    }
    out.set("jitterPercent", jitter);
  }
  return out;
}

}  // namespace

Result<SubmitRequest> parseSubmitRequest(const Json& body) {
  // In the order of the docs/api.md §2.3 table.
  SubmitRequest r;
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
  if (!preferred.isNull() && !isAgentTypeValue(preferred)) {
    return invalid("Invalid preferredAgentType: " + shown(preferred) +
                   ". Must be copilot-cli or claude-code");
  }
  const Json& required = body.get("requiredAgentType");
  if (!required.isNull() && !isAgentTypeValue(required)) {
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
  const Json& deadline = body.get("deadline");
  if (!deadline.isNull() && deadline.dump().size() > kMaxShortString) {
    return invalid("deadline exceeds 256 bytes");
  }
  const Json& contextData = body.get("contextData");
  if (body.find("contextData") && contextData.dump().size() > kMaxContextData) {
    return invalid("contextData exceeds 262144 bytes");
  }
  // Delayed work and the item's retry policy (not in the original contract).
  const Json& notBefore = body.get("notBefore");
  const Json& delayMs = body.get("delayMs");
  std::optional<int64_t> notBeforeMs;
  if (!notBefore.isNull()) {
    if (!notBefore.isString()) {
      return invalid("notBefore must be an ISO 8601 date-time string (e.g. 2026-12-04T10:00:00Z)");
    }
    notBeforeMs = parseIso(notBefore.asString());
    if (!notBeforeMs) {
      return invalid("notBefore must be an ISO 8601 date-time string (e.g. 2026-12-04T10:00:00Z)");
    }
  }
  if (!delayMs.isNull() &&
      (!delayMs.isInteger() || delayMs.asInt() < 0 || delayMs.asInt() > kMaxDelayMs)) {
    return invalid("delayMs must be an integer between 0 and " + std::to_string(kMaxDelayMs) +
                   " (30 days)");
  }
  if (notBeforeMs && !delayMs.isNull()) {
    return invalid("notBefore and delayMs cannot both be given");
  }
  auto retry = parseRetryPolicy(body.get("retry"));
  if (!retry) return retry.status();

  r.boundary = boundary.asString();
  r.capability = capability.asString();
  r.description = description.asString();
  if (!priority.isNull()) r.priority = priority.asInt();
  r.preferredAgentType = optionalString(preferred);
  r.requiredAgentType = optionalString(required);
  if (!maxAttempts.isNull()) r.maxAttempts = maxAttempts.asInt();
  if (!leaseMs.isNull()) r.leaseMs = leaseMs.asInt();
  r.projectId = optionalString(projectId);
  if (taskId.isString()) r.taskId = taskId.asString();
  r.deadline = deadline;
  r.contextData = contextData;
  r.notBeforeMs = notBeforeMs;
  if (!delayMs.isNull()) r.delayMs = delayMs.asInt();
  r.retry = std::move(*retry);
  return r;
}

Result<std::optional<IdempotencyKey>> parseIdempotencyKey(
    const std::optional<std::string>& header, const std::optional<std::string>& bearerToken) {
  if (!header) return std::optional<IdempotencyKey>{};
  constexpr size_t kMaxKey = 255;
  const std::string& key = *header;
  const bool printable = std::all_of(key.begin(), key.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) <= 0x7E;
  });
  if (key.empty() || key.size() > kMaxKey || !printable) {
    return invalid("Idempotency-Key header must be 1 to 255 printable ASCII characters (got " +
                   std::to_string(key.size()) + " bytes" + (printable ? "" : ", not all printable") +
                   ")");
  }
  return std::optional<IdempotencyKey>(
      IdempotencyKey{key, bearerToken ? "token:" + sha256Hex(*bearerToken) : std::string()});
}

Result<ClaimRequest> parseClaimRequest(const Json& body) {
  ClaimRequest r;
  auto guid = requiredString(body, "agentGuid");
  if (!guid) return guid.status();
  auto capabilities = stringList(body, "capabilities");
  if (!capabilities) return capabilities.status();
  auto boundaries = stringList(body, "boundaries");
  if (!boundaries) return boundaries.status();
  const Json& projectId = body.get("projectId");
  if (auto s = checkProjectIdField(projectId); !s) return s;
  const Json& leaseMs = body.get("leaseMs");
  if (auto s = checkLeaseMsField(leaseMs); !s) return s;
  const Json& waitMs = body.get("waitMs");
  if (!waitMs.isNull() &&
      (!waitMs.isInteger() || waitMs.asInt() < 0 || waitMs.asInt() > kMaxClaimWaitMs)) {
    return invalid("waitMs must be an integer between 0 and " + std::to_string(kMaxClaimWaitMs));
  }
  if (!waitMs.isNull()) r.waitMs = waitMs.asInt();
  r.agentGuid = std::move(*guid);
  r.capabilities = std::move(*capabilities);
  r.boundaries = std::move(*boundaries);
  r.projectId = optionalString(projectId);
  if (!leaseMs.isNull()) r.leaseMs = leaseMs.asInt();
  return r;
}

Result<ClaimHolder> parseClaimHolder(const Json& body) {
  auto guid = requiredString(body, "agentGuid");
  if (!guid) return guid.status();
  auto token = requiredString(body, "claimToken");
  if (!token) return token.status();
  return ClaimHolder{std::move(*guid), std::move(*token)};
}

Result<ProgressReport> parseProgressReport(const Json& body) {
  auto holder = parseClaimHolder(body);
  if (!holder) return holder.status();
  const Json& value = body.get("progress");
  if (!value.isInteger() || value.asInt() < 0 || value.asInt() > 100) {
    return invalid("progress must be an integer between 0 and 100");
  }
  return ProgressReport{std::move(*holder), value.asInt()};
}

Result<CompleteReport> parseCompleteReport(const Json& body) {
  auto holder = parseClaimHolder(body);
  if (!holder) return holder.status();
  const Json& result = body.get("result");
  if (!result.isNull()) {
    if (!result.isObject()) return invalid("result must be an object");
    const Json& summary = result.get("summary");
    if (!summary.isNull() && !summary.isString()) return invalid("result.summary must be a string");
    const Json& artifacts = result.get("artifacts");
    if (!artifacts.isNull() && !artifacts.isArray()) {
      return invalid("result.artifacts must be an array");
    }
    if (result.dump().size() > kMaxResult) return invalid("result exceeds 262144 bytes");
  }
  return CompleteReport{std::move(*holder), result};
}

Result<FailReport> parseFailReport(const Json& body) {
  auto holder = parseClaimHolder(body);
  if (!holder) return holder.status();
  const Json& error = body.get("error");
  if (!error.isObject()) return invalid("error is required");
  const Json& message = error.get("message");
  if (!message.isString() || isBlank(message.asString())) return invalid("error.message is required");
  if (message.asString().size() > kMaxErrorMessage) {
    return invalid("error.message exceeds " + std::to_string(kMaxErrorMessage) + " bytes");
  }
  const Json& code = error.get("code");
  if (!code.isNull() && !code.isString()) return invalid("error.code must be a string");
  if (code.isString() && code.asString().size() > kMaxShortString) {
    return invalid("error.code exceeds 256 bytes");
  }
  const Json& recoverable = error.get("recoverable");
  if (!recoverable.isNull() && !recoverable.isBool()) {
    return invalid("error.recoverable must be a boolean");
  }
  FailReport r;
  r.holder = std::move(*holder);
  r.message = message.asString();
  r.code = optionalString(code);
  r.recoverable = recoverable.isBool() ? recoverable.asBool() : true;
  return r;
}

Result<CancelBatchRequest> parseCancelBatchRequest(const Json& body) {
  const Json& filter = body.get("filter");
  const Json& ids = body.get("workItemIds");
  // The checks of §2.3 in order, with the truthiness the contract's wording
  // comes from: any value other than an empty list counts as "given".
  const bool idsGiven = !isFalsy(ids) && !(ids.isArray() && ids.asArray().empty());
  if (isFalsy(filter) && !idsGiven) {
    return invalid("Either filter or workItemIds must be provided");
  }
  if (!ids.isNull() && !ids.isArray()) return invalid("workItemIds must be an array");
  if (!isFalsy(filter) && !filter.isObject()) return invalid("filter must be an object");
  if (idsGiven && ids.asArray().size() > 1000) return invalid("workItemIds exceeds 1000 items");
  for (const char* f : {"status", "boundary", "capability", "assignedTo"}) {
    const Json& v = filter.get(f);
    if (!v.isNull() && !v.isString()) return invalid(std::string("filter.") + f + " must be a string");
  }
  const Json& minPriority = filter.get("minPriority");
  if (!minPriority.isNull() && !minPriority.isNumber()) {
    return invalid("filter.minPriority must be a number");
  }
  const Json& reason = body.get("reason");
  if (!reason.isNull()) {
    static const char* kReasons[] = {"user-requested", "deadline-passed", "resource-constraint",
                                     "system-shutdown"};
    if (!reason.isString() || std::none_of(std::begin(kReasons), std::end(kReasons), [&](auto r) {
          return reason.asString() == r;
        })) {
      return invalid(
          "Invalid reason. Must be one of: user-requested, deadline-passed, resource-constraint, "
          "system-shutdown");
    }
  }
  CancelBatchRequest r;
  if (idsGiven) {
    r.ids.emplace();
    for (const auto& v : ids.asArray()) r.ids->push_back(v.isString() ? v.asString() : v.dump());
  }
  r.filter.status = optionalString(filter.get("status"));
  r.filter.boundary = optionalString(filter.get("boundary"));
  r.filter.capability = optionalString(filter.get("capability"));
  r.filter.assignedTo = optionalString(filter.get("assignedTo"));
  if (minPriority.isNumber()) r.filter.minPriority = minPriority.asDouble();
  r.projectId = optionalString(body.get("projectId"));
  r.reason = optionalString(reason);
  r.reassign = body.get("reassign").isBool() && body.get("reassign").asBool();
  return r;
}

namespace {

Json itemJson(const WorkItem& item, const Json& assignedToAgent) {
  Json out = item.toJson();
  out.erase("claimToken");
  if (!assignedToAgent.isNull()) out.set("assignedToAgent", assignedToAgent);
  return out;
}

}  // namespace

Json toJson(const WorkItemView& view) { return itemJson(*view.item, view.assignedToAgent); }

Json toJson(const ClaimedItem& claimed) {
  Json out = toJson(claimed.work);
  out.set("claimToken", Json(claimed.work.item->claimToken));
  return out;
}

Json toJson(const Submitted& submitted) {
  Json out = Json::object();
  out.set("id", Json(submitted.id));
  out.set("workItemId", Json(submitted.id));
  out.set("targetAgentType", Json(submitted.targetAgentType));
  out.set("spinUpTriggered", Json(submitted.spinUpTriggered));
  if (submitted.estimatedWaitSeconds) {
    out.set("estimatedWaitSeconds", Json(*submitted.estimatedWaitSeconds));
  }
  return out;
}

Json toJson(const CancelBatchResult& result) {
  Json out = result.batch.toJson(result.completedAtMs);
  out.set("cancelledItems", Json::stringArray(result.cancelledItems));
  out.set("reassignedItems", Json::stringArray(result.reassignedItems));
  out.set("notCancellable", Json::stringArray(result.notCancellable));
  return out;
}

Json cancelledJson(const std::string& id) {
  return successMessage("Work item " + id + " cancelled");
}

JsonListStream toJsonStream(WorkPage page) {
  // The whole list is read from the backend in batches as it is written.
  constexpr size_t kReadBatch = 256;
  JsonListStream out;
  out.head = "{\"workItems\":[";
  out.count = page.entries.size();
  out.tail = page.pager.listTail(page.total);
  struct State {
    WorkPage page;
    size_t batchFrom = 0;  // page.items holds entries [batchFrom, batchFrom + items.size())
  };
  auto state = std::make_shared<State>(State{std::move(page), 0});
  out.element = [state](size_t i, std::string& text) {
    WorkPage& p = state->page;
    if (i < state->batchFrom || i >= state->batchFrom + p.items.size()) {
      p.items.clear();
      state->batchFrom = i;
      if (p.read) {
        auto batch = p.read(p.entries, i, kReadBatch);
        // A backend failure in the middle of a streamed answer cannot turn
        // into an error status any more: those items are left out.
        if (batch) p.items = std::move(*batch);
      }
      if (p.items.empty()) p.items.assign(1, nullptr);
    }
    const std::shared_ptr<const WorkItem>& item = p.items[i - state->batchFrom];
    if (!item) return;  // gone since the index was read: left out
    Json agent;
    if (!item->assignedTo.empty() && p.agentSummary) agent = p.agentSummary(item->assignedTo);
    itemJson(*item, agent).dumpTo(text);
  };
  return out;
}

Json toJson(const WorkPage& page) {
  auto parsed = Json::parse(toJsonStream(page).renderAll(), 1000);
  return parsed ? std::move(*parsed) : Json();
}

}  // namespace weft::rest
