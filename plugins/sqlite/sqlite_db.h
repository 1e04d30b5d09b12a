// Thin C++ layer over the SQLite C API for the sqlite storage plugin: one
// connection with a per-call deadline, cached prepared statements with RAII
// reset, a connection pool, and the mapping of SQLite result codes onto the
// storage error model (status.h).
//
// Threading: a Connection is used by one thread at a time (it is opened with
// SQLITE_OPEN_NOMUTEX, so SQLite does no locking of its own for it). The pool
// is safe to use from any thread and hands each connection to one caller at a
// time.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "weft/status.h"

namespace weft::sqlite_plugin {

using Clock = std::chrono::steady_clock;

// Maps an SQLite result code (primary or extended) to a Status:
//  * BUSY, LOCKED (another writer held the lock past the deadline) and
//    INTERRUPT (our own deadline check stopped the statement) -> Timeout;
//  * FULL, IOERR, CANTOPEN, READONLY, PERM, NOLFS, CORRUPT, NOTADB, PROTOCOL
//    (the file cannot be opened, read or written) -> Unavailable; FULL (and
//    an IOERR caused by ENOSPC) say "disk full" in the message;
//  * TOOBIG (a value over SQLite's length limit) -> InvalidArgument;
//  * anything else -> Internal.
// `what` names the operation for the message; db may be null.
Status statusFromSqlite(int rc, const std::string& what, sqlite3* db);

// The note statusFromSqlite appends when the disk is full, and the test for
// it: a full disk makes writes fail but leaves the file readable, so the
// store does not count it as the database being unavailable.
constexpr char kDiskFullNote[] = "disk full: free space on the volume of the database file";
bool isDiskFull(const Status& status);

// True when rc means the storage itself failed (the Unavailable group above),
// after which a connection is not reused.
bool isStorageFailure(int rc);

// A prepared statement borrowed from a Connection's cache. The destructor
// resets it and clears its bindings, so the cached statement never keeps a
// pointer to a caller's string nor holds a read snapshot open.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binding never copies: the bound strings must outlive the last step().
  // A failed bind is remembered and reported by the next step().
  void bindText(int index, const std::string& text);
  void bindBlob(int index, const std::string& bytes);  // "" binds an empty blob, not NULL
  void bindInt64(int index, int64_t value);

  // SQLITE_ROW, SQLITE_DONE or an error code (the first bind error if any).
  int step();

  int64_t columnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string columnBytes(int col) const;  // a BLOB or TEXT column, "" for NULL
  bool columnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3_stmt* stmt_;
  int bindError_ = SQLITE_OK;
};

// One database connection. Every operation on it is bounded by deadline():
// a busy handler waits for another writer's lock only until then, and a
// progress handler interrupts a statement that runs past it (SQLITE_INTERRUPT).
class Connection {
 public:
  // Opens path read-write (creating it), with SQLITE_OPEN_NOMUTEX and
  // extended result codes, then runs setupSql: the per-connection pragmas
  // (`synchronous` is one of them, so every connection must run it).
  // Unavailable when the file cannot be opened.
  static Result<std::unique_ptr<Connection>> open(const std::string& path,
                                                  const std::string& setupSql);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }

  void setDeadline(Clock::time_point deadline) { deadline_ = deadline; }
  Clock::time_point deadline() const { return deadline_; }

  // A cached prepared statement for sql. The cache is keyed by the pointer,
  // so pass named constants (static storage), never temporaries.
  // nullptr (and *status set) when preparing fails.
  sqlite3_stmt* prepare(const char* sql, Status* status);

  // Runs one or more statements that return no rows we need.
  Status exec(const char* sql, const std::string& what);

  // Marks the connection as not to be reused (after a storage failure).
  void markBroken() { broken_ = true; }
  bool broken() const { return broken_; }

 private:
  Connection() = default;
  static int busyHandler(void* self, int attempts);
  static int progressHandler(void* self);

  sqlite3* db_ = nullptr;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
  bool broken_ = false;
};

// Hands out connections to one database file, one caller at a time, opening
// new ones on demand (so concurrent callers never wait for each other here;
// SQLite's own locks decide who writes). Idle connections are kept up to a
// small cap so the per-connection set-up is paid once.
class ConnectionPool {
 public:
  ConnectionPool(std::string path, std::string setupSql, size_t maxIdle)
      : path_(std::move(path)), setupSql_(std::move(setupSql)), maxIdle_(maxIdle) {}
  ~ConnectionPool();

  Result<std::unique_ptr<Connection>> acquire();
  // Returns a connection; a broken one (or one over the idle cap) is closed.
  void release(std::unique_ptr<Connection> connection);
  // Closes every idle connection (after a storage failure, so the next call
  // reopens the file).
  void clearIdle();

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  const std::string setupSql_;
  const size_t maxIdle_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace weft::sqlite_plugin
