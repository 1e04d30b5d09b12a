// Internals of the WorkQueue service shared by its sources (work_queue.cpp,
// work_submit.cpp, work_lifecycle.cpp, work_sweeper.cpp): limits and small
// helpers over the stored item. Not a public interface.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "weft/json.h"
#include "weft/status.h"
#include "weft/work_item.h"

namespace weft::work_rules {

inline constexpr int kMaxCasAttempts = 16;

// The members an assignment adds; cleared whenever the item returns to pending.
inline constexpr WorkField kAssignmentFields[] = {
    WorkField::AssignedTo,     WorkField::AssignedAt, WorkField::StartedAt, WorkField::LeaseDurationMs,
    WorkField::LeaseExpiresAt, WorkField::ClaimToken, WorkField::Progress};

Status invalid(std::string message);

Status workNotFound(const std::string& id);

// The transition log's fields for a step of the current assignment.
Json::Object attemptFields(const WorkItem& item);

// {agentGuid} of the current assignee, or nothing when unassigned.
Json::Object assigneeField(const WorkItem& item);

// Removes the members an assignment adds (kAssignmentFields).
void clearAssignment(WorkItem& item);

void removeLease(WorkItem& item);

bool contains(const std::vector<std::string>& list, const std::string& value);

Status tokenMismatch();

// Appends an ErrorRecord to the item's errors and makes it the item's error.
void appendError(WorkItem& item, ErrorRecord error);

}  // namespace weft::work_rules
