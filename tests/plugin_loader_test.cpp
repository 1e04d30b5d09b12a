// The plugin loader's start-up errors (docs/architecture.md "Plugins", docs/api.md
// §7.3): each failure has its own kind and a message naming the backend, the
// file(s) searched and, for a wrong ABI, both versions.
#include "weft/plugin_loader.h"

#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

using weft::loadKvStore;
using weft::PluginContext;
using weft::PluginErrorKind;
using weft::PluginLoadError;

namespace {

const std::string kTestPluginDir = WEFT_TEST_PLUGIN_DIR;

// Loads and returns the error; fails the test when loading succeeds.
PluginLoadError loadError(const std::string& backend, const std::string& dir,
                          const PluginContext& context = {}) {
  try {
    loadKvStore(backend, dir, context);
  } catch (const PluginLoadError& e) {
    INFO("message: " << e.what());
    return e;
  }
  FAIL("loading backend '" << backend << "' from '" << dir << "' unexpectedly succeeded");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("an unknown backend name is UnknownBackend and names the file and dirs", "[loader]") {
  SECTION("default search dirs") {
    auto e = loadError("foo", "");
    CHECK(e.kind() == PluginErrorKind::UnknownBackend);
    CHECK_THAT(e.what(), Catch::Contains("unknown storage backend 'foo'"));
    CHECK_THAT(e.what(), Catch::Contains("weft-kv-foo.so"));
    CHECK_THAT(e.what(), Catch::Contains("/plugins"));   // the build's plugin folder
    CHECK_THAT(e.what(), Catch::Contains("/lib/weft"));  // the install folder
  }
  SECTION("explicit plugin dir") {
    weft::testing::TempDir dir("weft-loader-");
    auto e = loadError("foo", dir.path());
    CHECK(e.kind() == PluginErrorKind::UnknownBackend);
    CHECK_THAT(e.what(), Catch::Contains(dir.path()));
  }
}

TEST_CASE("a malformed backend name is refused before any file is touched", "[loader]") {
  for (std::string name : {"", "../nats", "a/b", "Nats", "nats.so", "x y"}) {
    INFO("name: '" << name << "'");
    auto e = loadError(name, kTestPluginDir);
    CHECK(e.kind() == PluginErrorKind::UnknownBackend);
    CHECK_THAT(e.what(), Catch::Contains("invalid storage backend name"));
  }
}

TEST_CASE("the memory backend is never loadable", "[loader]") {
  for (std::string dir : {std::string(), kTestPluginDir}) {
    auto e = loadError("memory", dir);
    CHECK(e.kind() == PluginErrorKind::UnknownBackend);
    CHECK_THAT(e.what(), Catch::Contains("'memory'"));
    CHECK_THAT(e.what(), Catch::Contains("test backend"));
  }
}

TEST_CASE("a shipped backend without its .so is MissingFile", "[loader]") {
  weft::testing::TempDir dir("weft-loader-");
  for (std::string backend : {"nats", "redis", "sqlite"}) {
    auto e = loadError(backend, dir.path());
    CHECK(e.kind() == PluginErrorKind::MissingFile);
    CHECK_THAT(e.what(), Catch::Contains("storage backend '" + backend + "'"));
    CHECK_THAT(e.what(), Catch::Contains(dir.path() + "/weft-kv-" + backend + ".so"));
    CHECK_THAT(e.what(), Catch::Contains("incomplete"));
  }
}

TEST_CASE("a plugin built for another ABI is WrongAbi with both versions", "[loader]") {
  auto e = loadError("wrongabi", kTestPluginDir);
  CHECK(e.kind() == PluginErrorKind::WrongAbi);
  CHECK_THAT(e.what(), Catch::Contains(kTestPluginDir + "/weft-kv-wrongabi.so"));
  CHECK_THAT(e.what(), Catch::Contains("ABI version " + std::to_string(WEFT_KV_ABI_VERSION + 41)));
  CHECK_THAT(e.what(), Catch::Contains("ABI version " + std::to_string(WEFT_KV_ABI_VERSION)));
}

TEST_CASE("a plugin built from other interface headers is WrongAbi with both fingerprints",
          "[loader]") {
  // Same ABI version, different headers: the version bump was forgotten.
  auto e = loadError("staleheaders", kTestPluginDir);
  CHECK(e.kind() == PluginErrorKind::WrongAbi);
  CHECK_THAT(e.what(), Catch::Contains("weft-kv-staleheaders.so"));
  CHECK_THAT(e.what(), Catch::Contains("fingerprint 0123456789abcdef"));
  CHECK_THAT(e.what(), Catch::Contains("this program has " WEFT_KV_ABI_FINGERPRINT));
}

TEST_CASE("a library without the entry symbol is BadPlugin", "[loader]") {
  auto e = loadError("noentry", kTestPluginDir);
  CHECK(e.kind() == PluginErrorKind::BadPlugin);
  CHECK_THAT(e.what(), Catch::Contains("weft-kv-noentry.so"));
  CHECK_THAT(e.what(), Catch::Contains(WEFT_KV_PLUGIN_ENTRY));
}

TEST_CASE("a file that is not a shared library is BadPlugin with the dlerror text", "[loader]") {
  weft::testing::TempDir dir("weft-loader-");
  std::ofstream(dir.file("weft-kv-garbage.so")) << "this is not an ELF file\n";
  auto e = loadError("garbage", dir.path());
  CHECK(e.kind() == PluginErrorKind::BadPlugin);
  CHECK_THAT(e.what(), Catch::Contains(dir.file("weft-kv-garbage.so")));
  CHECK_THAT(e.what(), Catch::Contains("cannot load plugin"));
}

TEST_CASE("a descriptor naming another backend is BadPlugin", "[loader]") {
  auto e = loadError("misnamed", kTestPluginDir);
  CHECK(e.kind() == PluginErrorKind::BadPlugin);
  CHECK_THAT(e.what(), Catch::Contains("'other'"));
}

TEST_CASE("create() refusing is CreateFailed with the plugin's reason", "[loader]") {
  auto e = loadError("refusing", kTestPluginDir);
  CHECK(e.kind() == PluginErrorKind::CreateFailed);
  CHECK_THAT(e.what(), Catch::Contains("storage backend 'refusing'"));
  CHECK_THAT(e.what(), Catch::Contains("stub.setting is required"));
}

TEST_CASE("a good plugin loads, gets the settings, and is released through destroy()", "[loader]") {
  PluginContext context;
  context.settings["stub.mustBe"] = "yes";
  auto store = loadKvStore("stub", kTestPluginDir, context);
  REQUIRE(store);
  CHECK(store->name() == "stub");
  CHECK(store->ping().code() == weft::Code::Unavailable);

  // The library stays loaded (RTLD_NODELETE, never closed), so RTLD_NOLOAD
  // finds it and its destroy counter.
  std::string path = kTestPluginDir + "/weft-kv-stub.so";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  REQUIRE(handle != nullptr);
  auto destroyCount = reinterpret_cast<int (*)()>(dlsym(handle, "weft_test_stub_destroy_count"));
  REQUIRE(destroyCount != nullptr);
  int before = destroyCount();
  store.reset();
  CHECK(destroyCount() == before + 1);

  // Settings do reach create(): without them the stub refuses.
  auto e = loadError("stub", kTestPluginDir);
  CHECK(e.kind() == PluginErrorKind::CreateFailed);
  CHECK_THAT(e.what(), Catch::Contains("stub.mustBe"));
}

TEST_CASE("the error kinds have names", "[loader]") {
  CHECK(std::string(weft::pluginErrorKindName(PluginErrorKind::WrongAbi)) == "WrongAbi");
  CHECK(std::string(weft::pluginErrorKindName(PluginErrorKind::MissingFile)) == "MissingFile");
}
