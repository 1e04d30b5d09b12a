// The storage interface: named buckets of string keys and opaque byte values,
// every value carrying a revision. Everything Weft persists goes through these
// few operations, and every concurrent rule (claims, leases, retries, DLQ
// moves) is built on compare-and-set by revision in the core services, never
// inside a backend.
//
// Implementations: the in-memory backend (core, tests only) and the plugins in
// plugins/<name>/ (nats, redis, sqlite), loaded through plugin.h.
//
// Contract common to every method:
//  * No method throws. Failures come back as a Status (see status.h).
//  * Every call is bounded by the store's operation timeout (`kv.timeoutMs`):
//    when the backend does not answer in time the result is Code::Timeout; when
//    it is known to be disconnected the result is Code::Unavailable at once.
//  * A write returns Ok only after the backend acknowledged it durably (as far
//    as its configuration makes writes durable). Nothing is acknowledged from a
//    client-side buffer.
//  * Revisions are positive, strictly increasing per bucket, and change on
//    every write of a key. 0 never names a stored value.
//  * Keys are used exactly as given; a backend never encodes them. A key the
//    backend cannot represent gives NotFound on reads and InvalidArgument on
//    writes.
//  * All methods are safe to call from any thread concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "weft/status.h"

namespace weft {

struct KvEntry {
  std::string key;
  std::string value;
  uint64_t revision = 0;
};

struct BucketOptions {
  // Values not written for this long expire (0 = never). Expiry may happen
  // without any watch event (NATS max age, Redis TTL): consumers that keep a
  // view must re-list periodically to notice it.
  int64_t maxAgeMs = 0;
  // Revisions kept per key, 1 = only the latest; 0 = unlimited. A backend that
  // keeps no history ignores this.
  int64_t history = 1;
};

struct WatchEvent {
  enum class Type {
    Put,       // key now holds value at revision
    Delete,    // key was deleted (revision of the delete, 0 if unknown)
    CaughtUp,  // the replay of current values is complete; live changes follow.
               // value: the resumeToken() of the bucket the replay read ("" when
               // it cannot be resumed), for saving a view (see watchFrom)
    Reset,     // the feed restarts: a full replay of current values follows,
               // then CaughtUp; keys not replayed before CaughtUp are gone
  };
  Type type = Type::Put;
  std::string key;
  std::string value;
  uint64_t revision = 0;
};

// Called on a thread the backend owns, one event at a time and in order for a
// given watch. It must not block for long and must not stop its own watch. An
// exception escaping it is caught and logged by the backend.
using WatchCallback = std::function<void(const WatchEvent&)>;

class KvWatch {
 public:
  virtual ~KvWatch() = default;
  // Stops delivery. When stop() returns, the callback is not running and will
  // not be called again. Idempotent. The destructor stops too.
  virtual void stop() = 0;
};

class KvBucket {
 public:
  virtual ~KvBucket() = default;

  virtual const std::string& name() const = 0;

  // The value and revision of key. NotFound when absent, deleted or purged.
  virtual Result<KvEntry> get(const std::string& key) = 0;

  // get() of each key, answered in the order asked: nullopt for a key that
  // is absent, deleted or purged. Fails as a whole on the first other error.
  // The default asks one key after the other; the nats plugin sends the
  // requests together and then collects the answers, so a list page that
  // reads 50 finished items costs about one round trip, not 50.
  virtual Result<std::vector<std::optional<KvEntry>>> getMany(const std::vector<std::string>& keys) {
    std::vector<std::optional<KvEntry>> out;
    out.reserve(keys.size());
    for (const auto& key : keys) {
      auto entry = get(key);
      if (entry) {
        out.emplace_back(std::move(*entry));
      } else if (entry.code() == Code::NotFound) {
        out.emplace_back(std::nullopt);
      } else {
        return entry.status();
      }
    }
    return out;
  }

  // Unconditional write. Returns the new revision.
  virtual Result<uint64_t> put(const std::string& key, const std::string& value) = 0;

  // Writes only when key is absent (never written, deleted or purged).
  // AlreadyExists when it holds a value. Returns the new revision.
  virtual Result<uint64_t> create(const std::string& key, const std::string& value) = 0;

