// Shared by the fuzz targets: a check that stays on in every build type.
//
// The targets run both under libFuzzer (clang, -DWEFT_FUZZ=ON) and in the
// plain regression runner of the normal build (fuzz_regression_tests), where
// NDEBUG may be set, so invariants must not rely on assert().
#pragma once

#include <cstdio>
#include <cstdlib>

#define WEFT_FUZZ_CHECK(cond)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                           \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)
