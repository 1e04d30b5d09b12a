// KvBucket::watch for Redis: a change feed built on the bucket's pub/sub
// channel (redis_scripts.h), which every write script publishes to.
//
// Each watch owns one subscriber connection and one thread:
//  1. SUBSCRIBE (confirmed) before anything else, so no change published
//     after this point is missed;
//  2. list the current values under the prefix (a pool connection) and emit
//     them as Put, then CaughtUp. Live messages queued meanwhile that are not
//     newer than what the listing returned for their key are dropped, until
//     the answer to a PING sent after the listing (which orders after every
//     such message) or a message newer than the whole listing;
//  3. deliver live Put/Delete in publication order, which is revision order.
// Pub/sub drops messages while disconnected, so after any loss of the
// subscription the thread reconnects with backoff, and once the new listing
// succeeded it emits Reset, the full replay and CaughtUp, then resumes live.
// An idle subscription is checked with PING every second; no answer within
// kv.timeoutMs counts as a lost connection (a stalled server is noticed).
//
// stop() is prompt: the thread never blocks in a socket read or connect. It
// polls the socket together with an eventfd that stop() signals, which also
// interrupts the backoff sleep. (This replaces the shutdown()-the-socket
// trick of docs/pitfalls.md, which races with the thread replacing its socket.)
#pragma once

#include <memory>
#include <string>

#include "redis_scripts.h"
#include "weft/kv.h"

namespace weft::redis_plugin {

class StoreCore;

// Connects and subscribes synchronously (Unavailable or Timeout when the
// server cannot be reached now, at once when it is known down), then starts
// the watch thread.
Result<std::unique_ptr<KvWatch>> startWatch(const std::shared_ptr<StoreCore>& core,
                                            const std::string& bucket, const BucketKeys& keys,
                                            const std::string& prefix, WatchCallback callback);

// Internal; declared for StoreCore's registry.
class WatchWorker {
 public:
  virtual ~WatchWorker() = default;
  // See KvWatch::stop().
  virtual void stop() = 0;
};

}  // namespace weft::redis_plugin
