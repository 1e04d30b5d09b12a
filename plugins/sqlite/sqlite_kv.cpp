#include "sqlite_kv.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>
#include <vector>

namespace weft::sqlite_plugin {

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
constexpr int kOpPut = 1;
constexpr int kOpDelete = 2;
constexpr int kOpExpired = 3;
constexpr int64_t kWatchBatch = 1000;  // change-log rows per watch poll query
constexpr int64_t kSweepBatch = 500;   // expired keys removed per transaction
constexpr int64_t kTrimBatch = 2000;   // change-log rows trimmed per transaction
constexpr size_t kMaxIdleConnections = 8;
constexpr int kAutoCheckpointPages = 10000;  // backstop; see "Checkpoints" in the header
constexpr int64_t kMaxSweepPeriodMs = 60000;

// --- SQL --------------------------------------------------------------------
// Named constants: Connection caches prepared statements by pointer.

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS meta("
    "  name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS buckets("
    "  name TEXT PRIMARY KEY, max_age_ms INTEGER NOT NULL, history INTEGER NOT NULL,"
    "  created_at_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS kv("
    "  bucket TEXT NOT NULL, key BLOB NOT NULL, revision INTEGER NOT NULL,"
    "  updated_at_ms INTEGER NOT NULL, value BLOB NOT NULL,"
    "  PRIMARY KEY(bucket, key));"
    "CREATE TABLE IF NOT EXISTS changelog("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT NOT NULL, key BLOB NOT NULL,"
    "  op INTEGER NOT NULL, at_ms INTEGER NOT NULL, value BLOB);"
    "INSERT OR IGNORE INTO meta(name, value) VALUES('schema_version', 1), ('trimmed_through', 0);";
constexpr int64_t kSchemaVersion = 1;
constexpr char kSchemaVersionQuery[] = "SELECT value FROM meta WHERE name='schema_version'";
constexpr char kSchemaTables[] =
    "SELECT count(*) FROM sqlite_master WHERE type='table'"
    " AND name IN ('meta', 'buckets', 'kv', 'changelog')";
constexpr int64_t kSchemaTableCount = 4;
constexpr char kJournalMode[] = "PRAGMA journal_mode";
constexpr char kJournalWal[] = "PRAGMA journal_mode=WAL";
constexpr char kDataVersion[] = "PRAGMA data_version";

constexpr char kBegin[] = "BEGIN";
constexpr char kBeginImmediate[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";
constexpr char kSelectOne[] = "SELECT 1";

constexpr char kBucketSelect[] = "SELECT max_age_ms, history FROM buckets WHERE name=?1";
constexpr char kBucketInsert[] =
    "INSERT OR IGNORE INTO buckets(name, max_age_ms, history, created_at_ms)"
    " VALUES(?1, ?2, ?3, ?4)";

constexpr char kGet[] =
    "SELECT value, revision FROM kv WHERE bucket=?1 AND key=?2 AND updated_at_ms>?3";
constexpr char kLogPut[] =
    "INSERT INTO changelog(bucket, key, op, at_ms, value) VALUES(?1, ?2, 1, ?3, ?4)";
constexpr char kLogRemoval[] =
    "INSERT INTO changelog(bucket, key, op, at_ms, value) VALUES(?1, ?2, ?3, ?4, NULL)";
constexpr char kUpsert[] =
    "INSERT INTO kv(bucket, key, revision, updated_at_ms, value) VALUES(?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT(bucket, key) DO UPDATE SET revision=excluded.revision,"
    " updated_at_ms=excluded.updated_at_ms, value=excluded.value";
// Create-if-absent: an expired row that the sweep has not removed yet counts
// as absent, so the conflict branch overwrites only such a row.
constexpr char kCreate[] =
    "INSERT INTO kv(bucket, key, revision, updated_at_ms, value) VALUES(?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT(bucket, key) DO UPDATE SET revision=excluded.revision,"
    " updated_at_ms=excluded.updated_at_ms, value=excluded.value"
    " WHERE kv.updated_at_ms<=?6";
constexpr char kUpdate[] =
    "UPDATE kv SET revision=?3, updated_at_ms=?4, value=?5"
    " WHERE bucket=?1 AND key=?2 AND revision=?6 AND updated_at_ms>?7";
constexpr char kDelete[] = "DELETE FROM kv WHERE bucket=?1 AND key=?2";
constexpr char kDeleteAt[] =
    "DELETE FROM kv WHERE bucket=?1 AND key=?2 AND revision=?3 AND updated_at_ms>?4";

// Prefix queries: with an upper bound, or (prefix "" or all 0xFF bytes)
// without one. Never LIKE: keys may hold '%', '_' and any other byte.
constexpr char kKeysFrom[] = "SELECT key FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3";
constexpr char kKeysRange[] =
    "SELECT key FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3 AND key<?4";
constexpr char kScanFrom[] =
    "SELECT key, value, revision FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3";
constexpr char kScanRange[] =
    "SELECT key, value, revision FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3"
    " AND key<?4";

constexpr char kMaxSeq[] =
    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name='changelog'), 0)";
constexpr char kTrimmedThrough[] = "SELECT value FROM meta WHERE name='trimmed_through'";
constexpr char kChangesFrom[] =
    "SELECT seq, key, op, value FROM changelog WHERE bucket=?1 AND seq>?2 AND key>=?3"
    " ORDER BY seq LIMIT ?4";
constexpr char kChangesRange[] =
    "SELECT seq, key, op, value FROM changelog WHERE bucket=?1 AND seq>?2 AND key>=?3"
    " AND key<?5 ORDER BY seq LIMIT ?4";

constexpr char kExpiringBuckets[] = "SELECT name, max_age_ms FROM buckets WHERE max_age_ms>0";
constexpr char kExpiredKeys[] = "SELECT key FROM kv WHERE bucket=?1 AND updated_at_ms<=?2 LIMIT ?3";
constexpr char kOldestSeq[] = "SELECT MIN(seq) FROM changelog";
// Walks from the oldest row and stops at the first young one, so it costs the
// number of rows about to be trimmed, without an index on at_ms.
constexpr char kFirstYoungSeq[] = "SELECT seq FROM changelog WHERE at_ms>=?1 ORDER BY seq LIMIT 1";
constexpr char kTrim[] = "DELETE FROM changelog WHERE seq<=?1";
constexpr char kSetTrimmed[] = "UPDATE meta SET value=MAX(value, ?1) WHERE name='trimmed_through'";

// --- helpers ----------------------------------------------------------------

// The smallest byte string greater than every string starting with prefix;
// false when there is none (prefix empty or all 0xFF bytes).
bool prefixSuccessor(const std::string& prefix, std::string* successor) {
  std::string s = prefix;
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xFF) s.pop_back();
  if (s.empty()) return false;
  s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  *successor = std::move(s);
  return true;
}

