// A plugin built for another ABI version: the loader must refuse it by its
// abiVersion alone, before it reads or calls anything else in the descriptor.
#include "weft/plugin.h"

namespace {

weft::KvStore* createNever(const weft::PluginContext*, std::string* error) {
  *error = "wrong-ABI test plugin: create() must never be called";
  return nullptr;
}

void destroyNever(weft::KvStore*) {}

const WeftKvPluginDescriptor kDescriptor = {WEFT_KV_ABI_VERSION + 41u, "wrongabi", &createNever,
                                            &destroyNever, WEFT_KV_ABI_FINGERPRINT};

}  // namespace

extern "C" __attribute__((visibility("default"))) const WeftKvPluginDescriptor*
weft_kv_plugin_entry(void) {
  return &kDescriptor;
}
