// The one exported symbol of weft-kv-sqlite.so (plugin.h, plugin_sdk.h) and
// the settings the plugin reads. Everything else in the library has hidden
// visibility. The values are validated in parseSettings() (sqlite_store.cpp).
#include "sqlite_kv.h"
#include "weft/plugin_sdk.h"

namespace {

const WeftKvSettingSpec kSqliteSettings[] = {
    {"sqlite.path", "./var/weft.db", nullptr,
     "database file; its directory is created (\":memory:\" is refused)", 0},
    {"sqlite.synchronous", "FULL", nullptr, "OFF, NORMAL, FULL or EXTRA (fsync policy)", 0},
    {"sqlite.pollIntervalMs", "100", nullptr, "watch poll period, 1..1000 ms", 0},
    {"sqlite.changeLogRetentionMs", "60000", nullptr,
     "change-log rows younger than this are kept (at least 1000)", 0},
    {"sqlite.changeLogMaxRows", "10000", nullptr,
     "change-log rows kept at most, oldest trimmed first (at least 1)", 0},
    {"sqlite.maintenanceIntervalMs", "1000", nullptr,
     "period of the expiry sweep, log trim and WAL checkpoint (at least 10)", 0},
};

}  // namespace

WEFT_KV_PLUGIN("sqlite", &weft::sqlite_plugin::createStore, kSqliteSettings)