Status stepFailure(Connection& conn, int rc, const std::string& what) {
  if (isStorageFailure(rc)) conn.markBroken();
  return statusFromSqlite(rc, what, conn.db());
}

// Runs a statement that returns nothing; no bindings.
Status runSimple(Connection& conn, const char* sql, const std::string& what) {
  Status status;
  sqlite3_stmt* raw = conn.prepare(sql, &status);
  if (raw == nullptr) return status;
  Stmt stmt(raw);
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) return stepFailure(conn, rc, what);
  return Status::ok();
}

// Reads one integer from a single-row query without bindings.
Status queryInt(Connection& conn, const char* sql, const std::string& what, int64_t* out,
                bool* isNull = nullptr) {
  Status status;
  sqlite3_stmt* raw = conn.prepare(sql, &status);
  if (raw == nullptr) return status;
  Stmt stmt(raw);
  int rc = stmt.step();
  if (rc == SQLITE_ROW) {
    if (isNull != nullptr) *isNull = stmt.columnIsNull(0);
    *out = stmt.columnInt64(0);
    return Status::ok();
  }
  if (rc == SQLITE_DONE) {
    if (isNull != nullptr) *isNull = true;
    *out = 0;
    return Status::ok();
  }
  return stepFailure(conn, rc, what);
}

// Ends a read or write transaction after a failure; never interrupted by the
// (possibly already passed) call deadline.
void rollbackQuietly(Connection& conn, std::chrono::milliseconds bound) {
  if (sqlite3_get_autocommit(conn.db())) return;
  conn.setDeadline(Clock::now() + bound);
  if (sqlite3_exec(conn.db(), kRollback, nullptr, nullptr, nullptr) != SQLITE_OK &&
      !sqlite3_get_autocommit(conn.db())) {
    conn.markBroken();  // still inside a transaction: never reuse it
  }
}

template <typename F>
auto guarded(const char* what, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Status::internal(std::string("sqlite ") + what + ": " + e.what());
  } catch (...) {
    return Status::internal(std::string("sqlite ") + what + ": unknown exception");
  }
}

std::string trim(const std::string& s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

Status parseInt(const std::map<std::string, std::string>& settings, const char* key, int64_t min,
                int64_t max, int64_t* out) {
  auto it = settings.find(key);
  if (it == settings.end()) return Status::ok();
  std::string text = trim(it->second);
  if (text.empty()) return Status::ok();  // an empty value means "use the default"
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return Status::invalidArgument(std::string(key) + ": invalid value '" + it->second +
                                   "' (an integer from " + std::to_string(min) + " to " +
                                   std::to_string(max) + " is expected)");
  }
  *out = value;
  return Status::ok();
}

}  // namespace

int64_t nowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// --- settings ---------------------------------------------------------------

