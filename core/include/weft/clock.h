// Time for the services, injectable so leases, staleness and idle detection
// can be tested in milliseconds without sleeping.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weft {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch.
  virtual int64_t nowMs() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t nowMs() const override;
  static const SystemClock& instance();
};

// A clock that moves only when told to. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t startMs = 1765430580000) : now_(startMs) {}
  int64_t nowMs() const override { return now_.load(); }
  void set(int64_t ms) { now_.store(ms); }
  void advance(int64_t ms) { now_.fetch_add(ms); }

 private:
  std::atomic<int64_t> now_;
};

// ISO-8601 UTC with exactly three fractional digits, e.g. 2025-12-11T05:23:00.836Z.
std::string formatIso(int64_t epochMs);
// Parses an ISO-8601 date-time (fraction optional, Z or +hh:mm offset, or no
// zone meaning UTC). nullopt when it does not parse.
std::optional<int64_t> parseIso(std::string_view text);

}  // namespace weft
