// KeyFeed: the latest message of every key of a bucket (optionally under a
// subject filter), then every later message, read from an ordered JetStream
// push consumer with "deliver last per subject".
//
// This is what nats.c's kvWatcher does, built on the public JetStream API
// because nats.c 3.4.1 refuses to open (js_KeyValue: "bucket not valid
// key-value store") a bucket whose stream has no per-subject limit, which is
// exactly how agent-registry is configured (docs/api.md §6.3). Ordered consumers
// recover by themselves from sequence gaps and lost heartbeats (nats.c
// recreates the consumer from the last delivered sequence), so a feed
// survives reconnects without missing messages.
//
// The end of the initial replay ("caught up") is known without waiting for
// any terminating entry: the consumer info taken right after subscribing says
// whether anything is to be replayed at all, and every message carries the
// number of messages still pending for the consumer, delete markers included.
#pragma once

#include <nats/nats.h>

#include <memory>
#include <string>
#include <vector>

#include "nats_common.h"
#include "nats_connection.h"

namespace weft::nats_plugin {

// Where a bucket lives in JetStream.
struct BucketRef {
  std::string name;           // bucket name
  std::string stream;         // KV_<name>
  std::string subjectPrefix;  // $KV.<name>.
  bool allowDirect = false;   // the stream answers direct gets
  int replicas = 1;           // the stream's replica count
  // The stream keeps one message per key (bucket history 1): every message
  // in it is the latest of its key.
  bool oneValuePerKey = false;
  // Compare-and-set must be guarded by the stream-wide sequence check,
  // because the server's per-subject check is not exclusive on this stream
  // (replicated, server older than 2.9.21; see nats_bucket.h).
  bool guardedCas = false;
};

struct FeedEntry {
  std::string key;
  std::string value;  // empty for deletes and in headers-only feeds
  uint64_t revision = 0;
  bool isDelete = false;  // a delete or purge marker
};

class KeyFeed {
 public:
  enum class Event { Entry, CaughtUp, Idle };

  // Subscribes (two round trips, within the deadline). `keyFilter` is
  // relative to the bucket ("" = every key, else e.g. "proj.>"). headersOnly
  // leaves values out (for key listings).
  static Result<std::unique_ptr<KeyFeed>> open(const std::shared_ptr<NatsConnection>& conn,
                                               const BucketRef& bucket,
                                               const std::string& keyFilter, bool headersOnly,
                                               const Deadline& deadline);
  // A feed that is past its replay from the start: every message after
  // stream sequence `after`, in order, and no CaughtUp event. For replacing
  // a live feed that stopped delivering without losing or repeating a step.
  static Result<std::unique_ptr<KeyFeed>> resume(const std::shared_ptr<NatsConnection>& conn,
                                                 const BucketRef& bucket,
                                                 const std::string& keyFilter, uint64_t after,
                                                 const Deadline& deadline);
  // Every message after stream sequence `after` (delete markers included),
  // then CaughtUp once they are read, then every later message: for a
  // watcher that holds the bucket as it was at `after` (KvBucket::watchFrom).
  static Result<std::unique_ptr<KeyFeed>> catchUp(const std::shared_ptr<NatsConnection>& conn,
                                                  const BucketRef& bucket,
                                                  const std::string& keyFilter, uint64_t after,
                                                  const Deadline& deadline);
  ~KeyFeed();
  KeyFeed(const KeyFeed&) = delete;
  KeyFeed& operator=(const KeyFeed&) = delete;

  // Waits up to timeoutMs (> 0) for the next event. Entry fills *entry;
  // CaughtUp comes exactly once, after the last entry of the initial replay
  // (at once for an empty replay); Idle means nothing arrived in time.
  //
  // The end of the replay is normally the message whose metadata says
  // nothing is pending. That message can be missed (the ordered consumer is
  // re-created after a gap, which happens on a busy replicated stream), so
  // while the replay is not over a silence of kReplayQuietMs also asks the
  // server: nothing pending, and the consumer's last delivered stream
  // sequence is the one read last, means every replayed message was read.
  Result<Event> next(int64_t timeoutMs, FeedEntry* entry);

  // Asks the server whether this feed is behind its stream: messages exist
  // past the last one read (for the whole bucket: the stream's last
  // sequence, from its leader; for a filter: the consumer's pending count).
  // Meaningful after a silence: a message just published may not have
  // arrived yet.
  Result<bool> behind(const Deadline& deadline);

  bool caughtUp() const { return caughtUp_; }
  // The stream sequence of the last message read (0 before the first).
  uint64_t lastStreamSeq() const { return lastStreamSeq_; }

 private:
  KeyFeed() = default;
  static Result<std::unique_ptr<KeyFeed>> subscribe(const std::shared_ptr<NatsConnection>& conn,
                                                    const BucketRef& bucket,
                                                    const std::string& keyFilter,
                                                    bool headersOnly, uint64_t after,
                                                    bool catchUp, const Deadline& deadline);
  // True when the server has nothing left to deliver and everything it
  // delivered was read (see next()).
  bool replayDrained();

  static constexpr int64_t kReplayQuietMs = 500;

  natsSubscription* sub_ = nullptr;
  std::shared_ptr<NatsConnection> conn_;
  std::string stream_;
  bool filtered_ = false;  // a key filter narrows the feed
  std::string subjectPrefix_;
  bool caughtUp_ = false;
  bool caughtUpDue_ = false;  // report CaughtUp on the next call
  uint64_t lastStreamSeq_ = 0;  // of the last message read
  // Messages read, destroyed kSpentBatch at a time: nats.c hands each
  // destroyed message to its collector thread and wakes that thread when
  // its list was empty, so destroying them one by one cost a thread wake-up
  // per message (a tenth of a large replay's time).
  void release(natsMsg* msg);
  std::vector<natsMsg*> spent_;
  int64_t consumerInfoWaitMs_ = 1000;
};

// True when msg is a delete or purge marker (KV-Operation header).
bool isDeleteMarker(natsMsg* msg);

}  // namespace weft::nats_plugin