  // create() without waiting for the backend: `done` receives exactly what
  // create() would have returned, exactly once, either before createAsync
  // returns or later on a thread of the plugin's (within the store's
  // timeout, also when the connection is lost or the store is closed).
  // `done` must be quick and must not block: it may run on the thread that
  // delivers every other acknowledgement. It must not throw.
  // The default runs create() on the calling thread; the nats plugin sends
  // the write and returns, so the caller's thread is not parked on the
  // round trip (the HTTP front end answers POST /api/work this way).
  using CreateDone = std::function<void(Result<uint64_t>)>;
  virtual void createAsync(const std::string& key, const std::string& value, CreateDone done) {
    done(create(key, value));
  }

  // Compare-and-set: writes only when key currently holds a value at exactly
  // expectedRevision. Conflict otherwise (including when key is absent).
  // Returns the new revision.
  virtual Result<uint64_t> update(const std::string& key, const std::string& value,
                                  uint64_t expectedRevision) = 0;

  // Deletes key. expectedRevision == 0: unconditional, and Ok when absent.
  // Otherwise only when key holds exactly that revision, Conflict when not.
  virtual Status erase(const std::string& key, uint64_t expectedRevision = 0) = 0;

  // Keys under prefix ("" = all), in no particular order. Terminates even when
  // the bucket is empty or the latest operation was a delete.
  // Freshness: a listing includes every write acknowledged before the call,
  // except on replicated NATS buckets, where it is served by a consumer that
  // a lagging replica (or a just-elected leader) may host: there it can miss
  // or show the previous state of the newest writes for a moment. get() is
  // always fresh (leader reads).
  virtual Result<std::vector<std::string>> keys(const std::string& prefix) = 0;

  // Keys, values and revisions under prefix, in no particular order.
  virtual Result<std::vector<KvEntry>> scan(const std::string& prefix) = 0;

  // Starts a change feed for keys under prefix: every current value as Put,
  // then CaughtUp, then later Puts and Deletes, each with at most about a
  // second of latency. The feed survives reconnects; when a backend cannot
  // prove no change was missed across one, it sends Reset and replays.
  // Unavailable when the backend cannot start it now (retry later).
  //
  // What every backend guarantees (the contract suite checks each point):
  //  * The latest state of every key arrives: its newest value as a Put with
  //    that value's revision, or a Delete. (Exception: expiry by max age may
  //    produce no event, see BucketOptions.)
  //  * Per key, changes arrive in the order they were made; between Resets,
  //    changes of different keys arrive in revision order, no change arrives
  //    twice, and nothing arrives that was not written.
  //  * INTERMEDIATE VALUES MAY BE COALESCED. A watcher that falls behind may
  //    receive only the newest of several writes to one key, and a Delete
  //    without the Puts before it. Nothing may depend on seeing every
  //    intermediate value: state that must not be lost has to be carried by
  //    the latest value itself (work items keep a transition log for this,
  //    see work_transitions.h).
  // Beyond that, per backend:
  //  * nats: coalescing can happen at any time. With history 1 the stream
  //    keeps only the newest message per key, and a consumer behind the
  //    writes never reads the replaced ones (a busy machine is enough).
  //  * redis, sqlite, memory: every change arrives, in order, as long as no
  //    Reset intervenes. A Reset replays current values only, which coalesces
  //    whatever changed during the gap (redis: after a reconnect; sqlite:
  //    when the watcher fell behind the trimmed change log).
  virtual Result<std::unique_ptr<KvWatch>> watch(const std::string& prefix,
                                                 WatchCallback callback) = 0;

  // Resuming a watch where an earlier one left off (a restart that loaded a
  // saved copy of a view: docs/architecture.md, "Restart: a saved view").
  //
  // resumeToken() names this incarnation of the bucket: two equal tokens
  // mean one sequence of revisions, so a state saved at revision R under a
  // token can be brought up to date by the changes after R. "" when the
  // backend cannot resume (the default; redis and sqlite replay).
  virtual Result<std::string> resumeToken() { return std::string(); }

