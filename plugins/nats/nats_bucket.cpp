#include "nats_bucket.h"

#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <climits>
#include <random>
#include <thread>

#include "nats_common.h"
#include "nats_watch.h"

namespace weft::nats_plugin {
namespace {

Status invalidKey(const std::string& key, const std::string& bucket) {
  return Status::invalidArgument(
      "key '" + key + "' cannot be stored in NATS KV bucket " + bucket +
      " (allowed: [-/_=.A-Za-z0-9], no leading, trailing or double dot)");
}

Status unrepresentableKey(const std::string& key, const std::string& bucket) {
  return Status::notFound("key '" + key + "' cannot exist in NATS KV bucket " + bucket);
}

struct MsgGuard {
  natsMsg* msg;
  ~MsgGuard() { natsMsg_Destroy(msg); }
};

}  // namespace

NatsKvBucket::NatsKvBucket(std::shared_ptr<NatsConnection> conn, BucketRef ref,
                           std::shared_ptr<WatchRegistry> watches)
    : conn_(std::move(conn)), ref_(std::move(ref)), watches_(std::move(watches)) {}

Result<natsMsg*> NatsKvBucket::lastMessage(const std::string& key, const std::string& what,
                                           const Deadline& deadline) {
  std::string subj = subject(key);
  natsMsg* msg = nullptr;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = deadline.leftMs();
  if (jo.Wait <= 0) return Status::timeout(what + ": deadline exceeded");
  natsStatus s;
  jsErrCode ec = static_cast<jsErrCode>(0);  // js_DirectGetMsg reports none
  // A direct get may be answered by any replica, and a follower can be
  // behind: on a replicated stream ask the leader, so a read that decides a
  // compare-and-set (or a token check) is not stale.
  if (ref_.allowDirect && ref_.replicas <= 1) {
    jsDirectGetMsgOptions opts;
    jsDirectGetMsgOptions_Init(&opts);
    opts.LastBySubject = subj.c_str();
    s = js_DirectGetMsg(&msg, conn_->js(), ref_.stream.c_str(), &jo, &opts);
  } else {
    s = js_GetLastMsg(&msg, conn_->js(), ref_.stream.c_str(), subj.c_str(), &jo, &ec);
  }
  if (s == NATS_OK) return msg;
  Status failed = fromJetStream(s, ec, what);
  if (failed.code() != Code::NotFound || !ref_.allowDirect || ref_.replicas <= 1) return failed;
  Result<natsMsg*> fromReplica = lastMessageFromReplicas(subj, what, deadline);
  if (!fromReplica) return failed;
  askLeaderToStepDown("its leader answered that key '" + key +
                      "' has no message, and a replica has revision " +
                      std::to_string(natsMsg_GetSequence(*fromReplica)));
  return fromReplica;
}

Result<natsMsg*> NatsKvBucket::lastMessageFromReplicas(const std::string& subj,
                                                       const std::string& what,
                                                       const Deadline& deadline) {
  for (int attempt = 0; attempt < 2 && deadline.leftMs() > 0; ++attempt) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = std::min<int64_t>(deadline.leftMs(), 500);
    jsDirectGetMsgOptions opts;
    jsDirectGetMsgOptions_Init(&opts);
    opts.LastBySubject = subj.c_str();
    natsMsg* msg = nullptr;
    if (js_DirectGetMsg(&msg, conn_->js(), ref_.stream.c_str(), &jo, &opts) == NATS_OK) {
      return msg;
    }
  }
  return Status::notFound(what + ": no replica has it");
}

void NatsKvBucket::askLeaderToStepDown(const std::string& reason) {
  static constexpr int64_t kMinIntervalMs = 10000;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t last = lastStepDownMs_.load();
  if (last != 0 && now - last < kMinIntervalMs) return;
  if (!lastStepDownMs_.compare_exchange_strong(last, now)) return;  // another thread asks
  const std::string subject = "$JS.API.STREAM.LEADER.STEPDOWN." + ref_.stream;
  natsMsg* reply = nullptr;
  const natsStatus s = natsConnection_RequestString(&reply, conn_->nc(), subject.c_str(), "",
                                                    conn_->timeoutMs());
  std::string answer = s == NATS_OK && reply && natsMsg_GetDataLength(reply) > 0
                           ? std::string(natsMsg_GetData(reply), natsMsg_GetDataLength(reply))
                           : std::string(natsStatus_GetText(s));
  if (reply) natsMsg_Destroy(reply);
  conn_->log(LogLevel::Warn, "stream " + ref_.stream + " of bucket " + ref_.name + ": " + reason +
                                 " (its per-subject index lost the key, a nats-server 2.9 "
                                 "defect); asked the leader to step down: " +
                                 answer.substr(0, 200));
}

