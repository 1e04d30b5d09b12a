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
//  * compare-and-set (update, create, erase at a revision) on a replicated
//    bucket of a server older than 2.9.21 is GUARDED (BucketRef::guardedCas).
//    Those servers check the per-subject expectation
//    (Nats-Expected-Last-Subject-Sequence) outside the Raft proposal, so
//    concurrent writers with the same expectation can all pass (upstream
//    issue #4320). The stream-wide expectation (Nats-Expected-Last-Sequence)
//    is checked against the leader's proposal counter, which counts writes in
//    flight, and is exclusive. So a guarded write reads the stream's last
//    sequence L from the stream leader (stream info), then publishes with
//    BOTH expectations: per-subject = the expected revision, stream-wide = L.
//    If it is accepted, nothing was written to the stream after L (in flight
//    or applied), and the leader's store, which had applied L when it
//    answered, is exactly at L, so the per-subject check saw the key's true
//    last revision: the write is exclusive. A stale L (an old leader, a lagging
//    answer) can only make the publish fail, never succeed wrongly. When it
//    fails, the key is read again (from the leader): if it still holds the
//    expected revision the refusal was another key's write, and the write is
//    tried again on the new L (short random pauses) until kv.timeoutMs;
//    otherwise it is a Conflict.
//    Cost: one more round trip per compare-and-set, and writers of different
//    keys of one bucket now contend for the stream's head (retries). Plain
//    put and unconditional erase are unchanged. On a replicated bucket, gets
//    go to the stream leader instead of direct gets (which any replica may
//    answer, possibly stale).
// A revision is the stream sequence of the message, so revisions increase
// strictly within a bucket.
#pragma once

#include <nats/nats.h>

#include <atomic>
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
  // On a stream with direct gets and one replica: every request is sent,
  // then the answers are collected on one inbox (one round trip for the
  // batch). Elsewhere (leader reads on a replicated stream) one get after
  // the other.
  Result<std::vector<std::optional<KvEntry>>> getMany(const std::vector<std::string>& keys) override;
  Result<uint64_t> put(const std::string& key, const std::string& value) override;
  Result<uint64_t> create(const std::string& key, const std::string& value) override;
  // One asynchronous publish expecting no message on the subject; only a
  // refusal (the key holds a value or a delete marker) falls back to
  // create(), on the acknowledging thread. Replicated buckets with the
  // guarded compare-and-set use create() at once.
  void createAsync(const std::string& key, const std::string& value, CreateDone done) override;
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
  // "<stream>@<creation time>", or "" when the stream can lose messages
  // without a trace in it (a max age, or a message or byte limit): then a
  // deletion could vanish before a resumed watch reads its marker.
  Result<std::string> resumeToken() override;
  Result<std::unique_ptr<KvWatch>> watchFrom(const std::string& prefix, const std::string& token,
                                             uint64_t after, WatchCallback callback) override;

  const BucketRef& ref() const { return ref_; }
  // Which stream the bucket is now, from one stream info: its token
  // (resumeToken()), its creation time (nanoseconds: tells a stream apart
  // from a deleted and re-created one of the same name) and last sequence.
  struct Incarnation {
    std::string token;
    int64_t created = 0;
    uint64_t lastSeq = 0;
  };
  Result<Incarnation> incarnation();
  const std::shared_ptr<NatsConnection>& connection() const { return conn_; }

 private:
  // Publishes a value (or a delete marker when value is null) to the key's
  // subject with the optional last-subject-sequence expectation, waiting for
  // the ack until the deadline. A failed expectation comes back as
  // Code::Conflict.
  // expectedStreamLast (0 = none) adds the stream-wide expectation.
  Result<uint64_t> publish(const std::string& key, const std::string* value, uint64_t expectedLast,
                           bool expectNoMessage, uint64_t expectedStreamLast,
                           const std::string& what, const Deadline& deadline);
  // The message publish() sends (nullptr value: a delete marker).
  Result<natsMsg*> message(const std::string& key, const std::string* value,
                           const std::string& what) const;
  // What a refused or unanswered publish means, for publish() and createAsync().
  static Status publishFailure(natsStatus s, jsErrCode ec, const std::string& what,
                               const char* serverText = nullptr);
  // A compare-and-set write: the key's last revision must be expectedLast (0 =
  // the key has no message). Guarded as described above when the bucket
  // needs it, else one native publish.
  Result<uint64_t> compareAndSet(const std::string& key, const std::string* value,
                                 uint64_t expectedLast, const std::string& what,
                                 const Deadline& deadline);
  // The stream's last sequence, as its leader reports it.
  Result<uint64_t> streamLastSequence(const std::string& what, const Deadline& deadline);
  // The last message of the key's subject (caller destroys it); NotFound when
  // the subject has none. On a replicated stream the leader answers; when it
  // says NotFound, the replicas are asked too (direct gets): nats-server
  // 2.9.10 can lose a subject from the leader's per-subject index after a
  // crash (the message is in its store, other replicas find it, and a
  // restart finds it again), and then answers NotFound for a key that
  // exists and refuses every compare-and-set on it. A replica that has the
  // key wins, and the leader is asked to step down (at most every 10 s), so
  // a replica with a sound index takes over.
  Result<natsMsg*> lastMessage(const std::string& key, const std::string& what,
                               const Deadline& deadline);
  // The key's last message as the replicas answer direct gets (two tries,
  // as any replica, the leader included, may answer); NotFound if none has it.
  Result<natsMsg*> lastMessageFromReplicas(const std::string& subj, const std::string& what,
                                           const Deadline& deadline);
  // Asks the stream's leader to step down (best effort, rate-limited).
  void askLeaderToStepDown(const std::string& reason);
  // Calls fn for the latest value of every key under prefix (delete markers
  // skipped), within kv.timeoutMs.
  Status forEachEntry(const std::string& prefix, bool headersOnly,
                      const std::function<void(FeedEntry&)>& fn);
  std::string subject(const std::string& key) const { return ref_.subjectPrefix + key; }

  std::shared_ptr<NatsConnection> conn_;
  BucketRef ref_;
  std::atomic<int64_t> lastStepDownMs_{0};  // askLeaderToStepDown, steady clock
  std::shared_ptr<WatchRegistry> watches_;
};

}  // namespace weft::nats_plugin
