// NatsKvBucket: one JetStream KV bucket (stream KV_<name>, subjects
// $KV.<name>.<key>) behind the weft::KvBucket interface.
//
// Built on the plain JetStream API, not on nats.c's kvStore, which 3.4.1
// cannot open for a stream without a per-subject limit (agent-registry):
//  * get: the last message of the key's subject (direct get when the stream
//    allows it); a delete or purge marker reads as NotFound.
//  * writes: publishes with the same subjects and KV-Operation headers as
//    nats.c and the agents use. js_PublishMsg reports the JetStream error code,
//    so "wrong last sequence" (10071) is recognised from the server's answer,
//    never from nats_GetLastError, whose text can be stale.
//  * keys/scan/watch: a KeyFeed (nats_feed.h), never kvStore_Keys.
// A revision is the stream sequence of the message, so revisions increase
// strictly within a bucket.
#pragma once

#include <nats/nats.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nats_connection.h"
#include "nats_feed.h"
#include "weft/kv.h"

namespace weft::nats_plugin {

class WatchRegistry;

class NatsKvBucket : public KvBucket, public std::enable_shared_from_this<NatsKvBucket> {
 public:
  NatsKvBucket(std::shared_ptr<NatsConnection> conn, BucketRef ref,
               std::shared_ptr<WatchRegistry> watches);

  const std::string& name() const override { return ref_.name; }
  Result<KvEntry> get(const std::string& key) override;
  Result<uint64_t> put(const std::string& key, const std::string& value) override;
  Result<uint64_t> create(const std::string& key, const std::string& value) override;
  // A revision that names a delete marker (only ever seen in a watch Delete
  // event) is accepted by the server as the key's last revision; callers pass
  // revisions of values, for which the check is exact.
  Result<uint64_t> update(const std::string& key, const std::string& value,
                          uint64_t expectedRevision) override;
  Status erase(const std::string& key, uint64_t expectedRevision) override;
  // Enumerated with a KeyFeed under kv.timeoutMs, never with kvStore_Keys
  // (whose timeout handling fails above ~5k keys).
  Result<std::vector<std::string>> keys(const std::string& prefix) override;
  Result<std::vector<KvEntry>> scan(const std::string& prefix) override;
  Result<std::unique_ptr<KvWatch>> watch(const std::string& prefix,
                                         WatchCallback callback) override;

  const BucketRef& ref() const { return ref_; }
  // The creation time of the bucket's stream (nanoseconds), which tells a
  // stream apart from a deleted and re-created one of the same name.
  Result<int64_t> streamCreated();
  const std::shared_ptr<NatsConnection>& connection() const { return conn_; }

 private:
  // Publishes a value (or a delete marker when value is null) to the key's
  // subject with the optional last-subject-sequence expectation, waiting for
  // the ack until the deadline. A failed expectation comes back as
  // Code::Conflict.
  Result<uint64_t> publish(const std::string& key, const std::string* value, uint64_t expectedLast,
                           bool expectNoMessage, const std::string& what, const Deadline& deadline);
  // The last message of the key's subject (caller destroys it); NotFound when
  // the subject has none.
  Result<natsMsg*> lastMessage(const std::string& key, const std::string& what,
                               const Deadline& deadline);
  // Calls fn for the latest value of every key under prefix (delete markers
  // skipped), within kv.timeoutMs.
  Status forEachEntry(const std::string& prefix, bool headersOnly,
                      const std::function<void(FeedEntry&)>& fn);
  std::string subject(const std::string& key) const { return ref_.subjectPrefix + key; }

  std::shared_ptr<NatsConnection> conn_;
  BucketRef ref_;
  std::shared_ptr<WatchRegistry> watches_;
};

}  // namespace weft::nats_plugin
