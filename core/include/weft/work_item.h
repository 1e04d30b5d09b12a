// WorkItem: one work item as stored in the `weft-work` bucket (docs/api.md
// §3.4), typed. The stored form is a JSON object whose member order depends
// on the item's history (a member set for the first time goes last, a
// cleared one disappears), so the item keeps the order of its members: a
// value read and written again comes out byte for byte as it went in, and a
// member set by a transition lands where it always did.
//
// Members Weft does not know, and known members whose stored value has a type
// Weft does not write (items written by other software), are kept verbatim in
// `extra` and written back in their place.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/json.h"

namespace weft {

// The stored `status`. Unknown: a status text Weft does not know (kept
// verbatim in extra; such an item is neither active nor terminal).
enum class WorkStatus { Pending, Assigned, InProgress, Completed, Failed, Cancelled, Unknown };
// "pending", "assigned", "in-progress", "completed", "failed", "cancelled";
// "unknown" for Unknown.
const char* workStatusText(WorkStatus status);
// nullopt for a text that is none of the six.
std::optional<WorkStatus> parseWorkStatus(std::string_view text);

// One entry of an item's `errors` (and its latest, `error`): an agent's
// failure report or a lease expiry.
struct ErrorRecord {
  std::string message;
  std::optional<std::string> code;
  bool recoverable = true;
  std::string occurredAt;  // ISO 8601
  std::optional<int64_t> attempt;
  std::optional<std::string> agentGuid;
  // The stored value when it is not in the form Weft writes (other members,
  // another order or other types): written back as it was.
  Json verbatim;

  // {message, code?, recoverable, occurredAt, attempt?, agentGuid?}, or
  // verbatim when set.
  Json toJson() const;
  static ErrorRecord fromJson(const Json& value);
};

// The members of a stored item Weft knows, in the order a new item has them
// (then the ones transitions add).
enum class WorkField : uint8_t {
  Id, TaskId, ProjectId, Description, Capability, Boundary, Priority, Deadline, ContextData,
  PreferredAgentType, RequiredAgentType, TargetAgentType, Status, OfferedBy, OfferedAt,
  UpdatedAt, Attempts, MaxAttempts, LeaseMs, Errors, Transitions, AssignedTo, AssignedAt,
  StartedAt, LeaseDurationMs, LeaseExpiresAt, ClaimToken, Progress, Result, CompletedAt,
  FailedAt, CancelledAt, CancelReason, Error, NextAttemptAt, Retry,
  Count
};
const char* workFieldName(WorkField field);

struct WorkItem {
  std::string id, taskId, projectId;
  std::string description;
  std::string capability, boundary;
  int64_t priority = 5;
  Json deadline;     // as the client sent it
  Json contextData;  // free-form client JSON
  std::string preferredAgentType, requiredAgentType, targetAgentType;
  WorkStatus status = WorkStatus::Pending;
  std::string offeredBy, offeredAt, updatedAt;
  int64_t attempts = 0, maxAttempts = 0;
  int64_t leaseMs = 0;  // the submitter's lease for each claim
  std::vector<ErrorRecord> errors;
  ErrorRecord error;  // the latest failure
  Json transitions;   // the transition log (work_transitions.h), an array
  std::string assignedTo, assignedAt, startedAt;
  int64_t leaseDurationMs = 0;
  std::string leaseExpiresAt;
  std::string claimToken;
  int64_t progress = 0;
  Json result;  // {summary?, output?, artifacts?, completedAt}
  std::string completedAt, failedAt, cancelledAt;
  std::string cancelReason;
  // A pending item is not claimable before this time (ISO 8601): a delayed
  // submit (notBefore / delayMs) or a retry backoff. Absent: due now.
  std::string nextAttemptAt;
  // The submitter's retry policy: {backoff?, baseDelayMs?, maxDelayMs?,
  // jitterPercent?}; what it leaves out comes from the configuration.
  Json retry;
  // Members kept verbatim (see above), in an object.
  Json extra = Json::object();

  // Whether the member is present with a value its typed member could read
  // (a number for a count, a string for a text...). Otherwise the typed
  // member holds its default.
  bool has(WorkField field) const { return present_.test(idx(field)) && readable_.test(idx(field)); }
  // Whether the member is present at all.
  bool contains(WorkField field) const { return present_.test(idx(field)); }
  // The member as stored: null when absent.
  Json value(WorkField field) const;
  // After assigning a member: makes it present (at the end when it was not).
  void set(WorkField field);
  // Removes the member (its typed value is reset).
  void erase(WorkField field);
  // Both, for the three kinds of member.
  void set(WorkField field, std::string value);
  void set(WorkField field, int64_t value);
  void setJson(WorkField field, Json value);
  void setStatus(WorkStatus value) {
    status = value;
    set(WorkField::Status);
  }

  bool isActive() const { return status == WorkStatus::Assigned || status == WorkStatus::InProgress; }
  bool isTerminal() const {
    return status == WorkStatus::Completed || status == WorkStatus::Failed ||
           status == WorkStatus::Cancelled;
  }
  // The status text as stored (an unknown one as it was).
  std::string statusText() const;

  // The stored form, members in the item's order.
  std::string encode() const;
  // The same as a JSON value (for a dead-letter snapshot).
  Json toJson() const;
  // nullptr when the value is not a work item: not a JSON object, no non-empty
  // string id, or no string status.
  static std::shared_ptr<WorkItem> decode(const std::string& stored);
  static std::shared_ptr<WorkItem> fromJson(const Json& value);
  // Any JSON object, also without id or status (a dead-letter snapshot);
  // nullptr for anything else.
  static std::shared_ptr<WorkItem> fromObject(const Json& value);
  // fromJson() into an existing item (a WorkRecord); false as nullptr above.
  static bool decodeInto(const Json& value, WorkItem& out);

 private:
  static size_t idx(WorkField f) { return static_cast<size_t>(f); }
  // Assigns the typed member from a stored value.
  enum class Fit { Exact, Readable, Unreadable };
  Fit setTyped(WorkField field, const Json& value);
  Json member(WorkField field) const;
  static bool assign(const Json& object, WorkItem& item);

  // The members in stored order: a known field, or (Count) an unknown name.
  struct Slot {
    WorkField field;
    std::string name;  // for unknown members
  };
  std::vector<Slot> order_;
  // raw_: kept verbatim in extra (the value would not be written back the
  // same from the typed member).
  std::bitset<static_cast<size_t>(WorkField::Count)> present_, readable_, raw_;
};

}  // namespace weft
