// The one exported symbol of weft-kv-redis.so (plugin.h, plugin_sdk.h).
// Everything else in the library has hidden visibility.
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

}  // namespace

WEFT_KV_PLUGIN("redis", &makeRedisStore)
