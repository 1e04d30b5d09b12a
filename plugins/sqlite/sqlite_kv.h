// The sqlite storage backend: weft::KvStore on one SQLite database file.
//
// Settings (PluginContext::settings):
//   sqlite.path            database file (default ./var/weft.db); the parent
//                          directory is created. ":memory:" and "" are refused:
//                          every pooled connection would see its own database.
//   sqlite.synchronous     OFF | NORMAL | FULL | EXTRA (default FULL), applied to
//                          every connection. FULL fsyncs the WAL on each commit,
//                          so an acknowledged write survives power loss; NORMAL
//                          survives a process crash but may lose the last
//                          commits on power loss.
//   sqlite.pollIntervalMs  watch poll period, 1..1000 (default 100).
//   kv.timeoutMs           bound on every call, lock waits included (default 2000).
// Tuning keys outside the docs/api.md table (tests use them to force trimming):
//   sqlite.changeLogRetentionMs   change-log rows younger than this are kept
//                                 (default 60000, at least 1000), unless ...
//   sqlite.changeLogMaxRows       ... the log holds more rows than this (default
//                                 10000): the oldest go first. The log holds
//                                 values, so this also bounds its size. Watchers
//                                 read it every poll; one that falls further
//                                 behind than the log reaches gets a Reset.
//   sqlite.maintenanceIntervalMs  period of the expiry sweep, log trim and WAL
//                                 checkpoint (default 1000).
//
// Schema (created on first open; all writes go through BEGIN IMMEDIATE):
//
//   meta(name TEXT PRIMARY KEY, value INTEGER)
//     'schema_version' = 1
//     'trimmed_through' = every change-log row with seq <= this was trimmed.
//   buckets(name TEXT PRIMARY KEY, max_age_ms INTEGER, history INTEGER,
//           created_at_ms INTEGER)
//     One row per bucket, written once: an existing bucket keeps its options.
//     history is recorded but not used: this backend keeps only the latest
//     value per key (kv.h allows that).
//   kv(bucket TEXT, key BLOB, revision INTEGER, updated_at_ms INTEGER,
//      value BLOB, PRIMARY KEY(bucket, key))
//     The current value of each key. Keys are stored as BLOBs so that any
//     byte string (NUL, '%', '_', invalid UTF-8) is a key and compares
//     bytewise: a prefix scan is the range [prefix, successor(prefix)).
//   changelog(seq INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT, key BLOB,
//             op INTEGER, at_ms INTEGER, value BLOB)
//     One row per write, appended in the same transaction as the kv change.
//     seq IS the revision: the kv row written by a change carries its seq, and
//     a delete's revision is the seq of its row. AUTOINCREMENT never reuses a
//     seq, even after trimming, so revisions strictly increase per database
//     (hence per bucket) and across processes sharing the file.
//     op: 1 = put, 2 = delete, 3 = expired (removed by the sweep).
//     value: the written bytes for a put, NULL otherwise.
//     No secondary index: a watch poll reads the rowid range seq > last seen,
//     which holds only the rows written since its previous poll.
//     Rows are trimmed by age and count (see above); meta.trimmed_through lets
//     a watcher notice that rows it had not read yet are gone.
//
// Expiry (BucketOptions.maxAgeMs): reads filter out rows with
// updated_at_ms <= now - maxAgeMs, so an expired key is absent at once; the
// maintenance thread then deletes them and logs op 3 rows, so watchers see a
// Delete for an expired key (unlike NATS and Redis). The sweep scans a bucket
// every maxAgeMs/10 (at least sqlite.maintenanceIntervalMs, at most a minute)
// instead of keeping an index on updated_at_ms that every write would pay for.
//
// Checkpoints: with SQLite's default, the commit that takes the WAL past 1000
// pages copies it into the database file (and, with FULL, fsyncs that) before
// it returns. Here the maintenance thread checkpoints instead (PASSIVE: it
// never blocks readers or writers), and commits only take over beyond 10000
// pages (about 40 MB) should it fall behind.
//
// Concurrency and deadlines: a connection pool (SQLITE_OPEN_NOMUTEX, one
// thread per connection at a time); the writers of one process queue for a
// write slot, then BEGIN IMMEDIATE; between processes SQLite's file lock
// decides, and a busy handler waits for it (the role of busy_timeout) until
// the call's deadline, kv.timeoutMs after the call began, which a progress
// handler also enforces on long statements. Lock waits past the deadline ->
// Timeout; a file that cannot be opened, read or written (CANTOPEN, FULL,
// IOERR, READONLY, ...) -> Unavailable and state() Disconnected until a call
// succeeds again. Reads run outside explicit transactions, except the watch
// snapshot and poll, which need one consistent view.
//
// Watch: a snapshot of the matching kv rows and the current max seq, read in
// one read transaction, then a poll of changelog rows with seq > last seen,
// every sqlite.pollIntervalMs or at once after a local commit. `PRAGMA
// data_version` on the watch's own connection skips the query when nothing
// was committed; it moves on commits by any connection, other processes
// included, which is how writes by another weftd on the same file are seen.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sqlite_db.h"
#include "weft/kv.h"
#include "weft/plugin.h"

