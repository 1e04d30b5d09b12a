// Loads a storage backend plugin (plugin.h) by name and turns it into a
// KvStore. This is the only place the host touches dlopen.
//
// Loading is a start-up step: every failure is a configuration error that
// aborts start-up (exit 2, docs/api.md §7.3), so it is reported by exception, with
// a message meant for the operator (backend name, files searched, versions).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "weft/kv.h"
#include "weft/plugin.h"

namespace weft {

enum class PluginErrorKind {
  UnknownBackend,  // no plugin file for a name that is not a built-in backend, or a bad name
  MissingFile,     // nats, redis or sqlite, but its .so is not where it should be
  WrongAbi,        // the plugin was built for another WEFT_KV_ABI_VERSION
  BadPlugin,       // dlopen failed, the entry symbol or descriptor is missing or malformed
  CreateFailed,    // the descriptor's create() refused the configuration
};

const char* pluginErrorKindName(PluginErrorKind kind);

class PluginLoadError : public std::runtime_error {
 public:
  PluginLoadError(PluginErrorKind kind, std::string message);
  PluginErrorKind kind() const { return kind_; }

 private:
  PluginErrorKind kind_;
};

// A setting a plugin declares (WeftKvSettingSpec), as the host uses it.
struct PluginSetting {
  std::string key;
  std::string defaultValue;
  std::string envAlias;  // "" when none
  std::string help;
  bool secret = false;
};

// Finds and opens weft-kv-<backend>.so and checks its descriptor (ABI
// version and fingerprint, name, settings table), without creating a store.
// Search and errors as for loadKvStore below. The descriptor is static data
// of a library that is never unloaded. Thread-safe.
const WeftKvPluginDescriptor* openKvPlugin(const std::string& backend,
                                           const std::string& pluginDir);

// The settings a plugin declares, in its order.
std::vector<PluginSetting> pluginSettings(const WeftKvPluginDescriptor* descriptor);

// Calls the descriptor's create() (PluginErrorKind::CreateFailed with the
// plugin's reason when it refuses) and wraps the store so that its deleter
// calls destroy(): the host never deletes plugin objects.
std::shared_ptr<KvStore> createKvStore(const WeftKvPluginDescriptor* descriptor,
                                       const PluginContext& context);

// openKvPlugin, then createKvStore: finds weft-kv-<backend>.so and creates a
// store from it.
//
// Search: pluginDir when it is not empty (only there); otherwise the build's
// plugin folder, then the install folder. backend must match [a-z0-9_-]+ (no
// path tricks). "memory" is always refused: the in-memory backend
// (memory_kv.h) is for unit tests and is never a fallback.
//
// The library is opened with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never
// closed (plugin threads may outlive the store, see docs/pitfalls.md). The
// descriptor's abiVersion is checked before anything else in it is used, then
// create() is called with context (the plugin copies what it keeps).
//
// Returns a non-null store whose deleter calls the descriptor's destroy(): the
// host never deletes plugin objects. Throws PluginLoadError, nothing else.
// Thread-safe.
std::shared_ptr<KvStore> loadKvStore(const std::string& backend, const std::string& pluginDir,
                                     const PluginContext& context);

}  // namespace weft