Result<NatsKvBucket::Incarnation> NatsKvBucket::incarnation() {
  if (Status st = conn_->checkAvailable(); !st) return st;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = conn_->timeoutMs();
  jsStreamInfo* si = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_->js(), ref_.stream.c_str(), &jo, &ec);
  if (s != NATS_OK) return fromJetStream(s, ec, "stream info of bucket " + ref_.name);
  Incarnation out;
  const jsStreamConfig* config = si->Config;
  const bool losesSilently =
      config == nullptr || config->MaxAge > 0 || config->MaxMsgs > 0 || config->MaxBytes > 0;
  if (!losesSilently) out.token = ref_.stream + "@" + std::to_string(si->Created);
  out.created = si->Created;
  out.lastSeq = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return out;
}

Result<std::string> NatsKvBucket::resumeToken() {
  Result<Incarnation> now = incarnation();
  if (!now) return now.status();
  return now->token;
}

Result<std::unique_ptr<KvWatch>> NatsKvBucket::watchFrom(const std::string& prefix,
                                                         const std::string& token,
                                                         uint64_t after, WatchCallback callback) {
  Result<Incarnation> now = incarnation();
  if (!now) return now.status();
  if (now->token.empty() || now->token != token) {
    return Status::notFound("bucket " + ref_.name + " is not the one the saved state was read " +
                            "from (stream " + (now->token.empty() ? "not resumable" : now->token) +
                            ", saved " + token + ")");
  }
  if (after == 0 || after > now->lastSeq) {
    return Status::notFound("bucket " + ref_.name + " has no revision " + std::to_string(after) +
                            " (newest " + std::to_string(now->lastSeq) + ")");
  }
  try {
    return startWatch(shared_from_this(), prefix, std::move(callback), watches_, after);
  } catch (const std::exception& ex) {
    return Status::internal("watch bucket " + ref_.name + ": " + ex.what());
  }
}

Result<KvEntry> NatsKvBucket::get(const std::string& key) {
  if (!isValidKey(key)) return unrepresentableKey(key, ref_.name);
  if (Status st = conn_->checkAvailable(); !st) return st;
  const std::string what = "get key '" + key + "' of bucket " + ref_.name;
  Result<natsMsg*> last = lastMessage(key, what, Deadline(conn_->timeoutMs()));
  if (!last) return last.status();
  MsgGuard guard{*last};
  if (isDeleteMarker(guard.msg)) return Status::notFound(what + ": deleted");
  KvEntry out;
  out.key = key;
  int len = natsMsg_GetDataLength(guard.msg);
  if (len > 0) out.value.assign(natsMsg_GetData(guard.msg), len);
  out.revision = natsMsg_GetSequence(guard.msg);
  return out;
}