namespace weft::sqlite_plugin {

struct Settings {
  std::string path = "./var/weft.db";
  std::string synchronous = "FULL";  // upper case, one of OFF NORMAL FULL EXTRA
  int64_t pollIntervalMs = 100;
  int64_t timeoutMs = 2000;
  int64_t changeLogRetentionMs = 60000;
  int64_t changeLogMaxRows = 10000;
  int64_t maintenanceIntervalMs = 1000;
};

// Reads the settings above, applying defaults; an invalid value gives
// InvalidArgument with a message that names the key.
Result<Settings> parseSettings(const std::map<std::string, std::string>& settings);

using LogFn = std::function<void(LogLevel, const std::string&)>;

// Wall-clock milliseconds: updated_at_ms and at_ms are compared across
// processes, so they cannot use a steady clock.
int64_t nowMs();

// What a store, its buckets and its watches share. Buckets and watches hold it
// by shared_ptr so that one outliving the store stays memory-safe.
class StoreCore {
 public:
  StoreCore(Settings settings, LogFn log);

  const Settings& settings() const { return settings_; }
  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(settings_.timeoutMs);
  }

  // Runs body on a pooled connection whose deadline is kv.timeoutMs from now,
  // after making sure the file is open and has the schema. The outcome feeds
  // state(); exceptions from body become Internal.
  Status withConnection(const char* what, const std::function<Status(Connection&)>& body);

  // Like withConnection, inside BEGIN IMMEDIATE ... COMMIT. A non-Ok status
  // from body rolls back and is returned as is (Conflict, AlreadyExists...).
  // Writers of this process queue on a mutex first, so the file lock is only
  // contended between processes.
  Status writeTransaction(const char* what, const std::function<Status(Connection&)>& body);

  // A connection outside the pool, ready to use, for a watch thread.
  Result<std::unique_ptr<Connection>> openDedicated();

  // Makes sure the database has WAL mode and the schema. Cheap once done.
  Status ensureReady(Connection& conn);

  // Records the outcome of a call for state() and logs transitions.
  void noteOutcome(const Status& status);
  ConnectionState state() const { return state_.load(); }

  // Local change notification: watches wake at once after a commit by this
  // store instead of waiting for their next poll.
  uint64_t changeGeneration();
  // Returns when the generation moved past seen, stop is set, or timeout passed.
  void waitForChange(uint64_t seen, std::chrono::milliseconds timeout,
                     const std::atomic<bool>& stop);
  // Sleeps for duration unless stop is set (raiseAndWake ends the sleep).
  void sleepUnlessStopped(std::chrono::milliseconds duration, const std::atomic<bool>& stop);
  // Sets flag and wakes every waiter (no lost wake-up: set under the lock).
  void raiseAndWake(std::atomic<bool>& flag);

  // Maintenance, run by the store's thread. Both are idempotent and safe to
  // run from several processes at once.
  Status sweepExpired();
  Status trimChangeLog();
  // Copies the WAL into the database file (PASSIVE: never waits for, nor
  // blocks, readers and writers), so that commits rarely pay for it.
  Status checkpoint();

  void log(LogLevel level, const std::string& message) const;

