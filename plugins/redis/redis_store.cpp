#include "redis_store.h"

#include <cstdlib>

#include "redis_watch.h"

namespace weft::redis_plugin {
namespace {

// Members per list batch, and the value bytes after which a batch stops early
// so one script call never builds a huge reply (values may be up to 1 MiB).
constexpr int kListBatch = 1000;
constexpr int kListByteBudget = 4 << 20;

std::string replyString(const redisReply* r) {
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
    return std::string(r->str, r->len);
  }
  return {};
}

// A revision as stored (decimal string) or returned (integer reply); 0 when
// malformed, which never names a stored value.
uint64_t replyRevision(const redisReply* r) {
  if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? static_cast<uint64_t>(r->integer) : 0;
  if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 19) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < r->len; ++i) {
    if (r->str[i] < '0' || r->str[i] > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(r->str[i] - '0');
  }
  return v;
}

template <typename R, typename F>
R guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::internal(std::string("redis ") + what + ": " + e.what());
  } catch (...) {
    return Status::internal(std::string("redis ") + what + ": unknown exception");
  }
}

Status unexpectedReply(const std::string& what) {
  return Status::internal("redis: unexpected reply to " + what);
}

}  // namespace

// --- StoreCore ----------------------------------------------------------------

StoreCore::StoreCore(RedisConfig config, Logger log)
    : connections(std::move(config), std::move(log)) {}

bool StoreCore::addWatch(const std::shared_ptr<WatchWorker>& watch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return false;
  watches_[watch.get()] = watch;
  return true;
}

void StoreCore::removeWatch(const WatchWorker* watch) {
  std::lock_guard<std::mutex> lock(mu_);
  watches_.erase(watch);
}

void StoreCore::close() {
  std::vector<std::shared_ptr<WatchWorker>> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (auto& [ptr, weak] : watches_) {
      if (auto w = weak.lock()) running.push_back(std::move(w));
    }
  }
  // Outside the lock: stop() unregisters the watch.
  for (auto& w : running) w->stop();
  connections.close();
}

// --- listing ------------------------------------------------------------------

Status listEntries(ConnectionManager& connections, const BucketKeys& keys,
                   const std::string& prefix, bool withValues,
                   std::optional<Clock::time_point> deadline, bool honourBreaker,
                   const std::atomic<bool>* stop, std::vector<KvEntry>* out,
                   uint64_t* bucketRevision) {
  out->clear();
  return listEntries(connections, keys, prefix, withValues, deadline, honourBreaker, stop,
                     [out](KvEntry& e) { out->push_back(std::move(e)); }, bucketRevision);
}

Status listEntries(ConnectionManager& connections, const BucketKeys& keys,
                   const std::string& prefix, bool withValues,
                   std::optional<Clock::time_point> deadline, bool honourBreaker,
                   const std::atomic<bool>* stop, const std::function<void(KvEntry&)>& each,
                   uint64_t* bucketRevision) {
  auto conn = connections.acquire(honourBreaker);
  if (!conn) return conn.status();
  std::string min;
  std::string max;
  prefixRange(prefix, &min, &max);
  const std::string limit = std::to_string(kListBatch);
  const std::string budget = std::to_string(kListByteBudget);
  const size_t stride = withValues ? 3 : 1;
  while (true) {
    if (stop != nullptr && stop->load()) return Status::unavailable("redis: listing cancelled");
    if (deadline) {
      Status st = conn->limitTo(*deadline);
      if (!st) return st;
    }
    auto r = conn->script(listScript(), {keys.index, keys.revision},
                          {min, max, limit, keys.entryPrefix, withValues ? "1" : "0", budget});
    if (!r) return r.status();
    const redisReply* reply = r->get();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[3]->type != REDIS_REPLY_ARRAY || reply->element[3]->elements % stride != 0) {
      return unexpectedReply("the list script");
    }
    const redisReply* items = reply->element[3];
    for (size_t i = 0; i < items->elements; i += stride) {
      KvEntry e;
      e.key = replyString(items->element[i]);
      if (withValues) {
        e.value = replyString(items->element[i + 1]);
        e.revision = replyRevision(items->element[i + 2]);
      }
      each(e);
    }
    if (bucketRevision != nullptr) *bucketRevision = replyRevision(reply->element[2]);
    if (reply->element[0]->integer == 1) break;
    // Continue after the last member examined (exclusive bound).
    min = "(" + replyString(reply->element[1]);
  }
  return Status::ok();
}

// --- RedisBucket ----------------------------------------------------------------