Result<std::vector<std::optional<KvEntry>>> NatsKvBucket::getMany(
    const std::vector<std::string>& keys) {
  if (keys.size() < 2 || !ref_.allowDirect || ref_.replicas > 1) return KvBucket::getMany(keys);
  if (Status st = conn_->checkAvailable(); !st) return st;
  const std::string what = "get " + std::to_string(keys.size()) + " keys of bucket " + ref_.name;
  const Deadline deadline(conn_->timeoutMs());
  natsConnection* nc = conn_->nc();
  char* inbox = nullptr;
  if (natsStatus s = natsInbox_Create(&inbox); s != NATS_OK) return fromNats(s, what);
  const std::string replyPrefix = std::string(inbox) + ".";
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  if (natsStatus s = natsConnection_SubscribeSync(&sub, nc, (replyPrefix + "*").c_str());
      s != NATS_OK) {
    return fromNats(s, what);
  }
  // Unsubscribed, then destroyed only after a flush round trip: nats.c 3.4.1
  // must not be handed a late answer for a destroyed subscription
  // (docs/pitfalls.md, "A subscription destroyed while messages arrive").
  auto close = [&](bool drained) {
    natsSubscription_Unsubscribe(sub);
    if (!drained) natsConnection_FlushTimeout(nc, 1000);
    natsSubscription_Destroy(sub);
  };

  std::vector<std::optional<KvEntry>> out(keys.size());
  size_t expected = 0;
  const std::string directGet = "$JS.API.DIRECT.GET." + ref_.stream + ".";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!isValidKey(keys[i])) continue;  // cannot exist: absent
    const std::string reply = replyPrefix + std::to_string(i);
    natsStatus s = natsConnection_PublishRequest(nc, (directGet + subject(keys[i])).c_str(),
                                                 reply.c_str(), nullptr, 0);
    if (s != NATS_OK) {
      close(expected == 0);
      return fromNats(s, what);
    }
    ++expected;
  }
  Status failed = Status::ok();
  size_t received = 0;
  while (received < expected && failed) {
    const int64_t left = deadline.leftMs();
    if (left <= 0) {
      failed = Status::timeout(what + ": " + std::to_string(expected - received) +
                               " answers missing after kv.timeoutMs");
      break;
    }
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub, left);
    if (s != NATS_OK) {
      failed = s == NATS_TIMEOUT ? Status::timeout(what + ": no answer within kv.timeoutMs")
                                 : fromNats(s, what);
      break;
    }
    MsgGuard guard{msg};
    ++received;
    const char* replySubject = natsMsg_GetSubject(msg);
    const size_t index =
        std::strtoull(replySubject + std::min(std::strlen(replySubject), replyPrefix.size()),
                      nullptr, 10);
    if (index >= keys.size()) continue;
    const char* status = nullptr;
    if (natsMsgHeader_Get(msg, "Status", &status) == NATS_OK && status) {
      if (std::strcmp(status, "404") == 0) continue;  // no message: absent
      failed = Status::unavailable(what + ": the server answered status " + status);
      break;
    }
    if (isDeleteMarker(msg)) continue;
    const char* sequence = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Sequence", &sequence) != NATS_OK || !sequence) {
      failed = Status::internal(what + ": an answer without Nats-Sequence");
      break;
    }
    KvEntry entry;
    entry.key = keys[index];
    const int len = natsMsg_GetDataLength(msg);
    if (len > 0) entry.value.assign(natsMsg_GetData(msg), static_cast<size_t>(len));
    entry.revision = std::strtoull(sequence, nullptr, 10);
    out[index] = std::move(entry);
  }
  close(received == expected);
  if (!failed) return failed;
  return out;
}

Result<uint64_t> NatsKvBucket::streamLastSequence(const std::string& what,
                                                  const Deadline& deadline) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = deadline.leftMs();
  if (jo.Wait <= 0) return Status::timeout(what + ": deadline exceeded");
  jsStreamInfo* si = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_->js(), ref_.stream.c_str(), &jo, &ec);
  if (s != NATS_OK) return fromJetStream(s, ec, what);
  const uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return last;
}

Result<uint64_t> NatsKvBucket::compareAndSet(const std::string& key, const std::string* value,
                                             uint64_t expectedLast, const std::string& what,
                                             const Deadline& deadline) {
  if (!ref_.guardedCas) {
    return publish(key, value, expectedLast, expectedLast == 0, 0, what, deadline);
  }
  thread_local std::minstd_rand rng(std::random_device{}());
  for (int round = 0;; ++round) {
    Result<uint64_t> head = streamLastSequence(what, deadline);
    if (!head) return head.status();
    Result<uint64_t> rev =
        *head == 0
            // An empty stream: the key was never written, and a create of a
            // never-written key has exactly one winner on every version.
            ? (expectedLast == 0
                   ? publish(key, value, 0, true, 0, what, deadline)
                   : Result<uint64_t>(Status::conflict(what + ": revision mismatch")))
            : publish(key, value, expectedLast, expectedLast == 0, *head, what, deadline);
    if (rev.isOk() || rev.code() != Code::Conflict) return rev;
    // Refused: either the key moved (a real conflict) or some other key of
    // the bucket was written after `head` (try again on the new head).
    Result<natsMsg*> last = lastMessage(key, what, deadline);
    uint64_t current = 0;
    if (last) {
      current = natsMsg_GetSequence(*last);
      natsMsg_Destroy(*last);
    } else if (last.code() != Code::NotFound) {
      return last.status();
    }
    if (current != expectedLast) return rev;
    const int64_t pauseMs = std::min<int64_t>(rng() % (1 + std::min(round, 10)), deadline.leftMs());
    if (deadline.leftMs() <= pauseMs) {
      return Status::unavailable(what + ": the bucket changed on every try within " +
                                 std::to_string(conn_->timeoutMs()) + " ms (contention)");
    }
    if (pauseMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pauseMs));
  }
}

