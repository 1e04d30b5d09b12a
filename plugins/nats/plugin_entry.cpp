// The one exported symbol of weft-kv-nats.so (plugin.h, plugin_sdk.h).
// Everything else in the library has hidden visibility.
#include "nats_store.h"
#include "weft/plugin_sdk.h"

WEFT_KV_PLUGIN("nats", &weft::nats_plugin::NatsKvStore::create)
