#include "weft/retry_policy.h"

#include <algorithm>
#include <random>

namespace weft {

const char* backoffText(Backoff backoff) {
  switch (backoff) {
    case Backoff::None: return "none";
    case Backoff::Fixed: return "fixed";
    case Backoff::Exponential: return "exponential";
  }
  return "none";
}

std::optional<Backoff> parseBackoff(const std::string& text) {
  if (text == "none") return Backoff::None;
  if (text == "fixed") return Backoff::Fixed;
  if (text == "exponential") return Backoff::Exponential;
  return std::nullopt;
}

RetryPolicy RetryPolicy::overriddenBy(const Json& itemRetry) const {
  RetryPolicy out = *this;
  if (!itemRetry.isObject()) return out;
  if (const Json* b = itemRetry.find("backoff"); b && b->isString()) {
    if (auto parsed = parseBackoff(b->asString())) out.backoff = *parsed;
  }
  auto clamp = [](const Json* v, int64_t lo, int64_t hi, int64_t& target) {
    if (v && v->isInteger()) target = std::clamp<int64_t>(v->asInt(), lo, hi);
  };
  clamp(itemRetry.find("baseDelayMs"), 0, kMaxDelayMs, out.baseDelayMs);
  clamp(itemRetry.find("maxDelayMs"), 0, kMaxDelayMs, out.maxDelayMs);
  clamp(itemRetry.find("jitterPercent"), 0, 100, out.jitterPercent);
  return out;
}

int64_t RetryPolicy::delayMs(int64_t attempt, double random01) const {
  int64_t delay = 0;
  switch (backoff) {
    case Backoff::None: return 0;
    case Backoff::Fixed: delay = baseDelayMs; break;
    case Backoff::Exponential: {
      delay = baseDelayMs;
      for (int64_t i = 1; i < attempt && delay < maxDelayMs; ++i) {
        delay = delay > kMaxDelayMs / 2 ? kMaxDelayMs : delay * 2;
      }
      break;
    }
  }
  delay = std::clamp<int64_t>(delay, 0, std::min(maxDelayMs, kMaxDelayMs));
  const double r = std::clamp(random01, 0.0, 1.0);
  const auto cut = static_cast<int64_t>(static_cast<double>(delay) *
                                        static_cast<double>(jitterPercent) / 100.0 * r);
  return std::max<int64_t>(0, delay - cut);
}

double jitterRandom() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

}  // namespace weft
