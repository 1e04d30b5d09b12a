// One stored spin-up target (docs/api.md §3.6), decoded once when it changes. The
// stored JSON is the source of truth and what the API returns; the other
// members are cached reads of it for lists, routing and the health checker.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/json.h"

namespace weft {

// The stored `status` (docs/api.md §3.3). Unknown: absent, not a string, or a
// text Weft does not know (written by other software); the stored JSON keeps
// such a text as it was.
enum class TargetStatus { Available, InUse, Disabled, Error, Unknown };
// "available", "in-use", "disabled", "error"; "unknown" for Unknown.
const char* targetStatusText(TargetStatus status);
// nullopt for a text that is none of the four.
std::optional<TargetStatus> parseTargetStatus(std::string_view text);

// The stored `healthStatus` (§3.3). Unknown is the stored "unknown" (not
// probed yet), and also an absent value or a text Weft does not know, which
// the stored JSON keeps as it was.
enum class TargetHealth { Healthy, Unhealthy, Unknown };
// "healthy", "unhealthy", "unknown".
const char* targetHealthText(TargetHealth health);
// nullopt for a text that is none of the three.
std::optional<TargetHealth> parseTargetHealth(std::string_view text);

// Always owned by a shared_ptr (the list index hands out the records it
// points at).
struct TargetRecord : std::enable_shared_from_this<TargetRecord> {
  Json target;  // the stored value, as stored (and as returned)
  std::string id, projectId, name, description, agentType, mechanism;
  TargetStatus status = TargetStatus::Unknown;
  TargetHealth healthStatus = TargetHealth::Unknown;
  std::vector<std::string> capabilities, boundaries;
  int64_t registeredAtMs = 0;
  int64_t updatedAtMs = 0;
  bool healthEnabled = false;
  int64_t healthIntervalMs = 300000;
  int64_t healthTimeoutMs = 10000;
  std::optional<int64_t> lastHealthCheckMs;

  const Json& config() const { return target.get("config"); }
  // The texts as stored: an unknown one as it was; "" for an absent or
  // non-string status, "unknown" for an absent or non-string healthStatus.
  std::string statusText() const { return target.getString("status"); }
  std::string healthText() const { return target.getString("healthStatus", "unknown"); }
  bool hasCapability(const std::string& c) const {
    return std::find(capabilities.begin(), capabilities.end(), c) != capabilities.end();
  }
  bool hasBoundary(const std::string& b) const {
    return std::find(boundaries.begin(), boundaries.end(), b) != boundaries.end();
  }
};

}  // namespace weft
