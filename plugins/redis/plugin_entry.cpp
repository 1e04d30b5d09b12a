// The one exported symbol of weft-kv-redis.so (plugin.h). Everything else in
// the library has hidden visibility.
#include <exception>
#include <string>

#include "redis_store.h"
#include "weft/plugin.h"

namespace {

weft::KvStore* createStore(const weft::PluginContext* context, std::string* error) {
  // No exception may cross the C boundary.
  try {
    if (context == nullptr) {
      if (error != nullptr) *error = "redis plugin: no plugin context";
      return nullptr;
    }
    std::string reason;
    weft::KvStore* store = weft::redis::RedisStore::create(*context, &reason);
    if (store == nullptr && error != nullptr) *error = "redis plugin: " + reason;
    return store;
  } catch (const std::exception& e) {
    if (error != nullptr) *error = std::string("redis plugin: ") + e.what();
  } catch (...) {
    if (error != nullptr) *error = "redis plugin: unknown exception in create()";
  }
  return nullptr;
}

void destroyStore(weft::KvStore* store) {
  try {
    delete store;
  } catch (...) {
    // Destructors do not throw; this only keeps the ABI promise absolute.
  }
}

const WeftKvPluginDescriptor kDescriptor = {
    WEFT_KV_ABI_VERSION,
    "redis",
    &createStore,
    &destroyStore,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const WeftKvPluginDescriptor*
weft_kv_plugin_entry(void) {
  return &kDescriptor;
}
