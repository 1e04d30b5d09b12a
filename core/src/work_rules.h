// Internals of the WorkQueue service shared by its sources (work_queue.cpp,
// work_submit.cpp, work_lifecycle.cpp, work_sweeper.cpp): limits and small
// helpers over the stored item. Not a public interface.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "weft/field_rules.h"
#include "weft/json.h"
#include "weft/status.h"
#include "weft/work_queue.h"

namespace weft::work_rules {

inline constexpr int kMaxCasAttempts = 16;
inline constexpr size_t kMaxShortString = 256;
inline constexpr size_t kMaxDescription = 64 * 1024;
inline constexpr size_t kMaxContextData = 256 * 1024;
inline constexpr size_t kMaxErrorMessage = 16 * 1024;

// The fields an assignment adds; cleared whenever the item returns to pending.
inline constexpr const char* kAssignmentFields[] = {"assignedTo",      "assignedAt",     "startedAt",
                                         "leaseDurationMs", "leaseExpiresAt", "claimToken",
                                         "progress"};

Status invalid(std::string message);

Status workNotFound(const std::string& id);

// The transition log's fields for a step of the current assignment.
Json::Object attemptFields(const WorkRecord& record);

// {agentGuid} of the current assignee, or nothing when unassigned.
Json::Object assigneeField(const WorkRecord& record);

void clearAssignment(Json& item);

void removeLease(Json& item);

// A list of strings from a claim body: absent → nullopt; otherwise it must be
// an array of strings.
Result<std::optional<std::vector<std::string>>> stringList(const Json& body, const char* field);

bool contains(const std::vector<std::string>& list, const std::string& value);

Status requiredString(const Json& body, const char* field);

Status tokenMismatch();

// Appends an ErrorRecord to the item's history and mirrors it in `error`.
void appendError(Json& item, const Json& error);

}  // namespace weft::work_rules
