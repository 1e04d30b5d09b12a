#include "sqlite_sql.h"

namespace weft::sqlite_plugin {

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

Status queryInt(Connection& conn, const char* sql, const std::string& what, int64_t* out,
                bool* isNull) {
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

void rollbackQuietly(Connection& conn, std::chrono::milliseconds bound) {
  if (sqlite3_get_autocommit(conn.db())) return;
  conn.setDeadline(Clock::now() + bound);
  if (sqlite3_exec(conn.db(), kRollback, nullptr, nullptr, nullptr) != SQLITE_OK &&
      !sqlite3_get_autocommit(conn.db())) {
    conn.markBroken();  // still inside a transaction: never reuse it
  }
}


Status readEntries(Connection& conn, const std::string& bucket, const std::string& prefix,
                   int64_t cutoff, std::vector<KvEntry>* out) {
  return forEachEntry(conn, bucket, prefix, cutoff,
                      [out](KvEntry& entry) { out->push_back(std::move(entry)); });
}

Status forEachEntry(Connection& conn, const std::string& bucket, const std::string& prefix,
                    int64_t cutoff, const std::function<void(KvEntry&)>& each) {
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
    each(entry);
  }
  if (rc != SQLITE_DONE) return stepFailure(conn, rc, "scan");
  return Status::ok();
}

}  // namespace weft::sqlite_plugin