 private:
  const Settings settings_;
  const LogFn log_;
  const std::string setupSql_;  // per-connection pragmas
  ConnectionPool pool_;

  // The write slot of this process: one writer at a time, waited for until
  // the call's deadline. (A mutex and condition variable rather than
  // std::timed_mutex, whose clocklock ThreadSanitizer does not understand.)
  std::mutex writerMutex_;
  std::condition_variable writerCv_;
  bool writerBusy_ = false;

  std::mutex initMutex_;
  std::atomic<bool> ready_{false};
  std::atomic<ConnectionState> state_{ConnectionState::Connecting};
  // When the last "disk full" warning was logged (steady clock, ms): one
  // line per few seconds, not one per failed write.
  std::atomic<int64_t> diskFullLoggedMs_{0};

  std::mutex changeMutex_;
  std::condition_variable changeCv_;
  uint64_t changeGeneration_ = 0;

  // When each bucket with a max age is swept next (maintenance thread only).
  std::map<std::string, Clock::time_point> nextSweep_;
};

class SqliteBucket : public KvBucket {
 public:
  SqliteBucket(std::shared_ptr<StoreCore> core, std::string name, BucketOptions options)
      : core_(std::move(core)), name_(std::move(name)), options_(options) {}

  const std::string& name() const override { return name_; }
  Result<KvEntry> get(const std::string& key) override;
  Result<uint64_t> put(const std::string& key, const std::string& value) override;
  Result<uint64_t> create(const std::string& key, const std::string& value) override;
  Result<uint64_t> update(const std::string& key, const std::string& value,
                          uint64_t expectedRevision) override;
  Status erase(const std::string& key, uint64_t expectedRevision = 0) override;
  Result<std::vector<std::string>> keys(const std::string& prefix) override;
  Result<std::vector<KvEntry>> scan(const std::string& prefix) override;
  Result<std::unique_ptr<KvWatch>> watch(const std::string& prefix,
                                         WatchCallback callback) override;

 private:
  // Rows with updated_at_ms at or below this are expired (INT64_MIN: never).
  int64_t expiryCutoff() const;

  // The shared body of put, create and update: one write transaction that
  // appends the change-log row (its seq is the new revision), then runs sql
  // with (bucket, key, revision, now, value) bound to 1..5 and bindExtra
  // binding the rest. When sql changed no row, the transaction is rolled
  // back and unchanged() is the answer. Returns the new revision.
  Result<uint64_t> writeValue(const char* op, const char* sql, const std::string& key,
                              const std::string& value, const std::function<void(Stmt&)>& bindExtra,
                              const std::function<Status()>& unchanged);

  const std::shared_ptr<StoreCore> core_;
  const std::string name_;
  const BucketOptions options_;  // as stored in the buckets table
};

class WatchWorker;

class SqliteWatch : public KvWatch {
 public:
  SqliteWatch(std::shared_ptr<WatchWorker> worker, std::thread thread)
      : worker_(std::move(worker)), thread_(std::move(thread)) {}
  ~SqliteWatch() override { stop(); }
  void stop() override;

 private:
  std::mutex mutex_;  // makes concurrent stop() calls join once
  std::shared_ptr<WatchWorker> worker_;
  std::thread thread_;
};

class SqliteStore : public KvStore {
 public:
  explicit SqliteStore(std::shared_ptr<StoreCore> core);
  ~SqliteStore() override;

  const std::string& name() const override { return name_; }
  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& name,
                                               const BucketOptions& options) override;
  Status ping() override;
  ConnectionState state() const override { return core_->state(); }

 private:
  void maintenanceLoop();

  const std::string name_ = "sqlite";
  const std::shared_ptr<StoreCore> core_;
  std::mutex bucketsMutex_;
  std::map<std::string, std::shared_ptr<SqliteBucket>> buckets_;

  std::mutex stopMutex_;
  std::condition_variable stopCv_;
  bool stopping_ = false;
  std::thread maintenance_;
};

// Creates a store from the plugin context: InvalidArgument for bad settings.
// A file that cannot be opened yet is not an error: the store starts
// Disconnected, its calls return Unavailable, and each call retries the open.
Result<std::unique_ptr<SqliteStore>> createStore(const PluginContext& context);

}  // namespace weft::sqlite_plugin