RedisBucket::RedisBucket(std::shared_ptr<StoreCore> core, std::string name, int64_t maxAgeMs)
    : core_(std::move(core)),
      name_(std::move(name)),
      keys_(name_, core_->connections.config().url.db),
      maxAgeMs_(maxAgeMs) {}

Result<KvEntry> RedisBucket::getImpl(const std::string& key) {
  auto conn = core_->connections.acquire();
  if (!conn) return conn.status();
  auto r = conn->command({"HMGET", keys_.entry(key), "v", "r"});
  if (!r) return r.status();
  const redisReply* reply = r->get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return unexpectedReply("HMGET");
  if (reply->element[0]->type == REDIS_REPLY_NIL || reply->element[1]->type == REDIS_REPLY_NIL) {
    return Status::notFound("key '" + key + "' not found in bucket " + name_);
  }
  KvEntry e;
  e.key = key;
  e.value = replyString(reply->element[0]);
  e.revision = replyRevision(reply->element[1]);
  if (e.revision == 0) return unexpectedReply("HMGET (bad revision)");
  return e;
}

Result<uint64_t> RedisBucket::write(const std::string& key, const std::string& value,
                                    const char* mode, uint64_t expectedRevision) {
  auto conn = core_->connections.acquire();
  if (!conn) return conn.status();
  auto r = conn->script(writeScript(), {keys_.entry(key), keys_.revision, keys_.index},
                        {key, value, mode, std::to_string(expectedRevision),
                         std::to_string(maxAgeMs_), keys_.channel});
  if (!r) return r.status();
  const redisReply* reply = r->get();
  if (reply->type != REDIS_REPLY_INTEGER) return unexpectedReply("the write script");
  if (reply->integer == kScriptExists) {
    return Status::alreadyExists("key '" + key + "' already exists in bucket " + name_);
  }
  if (reply->integer == kScriptConflict) {
    return Status::conflict("key '" + key + "' in bucket " + name_ + " is not at revision " +
                            std::to_string(expectedRevision));
  }
  if (reply->integer <= 0) return unexpectedReply("the write script");
  return static_cast<uint64_t>(reply->integer);
}

Result<uint64_t> RedisBucket::putImpl(const std::string& key, const std::string& value) {
  return write(key, value, "put", 0);
}

Result<uint64_t> RedisBucket::createImpl(const std::string& key, const std::string& value) {
  return write(key, value, "create", 0);
}

Result<uint64_t> RedisBucket::updateImpl(const std::string& key, const std::string& value,
                                         uint64_t expectedRevision) {
  return write(key, value, "update", expectedRevision);
}

Status RedisBucket::eraseImpl(const std::string& key, uint64_t expectedRevision) {
  auto conn = core_->connections.acquire();
  if (!conn) return conn.status();
  auto r = conn->script(eraseScript(), {keys_.entry(key), keys_.revision, keys_.index},
                        {key, std::to_string(expectedRevision), keys_.channel});
  if (!r) return r.status();
  const redisReply* reply = r->get();
  if (reply->type != REDIS_REPLY_INTEGER) return unexpectedReply("the erase script");
  if (reply->integer == kScriptConflict) {
    return Status::conflict("key '" + key + "' in bucket " + name_ + " is not at revision " +
                            std::to_string(expectedRevision));
  }
  if (reply->integer < 0) return unexpectedReply("the erase script");
  return Status::ok();
}

Result<std::vector<std::string>> RedisBucket::keysImpl(const std::string& prefix) {
  std::vector<KvEntry> entries;
  auto deadline = Clock::now() + std::chrono::milliseconds(core_->connections.config().timeoutMs);
  Status st = listEntries(core_->connections, keys_, prefix, /*withValues=*/false, deadline,
                          /*honourBreaker=*/true, nullptr, &entries, nullptr);
  if (!st) return st;
  std::vector<std::string> out;
  out.reserve(entries.size());
  for (auto& e : entries) out.push_back(std::move(e.key));
  return out;
}

Result<std::vector<KvEntry>> RedisBucket::scanImpl(const std::string& prefix) {
  std::vector<KvEntry> entries;
  auto deadline = Clock::now() + std::chrono::milliseconds(core_->connections.config().timeoutMs);
  Status st = listEntries(core_->connections, keys_, prefix, /*withValues=*/true, deadline,
                          /*honourBreaker=*/true, nullptr, &entries, nullptr);
  if (!st) return st;
  return entries;
}

Result<std::unique_ptr<KvWatch>> RedisBucket::watchImpl(const std::string& prefix,
                                                        WatchCallback callback) {
  if (!callback) return Status::invalidArgument("watch needs a callback");
  return startWatch(core_, name_, keys_, prefix, std::move(callback));
}

