// The plugin's only exported symbol: the descriptor of weft-kv-nats.so.
#include <exception>
#include <string>

#include "nats_store.h"
#include "weft/plugin.h"

namespace {

weft::KvStore* createStore(const weft::PluginContext* context, std::string* error) noexcept {
  auto fail = [&](const std::string& message) -> weft::KvStore* {
    try {
      if (error != nullptr) *error = message;
    } catch (...) {
    }
    return nullptr;
  };
  try {
    if (context == nullptr) return fail("nats plugin: no plugin context");
    auto store = weft::nats_plugin::NatsKvStore::create(*context);
    if (!store) return fail(store.status().message());
    return store.value().release();
  } catch (const std::exception& ex) {
    return fail(std::string("nats plugin: ") + ex.what());
  } catch (...) {
    return fail("nats plugin: unknown error");
  }
}

void destroyStore(weft::KvStore* store) noexcept {
  try {
    delete store;
  } catch (...) {
    // Nothing may escape into the host.
  }
}

const WeftKvPluginDescriptor kDescriptor = {WEFT_KV_ABI_VERSION, "nats", &createStore,
                                            &destroyStore};

}  // namespace

extern "C" __attribute__((visibility("default"))) const WeftKvPluginDescriptor*
weft_kv_plugin_entry(void) {
  return &kDescriptor;
}