Result<Settings> parseSettings(const std::map<std::string, std::string>& settings) {
  Settings s;
  auto path = settings.find("sqlite.path");
  if (path != settings.end()) {
    std::string value = trim(path->second);
    if (value.empty()) return Status::invalidArgument("sqlite.path: must not be empty");
    if (value == ":memory:" || value.rfind("file:", 0) == 0) {
      return Status::invalidArgument("sqlite.path: '" + value +
                                     "' is not supported; name a database file");
    }
    s.path = value;
  }
  auto sync = settings.find("sqlite.synchronous");
  if (sync != settings.end() && !trim(sync->second).empty()) {
    std::string value = trim(sync->second);
    std::transform(value.begin(), value.end(), value.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (value != "OFF" && value != "NORMAL" && value != "FULL" && value != "EXTRA") {
      return Status::invalidArgument("sqlite.synchronous: invalid value '" + sync->second +
                                     "' (OFF, NORMAL, FULL or EXTRA is expected)");
    }
    s.synchronous = value;
  }
  // The watch contract allows at most about a second of latency (docs/api.md §6.1).
  Status st = parseInt(settings, "sqlite.pollIntervalMs", 1, 1000, &s.pollIntervalMs);
  if (st.isOk()) st = parseInt(settings, "kv.timeoutMs", 1, 3600000, &s.timeoutMs);
  if (st.isOk()) {
    // Under a second or two, watchers that poll on time would still reset.
    st = parseInt(settings, "sqlite.changeLogRetentionMs", 1000,
                  std::numeric_limits<int64_t>::max(), &s.changeLogRetentionMs);
  }
  if (st.isOk()) {
    st = parseInt(settings, "sqlite.changeLogMaxRows", 1, std::numeric_limits<int64_t>::max(),
                  &s.changeLogMaxRows);
  }
  if (st.isOk()) {
    st = parseInt(settings, "sqlite.maintenanceIntervalMs", 10, 3600000, &s.maintenanceIntervalMs);
  }
  if (!st.isOk()) return st;
  return s;
}

// --- StoreCore --------------------------------------------------------------

StoreCore::StoreCore(Settings settings, LogFn log)
    : settings_(std::move(settings)),
      log_(std::move(log)),
      setupSql_("PRAGMA synchronous=" + settings_.synchronous +
                "; PRAGMA wal_autocheckpoint=" + std::to_string(kAutoCheckpointPages)),
      pool_(settings_.path, setupSql_, kMaxIdleConnections) {}

void StoreCore::log(LogLevel level, const std::string& message) const {
  if (!log_) return;
  try {
    log_(level, "sqlite: " + message);
  } catch (...) {
    // A failing logger must not turn into a failing storage call.
  }
}

void StoreCore::noteOutcome(const Status& status) {
  if (isDiskFull(status)) {
    // Writes fail until space is freed, but the file is intact and reads
    // still work: keep the state (weftd refuses every request while the
    // store is not Connected) and let each write report the full disk.
    const int64_t nowMs =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
            .count();
    int64_t last = diskFullLoggedMs_.load();
    if (nowMs - last >= 5000 && diskFullLoggedMs_.compare_exchange_strong(last, nowMs)) {
      log(LogLevel::Warn, "database " + settings_.path + " cannot be written: " + status.message());
    }
    return;
  }
  switch (status.code()) {
    case Code::Unavailable: {
      ConnectionState previous = state_.exchange(ConnectionState::Disconnected);
      if (previous != ConnectionState::Disconnected) {
        log(LogLevel::Error, "database " + settings_.path + " unavailable: " + status.message());
      }
      // Reopen on the next call rather than keep handles that failed.
      pool_.clearIdle();
      return;
    }
    case Code::Timeout:
      // Another writer held the lock (or a statement ran long): the file is
      // fine, so the state does not change.
      log(LogLevel::Debug, status.message());
      return;
    case Code::Internal:
      log(LogLevel::Error, status.message());
      return;
    default: {
      // Ok and the logical outcomes (NotFound, Conflict, ...) prove the file works.
      ConnectionState previous = state_.exchange(ConnectionState::Connected);
      if (previous == ConnectionState::Disconnected) {
        log(LogLevel::Info, "database " + settings_.path + " available again");
      } else if (previous == ConnectionState::Connecting) {
        log(LogLevel::Info,
            "database " + settings_.path + " open (synchronous=" + settings_.synchronous + ")");
      }
      return;
    }
  }
}

Status StoreCore::ensureReady(Connection& conn) {
  if (ready_.load(std::memory_order_acquire)) return Status::ok();
  std::lock_guard<std::mutex> lock(initMutex_);
  if (ready_.load(std::memory_order_relaxed)) return Status::ok();

  // Every step below may wait for another process initialising the same file.
  conn.setDeadline(Clock::now() + timeout());
  // WAL is a property of the file: set once, it stays for every connection
  // and process. It lets readers (watch polls, gets) run beside the writer.
  // Asked before set, so that a read-only file already in WAL mode still
  // serves reads.
  for (const char* sql : {kJournalMode, kJournalWal}) {
    Status status;
    sqlite3_stmt* raw = conn.prepare(sql, &status);
    if (raw == nullptr) return status;
    Stmt stmt(raw);
    int rc = stmt.step();
    if (rc != SQLITE_ROW) return stepFailure(conn, rc, "set WAL mode on " + settings_.path);
    std::string mode = stmt.columnBytes(0);
    if (mode == "wal") break;
    if (sql == kJournalWal) {
      return Status::unavailable("sqlite: cannot use WAL mode on " + settings_.path +
                                 " (journal_mode is '" + mode + "')");
    }
  }
  // Likewise the schema is only written when missing.
  int64_t tables = 0;
  Status status = queryInt(conn, kSchemaTables, "inspect schema", &tables);
  if (!status.isOk()) return status;
  if (tables != kSchemaTableCount) {
    status = runSimple(conn, kBeginImmediate, "begin schema transaction");
    if (status.isOk()) status = conn.exec(kSchema, "create schema in " + settings_.path);
    if (status.isOk()) status = runSimple(conn, kCommit, "commit schema");
    if (!status.isOk()) {
      rollbackQuietly(conn, timeout());
      return status;
    }
  }
  int64_t version = 0;
  status = queryInt(conn, kSchemaVersionQuery, "read schema version", &version);
  if (!status.isOk()) return status;
  if (version != kSchemaVersion) {
    return Status::unavailable("sqlite: " + settings_.path + " has schema version " +
                               std::to_string(version) + ", this plugin uses " +
                               std::to_string(kSchemaVersion));
  }
  ready_.store(true, std::memory_order_release);
  return Status::ok();
}

Status StoreCore::withConnection(const char* what, const std::function<Status(Connection&)>& body) {
  Status status = guarded(what, [&]() -> Status {
    auto deadline = Clock::now() + timeout();
    auto acquired = pool_.acquire();
    if (!acquired.isOk()) return acquired.status();
    std::unique_ptr<Connection> conn = std::move(acquired.value());
    Status result = ensureReady(*conn);
    if (result.isOk()) {
      conn->setDeadline(deadline);
      result = body(*conn);
      rollbackQuietly(*conn, timeout());  // a read transaction left open by a failure
    }
    pool_.release(std::move(conn));
    return result;
  });
  noteOutcome(status);
  return status;
}

Status StoreCore::writeTransaction(const char* what,
                                   const std::function<Status(Connection&)>& body) {
  bool committed = false;
  Status status = guarded(what, [&]() -> Status {
    auto deadline = Clock::now() + timeout();
    {
      std::unique_lock<std::mutex> lock(writerMutex_);
      if (!writerCv_.wait_until(lock, deadline, [this] { return !writerBusy_; })) {
        return Status::timeout(
            std::string("sqlite ") + what +
            ": other writes of this process held the database past kv.timeoutMs");
      }
      writerBusy_ = true;
    }
    struct SlotRelease {
      StoreCore* core;
      ~SlotRelease() {
        {
          std::lock_guard<std::mutex> lock(core->writerMutex_);
          core->writerBusy_ = false;
        }
        core->writerCv_.notify_one();
      }
    } release{this};
    auto acquired = pool_.acquire();
    if (!acquired.isOk()) return acquired.status();
    std::unique_ptr<Connection> conn = std::move(acquired.value());
    Status result = ensureReady(*conn);
    if (result.isOk()) {
      conn->setDeadline(deadline);
      // IMMEDIATE takes the write lock up front, waiting through the busy
      // handler; a deferred transaction that upgrades later would get
      // SQLITE_BUSY at once, ignoring any wait.
      result = runSimple(*conn, kBeginImmediate, std::string(what) + ": begin");
      if (result.isOk()) {
        result = body(*conn);
        if (result.isOk()) {
          // The work is done: let the commit (the fsync) finish even when the
          // deadline passed meanwhile, rather than throw the write away.
          conn->setDeadline(Clock::now() + timeout());
          result = runSimple(*conn, kCommit, std::string(what) + ": commit");
          committed = result.isOk();
        }
        rollbackQuietly(*conn, timeout());
      }
    }
    pool_.release(std::move(conn));
    return result;
  });
  noteOutcome(status);
  if (committed) {
    {
      std::lock_guard<std::mutex> lock(changeMutex_);
      ++changeGeneration_;
    }
    changeCv_.notify_all();
  }
  return status;
}

Result<std::unique_ptr<Connection>> StoreCore::openDedicated() {
  auto opened = Connection::open(settings_.path, setupSql_);
  if (!opened.isOk()) {
    noteOutcome(opened.status());
    return opened.status();
  }
  Status status = ensureReady(*opened.value());
  noteOutcome(status);
  if (!status.isOk()) return status;
  return std::move(opened.value());
}

uint64_t StoreCore::changeGeneration() {
  std::lock_guard<std::mutex> lock(changeMutex_);
  return changeGeneration_;
}

void StoreCore::waitForChange(uint64_t seen, std::chrono::milliseconds timeout,
                              const std::atomic<bool>& stop) {
  std::unique_lock<std::mutex> lock(changeMutex_);
  changeCv_.wait_for(lock, timeout, [&] { return stop.load() || changeGeneration_ != seen; });
}

void StoreCore::sleepUnlessStopped(std::chrono::milliseconds duration,
                                   const std::atomic<bool>& stop) {
  std::unique_lock<std::mutex> lock(changeMutex_);
  changeCv_.wait_for(lock, duration, [&] { return stop.load(); });
}

void StoreCore::raiseAndWake(std::atomic<bool>& flag) {
  {
    std::lock_guard<std::mutex> lock(changeMutex_);
    flag.store(true);
  }
  changeCv_.notify_all();
}

Status StoreCore::sweepExpired() {
  std::vector<std::pair<std::string, int64_t>> buckets;
  Status status = withConnection("list expiring buckets", [&](Connection& conn) -> Status {
    Status st;
    sqlite3_stmt* raw = conn.prepare(kExpiringBuckets, &st);
    if (raw == nullptr) return st;
    Stmt stmt(raw);
    int rc;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      buckets.emplace_back(stmt.columnBytes(0), stmt.columnInt64(1));
    }
    if (rc != SQLITE_DONE) return stepFailure(conn, rc, "list expiring buckets");
    return Status::ok();
  });
  if (!status.isOk()) return status;

  for (const auto& [bucket, maxAgeMs] : buckets) {
    const auto now = Clock::now();
    auto next = nextSweep_.find(bucket);
    if (next != nextSweep_.end() && now < next->second) continue;
    const int64_t periodMs =
        std::clamp<int64_t>(maxAgeMs / 10, settings_.maintenanceIntervalMs,
                            std::max(kMaxSweepPeriodMs, settings_.maintenanceIntervalMs));
    nextSweep_[bucket] = now + std::chrono::milliseconds(periodMs);
    size_t removed = kSweepBatch;
    while (removed == static_cast<size_t>(kSweepBatch)) {
      removed = 0;
      // Batches keep each transaction short so user writes interleave.
      status = writeTransaction("expiry sweep", [&](Connection& conn) -> Status {
        const int64_t wallNow = nowMs();
        std::vector<std::string> expired;
        Status st;
        {
          sqlite3_stmt* raw = conn.prepare(kExpiredKeys, &st);
          if (raw == nullptr) return st;
          Stmt stmt(raw);
          stmt.bindText(1, bucket);
          stmt.bindInt64(2, wallNow - maxAgeMs);
          stmt.bindInt64(3, kSweepBatch);
          int rc;
          while ((rc = stmt.step()) == SQLITE_ROW) expired.push_back(stmt.columnBytes(0));
          if (rc != SQLITE_DONE) return stepFailure(conn, rc, "find expired keys");
        }
        for (const std::string& key : expired) {
          sqlite3_stmt* raw = conn.prepare(kDelete, &st);
          if (raw == nullptr) return st;
          {
            Stmt del(raw);
            del.bindText(1, bucket);
            del.bindBlob(2, key);
            int rc = del.step();
            if (rc != SQLITE_DONE) return stepFailure(conn, rc, "delete expired key");
          }
          raw = conn.prepare(kLogRemoval, &st);
          if (raw == nullptr) return st;
          Stmt logRow(raw);
          logRow.bindText(1, bucket);
          logRow.bindBlob(2, key);
          logRow.bindInt64(3, kOpExpired);
          logRow.bindInt64(4, wallNow);
          int rc = logRow.step();
          if (rc != SQLITE_DONE) return stepFailure(conn, rc, "log expired key");
        }
        removed = expired.size();
        return Status::ok();
      });
      if (!status.isOk()) return status;
    }
  }
  return Status::ok();
}

