#include "work_rules.h"

#include <algorithm>

namespace weft::work_rules {

Status invalid(std::string message) { return Status::invalidArgument(std::move(message)); }

Status workNotFound(const std::string& id) {
  return Status::notFound("Work item with ID " + id + " not found");
}

Json::Object attemptFields(const WorkItem& item) {
  return {{"attempt", Json(item.attempts)}, {"agentGuid", Json(item.assignedTo)}};
}

Json::Object assigneeField(const WorkItem& item) {
  if (item.assignedTo.empty()) return {};
  return {{"agentGuid", Json(item.assignedTo)}};
}

void clearAssignment(WorkItem& item) {
  for (WorkField f : kAssignmentFields) item.erase(f);
}

void removeLease(WorkItem& item) {
  item.erase(WorkField::LeaseExpiresAt);
  item.erase(WorkField::LeaseDurationMs);
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

Status tokenMismatch() {
  return Status::conflict("Claim token does not match current assignment");
}

void appendError(WorkItem& item, ErrorRecord error) {
  if (!item.has(WorkField::Errors)) item.errors.clear();
  item.errors.push_back(error);
  item.set(WorkField::Errors);
  item.error = std::move(error);
  item.set(WorkField::Error);
}

}  // namespace weft::work_rules
