#include "nats_feed.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "nats_common.h"

namespace weft::nats_plugin {

namespace {
// The bound of the round trip that retires a feed's subscription (~KeyFeed).
constexpr int64_t kUnsubscribeFlushMs = 1000;
}  // namespace

bool isDeleteMarker(natsMsg* msg) {
  const char* op = nullptr;
  if (natsMsgHeader_Get(msg, "KV-Operation", &op) != NATS_OK || op == nullptr) return false;
  return std::strcmp(op, "DEL") == 0 || std::strcmp(op, "PURGE") == 0;
}

Result<std::unique_ptr<KeyFeed>> KeyFeed::open(const std::shared_ptr<NatsConnection>& conn,
                                               const BucketRef& bucket,
                                               const std::string& keyFilter, bool headersOnly,
                                               const Deadline& deadline) {
  return subscribe(conn, bucket, keyFilter, headersOnly, 0, false, deadline);
}

Result<std::unique_ptr<KeyFeed>> KeyFeed::resume(const std::shared_ptr<NatsConnection>& conn,
                                                 const BucketRef& bucket,
                                                 const std::string& keyFilter, uint64_t after,
                                                 const Deadline& deadline) {
  if (after == 0) return Status::invalidArgument("resume needs the last sequence read");
  return subscribe(conn, bucket, keyFilter, false, after, false, deadline);
}

Result<std::unique_ptr<KeyFeed>> KeyFeed::catchUp(const std::shared_ptr<NatsConnection>& conn,
                                                  const BucketRef& bucket,
                                                  const std::string& keyFilter, uint64_t after,
                                                  const Deadline& deadline) {
  if (after == 0) return Status::invalidArgument("a catch-up needs the sequence it starts after");
  return subscribe(conn, bucket, keyFilter, false, after, true, deadline);
}

Result<std::unique_ptr<KeyFeed>> KeyFeed::subscribe(const std::shared_ptr<NatsConnection>& conn,
                                                    const BucketRef& bucket,
                                                    const std::string& keyFilter,
                                                    bool headersOnly, uint64_t after,
                                                    bool catchUp, const Deadline& deadline) {
  const std::string what = "read bucket " + bucket.name;
  std::unique_ptr<KeyFeed> feed(new KeyFeed());
  feed->conn_ = conn;
  feed->stream_ = bucket.stream;
  feed->filtered_ = !keyFilter.empty();
  feed->subjectPrefix_ = bucket.subjectPrefix;
  std::string subject = bucket.subjectPrefix + (keyFilter.empty() ? ">" : keyFilter);

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = deadline.leftMs();
  if (jo.Wait <= 0) return Status::timeout(what + ": deadline exceeded");
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = bucket.stream.c_str();
  so.Ordered = true;
  if (after > 0) {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = after + 1;
  } else if (bucket.oneValuePerKey) {
    // The same messages as "last per subject" when each key has one, but
    // the server sets the consumer up without walking every subject first:
    // on nats-server 2.9.10 with a million keys, 0.6 s instead of 3.5 s, and
    // the latter outlasted kv.timeoutMs on a busy machine, so a restarted
    // weftd re-opened its watch forever and never loaded (docs/pitfalls.md).
    so.Config.DeliverPolicy = js_DeliverAll;
  } else {
    so.Config.DeliverPolicy = js_DeliverLastPerSubject;
  }
  so.Config.HeadersOnly = headersOnly;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&feed->sub_, conn->js(), subject.c_str(), &jo, &so, &ec);
  if (s != NATS_OK) {
    feed->sub_ = nullptr;
    return fromNats(s, what);
  }
  // The ordered consumer paces the server with flow control, so the client
  // side needs no limit of its own; the defaults (65k messages) would turn a
  // large replay into a slow-consumer error.
  natsSubscription_SetPendingLimits(feed->sub_, -1, -1);
  if (after > 0) feed->lastStreamSeq_ = after;
  if (after > 0 && !catchUp) {
    feed->caughtUp_ = true;
    return feed;
  }

  jsConsumerInfo* ci = nullptr;
  jo.Wait = deadline.leftMs();
  if (jo.Wait <= 0) return Status::timeout(what + ": deadline exceeded");
  s = natsSubscription_GetConsumerInfo(&ci, feed->sub_, &jo, &ec);
  if (s != NATS_OK) return fromNats(s, what + " (consumer info)");
  // Nothing delivered and nothing pending: the replay is empty. Otherwise the
  // message with no pending successor ends it (see next()).
  const bool looksEmpty = ci->NumPending == 0 && ci->Delivered.Consumer == 0;
  jsConsumerInfo_Destroy(ci);
  if (catchUp) {
    // Nothing after `after`: caught up at once. Should the server count its
    // pending messages late (seen on busy replicated streams, see below),
    // they still arrive, as live changes.
    feed->caughtUpDue_ = looksEmpty;
    return feed;
  }
  if (looksEmpty) {
    // A new consumer on a busy replicated stream has been seen to report
    // nothing pending before it counted its messages. Ask the stream whether
    // any subject matches; only then is the replay really empty.
    jo.Wait = deadline.leftMs();
    if (jo.Wait <= 0) return Status::timeout(what + ": deadline exceeded");
    jo.Stream.Info.SubjectsFilter = subject.c_str();
    jsStreamInfo* si = nullptr;
    s = js_GetStreamInfo(&si, conn->js(), bucket.stream.c_str(), &jo, &ec);
    if (s != NATS_OK) return fromNats(s, what + " (stream subjects)");
    const bool matches = si->State.Subjects != nullptr && si->State.Subjects->Count > 0;
    feed->caughtUpDue_ = !matches;
    // Nothing up to the stream's last sequence concerns this feed, so a
    // later check of whether it is behind counts from there.
    if (!matches) feed->lastStreamSeq_ = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
  }
  return feed;
}

