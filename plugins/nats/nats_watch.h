// Change feeds on NATS KV: one background thread per watch, pulling from a
// KeyFeed (nats_feed.h: ordered consumer, last message per key, then live)
// with a short timeout so stop() is prompt.
//
// Feed: a Put per current value, CaughtUp (also for an empty bucket), then
// every Put/Delete in stream order. Delete markers in the replay are skipped:
// they are not current values (they do count for finding the replay's end).
//
// Reconnects: the ordered consumer resumes after a reconnect from the last
// stream sequence it delivered, so the feed goes on without loss (verified
// with kill -9 of the server under write load). That fails silently in one
// case: the stream was deleted and re-created (or the server lost its data),
// because the consumer then waits for sequences the new stream may never
// reach. So after every reconnect and every missed-heartbeat alarm the thread
// compares the stream's creation time with the one it started from. When the
// stream is a different one, or the feed itself fails, it opens a new feed
// (once the connection and the stream are back) and sends Reset, then the
// full replay and CaughtUp.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "weft/kv.h"

namespace weft::nats_plugin {

class NatsKvBucket;
class WatchWorker;

// The live watches of one store, so that destroying the store can stop them
// before the connection goes away. Holds only weak references: a watch the
// caller dropped is gone from here too.
class WatchRegistry {
 public:
  void add(const std::shared_ptr<WatchWorker>& worker);
  // Stops every watch still alive; later add() calls stop the new watch at
  // once. Blocks until their threads have ended.
  void stopAll();
  bool closed() const;

 private:
  mutable std::mutex mu_;
  bool closed_ = false;
  std::vector<std::weak_ptr<WatchWorker>> workers_;
};

// Starts a watch: opens its feed now (Unavailable when the connection
// is down) and then its thread. resumeAfter > 0: the watcher holds the
// bucket as of that stream sequence, and the first feed delivers only what
// came after it, delete markers included (KvBucket::watchFrom); a re-opened
// feed replays in full all the same.
Result<std::unique_ptr<KvWatch>> startWatch(std::shared_ptr<NatsKvBucket> bucket,
                                            const std::string& prefix, WatchCallback callback,
                                            const std::shared_ptr<WatchRegistry>& registry,
                                            uint64_t resumeAfter = 0);

}  // namespace weft::nats_plugin
