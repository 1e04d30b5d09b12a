// The Redis data layout of the weft-kv-redis plugin and the Lua scripts that
// maintain it.
//
// Layout, for a bucket B (bucket names are restricted to [A-Za-z0-9_.-] so
// the namespace below cannot collide across buckets; the braces are a Redis
// Cluster hash tag, which keeps every key of a bucket in one slot):
//
//   weft:{B}:meta      HASH   maxAgeMs, history, layout: written once by
//                             openBucket (HSETNX), so an existing bucket keeps
//                             its settings.
//   weft:{B}:rev       STRING the bucket's revision counter (INCR). Every write
//                             and every delete takes the next value, so
//                             revisions are positive and strictly increasing
//                             per bucket. It never expires.
//   weft:{B}:idx       ZSET   every live key, score 0, so ZRANGEBYLEX lists a
//                             prefix in key order without KEYS/SCAN. Entries of
//                             keys that expired are removed lazily by the list
//                             script.
//   weft:{B}:k:<key>   HASH   v = the value (opaque bytes), r = its revision
//                             (decimal). With maxAgeMs > 0 every write sets
//                             PEXPIRE, so the entry vanishes by itself.
//   weft:{B}:db<N>:changes    the pub/sub channel of the bucket's changes.
//                             Redis channels are global across databases, so
//                             the channel carries the database number N of
//                             redis.url: two deployments on db 0 and db 1 never
//                             see each other's events.
//
// Keys are used exactly as given (Redis keys and ZSET members are binary safe).
//
// Every write is ONE script (atomic, one round trip): check, INCR the counter,
// write the hash, set the TTL, maintain the index and PUBLISH the change. So
// the publication order on the channel is the revision order of the bucket.
// Change message format (binary safe, parsed by parseChange()):
//   P<rev> <keylen> <key><value>     a put
//   D<rev> <keylen> <key>            a delete
//
// Durability is the server's: a reply means Redis applied the write; whether
// it survives a crash of redis-server depends on its settings. Only
// appendonly yes + appendfsync always makes every acknowledged write survive:
// with everysec, Redis 7.0 may postpone its AOF write by up to 2 s while a
// background fsync is slow and still reply (observed: acked writes lost to a
// kill -9). The store logs a warning for such a server (redis_connection.h).
#pragma once

#include <cstdint>
#include <string>

namespace weft::redis_plugin {

struct Script {
  const char* name;
  std::string text;
  std::string sha;  // SHA-1 of text, for EVALSHA
};

// put / create / update.
//   KEYS: entry hash, revision counter, index
//   ARGV: key, value, mode ("put" | "create" | "update"), expected revision
//         (decimal), maxAgeMs (0 = no TTL), channel
//   Returns the new revision (> 0), kScriptExists or kScriptConflict.
const Script& writeScript();

// erase.
//   KEYS: entry hash, revision counter, index
//   ARGV: key, expected revision ("0" = unconditional), channel
//   Returns the revision of the delete, 0 when there was nothing to delete,
//   or kScriptConflict.
const Script& eraseScript();

// One batch of a prefix listing, removing index entries whose hash expired.
//   KEYS: index, revision counter
//   ARGV: ZRANGEBYLEX min, max, batch limit, entry key prefix ("weft:{B}:k:"),
//         with values ("1" | "0"), byte budget
//   Returns {done (0|1), last member examined, current bucket revision,
//            {key, [value, revision,] ...}}.
const Script& listScript();

// openBucket.
//   KEYS: meta hash
//   ARGV: maxAgeMs, history
//   Returns the stored {maxAgeMs, history, layout}.
const Script& openScript();

constexpr long long kScriptExists = -1;
constexpr long long kScriptConflict = -2;

// The key names of one bucket; see the layout above.
struct BucketKeys {
  BucketKeys(const std::string& bucket, int db);
  std::string entry(const std::string& key) const { return entryPrefix + key; }
  std::string entryPrefix;  // weft:{B}:k:
  std::string meta;
  std::string revision;
  std::string index;
  std::string channel;
};

// True when name is a valid bucket name: non-empty, at most 200 bytes of
// [A-Za-z0-9_.-].
bool validBucketName(const std::string& name);

// A decoded change message.
struct Change {
  bool isDelete = false;
  uint64_t revision = 0;
  std::string key;
  std::string value;
};

// Decodes a channel message; false when it is malformed (logged and skipped by
// the watch; it can only come from a foreign publisher).
bool parseChange(const std::string& message, Change* out);

// The ZRANGEBYLEX bounds that select exactly the members starting with prefix.
void prefixRange(const std::string& prefix, std::string* min, std::string* max);

}  // namespace weft::redis_plugin