Status StoreCore::trimChangeLog() {
  bool more = true;
  while (more) {
    more = false;
    Status status = writeTransaction("change-log trim", [&](Connection& conn) -> Status {
      int64_t maxSeq = 0;
      int64_t oldest = 0;
      int64_t firstYoung = 0;
      bool empty = false;
      bool noYoung = false;
      Status st = queryInt(conn, kMaxSeq, "read max seq", &maxSeq);
      if (st.isOk()) st = queryInt(conn, kOldestSeq, "read oldest seq", &oldest, &empty);
      if (!st.isOk() || empty) return st;
      {
        sqlite3_stmt* raw = conn.prepare(kFirstYoungSeq, &st);
        if (raw == nullptr) return st;
        Stmt stmt(raw);
        stmt.bindInt64(1, nowMs() - settings_.changeLogRetentionMs);
        int rc = stmt.step();
        if (rc == SQLITE_ROW) {
          firstYoung = stmt.columnInt64(0);
        } else if (rc == SQLITE_DONE) {
          noYoung = true;
        } else {
          return stepFailure(conn, rc, "find young change-log rows");
        }
      }
      // Trim what is old by age or beyond the row cap, whichever goes further.
      int64_t cutoff =
          std::max(maxSeq - settings_.changeLogMaxRows, noYoung ? maxSeq : firstYoung - 1);
      if (cutoff < oldest) return Status::ok();
      int64_t upper = std::min(cutoff, oldest + kTrimBatch - 1);
      more = upper < cutoff;
      for (const char* sql : {kTrim, kSetTrimmed}) {
        sqlite3_stmt* raw = conn.prepare(sql, &st);
        if (raw == nullptr) return st;
        Stmt stmt(raw);
        stmt.bindInt64(1, upper);
        int rc = stmt.step();
        if (rc != SQLITE_DONE) return stepFailure(conn, rc, "trim change log");
      }
      return Status::ok();
    });
    if (!status.isOk()) return status;
  }
  return Status::ok();
}

Status StoreCore::checkpoint() {
  return withConnection("checkpoint", [](Connection& conn) -> Status {
    int rc =
        sqlite3_wal_checkpoint_v2(conn.db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    // BUSY: another connection (maybe another process) is checkpointing.
    if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY) return Status::ok();
    return stepFailure(conn, rc, "checkpoint");
  });
}

// --- SqliteBucket -----------------------------------------------------------

int64_t SqliteBucket::expiryCutoff() const {
  return options_.maxAgeMs > 0 ? nowMs() - options_.maxAgeMs : kNever;
}