Result<uint64_t> NatsKvBucket::publish(const std::string& key, const std::string* value,
                                       uint64_t expectedLast, bool expectNoMessage,
                                       uint64_t expectedStreamLast, const std::string& what,
                                       const Deadline& deadline) {
  Result<natsMsg*> built = message(key, value, what);
  if (!built) return built.status();
  MsgGuard guard{*built};
  natsMsg* msg = *built;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = deadline.leftMs();
  if (po.MaxWait <= 0) return Status::timeout(what + ": deadline exceeded");
  po.ExpectLastSubjectSeq = expectedLast;  // 0 = no expectation
  po.ExpectNoMessage = expectNoMessage;
  po.ExpectLastSeq = expectedStreamLast;  // 0 = no expectation
  jsPubAck* ack = nullptr;
  jsErrCode ec = static_cast<jsErrCode>(0);
  const natsStatus s = js_PublishMsg(&ack, conn_->js(), msg, &po, &ec);
  if (s == NATS_OK) {
    uint64_t rev = ack->Sequence;
    jsPubAck_Destroy(ack);
    return rev;
  }
  return publishFailure(s, ec, what);
}

Result<natsMsg*> NatsKvBucket::message(const std::string& key, const std::string* value,
                                       const std::string& what) const {
  if (value != nullptr && value->size() > static_cast<size_t>(INT_MAX)) {
    return Status::invalidArgument(what + ": value too large");
  }
  std::string subj = subject(key);
  natsMsg* msg = nullptr;
  natsStatus s =
      natsMsg_Create(&msg, subj.c_str(), nullptr, value != nullptr ? value->data() : nullptr,
                     value != nullptr ? static_cast<int>(value->size()) : 0);
  if (s != NATS_OK) return fromNats(s, what);
  // The marker format of nats.c's kvStore_Delete, which agents understand.
  if (value == nullptr && (s = natsMsgHeader_Set(msg, "KV-Operation", "DEL")) != NATS_OK) {
    natsMsg_Destroy(msg);
    return fromNats(s, what);
  }
  return msg;
}

Status NatsKvBucket::publishFailure(natsStatus s, jsErrCode ec, const std::string& what,
                                    const char* serverText) {
  if (ec == JSStreamWrongLastSequenceErr) return Status::conflict(what + ": revision mismatch");
  if (s == NATS_CONNECTION_DISCONNECTED) {
    // The request was sent and the connection dropped before the ack came
    // (FailRequestsOnDisconnect): the server may have stored it. That is an
    // unknown outcome, like a timeout, not a refusal.
    return Status::timeout(what +
                           ": connection lost before the acknowledgement; the write may "
                           "have been applied");
  }
  return fromJetStream(s, ec, what, serverText);
}

Result<uint64_t> NatsKvBucket::put(const std::string& key, const std::string& value) {
  if (!isValidKey(key)) return invalidKey(key, ref_.name);
  if (Status st = conn_->checkAvailable(); !st) return st;
  return publish(key, &value, 0, false, 0, "put key '" + key + "' in bucket " + ref_.name,
                 Deadline(conn_->timeoutMs()));
}

Result<uint64_t> NatsKvBucket::create(const std::string& key, const std::string& value) {
  if (!isValidKey(key)) return invalidKey(key, ref_.name);
  if (Status st = conn_->checkAvailable(); !st) return st;
  const std::string what = "create key '" + key + "' in bucket " + ref_.name;
  const Deadline deadline(conn_->timeoutMs());
  // "No message for the subject" covers a key never written. A deleted key
  // still has its marker as last message, so a create over it must name the
  // marker's revision. Racing writers can move the key between the two
  // steps, hence a few rounds.
  for (int round = 0; round < 3; ++round) {
    Result<uint64_t> rev = compareAndSet(key, &value, 0, what, deadline);
    if (rev.isOk() || rev.code() != Code::Conflict) return rev;
    Result<natsMsg*> last = lastMessage(key, what, deadline);
    if (!last) {
      if (last.code() == Code::NotFound) continue;  // purged meanwhile: try again
      return last.status();
    }
    MsgGuard guard{*last};
    if (!isDeleteMarker(guard.msg)) return Status::alreadyExists(what + ": key exists");
    rev = compareAndSet(key, &value, natsMsg_GetSequence(guard.msg), what, deadline);
    if (rev.isOk() || rev.code() != Code::Conflict) return rev;
  }
  return Status::alreadyExists(what + ": key was written concurrently");
}

