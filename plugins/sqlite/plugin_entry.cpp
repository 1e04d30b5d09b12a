// The one exported symbol of weft-kv-sqlite.so (plugin.h, plugin_sdk.h).
// Everything else in the library has hidden visibility.
#include "sqlite_kv.h"
#include "weft/plugin_sdk.h"

WEFT_KV_PLUGIN("sqlite", &weft::sqlite_plugin::createStore)