  // watch() for a watcher that already holds every key under prefix as it
  // was at revision `after` of the bucket `token` names: each change after
  // it, as Puts and Deletes (coalescing allowed, as in watch()), then
  // CaughtUp, then live changes as watch(). A later re-open of the feed
  // sends Reset and the full replay, as watch() does. NotFound when it
  // cannot resume from there: another incarnation (the token differs),
  // `after` beyond the newest revision, or no support (the default). The
  // caller then drops what it held and starts over with watch().
  // The changes after `after` must still be in the bucket, deletions
  // included: resuming is only as good as the backend's record of them
  // (nats keeps a delete marker per key; a bucket whose values expire by
  // max age can lose deletions this way and must not be resumed).
  virtual Result<std::unique_ptr<KvWatch>> watchFrom(const std::string& prefix,
                                                     const std::string& token, uint64_t after,
                                                     WatchCallback callback) {
    (void)prefix;
    (void)token;
    (void)after;
    (void)callback;
    return Status::notFound("bucket " + name() + " cannot resume a watch");
  }
};

// A JetStream stream as the channel reads of docs/api.md §2.8 need it.
struct StreamInfo {
  std::string name;
  std::vector<std::string> subjects;  // as configured, in configured order
  std::string description;            // "" when the stream has none
  // Sequence range of the stored messages. An empty stream has lastSeq ==
  // firstSeq - 1 (both 0 when it never held a message). Sequences inside the
  // range may be missing (deleted messages).
  uint64_t firstSeq = 0;
  uint64_t lastSeq = 0;
};

// One stored stream message.
struct StreamMessage {
  std::string data;    // payload bytes, verbatim
  int64_t timeMs = 0;  // the stream's store time (epoch ms), 0 if unknown
};

// Optional NATS-only messaging (docs/api.md §6.4, §2.8). Only the nats plugin
// provides it; KvStore::messaging() returns nullptr elsewhere.
//
// The read operations follow the common contract of this file (bounded by
// kv.timeoutMs, Unavailable at once while disconnected, Timeout when the
// server does not answer in time). Their default implementations answer
// Unimplemented so that messaging-only fakes need not provide them.
class KvMessaging {
 public:
  virtual ~KvMessaging() = default;
  // Core NATS publish, fire-and-forget.
  virtual Status publish(const std::string& subject, const std::string& payload) = 0;
  // JetStream publish; NotFound when no stream captures the subject.
  virtual Status publishJetStream(const std::string& subject, const std::string& payload) = 0;

  // Every stream whose name starts with prefix ("" = all), in no particular
  // order. No stream at all is an empty list, not NotFound.
  virtual Result<std::vector<StreamInfo>> listStreams(const std::string& prefix) {
    (void)prefix;
    return Status(Code::Unimplemented, "listStreams not supported by this backend");
  }
  // One stream; NotFound when it does not exist.
  virtual Result<StreamInfo> streamInfo(const std::string& stream) {
    (void)stream;
    return Status(Code::Unimplemented, "streamInfo not supported by this backend");
  }
  // The message at seq; NotFound when the stream or that sequence does not
  // exist (deleted, purged, or outside the range).
  virtual Result<StreamMessage> getMessage(const std::string& stream, uint64_t seq) {
    (void)stream;
    (void)seq;
    return Status(Code::Unimplemented, "getMessage not supported by this backend");
  }
};

enum class ConnectionState { Connecting, Connected, Disconnected, Closed };

class KvStore {
 public:
  virtual ~KvStore() = default;

  // The backend name ("nats", "redis", "sqlite", "memory").
  virtual const std::string& name() const = 0;

  // Opens bucket name, creating it with options when missing (idempotent:
  // an existing bucket keeps its settings). Unavailable while disconnected;
  // the caller retries. The bucket stays valid for the life of the store.
  virtual Result<std::shared_ptr<KvBucket>> openBucket(const std::string& name,
                                                       const BucketOptions& options) = 0;

  // One cheap round trip (nats: JetStream account info; redis: PING; sqlite:
  // SELECT 1). Ok, Unavailable or Timeout.
  virtual Status ping() = 0;

  // The last known connection state, without I/O. Never blocks.
  virtual ConnectionState state() const = 0;

  // NATS extras, or nullptr. Owned by the store.
  virtual KvMessaging* messaging() { return nullptr; }
};

}  // namespace weft
