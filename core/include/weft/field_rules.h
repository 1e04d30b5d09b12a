// Validation rules that several services share, each with its one message
// (docs/api.md §1.2, §2.3, §2.4). A rule returns Ok or an InvalidArgument
// naming the field and why; services call these instead of restating them.
#pragma once

#include <string>

#include "weft/json.h"
#include "weft/status.h"

namespace weft {

// 1-64 characters from [A-Za-z0-9_-].
bool isValidProjectId(const std::string& s);
// 1-128 characters from [A-Za-z0-9_-] (a guid given to POST /api/agents).
bool isValidGuid(const std::string& s);
// Empty or only whitespace.
bool isBlank(const std::string& s);

// JavaScript falsiness of a JSON value (null, false, 0, ""), which the
// contract's "is required" rules follow.
bool isFalsy(const Json& v);
// How a rejected value appears inside a message: strings raw, others as JSON.
std::string shown(const Json& v);
// "copilot-cli" or "claude-code".
bool isAgentTypeName(const std::string& s);
// A JSON string holding one of those.
bool isAgentTypeValue(const Json& v);

// The message of an invalid projectId.
extern const char* const kProjectIdRule;

// An optional body field `projectId`: absent, or a valid project id.
Status checkProjectIdField(const Json& value);
// An optional body field `leaseMs`: absent, or an integer in 1000..86400000.
Status checkLeaseMsField(const Json& value);

}  // namespace weft
