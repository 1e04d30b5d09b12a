// The Redis implementation of weft::KvStore and weft::KvBucket (kv.h), loaded
// as weft-kv-redis.so. Data layout and scripts: redis_scripts.h. Connections,
// timeouts and reconnects: redis_connection.h. Watches: redis_watch.h.
//
// Behaviour specific to this backend:
//  * Settings: redis.url, kv.timeoutMs (connect and command timeout, and the
//    bound of a whole keys()/scan()), kv.reconnectWaitMs (first backoff, up to
//    5x). create() never needs the server: the store starts disconnected and
//    connects in the background.
//  * Every write is one Lua script (EVALSHA, EVAL on NOSCRIPT): atomic, one
//    round trip, and it publishes the change for the watches.
//  * BucketOptions.maxAgeMs becomes a PEXPIRE on every write; an expired key
//    is absent from get/keys/scan at once and leaves the index lazily. TTL
//    expiry sends no watch event (kv.h). BucketOptions.history is stored with
//    the bucket but no history is kept (only the latest revision).
//  * Bucket names are limited to [A-Za-z0-9_.-] (InvalidArgument otherwise);
//    keys are any byte string, used as given.
//  * Unavailable means the call did not reach the server (not connected, or
//    the connection failed before the command was fully sent), so a write
//    that failed with it was not applied. Timeout means the outcome is
//    unknown: no reply in time, or the connection dropped after the command
//    was sent (docs/api.md §1.9).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "redis_connection.h"
#include "redis_scripts.h"
#include "weft/kv.h"
#include "weft/plugin.h"

namespace weft::redis_plugin {

class WatchWorker;

// What buckets and watches share with the store. Held by shared_ptr so that a
// bucket or watch the host keeps past destroy() fails cleanly (Unavailable)
// instead of touching freed memory.
class StoreCore {
 public:
  StoreCore(RedisConfig config, Logger log);

  ConnectionManager connections;

  // Watches register so close() can stop them; they unregister on stop.
  // False when the store is already closed (the caller stops the watch).
  bool addWatch(const std::shared_ptr<WatchWorker>& watch);
  void removeWatch(const WatchWorker* watch);
  // Stops every watch, then closes the connections. Idempotent.
  void close();

 private:
  std::mutex mu_;
  bool closed_ = false;
  std::map<const WatchWorker*, std::weak_ptr<WatchWorker>> watches_;
};

// Lists the entries (withValues) or only the keys under prefix, in batches of
// one script call each. The whole listing ends by deadline when one is given
// (Timeout otherwise); stop, when given, aborts between batches.
// *bucketRevision is the bucket's revision counter read atomically with the
// last batch: every change with a higher revision happened after the listing.
Status listEntries(ConnectionManager& connections, const BucketKeys& keys,
                   const std::string& prefix, bool withValues,
                   std::optional<Clock::time_point> deadline, bool honourBreaker,
                   const std::atomic<bool>* stop, std::vector<KvEntry>* out,
                   uint64_t* bucketRevision);
// The same, each entry handed to each(entry) batch by batch as it is read
// (the entry may be moved from): a whole bucket without holding it whole.
Status listEntries(ConnectionManager& connections, const BucketKeys& keys,
                   const std::string& prefix, bool withValues,
                   std::optional<Clock::time_point> deadline, bool honourBreaker,
                   const std::atomic<bool>* stop, const std::function<void(KvEntry&)>& each,
                   uint64_t* bucketRevision);

class RedisBucket : public KvBucket {
 public:
  RedisBucket(std::shared_ptr<StoreCore> core, std::string name, int64_t maxAgeMs);

  const std::string& name() const override { return name_; }
  Result<KvEntry> get(const std::string& key) override;
  Result<uint64_t> put(const std::string& key, const std::string& value) override;
  Result<uint64_t> create(const std::string& key, const std::string& value) override;
  Result<uint64_t> update(const std::string& key, const std::string& value,
                          uint64_t expectedRevision) override;
  Status erase(const std::string& key, uint64_t expectedRevision) override;
  Result<std::vector<std::string>> keys(const std::string& prefix) override;
  Result<std::vector<KvEntry>> scan(const std::string& prefix) override;
  Result<std::unique_ptr<KvWatch>> watch(const std::string& prefix,
                                         WatchCallback callback) override;

 private:
  Result<KvEntry> getImpl(const std::string& key);
  Result<uint64_t> putImpl(const std::string& key, const std::string& value);
  Result<uint64_t> createImpl(const std::string& key, const std::string& value);
  Result<uint64_t> updateImpl(const std::string& key, const std::string& value,
                              uint64_t expectedRevision);
  Status eraseImpl(const std::string& key, uint64_t expectedRevision);
  Result<std::vector<std::string>> keysImpl(const std::string& prefix);
  Result<std::vector<KvEntry>> scanImpl(const std::string& prefix);
  Result<std::unique_ptr<KvWatch>> watchImpl(const std::string& prefix, WatchCallback callback);
  Result<uint64_t> write(const std::string& key, const std::string& value, const char* mode,
                         uint64_t expectedRevision);

  const std::shared_ptr<StoreCore> core_;
  const std::string name_;
  const BucketKeys keys_;
  const int64_t maxAgeMs_;
};

class RedisStore : public KvStore {
 public:
  // nullptr and *error for a configuration problem; never needs the server.
  static RedisStore* create(const PluginContext& context, std::string* error);
  ~RedisStore() override;  // stops every watch and frees every context

  const std::string& name() const override { return name_; }
  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& name,
                                               const BucketOptions& options) override;
  Status ping() override;
  ConnectionState state() const override { return core_->connections.state(); }

 private:
  explicit RedisStore(std::shared_ptr<StoreCore> core);
  Result<std::shared_ptr<KvBucket>> openBucketImpl(const std::string& name,
                                                   const BucketOptions& options);
  Status pingImpl();

  const std::string name_ = "redis";
  const std::shared_ptr<StoreCore> core_;
};

}  // namespace weft::redis_plugin
