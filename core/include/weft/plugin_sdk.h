// What a storage plugin needs to export itself (plugin.h) without repeating
// the boundary code: one line,
//
//   WEFT_KV_PLUGIN("redis", &weft::redis_plugin::makeStore, kRedisSettings)
//
// where the factory is `Result<std::unique_ptr<KvStore>>(const PluginContext&)`
// (any unique_ptr to a KvStore subclass converts) and the last argument an
// array of WeftKvSettingSpec, the plugin's own keys. The macro defines the
// descriptor and the exported entry point; create() and destroy() go through
// one guard, so no exception ever reaches the host: a factory that throws
// fails create() with "<name> plugin: <what>", and a factory's own error
// message is passed on as it is.
#pragma once

#include <exception>
#include <memory>
#include <string>

#include "weft/plugin.h"
#include "weft/status.h"

namespace weft::plugin_sdk {

template <typename Factory>
KvStore* guardedCreate(const char* name, Factory factory, const PluginContext* context,
                       std::string* error) noexcept {
  auto fail = [&](const std::string& message) -> KvStore* {
    try {
      if (error != nullptr) *error = message;
    } catch (...) {
    }
    return nullptr;
  };
  try {
    if (context == nullptr) return fail(std::string(name) + " plugin: no plugin context");
    auto store = factory(*context);
    if (!store) return fail(store.status().message());
    return store.value().release();
  } catch (const std::exception& e) {
    return fail(std::string(name) + " plugin: " + e.what());
  } catch (...) {
    return fail(std::string(name) + " plugin: unknown exception in create()");
  }
}

inline void guardedDestroy(KvStore* store) noexcept {
  try {
    delete store;
  } catch (...) {
    // Nothing may escape into the host.
  }
}

}  // namespace weft::plugin_sdk

#define WEFT_KV_PLUGIN(NAME, FACTORY, SETTINGS)                                              \
  namespace {                                                                                \
  weft::KvStore* weftPluginCreate(const weft::PluginContext* context,                        \
                                  std::string* error) noexcept {                             \
    return ::weft::plugin_sdk::guardedCreate(NAME, FACTORY, context, error);                 \
  }                                                                                          \
  void weftPluginDestroy(weft::KvStore* store) noexcept {                                    \
    ::weft::plugin_sdk::guardedDestroy(store);                                               \
  }                                                                                          \
  const WeftKvPluginDescriptor kWeftPluginDescriptor = {                                    \
      WEFT_KV_ABI_VERSION,                                                                   \
      NAME,                                                                                  \
      &weftPluginCreate,                                                                     \
      &weftPluginDestroy,                                                                    \
      WEFT_KV_ABI_FINGERPRINT,                                                               \
      SETTINGS,                                                                              \
      static_cast<uint32_t>(sizeof(SETTINGS) / sizeof(SETTINGS[0]))};                       \
  }                                                                                          \
  extern "C" __attribute__((visibility("default"))) const WeftKvPluginDescriptor*            \
  weft_kv_plugin_entry(void) {                                                               \
    return &kWeftPluginDescriptor;                                                           \
  }
