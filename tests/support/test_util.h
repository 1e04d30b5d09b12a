// Small helpers the suites that drive real processes share: the backend the
// run is for, bounded polling, timing, and status assertions with the
// response in the failure message.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

namespace weft::testing {

// WEFT_TEST_BACKEND (nats, redis or sqlite; ctest sets it). FAILs when unset.
inline std::string backendName() {
  const char* value = std::getenv("WEFT_TEST_BACKEND");
  if (!value || !*value)
    FAIL("WEFT_TEST_BACKEND is not set: nats, redis or sqlite (ctest sets it)");
  return value;
}

// Polls pred every 20 ms until it holds or timeout passes.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

inline double elapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

// value with `decimals` digits after the point, for figure lines.
inline std::string fixed(double value, int decimals = 1) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

}  // namespace weft::testing

// Status checks on a testing::HttpResponse that print the response on failure.
#define CHECK_STATUS(resp, code) \
  do {                           \
    const auto& r_ = (resp);     \
    INFO(r_.describe());         \
    CHECK(r_.status == (code));  \
  } while (0)

#define REQUIRE_STATUS(resp, code) \
  do {                             \
    const auto& r_ = (resp);       \
    INFO(r_.describe());           \
    REQUIRE(r_.status == (code));  \
  } while (0)
