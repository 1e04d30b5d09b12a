#include "weft/plugin_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstring>
#include <vector>

#ifndef WEFT_BUILD_PLUGIN_DIR
#error "WEFT_BUILD_PLUGIN_DIR must be defined by the build (core/CMakeLists.txt)"
#endif
#ifndef WEFT_INSTALL_PLUGIN_DIR
#error "WEFT_INSTALL_PLUGIN_DIR must be defined by the build (core/CMakeLists.txt)"
#endif

namespace weft {

const char* pluginErrorKindName(PluginErrorKind kind) {
  switch (kind) {
    case PluginErrorKind::UnknownBackend:
      return "UnknownBackend";
    case PluginErrorKind::MissingFile:
      return "MissingFile";
    case PluginErrorKind::WrongAbi:
      return "WrongAbi";
    case PluginErrorKind::BadPlugin:
      return "BadPlugin";
    case PluginErrorKind::CreateFailed:
      return "CreateFailed";
  }
  return "Unknown";
}

PluginLoadError::PluginLoadError(PluginErrorKind kind, std::string message)
    : std::runtime_error(std::move(message)), kind_(kind) {}

namespace {

// The backends Weft ships. A missing file for one of these means a broken
// build or install, which deserves a different message than a typo.
bool isShippedBackend(const std::string& name) {
  return name == "nats" || name == "redis" || name == "sqlite";
}

// The name becomes part of a file path, so only a plain word is accepted.
bool isValidBackendName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool isRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string joinList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string lastDlError() {
  const char* err = ::dlerror();
  return err ? err : "unknown dynamic loader error";
}

}  // namespace

const WeftKvPluginDescriptor* openKvPlugin(const std::string& backend,
                                           const std::string& pluginDir) {
  const std::string quoted = "'" + backend + "'";
  if (!isValidBackendName(backend)) {
    throw PluginLoadError(PluginErrorKind::UnknownBackend,
                          "invalid storage backend name " + quoted +
                              " (kv.backend): use nats, redis, sqlite or a plugin name made of "
                              "lower-case letters, digits, '_' and '-'");
  }
  if (backend == "memory") {
    throw PluginLoadError(PluginErrorKind::UnknownBackend,
                          "storage backend 'memory' (kv.backend) is the in-memory test backend; "
                          "it is not a plugin and cannot be selected: use nats, redis or sqlite");
  }

  const std::string fileName = "weft-kv-" + backend + ".so";
  std::vector<std::string> dirs;
  if (!pluginDir.empty()) {
    dirs.push_back(pluginDir);
  } else {
    dirs.push_back(WEFT_BUILD_PLUGIN_DIR);
    dirs.push_back(WEFT_INSTALL_PLUGIN_DIR);
  }
  std::vector<std::string> candidates;
  std::string path;
  for (const auto& dir : dirs) {
    std::string candidate = dir + (dir.back() == '/' ? "" : "/") + fileName;
    candidates.push_back(candidate);
    if (path.empty() && isRegularFile(candidate)) path = candidate;
  }
  if (path.empty()) {
    if (isShippedBackend(backend)) {
      throw PluginLoadError(PluginErrorKind::MissingFile,
                            "storage backend " + quoted + ": plugin file " + fileName +
                                " not found (searched " + joinList(candidates) +
                                "); the build or install may be incomplete (build target weft-kv-" +
                                backend + "), or kv.plugin.dir points to the wrong folder");
    }
    throw PluginLoadError(PluginErrorKind::UnknownBackend,
                          "unknown storage backend " + quoted + " (kv.backend): no plugin " +
                              fileName + " in " + joinList(dirs) +
                              "; use nats, redis or sqlite, or set kv.plugin.dir to the folder "
                              "holding the plugin");
  }

  // RTLD_NOW: an unresolved symbol fails here, not at the first call.
  // RTLD_NODELETE and no dlclose: plugin-owned threads (libnats) may run code
  // from the library until the process exits.
  ::dlerror();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!handle) {
    throw PluginLoadError(
        PluginErrorKind::BadPlugin,
        "storage backend " + quoted + ": cannot load plugin " + path + ": " + lastDlError());
  }
  ::dlerror();
  void* symbol = ::dlsym(handle, WEFT_KV_PLUGIN_ENTRY);
  if (!symbol) {
    throw PluginLoadError(PluginErrorKind::BadPlugin,
                          "storage backend " + quoted + ": plugin " + path +
                              " does not export " WEFT_KV_PLUGIN_ENTRY ": " + lastDlError());
  }
  auto entry = reinterpret_cast<WeftKvPluginEntryFn>(symbol);
  const WeftKvPluginDescriptor* descriptor = entry();
  if (!descriptor) {
    throw PluginLoadError(PluginErrorKind::BadPlugin, "storage backend " + quoted + ": plugin " +
                                                          path + " returned no descriptor");
  }
  // Nothing else in the descriptor may be read before this check: its layout
  // is only known for our own ABI version.
  if (descriptor->abiVersion != WEFT_KV_ABI_VERSION) {
    throw PluginLoadError(
        PluginErrorKind::WrongAbi,
        "storage backend " + quoted + ": plugin " + path + " was built for plugin ABI version " +
            std::to_string(descriptor->abiVersion) + ", but this program expects ABI version " +
            std::to_string(WEFT_KV_ABI_VERSION) +
            "; rebuild the plugin together with this program");
  }
  if (!descriptor->abiFingerprint ||
      std::string(descriptor->abiFingerprint) != WEFT_KV_ABI_FINGERPRINT) {
    throw PluginLoadError(
        PluginErrorKind::WrongAbi,
        "storage backend " + quoted + ": plugin " + path +
            " was built from other interface headers (ABI fingerprint " +
            (descriptor->abiFingerprint ? descriptor->abiFingerprint : "none") +
            ", this program has " WEFT_KV_ABI_FINGERPRINT
            "); rebuild the plugin together with this program");
  }
  if (!descriptor->create || !descriptor->destroy || !descriptor->name) {
    throw PluginLoadError(PluginErrorKind::BadPlugin,
                          "storage backend " + quoted + ": plugin " + path +
                              " has an incomplete descriptor (name, create or destroy is null)");
  }
  // A renamed file would otherwise run a different backend than configured.
  if (backend != descriptor->name) {
    throw PluginLoadError(PluginErrorKind::BadPlugin, "storage backend " + quoted + ": plugin " +
                                                          path + " implements backend '" +
                                                          descriptor->name + "', not " + quoted);
  }
  if (descriptor->settingCount > 0 && !descriptor->settings) {
    throw PluginLoadError(PluginErrorKind::BadPlugin,
                          "storage backend " + quoted + ": plugin " + path +
                              " declares settings but gives no table");
  }
  const std::string prefix = backend + ".";
  for (uint32_t i = 0; i < descriptor->settingCount; ++i) {
    const WeftKvSettingSpec& spec = descriptor->settings[i];
    if (!spec.key || !spec.defaultValue || std::string(spec.key).rfind(prefix, 0) != 0) {
      throw PluginLoadError(PluginErrorKind::BadPlugin,
                            "storage backend " + quoted + ": plugin " + path +
                                " declares a setting outside its own keys (" + prefix +
                                "*) or without a default");
    }
  }
  return descriptor;
}

