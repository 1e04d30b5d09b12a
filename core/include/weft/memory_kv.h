// The in-memory storage backend: a complete KvStore (kv.h) in process memory,
// for unit tests of the core services and as the model the backend contract
// suite compares the real plugins against. It is not a plugin, cannot be
// selected in the configuration and is never a fallback.
//
// Behaviour, where kv.h leaves room:
//  * Revisions count every write of a bucket (put, create, update, erase of an
//    existing key) from 1, like a NATS stream sequence. An erase of an absent
//    key changes nothing: no revision, no watch event.
//  * Expiry (BucketOptions::maxAgeMs) is lazy: an entry older than maxAgeMs is
//    dropped when an operation looks at it, using MemoryStoreOptions::nowMs.
//    Like NATS max age, expiry produces no watch event.
//  * BucketOptions::history is ignored (only the latest value is kept).
//  * Any key and value are accepted.
//  * Each watch owns one thread that drains an unbounded queue of events;
//    the callback never runs with a store lock held, so it may call the
//    bucket (but must not stop its own watch).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "weft/kv.h"

namespace weft {

struct MemoryStoreOptions {
  // Milliseconds on any monotonic scale, used only for maxAgeMs expiry. Empty
  // means std::chrono::steady_clock. Tests inject a fake clock to expire
  // entries without sleeping. Called with a store lock held: it must not
  // call back into the store.
  std::function<int64_t()> nowMs;
};

// A KvStore with switches for tests. All methods are thread-safe.
class MemoryStore : public KvStore {
 public:
  // Simulates a backend outage. While unavailable, every bucket and store
  // operation (including openBucket, watch and ping) returns Unavailable at
  // once and state() is Disconnected; data and running watches are kept, and
  // nothing is lost or replayed when it becomes available again (nothing can
  // change meanwhile).
  virtual void setAvailable(bool available) = 0;

  // Makes every running watch of every bucket deliver Reset, then a replay of
  // the current values, then CaughtUp, as a real backend may after a
  // reconnect. For testing consumers' Reset handling.
  virtual void resetWatches() = 0;
};

// A new, empty store. name() is "memory"; state() is Connected until
// setAvailable(false). Never fails. The returned pointer converts to
// std::shared_ptr<KvStore>.
std::shared_ptr<MemoryStore> createMemoryStore(MemoryStoreOptions options = {});

}  // namespace weft
