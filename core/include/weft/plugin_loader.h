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

// Finds weft-kv-<backend>.so and creates a store from it.
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
