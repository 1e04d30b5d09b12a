#include "weft/field_rules.h"

#include <algorithm>

namespace weft {

namespace {

bool isIdChars(const std::string& s, size_t maxLen) {
  if (s.empty() || s.size() > maxLen) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

constexpr int64_t kMinLeaseMs = 1000;
constexpr int64_t kMaxLeaseMs = 86400000;

}  // namespace

bool isFalsy(const Json& v) {
  switch (v.type()) {
    case Json::Type::Null:
      return true;
    case Json::Type::Bool:
      return !v.asBool();
    case Json::Type::Number:
      return v.asDouble() == 0;
    case Json::Type::String:
      return v.asString().empty();
    default:
      return false;
  }
}

std::string shown(const Json& v) { return v.isString() ? v.asString() : v.dump(); }

bool isAgentTypeName(const std::string& s) { return s == "copilot-cli" || s == "claude-code"; }

bool isAgentTypeValue(const Json& v) { return v.isString() && isAgentTypeName(v.asString()); }

const char* const kProjectIdRule = "projectId must be 1-64 characters from [A-Za-z0-9_-]";

bool isValidProjectId(const std::string& s) { return isIdChars(s, 64); }
bool isValidGuid(const std::string& s) { return isIdChars(s, 128); }

bool isBlank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

Status checkProjectIdField(const Json& value) {
  if (value.isNull() || (value.isString() && isValidProjectId(value.asString()))) {
    return Status::ok();
  }
  return Status::invalidArgument(kProjectIdRule);
}

Status checkLeaseMsField(const Json& value) {
  if (value.isNull() || (value.isInteger() && value.asInt() >= kMinLeaseMs &&
                         value.asInt() <= kMaxLeaseMs)) {
    return Status::ok();
  }
  return Status::invalidArgument("leaseMs must be an integer between " +
                                 std::to_string(kMinLeaseMs) + " and " +
                                 std::to_string(kMaxLeaseMs));
}

}  // namespace weft