std::vector<PluginSetting> pluginSettings(const WeftKvPluginDescriptor* descriptor) {
  std::vector<PluginSetting> out;
  for (uint32_t i = 0; i < descriptor->settingCount; ++i) {
    const WeftKvSettingSpec& spec = descriptor->settings[i];
    out.push_back(PluginSetting{spec.key, spec.defaultValue, spec.envAlias ? spec.envAlias : "",
                                spec.help ? spec.help : "", spec.secret != 0});
  }
  return out;
}

std::shared_ptr<KvStore> createKvStore(const WeftKvPluginDescriptor* descriptor,
                                       const PluginContext& context) {
  const std::string quoted = std::string("'") + descriptor->name + "'";
  std::string error;
  KvStore* store = nullptr;
  try {
    store = descriptor->create(&context, &error);
  } catch (...) {
    // A plugin must not throw across the boundary; treat it as a refusal.
    error = "create() threw an exception (plugin bug)";
    store = nullptr;
  }
  if (!store) {
    throw PluginLoadError(PluginErrorKind::CreateFailed,
                          "storage backend " + quoted + " could not create a store: " +
                              (error.empty() ? std::string("no reason given") : error));
  }
  auto destroy = descriptor->destroy;
  return std::shared_ptr<KvStore>(store, [destroy](KvStore* s) {
    try {
      destroy(s);
    } catch (...) {
      // Plugin bug; nothing sensible is left to do in a deleter.
    }
  });
}

std::shared_ptr<KvStore> loadKvStore(const std::string& backend, const std::string& pluginDir,
                                     const PluginContext& context) {
  return createKvStore(openKvPlugin(backend, pluginDir), context);
}

}  // namespace weft
