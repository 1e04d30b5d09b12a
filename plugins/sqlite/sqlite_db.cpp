#include "sqlite_db.h"

#include <algorithm>
#include <cerrno>
#include <thread>

namespace weft::sqlite_plugin {

bool isStorageFailure(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOLFS:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

Status statusFromSqlite(int rc, const std::string& what, sqlite3* db) {
  std::string detail = sqlite3_errstr(rc);
  if (db != nullptr) {
    // errmsg is more specific (e.g. names the constraint or the file) but can
    // describe an older error once a later call succeeded; keep both.
    const char* msg = sqlite3_errmsg(db);
    if (msg != nullptr && detail != msg) detail = std::string(msg) + " (" + detail + ")";
  }
  std::string message = "sqlite " + what + ": " + detail;
  // SQLite reports ENOSPC as SQLITE_FULL from a write, but as an IOERR from
  // some paths (e.g. growing the WAL index); the OS error tells them apart.
  // Operators need to read "disk full" plainly, not "database or disk".
  if ((rc & 0xff) == SQLITE_FULL ||
      ((rc & 0xff) == SQLITE_IOERR && db != nullptr && sqlite3_system_errno(db) == ENOSPC)) {
    message += std::string(" (") + kDiskFullNote + ")";
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::timeout(message + "; the database stayed locked past kv.timeoutMs");
    case SQLITE_INTERRUPT:
      return Status::timeout("sqlite " + what + ": deadline (kv.timeoutMs) exceeded");
    case SQLITE_TOOBIG:
      return Status::invalidArgument(message);
    default:
      break;
  }
  if (isStorageFailure(rc)) return Status::unavailable(message);
  return Status::internal(message);
}

bool isDiskFull(const Status& status) {
  return status.code() == Code::Unavailable &&
         status.message().find(kDiskFullNote) != std::string::npos;
}

// --- Stmt -------------------------------------------------------------------

Stmt::~Stmt() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Stmt::bindText(int index, const std::string& text) {
  int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (rc != SQLITE_OK && bindError_ == SQLITE_OK) bindError_ = rc;
}

void Stmt::bindBlob(int index, const std::string& bytes) {
  // A null data pointer would bind SQL NULL; std::string::data() never is
  // null, and "" is spelled out to make that explicit for empty values.
  const char* data = bytes.empty() ? "" : bytes.data();
  int rc = sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_STATIC);
  if (rc != SQLITE_OK && bindError_ == SQLITE_OK) bindError_ = rc;
}

void Stmt::bindInt64(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bindError_ == SQLITE_OK) bindError_ = rc;
}

int Stmt::step() {
  if (bindError_ != SQLITE_OK) return bindError_;
  return sqlite3_step(stmt_);
}

std::string Stmt::columnBytes(int col) const {
  // column_blob before column_bytes: the documented safe order. A zero-length
  // blob comes back as a null pointer.
  const void* data = sqlite3_column_blob(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);
  if (data == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

// --- Connection -------------------------------------------------------------

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path,
                                                     const std::string& setupSql) {
  std::unique_ptr<Connection> conn(new Connection());
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &conn->db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    // The destructor closes the half-open handle sqlite3_open_v2 leaves behind.
    Status status = statusFromSqlite(rc, "open " + path, conn->db_);
    if (status.code() == Code::Internal) status = Status::unavailable(status.message());
    return status;
  }
  sqlite3_extended_result_codes(conn->db_, 1);
  // Our own busy handler instead of sqlite3_busy_timeout: same job (wait for
  // another writer's lock instead of failing at once), but bounded by the
  // whole call's deadline rather than per statement, and retrying sooner.
  sqlite3_busy_handler(conn->db_, &Connection::busyHandler, conn.get());
  sqlite3_progress_handler(conn->db_, 1000, &Connection::progressHandler, conn.get());
  conn->setDeadline(Clock::now() + std::chrono::seconds(10));
  Status status = conn->exec(setupSql.c_str(), "set up connection");
  if (!status.isOk()) return status;
  return conn;
}

Connection::~Connection() {
  for (auto& entry : cache_) sqlite3_finalize(entry.second);
  // close_v2 never fails with BUSY; it defers the close until any stray
  // statement is finalized, which cannot happen here since all are above.
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

int Connection::busyHandler(void* self, int attempts) {
  auto* conn = static_cast<Connection*>(self);
  auto now = Clock::now();
  if (now >= conn->deadline_) return 0;  // give up: the statement fails with SQLITE_BUSY
  // Short waits first: a write transaction typically lasts well under a
  // millisecond plus one fsync, so a long fixed sleep would waste most of it.
  auto wait = std::chrono::microseconds(std::min(2000, 50 << std::min(attempts, 6)));
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(conn->deadline_ - now);
  std::this_thread::sleep_for(std::min<std::chrono::microseconds>(wait, left));
  return 1;
}

int Connection::progressHandler(void* self) {
  auto* conn = static_cast<Connection*>(self);
  return Clock::now() >= conn->deadline_ ? 1 : 0;
}

sqlite3_stmt* Connection::prepare(const char* sql, Status* status) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK || stmt == nullptr) {
    if (stmt != nullptr) sqlite3_finalize(stmt);
    *status = statusFromSqlite(rc == SQLITE_OK ? SQLITE_MISUSE : rc, "prepare", db_);
    if (isStorageFailure(rc)) markBroken();
    return nullptr;
  }
  cache_.emplace(sql, stmt);
  return stmt;
}

Status Connection::exec(const char* sql, const std::string& what) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (err != nullptr) sqlite3_free(err);  // errmsg(db) carries the same text
  if (rc == SQLITE_OK) return Status::ok();
  if (isStorageFailure(rc)) markBroken();
  return statusFromSqlite(rc, what, db_);
}

// --- ConnectionPool ---------------------------------------------------------

ConnectionPool::~ConnectionPool() {
  clearIdle();
}

Result<std::unique_ptr<Connection>> ConnectionPool::acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
  }
  // Opened outside the lock: opening touches the file system.
  return Connection::open(path_, setupSql_);
}

void ConnectionPool::release(std::unique_ptr<Connection> connection) {
  if (!connection || connection->broken()) return;
  // A connection must never go back to the pool inside a transaction: the
  // next user would silently join it.
  if (!sqlite3_get_autocommit(connection->db())) {
    connection->setDeadline(Clock::now() + std::chrono::seconds(5));
    sqlite3_exec(connection->db(), "ROLLBACK", nullptr, nullptr, nullptr);
    if (!sqlite3_get_autocommit(connection->db())) return;  // closed by the unique_ptr
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() >= maxIdle_) return;  // closed when `connection` goes out of scope
  idle_.push_back(std::move(connection));
}

void ConnectionPool::clearIdle() {
  std::vector<std::unique_ptr<Connection>> closing;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing.swap(idle_);
  }
}

}  // namespace weft::sqlite_plugin
