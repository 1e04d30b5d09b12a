// Internals of the Targets service shared by its sources (targets.cpp,
// target_registry.cpp, target_health.cpp, target_spin_up.cpp): the limits
// and the helpers of docs/api.md §2.6. Not a public interface. (The field
// rules of requests are applied where they are parsed: server/api/rest_targets.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "weft/field_rules.h"
#include "weft/json.h"
#include "weft/status.h"
#include "weft/targets.h"

namespace weft::target_rules {

inline constexpr int kMaxCasAttempts = 16;
inline constexpr size_t kMaxConfig = kMaxTargetConfigBytes;
inline constexpr int64_t kDefaultHealthIntervalMs = 300000;
inline constexpr int64_t kDefaultHealthTimeoutMs = 10000;
inline constexpr int64_t kMaxHealthTimeoutMs = kMaxTargetHealthTimeoutMs;
// A name reservation without its target is taken over only after this long,
// so a registration in flight on another instance is never disturbed.
inline constexpr int64_t kStaleReservationMs = 60000;

Status invalid(std::string message);

Status targetNotFound(const std::string& ref);

std::vector<std::string> stringsOf(const Json& v);

int64_t positiveOr(const Json& v, int64_t fallback);

// A stored timeout, bounded even when an older version stored a larger one.
int64_t healthTimeoutOr(const Json& v, int64_t fallback);

// Sorted by registeredAt, then id (§2.6 list order, §4.2 selection order).
void sortByRegistration(std::vector<std::shared_ptr<const TargetRecord>>& rows);

// The members whose values differ between two objects.
std::set<std::string> changedMembers(const Json& a, const Json& b);

}  // namespace weft::target_rules
