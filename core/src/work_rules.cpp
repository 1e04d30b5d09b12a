#include "work_rules.h"

#include <algorithm>

namespace weft::work_rules {

Status invalid(std::string message) { return Status::invalidArgument(std::move(message)); }

Status workNotFound(const std::string& id) {
  return Status::notFound("Work item with ID " + id + " not found");
}

Json::Object attemptFields(const WorkRecord& record) {
  return {{"attempt", Json(record.item.getInt("attempts", 0))},
          {"agentGuid", Json(record.assignedTo)}};
}

Json::Object assigneeField(const WorkRecord& record) {
  if (record.assignedTo.empty()) return {};
  return {{"agentGuid", Json(record.assignedTo)}};
}



void clearAssignment(Json& item) {
  for (const char* f : kAssignmentFields) item.erase(f);
}

void removeLease(Json& item) {
  item.erase("leaseExpiresAt");
  item.erase("leaseDurationMs");
}

Result<std::optional<std::vector<std::string>>> stringList(const Json& body, const char* field) {
  const Json& v = body.get(field);
  if (v.isNull()) return std::optional<std::vector<std::string>>{};
  std::string message = std::string(field) + " must be an array of strings";
  if (!v.isArray()) return Status::invalidArgument(message);
  std::vector<std::string> out;
  for (const auto& e : v.asArray()) {
    if (!e.isString()) return Status::invalidArgument(message);
    out.push_back(e.asString());
  }
  if (out.size() > 256) return Status::invalidArgument(std::string(field) + " exceeds 256 items");
  return std::optional<std::vector<std::string>>(std::move(out));
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

Status requiredString(const Json& body, const char* field) {
  const Json& v = body.get(field);
  if (!v.isString() || v.asString().empty()) {
    return Status::invalidArgument(std::string(field) + " is required");
  }
  return Status::ok();
}

Status tokenMismatch() {
  return Status::conflict("Claim token does not match current assignment");
}

void appendError(Json& item, const Json& error) {
  Json* errors = item.find("errors");
  if (!errors || !errors->isArray()) errors = &item.set("errors", Json::array());
  errors->push(error);
  item.set("error", error);
}

}  // namespace weft::work_rules