Result<KvEntry> SqliteBucket::get(const std::string& key) {
  return guarded("get", [&]() -> Result<KvEntry> {
    KvEntry entry;
    bool found = false;
    const int64_t cutoff = expiryCutoff();
    Status status = core_->withConnection("get", [&](Connection& conn) -> Status {
      Status st;
      sqlite3_stmt* raw = conn.prepare(kGet, &st);
      if (raw == nullptr) return st;
      Stmt stmt(raw);
      stmt.bindText(1, name_);
      stmt.bindBlob(2, key);
      stmt.bindInt64(3, cutoff);
      int rc = stmt.step();
      if (rc == SQLITE_ROW) {
        entry.key = key;
        entry.value = stmt.columnBytes(0);
        entry.revision = static_cast<uint64_t>(stmt.columnInt64(1));
        found = true;
        return Status::ok();
      }
      if (rc == SQLITE_DONE) return Status::ok();
      return stepFailure(conn, rc, "get");
    });
    if (!status.isOk()) return status;
    if (!found) return Status::notFound("key '" + key + "' not found in bucket " + name_);
    return entry;
  });
}

namespace {

// Appends a put row to the change log; its seq is the new revision.
Status logPut(Connection& conn, const std::string& bucket, const std::string& key,
              const std::string& value, int64_t now, uint64_t* revision) {
  Status st;
  sqlite3_stmt* raw = conn.prepare(kLogPut, &st);
  if (raw == nullptr) return st;
  Stmt stmt(raw);
  stmt.bindText(1, bucket);
  stmt.bindBlob(2, key);
  stmt.bindInt64(3, now);
  stmt.bindBlob(4, value);
  int rc = stmt.step();
  if (rc != SQLITE_DONE) return stepFailure(conn, rc, "append to change log");
  *revision = static_cast<uint64_t>(sqlite3_last_insert_rowid(conn.db()));
  return Status::ok();
}

Status logRemoval(Connection& conn, const std::string& bucket, const std::string& key, int op,
                  int64_t now) {
  Status st;
  sqlite3_stmt* raw = conn.prepare(kLogRemoval, &st);
  if (raw == nullptr) return st;
  Stmt stmt(raw);
  stmt.bindText(1, bucket);
  stmt.bindBlob(2, key);
  stmt.bindInt64(3, op);
  stmt.bindInt64(4, now);
  int rc = stmt.step();
  if (rc != SQLITE_DONE) return stepFailure(conn, rc, "append to change log");
  return Status::ok();
}

}  // namespace

Result<uint64_t> SqliteBucket::writeValue(const char* op, const char* sql,
                                          const std::string& key, const std::string& value,
                                          const std::function<void(Stmt&)>& bindExtra,
                                          const std::function<Status()>& unchanged) {
  uint64_t revision = 0;
  Status status = core_->writeTransaction(op, [&](Connection& conn) -> Status {
    const int64_t now = nowMs();
    // The log row comes first because its seq is the revision to store; if
    // the write does not apply, the rollback takes the row (and the seq) back.
    Status st = logPut(conn, name_, key, value, now, &revision);
    if (!st.isOk()) return st;
    sqlite3_stmt* raw = conn.prepare(sql, &st);
    if (raw == nullptr) return st;
    Stmt stmt(raw);
    stmt.bindText(1, name_);
    stmt.bindBlob(2, key);
    stmt.bindInt64(3, static_cast<int64_t>(revision));
    stmt.bindInt64(4, now);
    stmt.bindBlob(5, value);
    if (bindExtra) bindExtra(stmt);
    int rc = stmt.step();
    if (rc != SQLITE_DONE) return stepFailure(conn, rc, op);
    if (unchanged && sqlite3_changes(conn.db()) == 0) return unchanged();
    return Status::ok();
  });
  if (!status.isOk()) return status;
  return revision;
}

Result<uint64_t> SqliteBucket::put(const std::string& key, const std::string& value) {
  return guarded("put", [&]() -> Result<uint64_t> {
    return writeValue("put", kUpsert, key, value, nullptr, nullptr);
  });
}

Result<uint64_t> SqliteBucket::create(const std::string& key, const std::string& value) {
  return guarded("create", [&]() -> Result<uint64_t> {
    const int64_t cutoff = expiryCutoff();
    return writeValue(
        "create", kCreate, key, value, [cutoff](Stmt& stmt) { stmt.bindInt64(6, cutoff); },
        [&] { return Status::alreadyExists("key '" + key + "' already exists in bucket " + name_); });
  });
}

Result<uint64_t> SqliteBucket::update(const std::string& key, const std::string& value,
                                      uint64_t expectedRevision) {
  return guarded("update", [&]() -> Result<uint64_t> {
    if (expectedRevision == 0 ||
        expectedRevision > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Status::conflict("key '" + key + "' has no revision " +
                              std::to_string(expectedRevision));
    }
    const int64_t cutoff = expiryCutoff();
    return writeValue(
        "update", kUpdate, key, value,
        [&](Stmt& stmt) {
          stmt.bindInt64(6, static_cast<int64_t>(expectedRevision));
          stmt.bindInt64(7, cutoff);
        },
        [&] {
          return Status::conflict("key '" + key + "' is not at revision " +
                                  std::to_string(expectedRevision));
        });
  });
}

Status SqliteBucket::erase(const std::string& key, uint64_t expectedRevision) {
  return guarded("erase", [&]() -> Status {
    if (expectedRevision > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Status::conflict("key '" + key + "' has no revision " +
                              std::to_string(expectedRevision));
    }
    const int64_t cutoff = expiryCutoff();
    return core_->writeTransaction("erase", [&](Connection& conn) -> Status {
      Status st;
      sqlite3_stmt* raw = conn.prepare(expectedRevision == 0 ? kDelete : kDeleteAt, &st);
      if (raw == nullptr) return st;
      {
        Stmt stmt(raw);
        stmt.bindText(1, name_);
        stmt.bindBlob(2, key);
        if (expectedRevision != 0) {
          stmt.bindInt64(3, static_cast<int64_t>(expectedRevision));
          stmt.bindInt64(4, cutoff);
        }
        int rc = stmt.step();
        if (rc != SQLITE_DONE) return stepFailure(conn, rc, "erase");
      }
      if (sqlite3_changes(conn.db()) == 0) {
        if (expectedRevision == 0) return Status::ok();  // absent: nothing to log
        return Status::conflict("key '" + key + "' is not at revision " +
                                std::to_string(expectedRevision));
      }
      return logRemoval(conn, name_, key, kOpDelete, nowMs());
    });
  });
}

