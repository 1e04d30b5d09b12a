// The exported entry point of weft-kv-sqlite.so: the descriptor of plugin.h.
// No exception leaves this file: create() and destroy() catch everything.
#include <exception>
#include <string>

#include "sqlite_kv.h"
#include "weft/plugin.h"

namespace {

weft::KvStore* createStore(const weft::PluginContext* context, std::string* error) {
  try {
    if (context == nullptr) {
      if (error != nullptr) *error = "sqlite plugin: no plugin context";
      return nullptr;
    }
    auto store = weft::sqlite::createStore(*context);
    if (!store.isOk()) {
      if (error != nullptr) *error = store.status().message();
      return nullptr;
    }
    return store.value().release();
  } catch (const std::exception& e) {
    if (error != nullptr) *error = std::string("sqlite plugin: ") + e.what();
  } catch (...) {
    if (error != nullptr) *error = "sqlite plugin: unknown exception in create";
  }
  return nullptr;
}

void destroyStore(weft::KvStore* store) {
  try {
    delete store;
  } catch (...) {
    // Destructors here do not throw; this only keeps the ABI promise.
  }
}

const WeftKvPluginDescriptor kDescriptor = {WEFT_KV_ABI_VERSION, "sqlite", &createStore,
                                            &destroyStore};

}  // namespace

extern "C" __attribute__((visibility("default"))) const WeftKvPluginDescriptor*
weft_kv_plugin_entry(void) {
  return &kDescriptor;
}
