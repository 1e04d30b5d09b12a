// One stored spin-up target (docs/api.md §3.6), decoded once when it changes. The
// stored JSON is the source of truth and what the API returns; the other
// members are cached reads of it for lists, routing and the health checker.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "weft/json.h"

namespace weft {

struct TargetRecord {
  Json target;  // the stored value, as stored (and as returned)
  std::string id, projectId, name, description, agentType, mechanism, status, healthStatus;
  std::vector<std::string> capabilities, boundaries;
  int64_t registeredAtMs = 0;
  int64_t updatedAtMs = 0;
  bool healthEnabled = false;
  int64_t healthIntervalMs = 300000;
  int64_t healthTimeoutMs = 10000;
  std::optional<int64_t> lastHealthCheckMs;

  const Json& config() const { return target.get("config"); }
  bool hasCapability(const std::string& c) const {
    return std::find(capabilities.begin(), capabilities.end(), c) != capabilities.end();
  }
  bool hasBoundary(const std::string& b) const {
    return std::find(boundaries.begin(), boundaries.end(), b) != boundaries.end();
  }
};

}  // namespace weft
