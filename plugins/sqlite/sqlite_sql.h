// Internals shared by the sqlite plugin's sources: the SQL it runs, its
// tuning constants, and small statement helpers. Not part of any interface.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "sqlite_db.h"
#include "weft/kv.h"

namespace weft::sqlite_plugin {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
inline constexpr int kOpPut = 1;
inline constexpr int kOpDelete = 2;
inline constexpr int kOpExpired = 3;
inline constexpr int64_t kWatchBatch = 1000;  // change-log rows per watch poll query
inline constexpr int64_t kSweepBatch = 500;   // expired keys removed per transaction
inline constexpr int64_t kTrimBatch = 2000;   // change-log rows trimmed per transaction
inline constexpr size_t kMaxIdleConnections = 8;
inline constexpr int kAutoCheckpointPages = 10000;  // backstop; see "Checkpoints" in the header
inline constexpr int64_t kMaxSweepPeriodMs = 60000;

// SQL.
// Named constants: Connection caches prepared statements by pointer.

inline constexpr char kSchema[] =
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
inline constexpr int64_t kSchemaVersion = 1;
inline constexpr char kSchemaVersionQuery[] = "SELECT value FROM meta WHERE name='schema_version'";
inline constexpr char kSchemaTables[] =
    "SELECT count(*) FROM sqlite_master WHERE type='table'"
    " AND name IN ('meta', 'buckets', 'kv', 'changelog')";
inline constexpr int64_t kSchemaTableCount = 4;
inline constexpr char kJournalMode[] = "PRAGMA journal_mode";
inline constexpr char kJournalWal[] = "PRAGMA journal_mode=WAL";
inline constexpr char kDataVersion[] = "PRAGMA data_version";

inline constexpr char kBegin[] = "BEGIN";
inline constexpr char kBeginImmediate[] = "BEGIN IMMEDIATE";
inline constexpr char kCommit[] = "COMMIT";
inline constexpr char kRollback[] = "ROLLBACK";
inline constexpr char kSelectOne[] = "SELECT 1";

inline constexpr char kBucketSelect[] = "SELECT max_age_ms, history FROM buckets WHERE name=?1";
inline constexpr char kBucketInsert[] =
    "INSERT OR IGNORE INTO buckets(name, max_age_ms, history, created_at_ms)"
    " VALUES(?1, ?2, ?3, ?4)";

inline constexpr char kGet[] =
    "SELECT value, revision FROM kv WHERE bucket=?1 AND key=?2 AND updated_at_ms>?3";
inline constexpr char kLogPut[] =
    "INSERT INTO changelog(bucket, key, op, at_ms, value) VALUES(?1, ?2, 1, ?3, ?4)";
inline constexpr char kLogRemoval[] =
    "INSERT INTO changelog(bucket, key, op, at_ms, value) VALUES(?1, ?2, ?3, ?4, NULL)";
inline constexpr char kUpsert[] =
    "INSERT INTO kv(bucket, key, revision, updated_at_ms, value) VALUES(?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT(bucket, key) DO UPDATE SET revision=excluded.revision,"
    " updated_at_ms=excluded.updated_at_ms, value=excluded.value";
// Create-if-absent: an expired row that the sweep has not removed yet counts
// as absent, so the conflict branch overwrites only such a row.
inline constexpr char kCreate[] =
    "INSERT INTO kv(bucket, key, revision, updated_at_ms, value) VALUES(?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT(bucket, key) DO UPDATE SET revision=excluded.revision,"
    " updated_at_ms=excluded.updated_at_ms, value=excluded.value"
    " WHERE kv.updated_at_ms<=?6";
inline constexpr char kUpdate[] =
    "UPDATE kv SET revision=?3, updated_at_ms=?4, value=?5"
    " WHERE bucket=?1 AND key=?2 AND revision=?6 AND updated_at_ms>?7";
inline constexpr char kDelete[] = "DELETE FROM kv WHERE bucket=?1 AND key=?2";
inline constexpr char kDeleteAt[] =
    "DELETE FROM kv WHERE bucket=?1 AND key=?2 AND revision=?3 AND updated_at_ms>?4";

// Prefix queries: with an upper bound, or (prefix "" or all 0xFF bytes)
// without one. Never LIKE: keys may hold '%', '_' and any other byte.
inline constexpr char kKeysFrom[] = "SELECT key FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3";
inline constexpr char kKeysRange[] =
    "SELECT key FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3 AND key<?4";
inline constexpr char kScanFrom[] =
    "SELECT key, value, revision FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3";
inline constexpr char kScanRange[] =
    "SELECT key, value, revision FROM kv WHERE bucket=?1 AND key>=?2 AND updated_at_ms>?3"
    " AND key<?4";

inline constexpr char kMaxSeq[] =
    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name='changelog'), 0)";
inline constexpr char kTrimmedThrough[] = "SELECT value FROM meta WHERE name='trimmed_through'";
inline constexpr char kChangesFrom[] =
    "SELECT seq, key, op, value FROM changelog WHERE bucket=?1 AND seq>?2 AND key>=?3"
    " ORDER BY seq LIMIT ?4";
inline constexpr char kChangesRange[] =
    "SELECT seq, key, op, value FROM changelog WHERE bucket=?1 AND seq>?2 AND key>=?3"
    " AND key<?5 ORDER BY seq LIMIT ?4";

inline constexpr char kExpiringBuckets[] = "SELECT name, max_age_ms FROM buckets WHERE max_age_ms>0";
inline constexpr char kExpiredKeys[] = "SELECT key FROM kv WHERE bucket=?1 AND updated_at_ms<=?2 LIMIT ?3";
inline constexpr char kOldestSeq[] = "SELECT MIN(seq) FROM changelog";
// Walks from the oldest row and stops at the first young one, so it costs the
// number of rows about to be trimmed, without an index on at_ms.
inline constexpr char kFirstYoungSeq[] = "SELECT seq FROM changelog WHERE at_ms>=?1 ORDER BY seq LIMIT 1";
inline constexpr char kTrim[] = "DELETE FROM changelog WHERE seq<=?1";
inline constexpr char kSetTrimmed[] = "UPDATE meta SET value=MAX(value, ?1) WHERE name='trimmed_through'";

// The smallest byte string greater than every string starting with prefix;
// false when there is none (prefix empty or all 0xFF bytes).
bool prefixSuccessor(const std::string& prefix, std::string* successor);

Status stepFailure(Connection& conn, int rc, const std::string& what);

// Runs a statement that returns nothing; no bindings.
Status runSimple(Connection& conn, const char* sql, const std::string& what);

// Reads one integer from a single-row query without bindings.
Status queryInt(Connection& conn, const char* sql, const std::string& what, int64_t* out,
                bool* isNull = nullptr);

// Ends a read or write transaction after a failure; never interrupted by the
// (possibly already passed) call deadline.
void rollbackQuietly(Connection& conn, std::chrono::milliseconds bound);

// Current entries of bucket under prefix, not expired at cutoff. Runs inside
// the caller's transaction when there is one.
Status readEntries(Connection& conn, const std::string& bucket, const std::string& prefix,
                   int64_t cutoff, std::vector<KvEntry>* out);
// The same entries, each handed to each(entry) as it is read (the entry may
// be moved from): a whole bucket without holding it whole.
Status forEachEntry(Connection& conn, const std::string& bucket, const std::string& prefix,
                    int64_t cutoff, const std::function<void(KvEntry&)>& each);

// Runs fn, turning an exception into Internal: no exception leaves the plugin.
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

}  // namespace weft::sqlite_plugin
