// fuzz_regression_tests: runs every fuzz target on its seed corpus and on
// every crasher kept so far, without libFuzzer, in the normal build. A
// crasher that still crashes (or trips a WEFT_FUZZ_CHECK) aborts this
// process, so the ctest entry fails.
//
//   fuzz_regression_tests [FUZZ_DIR]   (default: the source tree's tests/fuzz)
//
// Each target's sources are compiled into this program under their own
// names (see tests/fuzz/CMakeLists.txt), listed in the generated
// fuzz_targets.inc.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;

using InitFn = int (*)(int*, char***);
using OneFn = int (*)(const uint8_t*, size_t);

#define WEFT_FUZZ_TARGET(name)                        \
  extern "C" int weft_fuzz_##name##_init(int*, char***); \
  extern "C" int weft_fuzz_##name##_one(const uint8_t*, size_t);
#include "fuzz_targets.inc"
#undef WEFT_FUZZ_TARGET

namespace {

struct Target {
  const char* name;
  InitFn init;
  OneFn one;
};

const Target kTargets[] = {
#define WEFT_FUZZ_TARGET(name) {"fuzz_" #name, weft_fuzz_##name##_init, weft_fuzz_##name##_one},
#include "fuzz_targets.inc"
#undef WEFT_FUZZ_TARGET
};

std::vector<fs::path> inputsOf(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());  // stable order, reproducible logs
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? fs::path(argv[1]) : fs::path(WEFT_FUZZ_DIR);
  int total = 0;
  for (const Target& t : kTargets) {
    std::vector<fs::path> files = inputsOf(root / "corpus" / t.name);
    const size_t seeds = files.size();
    for (auto& f : inputsOf(root / "crashers" / t.name)) files.push_back(f);
    // A target without seeds means a broken checkout or path: fail, do not
    // pass by running nothing.
    if (seeds == 0) {
      std::fprintf(stderr, "%s: no seed corpus in %s\n", t.name,
                   (root / "corpus" / t.name).c_str());
      return 1;
    }
    int fakeArgc = 1;
    char* fakeArgvData[] = {argv[0], nullptr};
    char** fakeArgv = fakeArgvData;
    t.init(&fakeArgc, &fakeArgv);
    for (const fs::path& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::fprintf(stderr, "%s: %s\n", t.name, f.c_str());
      t.one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++total;
    }
    std::fprintf(stderr, "%s: %zu seeds, %zu crashers ok\n", t.name, seeds, files.size() - seeds);
  }
  std::printf("%d passed, 0 failed\n", total);
  return 0;
}