Result<std::vector<std::string>> SqliteBucket::keys(const std::string& prefix) {
  return guarded("keys", [&]() -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    std::string upper;
    const bool bounded = prefixSuccessor(prefix, &upper);
    const int64_t cutoff = expiryCutoff();
    Status status = core_->withConnection("keys", [&](Connection& conn) -> Status {
      out.clear();
      Status st;
      sqlite3_stmt* raw = conn.prepare(bounded ? kKeysRange : kKeysFrom, &st);
      if (raw == nullptr) return st;
      Stmt stmt(raw);
      stmt.bindText(1, name_);
      stmt.bindBlob(2, prefix);
      stmt.bindInt64(3, cutoff);
      if (bounded) stmt.bindBlob(4, upper);
      int rc;
      while ((rc = stmt.step()) == SQLITE_ROW) out.push_back(stmt.columnBytes(0));
      if (rc != SQLITE_DONE) return stepFailure(conn, rc, "keys");
      return Status::ok();
    });
    if (!status.isOk()) return status;
    return out;
  });
}

namespace {

// Current entries of bucket under prefix, not expired at cutoff. Runs inside
// the caller's transaction when there is one.
Status readEntries(Connection& conn, const std::string& bucket, const std::string& prefix,
                   int64_t cutoff, std::vector<KvEntry>* out) {
  std::string upper;
  const bool bounded = prefixSuccessor(prefix, &upper);
  Status st;
  sqlite3_stmt* raw = conn.prepare(bounded ? kScanRange : kScanFrom, &st);
  if (raw == nullptr) return st;
  Stmt stmt(raw);
  stmt.bindText(1, bucket);
  stmt.bindBlob(2, prefix);
  stmt.bindInt64(3, cutoff);
  if (bounded) stmt.bindBlob(4, upper);
  int rc;
  while ((rc = stmt.step()) == SQLITE_ROW) {
    KvEntry entry;
    entry.key = stmt.columnBytes(0);
    entry.value = stmt.columnBytes(1);
    entry.revision = static_cast<uint64_t>(stmt.columnInt64(2));
    out->push_back(std::move(entry));
  }
  if (rc != SQLITE_DONE) return stepFailure(conn, rc, "scan");
  return Status::ok();
}

}  // namespace

Result<std::vector<KvEntry>> SqliteBucket::scan(const std::string& prefix) {
  return guarded("scan", [&]() -> Result<std::vector<KvEntry>> {
    std::vector<KvEntry> out;
    const int64_t cutoff = expiryCutoff();
    Status status = core_->withConnection("scan", [&](Connection& conn) -> Status {
      out.clear();
      return readEntries(conn, name_, prefix, cutoff, &out);
    });
    if (!status.isOk()) return status;
    return out;
  });
}

// --- watch ------------------------------------------------------------------