// --- RedisStore ---------------------------------------------------------------------

RedisStore* RedisStore::create(const PluginContext& context, std::string* error) {
  RedisConfig config;
  if (!parseConfig(context.settings, &config, error)) return nullptr;
  auto core = std::make_shared<StoreCore>(config, context.log);
  auto* store = new RedisStore(core);
  core->connections.start();
  return store;
}

RedisStore::RedisStore(std::shared_ptr<StoreCore> core) : core_(std::move(core)) {}

RedisStore::~RedisStore() {
  core_->close();
}

Result<std::shared_ptr<KvBucket>> RedisStore::openBucketImpl(const std::string& name,
                                                             const BucketOptions& options) {
  if (!validBucketName(name)) {
    return Status::invalidArgument("invalid bucket name '" + name +
                                   "': use 1-200 characters of [A-Za-z0-9_.-]");
  }
  if (options.maxAgeMs < 0 || options.history < 0) {
    return Status::invalidArgument("bucket " + name + ": maxAgeMs and history must be >= 0");
  }
  auto conn = core_->connections.acquire();
  if (!conn) return conn.status();
  BucketKeys keys(name, core_->connections.config().url.db);
  auto r = conn->script(openScript(), {keys.meta},
                        {std::to_string(options.maxAgeMs), std::to_string(options.history)});
  if (!r) return r.status();
  const redisReply* reply = r->get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
      reply->element[0]->type != REDIS_REPLY_STRING) {
    return unexpectedReply("the open script");
  }
  // The stored settings win: an existing bucket keeps what it was created with.
  std::string stored = replyString(reply->element[0]);
  char* end = nullptr;
  long long maxAgeMs = std::strtoll(stored.c_str(), &end, 10);
  if (end == stored.c_str() || *end != '\0' || maxAgeMs < 0) {
    return Status::internal("redis: bucket " + name + " has a corrupt maxAgeMs '" + stored + "'");
  }
  std::shared_ptr<KvBucket> bucket = std::make_shared<RedisBucket>(core_, name, maxAgeMs);
  return bucket;
}

Status RedisStore::pingImpl() {
  auto conn = core_->connections.acquire();
  if (!conn) return conn.status();
  auto r = conn->command({"PING"});
  if (!r) return r.status();
  return Status::ok();
}

// The public methods only catch what must not cross the plugin boundary
// (std::bad_alloc, std::system_error from thread creation).
Result<KvEntry> RedisBucket::get(const std::string& key) {
  return guarded<Result<KvEntry>>("get", [&] { return getImpl(key); });
}

Result<uint64_t> RedisBucket::put(const std::string& key, const std::string& value) {
  return guarded<Result<uint64_t>>("put", [&] { return putImpl(key, value); });
}

Result<uint64_t> RedisBucket::create(const std::string& key, const std::string& value) {
  return guarded<Result<uint64_t>>("create", [&] { return createImpl(key, value); });
}

Result<uint64_t> RedisBucket::update(const std::string& key, const std::string& value,
                                     uint64_t expectedRevision) {
  return guarded<Result<uint64_t>>("update",
                                   [&] { return updateImpl(key, value, expectedRevision); });
}

Status RedisBucket::erase(const std::string& key, uint64_t expectedRevision) {
  return guarded<Status>("erase", [&] { return eraseImpl(key, expectedRevision); });
}

Result<std::vector<std::string>> RedisBucket::keys(const std::string& prefix) {
  return guarded<Result<std::vector<std::string>>>("keys", [&] { return keysImpl(prefix); });
}

Result<std::vector<KvEntry>> RedisBucket::scan(const std::string& prefix) {
  return guarded<Result<std::vector<KvEntry>>>("scan", [&] { return scanImpl(prefix); });
}

Result<std::unique_ptr<KvWatch>> RedisBucket::watch(const std::string& prefix,
                                                    WatchCallback callback) {
  return guarded<Result<std::unique_ptr<KvWatch>>>(
      "watch", [&] { return watchImpl(prefix, std::move(callback)); });
}

Result<std::shared_ptr<KvBucket>> RedisStore::openBucket(const std::string& name,
                                                         const BucketOptions& options) {
  return guarded<Result<std::shared_ptr<KvBucket>>>("openBucket",
                                                    [&] { return openBucketImpl(name, options); });
}

Status RedisStore::ping() {
  return guarded<Status>("ping", [&] { return pingImpl(); });
}

}  // namespace weft::redis_plugin