void NatsKvBucket::createAsync(const std::string& key, const std::string& value,
                               CreateDone done) {
  if (!isValidKey(key)) return done(invalidKey(key, ref_.name));
  if (ref_.guardedCas) return done(create(key, value));
  if (Status st = conn_->checkAvailable(); !st) return done(st);
  std::string what = "create key '" + key + "' in bucket " + ref_.name;
  Result<natsMsg*> built = message(key, &value, what);
  if (!built) return done(built.status());
  natsMsg* msg = *built;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = conn_->timeoutMs();
  po.ExpectNoMessage = true;  // the key was never written (or was purged)
  conn_->publishAsync(
      &msg, &po,
      [self = shared_from_this(), key, value, what = std::move(what), done = std::move(done)](
          natsStatus s, jsErrCode ec, uint64_t sequence, const std::string& text) {
        if (s == NATS_OK) return done(sequence);
        // The subject has a message: a value (AlreadyExists) or a delete
        // marker (a create names its revision). create() tells them apart.
        if (ec == JSStreamWrongLastSequenceErr) return done(self->create(key, value));
        done(publishFailure(s, ec, what, text.c_str()));
      });
  natsMsg_Destroy(msg);  // nullptr once nats.c took it
}

Result<uint64_t> NatsKvBucket::update(const std::string& key, const std::string& value,
                                      uint64_t expectedRevision) {
  if (!isValidKey(key)) return invalidKey(key, ref_.name);
  const std::string what = "update key '" + key + "' in bucket " + ref_.name;
  if (expectedRevision == 0) return Status::conflict(what + ": revision 0 names no value");
  if (Status st = conn_->checkAvailable(); !st) return st;
  return compareAndSet(key, &value, expectedRevision, what, Deadline(conn_->timeoutMs()));
}

Status NatsKvBucket::erase(const std::string& key, uint64_t expectedRevision) {
  if (!isValidKey(key)) return invalidKey(key, ref_.name);
  if (Status st = conn_->checkAvailable(); !st) return st;
  // Deleting an absent key writes a marker too, and is Ok.
  const std::string what = "erase key '" + key + "' in bucket " + ref_.name;
  const Deadline deadline(conn_->timeoutMs());
  Result<uint64_t> rev = expectedRevision == 0
                             ? publish(key, nullptr, 0, false, 0, what, deadline)
                             : compareAndSet(key, nullptr, expectedRevision, what, deadline);
  return rev.isOk() ? Status::ok() : rev.status();
}

Status NatsKvBucket::forEachEntry(const std::string& prefix, bool headersOnly,
                                  const std::function<void(FeedEntry&)>& fn) {
  if (Status st = conn_->checkAvailable(); !st) return st;
  const std::string what = "list bucket " + ref_.name;
  const Deadline deadline(conn_->timeoutMs());
  Result<std::unique_ptr<KeyFeed>> feed =
      KeyFeed::open(conn_, ref_, keyFilterForPrefix(prefix), headersOnly, deadline);
  if (!feed) return feed.status();
  FeedEntry entry;
  while (true) {
    int64_t left = deadline.leftMs();
    if (left <= 0) {
      return Status::timeout(what + ": not complete within " + std::to_string(conn_->timeoutMs()) +
                             " ms");
    }
    Result<KeyFeed::Event> ev = (*feed)->next(left, &entry);
    if (!ev) return ev.status();
    if (*ev == KeyFeed::Event::CaughtUp) return Status::ok();
    if (*ev == KeyFeed::Event::Entry && !entry.isDelete && hasPrefix(entry.key, prefix)) fn(entry);
  }
}

Result<std::vector<std::string>> NatsKvBucket::keys(const std::string& prefix) {
  std::vector<std::string> out;
  try {
    Status st = forEachEntry(prefix, true, [&](FeedEntry& e) { out.push_back(std::move(e.key)); });
    if (!st) return st;
  } catch (const std::exception& ex) {
    return Status::internal("list bucket " + ref_.name + ": " + ex.what());
  }
  return out;
}

Result<std::vector<KvEntry>> NatsKvBucket::scan(const std::string& prefix) {
  std::vector<KvEntry> out;
  try {
    Status st = forEachEntry(prefix, false, [&](FeedEntry& e) {
      KvEntry entry;
      entry.key = std::move(e.key);
      entry.value = std::move(e.value);
      entry.revision = e.revision;
      out.push_back(std::move(entry));
    });
    if (!st) return st;
  } catch (const std::exception& ex) {
    return Status::internal("scan bucket " + ref_.name + ": " + ex.what());
  }
  return out;
}

Result<std::unique_ptr<KvWatch>> NatsKvBucket::watch(const std::string& prefix,
                                                     WatchCallback callback) {
  try {
    return startWatch(shared_from_this(), prefix, std::move(callback), watches_);
  } catch (const std::exception& ex) {
    return Status::internal("watch bucket " + ref_.name + ": " + ex.what());
  }
}

}  // namespace weft::nats_plugin