// The state and loop of one watch. Owned jointly by the SqliteWatch handle and
// its thread, so that the thread never touches freed memory even in the
// (forbidden but survivable) case of a callback stopping its own watch.
class WatchWorker {
 public:
  WatchWorker(std::shared_ptr<StoreCore> core, std::string bucket, std::string prefix,
              int64_t maxAgeMs, WatchCallback callback, std::unique_ptr<Connection> conn)
      : core_(std::move(core)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        maxAgeMs_(maxAgeMs),
        callback_(std::move(callback)),
        conn_(std::move(conn)) {
    bounded_ = prefixSuccessor(prefix_, &upper_);
  }

  void run();
  void requestStop() { core_->raiseAndWake(stopping_); }

 private:
  struct Change {
    uint64_t seq;
    std::string key;
    int op;
    std::string value;
  };

  std::string describe() const { return "watch on " + bucket_ + " prefix '" + prefix_ + "'"; }
  Status ensureConnection();
  Status readDataVersion(int64_t* version);
  Status readSnapshot(std::vector<KvEntry>* entries, uint64_t* maxSeq);
  Status readChanges(std::vector<Change>* changes, bool* trimmed, uint64_t* examinedThrough);
  // Emits (Reset), the snapshot's Puts and CaughtUp.
  Status snapshot(bool reset);
  void deliver(const WatchEvent& event);
  void handleFailure(const Status& status);

  const std::shared_ptr<StoreCore> core_;
  const std::string bucket_;
  const std::string prefix_;
  const int64_t maxAgeMs_;
  const WatchCallback callback_;
  std::unique_ptr<Connection> conn_;
  std::string upper_;
  bool bounded_ = false;

  std::atomic<bool> stopping_{false};
  uint64_t lastSeq_ = 0;      // every change-log row up to here was handled
  int64_t dataVersion_ = -1;  // PRAGMA data_version when last polled
  int failures_ = 0;          // consecutive failures, for the back-off
};

Status WatchWorker::ensureConnection() {
  if (conn_ && !conn_->broken()) return Status::ok();
  conn_.reset();
  auto opened = core_->openDedicated();
  if (!opened.isOk()) return opened.status();
  conn_ = std::move(opened.value());
  dataVersion_ = -1;  // a new connection has its own counter
  return Status::ok();
}

Status WatchWorker::readDataVersion(int64_t* version) {
  conn_->setDeadline(Clock::now() + core_->timeout());
  return queryInt(*conn_, kDataVersion, "read data_version", version);
}

Status WatchWorker::readSnapshot(std::vector<KvEntry>* entries, uint64_t* maxSeq) {
  // A large bucket may take longer than one call's budget; this thread has no
  // caller waiting, the bound only stops it from hanging.
  conn_->setDeadline(Clock::now() + core_->timeout() * 10);
  // One read transaction: the values and the max seq are of the same instant,
  // so the poll that follows misses nothing and repeats nothing.
  Status status = runSimple(*conn_, kBegin, "begin watch snapshot");
  if (!status.isOk()) return status;
  const int64_t cutoff = maxAgeMs_ > 0 ? nowMs() - maxAgeMs_ : kNever;
  status = readEntries(*conn_, bucket_, prefix_, cutoff, entries);
  int64_t seq = 0;
  if (status.isOk()) status = queryInt(*conn_, kMaxSeq, "read max seq", &seq);
  if (status.isOk()) status = runSimple(*conn_, kCommit, "end watch snapshot");
  rollbackQuietly(*conn_, core_->timeout());
  *maxSeq = static_cast<uint64_t>(seq);
  return status;
}

Status WatchWorker::readChanges(std::vector<Change>* changes, bool* trimmed,
                                uint64_t* examinedThrough) {
  conn_->setDeadline(Clock::now() + core_->timeout());
  Status status = runSimple(*conn_, kBegin, "begin watch poll");
  if (!status.isOk()) return status;
  int64_t trimmedThrough = 0;
  int64_t maxSeq = 0;
  status = queryInt(*conn_, kTrimmedThrough, "read trim position", &trimmedThrough);
  if (status.isOk()) status = queryInt(*conn_, kMaxSeq, "read max seq", &maxSeq);
  *trimmed = status.isOk() && static_cast<uint64_t>(trimmedThrough) > lastSeq_;
  if (status.isOk() && !*trimmed) {
    Status st;
    sqlite3_stmt* raw = conn_->prepare(bounded_ ? kChangesRange : kChangesFrom, &st);
    if (raw == nullptr) {
      status = st;
    } else {
      Stmt stmt(raw);
      stmt.bindText(1, bucket_);
      stmt.bindInt64(2, static_cast<int64_t>(lastSeq_));
      stmt.bindBlob(3, prefix_);
      stmt.bindInt64(4, kWatchBatch);
      if (bounded_) stmt.bindBlob(5, upper_);
      int rc;
      while ((rc = stmt.step()) == SQLITE_ROW) {
        Change change;
        change.seq = static_cast<uint64_t>(stmt.columnInt64(0));
        change.key = stmt.columnBytes(1);
        change.op = static_cast<int>(stmt.columnInt64(2));
        change.value = stmt.columnBytes(3);
        changes->push_back(std::move(change));
      }
      if (rc != SQLITE_DONE) status = stepFailure(*conn_, rc, "read change log");
    }
  }
  if (status.isOk()) status = runSimple(*conn_, kCommit, "end watch poll");
  rollbackQuietly(*conn_, core_->timeout());
  // A short batch means every row of this snapshot was examined, matching or
  // not: move past them all, so that a watcher of a quiet bucket or prefix
  // does not fall behind the trim and reset for nothing.
  if (status.isOk()) {
    *examinedThrough = static_cast<int64_t>(changes->size()) < kWatchBatch
                           ? static_cast<uint64_t>(maxSeq)
                           : changes->back().seq;
  }
  return status;
}

void WatchWorker::deliver(const WatchEvent& event) {
  if (stopping_.load()) return;
  try {
    callback_(event);
  } catch (const std::exception& e) {
    core_->log(LogLevel::Error, describe() + ": callback threw: " + e.what());
  } catch (...) {
    core_->log(LogLevel::Error, describe() + ": callback threw a non-exception");
  }
}

Status WatchWorker::snapshot(bool reset) {
  std::vector<KvEntry> entries;
  uint64_t maxSeq = 0;
  int64_t version = 0;
  // data_version first: a commit after it makes the next check differ, so
  // nothing committed after the snapshot can be skipped.
  Status status = readDataVersion(&version);
  if (status.isOk()) status = readSnapshot(&entries, &maxSeq);
  if (!status.isOk()) return status;
  dataVersion_ = version;
  lastSeq_ = maxSeq;
  if (reset) {
    WatchEvent event;
    event.type = WatchEvent::Type::Reset;
    deliver(event);
  }
  for (KvEntry& entry : entries) {
    WatchEvent event;
    event.type = WatchEvent::Type::Put;
    event.key = std::move(entry.key);
    event.value = std::move(entry.value);
    event.revision = entry.revision;
    deliver(event);
  }
  WatchEvent caughtUp;
  caughtUp.type = WatchEvent::Type::CaughtUp;
  deliver(caughtUp);
  return Status::ok();
}

void WatchWorker::handleFailure(const Status& status) {
  ++failures_;
  if (failures_ == 1 || failures_ % 50 == 0) {
    core_->log(LogLevel::Warn,
               describe() + ": " + status.toString() + " (retrying; no change is lost)");
  }
  if (status.code() == Code::Unavailable) {
    if (conn_) conn_->markBroken();
    core_->noteOutcome(status);  // the file failed: state() must say so
  }
  // Back off up to a second, the feed's latency budget.
  const int64_t waitMs =
      std::min<int64_t>(1000, core_->settings().pollIntervalMs << std::min(failures_, 4));
  core_->sleepUnlessStopped(std::chrono::milliseconds(waitMs), stopping_);
}

void WatchWorker::run() {
  const auto interval = std::chrono::milliseconds(core_->settings().pollIntervalMs);
  bool needSnapshot = true;
  bool reset = false;
  while (!stopping_.load()) {
    try {
      uint64_t generation = core_->changeGeneration();
      Status status = ensureConnection();
      if (status.isOk() && needSnapshot) {
        status = snapshot(reset);
        if (status.isOk()) {
          needSnapshot = false;
          reset = false;
        }
      } else if (status.isOk()) {
        int64_t version = 0;
        status = readDataVersion(&version);
        if (status.isOk() && version != dataVersion_) {
          dataVersion_ = version;
          // Drain: batch after batch until a short one.
          for (;;) {
            std::vector<Change> changes;
            bool trimmed = false;
            uint64_t examined = lastSeq_;
            status = readChanges(&changes, &trimmed, &examined);
            if (!status.isOk()) {
              dataVersion_ = -1;  // poll again next time even if nothing moves
              break;
            }
            if (trimmed) {
              // Rows this watcher had not read were trimmed: it cannot tell
              // what changed, so it starts over with a Reset.
              core_->log(LogLevel::Warn,
                         describe() + ": fell behind the change-log trim; resetting");
              needSnapshot = true;
              reset = true;
              break;
            }
            for (Change& change : changes) {
              if (stopping_.load()) break;
              WatchEvent event;
              event.type = change.op == kOpPut ? WatchEvent::Type::Put : WatchEvent::Type::Delete;
              event.key = std::move(change.key);
              if (change.op == kOpPut) event.value = std::move(change.value);
              event.revision = change.seq;
              deliver(event);
            }
            lastSeq_ = examined;
            if (static_cast<int64_t>(changes.size()) < kWatchBatch || stopping_.load()) break;
          }
        }
      }
      if (!status.isOk()) {
        handleFailure(status);
        continue;
      }
      failures_ = 0;
      if (needSnapshot) continue;  // reset pending: no need to wait
      core_->waitForChange(generation, interval, stopping_);
    } catch (const std::exception& e) {
      core_->log(LogLevel::Error, describe() + ": " + e.what());
      handleFailure(Status::internal(e.what()));
    } catch (...) {
      core_->log(LogLevel::Error, describe() + ": unknown exception");
      handleFailure(Status::internal("unknown exception"));
    }
  }
  conn_.reset();
}

void SqliteWatch::stop() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!worker_) return;
  worker_->requestStop();
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      // Stopped from its own callback (kv.h forbids it): joining would
      // deadlock. The thread owns a reference to the worker and ends by itself.
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  worker_.reset();
}