bool KeyFeed::replayDrained() {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = consumerInfoWaitMs_;
  jsConsumerInfo* ci = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  if (natsSubscription_GetConsumerInfo(&ci, sub_, &jo, &ec) != NATS_OK) return false;
  const bool drained = ci->NumPending == 0 && ci->Delivered.Stream == lastStreamSeq_;
  jsConsumerInfo_Destroy(ci);
  return drained;
}

Result<bool> KeyFeed::behind(const Deadline& deadline) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = deadline.leftMs();
  if (jo.Wait <= 0) return Status::timeout("check the feed of " + stream_ + ": deadline exceeded");
  jsErrCode ec = static_cast<jsErrCode>(0);
  if (filtered_) {
    jsConsumerInfo* ci = nullptr;
    natsStatus s = natsSubscription_GetConsumerInfo(&ci, sub_, &jo, &ec);
    if (s != NATS_OK) return fromJetStream(s, ec, "consumer info of a feed of " + stream_);
    const bool pending = ci->NumPending > 0;
    jsConsumerInfo_Destroy(ci);
    return pending;
  }
  jsStreamInfo* si = nullptr;
  natsStatus s = js_GetStreamInfo(&si, conn_->js(), stream_.c_str(), &jo, &ec);
  if (s != NATS_OK) return fromJetStream(s, ec, "stream info of " + stream_);
  const bool ahead = si->State.LastSeq > lastStreamSeq_;
  jsStreamInfo_Destroy(si);
  return ahead;
}

KeyFeed::~KeyFeed() {
  for (natsMsg* m : spent_) natsMsg_Destroy(m);
  if (sub_ == nullptr) return;
  // nats.c 3.4 frees a subscription while its read thread may still be
  // handing it a message it looked up just before (fixed upstream in 3.6,
  // nats.c#638): a feed replaced while a backlog streams in crashed weftd
  // (SIGCONT after a stalled server). So: unsubscribe first (no new message
  // finds it, and the library's consumer is removed), then let one PING/PONG
  // round trip pass, which the one read thread answers only after whatever
  // it had taken before, and only then free it.
  if (natsSubscription_Unsubscribe(sub_) == NATS_OK &&
      natsConnection_FlushTimeout(conn_->nc(), kUnsubscribeFlushMs) != NATS_OK) {
    // No round trip (the server is away): the read thread is reconnecting,
    // not delivering; a short pause covers a message it was finishing.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  natsSubscription_Destroy(sub_);
}

Result<KeyFeed::Event> KeyFeed::next(int64_t timeoutMs, FeedEntry* entry) {
  if (caughtUpDue_) {
    caughtUpDue_ = false;
    caughtUp_ = true;
    return Event::CaughtUp;
  }
  natsMsg* msg = nullptr;
  const int64_t waitMs = caughtUp_ ? timeoutMs : std::min(timeoutMs, kReplayQuietMs);
  natsStatus s = natsSubscription_NextMsg(&msg, sub_, waitMs);
  if (s == NATS_TIMEOUT) {
    if (!caughtUp_ && waitMs >= kReplayQuietMs && replayDrained()) {
      caughtUp_ = true;
      return Event::CaughtUp;
    }
    return Event::Idle;
  }
  if (s != NATS_OK) return fromNats(s, "read from JetStream consumer");
  jsMsgMetaData* meta = nullptr;
  s = natsMsg_GetMetaData(&meta, msg);
  if (s != NATS_OK) {
    natsMsg_Destroy(msg);
    return fromNats(s, "read message metadata");
  }
  const char* subject = natsMsg_GetSubject(msg);
  entry->key = subject != nullptr && hasPrefix(subject, subjectPrefix_)
                   ? std::string(subject + subjectPrefix_.size())
                   : std::string();
  entry->revision = meta->Sequence.Stream;
  lastStreamSeq_ = meta->Sequence.Stream;
  entry->isDelete = isDeleteMarker(msg);
  entry->value.clear();
  int len = natsMsg_GetDataLength(msg);
  if (!entry->isDelete && len > 0) entry->value.assign(natsMsg_GetData(msg), len);
  if (!caughtUp_ && meta->NumPending == 0) caughtUpDue_ = true;
  jsMsgMetaData_Destroy(meta);
  release(msg);
  return Event::Entry;
}

void KeyFeed::release(natsMsg* msg) {
  constexpr size_t kSpentBatch = 64;
  spent_.push_back(msg);
  if (spent_.size() < kSpentBatch) return;
  for (natsMsg* m : spent_) natsMsg_Destroy(m);
  spent_.clear();
}

}  // namespace weft::nats_plugin
