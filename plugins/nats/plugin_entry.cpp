// The one exported symbol of weft-kv-nats.so (plugin.h, plugin_sdk.h) and the
// settings the plugin reads. Everything else in the library has hidden
// visibility. The values are validated in NatsKvStore::create().
#include "nats_store.h"
#include "weft/plugin_sdk.h"

namespace {

const WeftKvSettingSpec kNatsSettings[] = {
    {"nats.url", "nats://localhost:4222", "NATS_URL",
     "NATS server URL, or a comma-separated list for a cluster (nats:// or tls://)", 0},
    {"nats.user", "", "NATS_USER", "user name when the URL carries no credentials", 0},
    {"nats.pass", "", "NATS_PASS", "password when the URL carries no credentials", 1},
    {"nats.replicas", "1", nullptr, "replicas of every bucket weftd creates: 1, 3 or 5", 0},
    {"nats.casGuard", "auto", nullptr,
     "guard of compare-and-set on replicated buckets: auto, always or off", 0},
};

}  // namespace

WEFT_KV_PLUGIN("nats", &weft::nats_plugin::NatsKvStore::create, kNatsSettings)