Result<std::unique_ptr<KvWatch>> SqliteBucket::watch(const std::string& prefix,
                                                     WatchCallback callback) {
  return guarded("watch", [&]() -> Result<std::unique_ptr<KvWatch>> {
    if (!callback) return Status::invalidArgument("sqlite watch: the callback is empty");
    auto conn = core_->openDedicated();
    if (!conn.isOk()) return conn.status();
    auto worker = std::make_shared<WatchWorker>(core_, name_, prefix, options_.maxAgeMs,
                                                std::move(callback), std::move(conn.value()));
    std::thread thread([worker] {
      try {
        worker->run();
      } catch (...) {
        // run() catches everything itself; this is the last line of defence
        // against std::terminate in a plugin-owned thread.
      }
    });
    return std::unique_ptr<KvWatch>(new SqliteWatch(std::move(worker), std::move(thread)));
  });
}

// --- SqliteStore ------------------------------------------------------------

SqliteStore::SqliteStore(std::shared_ptr<StoreCore> core) : core_(std::move(core)) {
  maintenance_ = std::thread([this] { maintenanceLoop(); });
}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard<std::mutex> lock(stopMutex_);
    stopping_ = true;
  }
  stopCv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();
}

void SqliteStore::maintenanceLoop() {
  const auto interval = std::chrono::milliseconds(core_->settings().maintenanceIntervalMs);
  std::unique_lock<std::mutex> lock(stopMutex_);
  while (!stopCv_.wait_for(lock, interval, [this] { return stopping_; })) {
    lock.unlock();
    try {
      // Independent tasks: one postponed by lock contention must not hold
      // back the others. Failures were logged by noteOutcome (Unavailable on
      // the state change, Internal always); all are retried next period.
      const Status results[] = {core_->sweepExpired(), core_->trimChangeLog(), core_->checkpoint()};
      for (const Status& status : results) {
        if (status.code() == Code::Timeout) {
          core_->log(LogLevel::Debug, "maintenance postponed: " + status.message());
        }
      }
    } catch (const std::exception& e) {
      core_->log(LogLevel::Error, std::string("maintenance: ") + e.what());
    } catch (...) {
      core_->log(LogLevel::Error, "maintenance: unknown exception");
    }
    lock.lock();
  }
}

Result<std::shared_ptr<KvBucket>> SqliteStore::openBucket(const std::string& name,
                                                          const BucketOptions& options) {
  return guarded("openBucket", [&]() -> Result<std::shared_ptr<KvBucket>> {
    if (name.empty()) return Status::invalidArgument("sqlite openBucket: empty bucket name");
    if (options.maxAgeMs < 0 || options.history < 0) {
      return Status::invalidArgument("sqlite openBucket " + name +
                                     ": maxAgeMs and history must not be negative");
    }
    {
      std::lock_guard<std::mutex> lock(bucketsMutex_);
      auto it = buckets_.find(name);
      if (it != buckets_.end()) return std::shared_ptr<KvBucket>(it->second);
    }
    BucketOptions stored;
    bool found = false;
    auto readOptions = [&](Connection& conn) -> Status {
      Status st;
      sqlite3_stmt* raw = conn.prepare(kBucketSelect, &st);
      if (raw == nullptr) return st;
      Stmt stmt(raw);
      stmt.bindText(1, name);
      int rc = stmt.step();
      if (rc == SQLITE_ROW) {
        stored.maxAgeMs = stmt.columnInt64(0);
        stored.history = stmt.columnInt64(1);
        found = true;
        return Status::ok();
      }
      if (rc == SQLITE_DONE) return Status::ok();
      return stepFailure(conn, rc, "read bucket");
    };
    // Read first: opening an existing bucket then costs no write (no fsync).
    Status status = core_->withConnection("openBucket", readOptions);
    if (status.isOk() && !found) {
      status = core_->writeTransaction("openBucket", [&](Connection& conn) -> Status {
        Status st;
        sqlite3_stmt* raw = conn.prepare(kBucketInsert, &st);
        if (raw == nullptr) return st;
        {
          Stmt stmt(raw);
          stmt.bindText(1, name);
          stmt.bindInt64(2, options.maxAgeMs);
          stmt.bindInt64(3, options.history);
          stmt.bindInt64(4, nowMs());
          int rc = stmt.step();
          if (rc != SQLITE_DONE) return stepFailure(conn, rc, "create bucket");
        }
        // Another process may have created it first: its options win.
        return readOptions(conn);
      });
    }
    if (!status.isOk()) return status;
    if (!found) return Status::internal("sqlite openBucket " + name + ": bucket row vanished");
    std::lock_guard<std::mutex> lock(bucketsMutex_);
    auto& slot = buckets_[name];
    if (!slot) slot = std::make_shared<SqliteBucket>(core_, name, stored);
    return std::shared_ptr<KvBucket>(slot);
  });
}

Status SqliteStore::ping() {
  return core_->withConnection(
      "ping", [](Connection& conn) { return runSimple(conn, kSelectOne, "ping"); });
}

Result<std::unique_ptr<SqliteStore>> createStore(const PluginContext& context) {
  auto settings = parseSettings(context.settings);
  if (!settings.isOk()) return settings.status();
  auto core = std::make_shared<StoreCore>(settings.value(), context.log);

  // Create the parent directory; failing that is logged and left to the open
  // below, which then fails with CANTOPEN and retries on every call.
  std::filesystem::path parent = std::filesystem::path(settings->path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      core->log(LogLevel::Error,
                "cannot create directory " + parent.string() + " for sqlite.path: " + ec.message());
    }
  }
  // Open (and initialise) now, so that state() is Connected from the start
  // when the file is usable. A failure is not fatal: see the header.
  Status status = core->withConnection(
      "open", [](Connection& conn) { return runSimple(conn, kSelectOne, "open"); });
  if (!status.isOk()) {
    core->log(LogLevel::Error, "cannot open " + settings->path + " yet: " + status.toString() +
                                   " (calls return Unavailable until it can be opened)");
  }
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(core)));
}

}  // namespace weft::sqlite_plugin
