// RetryPolicy: how long a failed or expired work item waits before it may be
// claimed again (its nextAttemptAt). The server default comes from the
// configuration (work.retryBackoff, work.retryBaseDelayMs,
// work.retryMaxDelayMs, work.retryJitterPercent); an item may carry its own
// `retry` object, whose members override the default one by one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "weft/json.h"

namespace weft {

enum class Backoff { None, Fixed, Exponential };
// "none", "fixed", "exponential".
const char* backoffText(Backoff backoff);
std::optional<Backoff> parseBackoff(const std::string& text);

// The longest a submit may delay an item, or a backoff may wait: 30 days.
inline constexpr int64_t kMaxDelayMs = 30LL * 24 * 3600 * 1000;

struct RetryPolicy {
  Backoff backoff = Backoff::None;
  int64_t baseDelayMs = 1000;
  int64_t maxDelayMs = 300000;
  int64_t jitterPercent = 20;  // 0..100

  // This policy with the members of an item's `retry` object applied (members
  // that are absent or of the wrong type keep this policy's value).
  RetryPolicy overriddenBy(const Json& itemRetry) const;

  // The wait before the next attempt after `attempt` attempts failed
  // (attempt >= 1): none 0; fixed baseDelayMs; exponential baseDelayMs *
  // 2^(attempt-1); both capped at maxDelayMs. Jitter then takes off up to
  // jitterPercent of it: delay - delay * jitterPercent/100 * random01, with
  // random01 in [0, 1). So the wait never exceeds the un-jittered delay.
  int64_t delayMs(int64_t attempt, double random01) const;
};

// A uniformly distributed value in [0, 1) for the jitter (thread-safe).
double jitterRandom();

}  // namespace weft
