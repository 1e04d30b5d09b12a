#include "store_access.h"

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>

#include "weft/log.h"
#include "weft/plugin_loader.h"

namespace weft::bench {

Result<std::shared_ptr<KvStore>> openStore(const std::string& backend, const std::string& pluginDir,
                                           const std::map<std::string, std::string>& settings,
                                           int waitMs) {
  PluginContext context;
  context.settings = settings;
  context.log = [backend](LogLevel level, const std::string& message) {
    if (level >= LogLevel::Warn) {
      std::fprintf(stderr, "[weft-bench] plugin %s %s: %s\n", backend.c_str(), log::levelName(level),
                   message.c_str());
    }
  };
  std::shared_ptr<KvStore> store;
  try {
    store = loadKvStore(backend, pluginDir, context);
  } catch (const std::exception& e) {
    return Status::internal(e.what());
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
  Status last;
  do {
    last = store->ping();
    if (last.isOk()) return store;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return Status::unavailable("backend " + backend + " did not answer within " +
                             std::to_string(waitMs) + " ms: " + last.toString());
}

Result<std::shared_ptr<KvBucket>> openBucketWithin(KvStore& store, const std::string& bucket,
                                                   int waitMs) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
  for (;;) {
    Result<std::shared_ptr<KvBucket>> b = store.openBucket(bucket, BucketOptions{});
    if (b.isOk() || !b.status().isOutage() || std::chrono::steady_clock::now() >= deadline) {
      return b;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace weft::bench
