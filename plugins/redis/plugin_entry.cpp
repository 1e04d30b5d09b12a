// The one exported symbol of weft-kv-redis.so (plugin.h, plugin_sdk.h) and
// the settings the plugin reads. Everything else in the library has hidden
// visibility. The values are validated in RedisStore::create().
#include <memory>
#include <string>

#include "redis_store.h"
#include "weft/plugin_sdk.h"

namespace {

weft::Result<std::unique_ptr<weft::KvStore>> makeRedisStore(const weft::PluginContext& context) {
  std::string reason;
  weft::KvStore* store = weft::redis_plugin::RedisStore::create(context, &reason);
  if (store == nullptr) return weft::Status::invalidArgument("redis plugin: " + reason);
  return std::unique_ptr<weft::KvStore>(store);
}

const WeftKvSettingSpec kRedisSettings[] = {
    {"redis.url", "redis://localhost:6379/0", "REDIS_URL",
     "redis://[[user]:pass@]host[:port][/db] (a password in the URL is redacted in logs)", 0},
};

}  // namespace

WEFT_KV_PLUGIN("redis", &makeRedisStore, kRedisSettings)
