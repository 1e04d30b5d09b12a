// SqliteBucket: reads and writes of one bucket, each write logged in the
// change log that watches read (sqlite_watch.cpp).
#include <utility>

#include "sqlite_kv.h"
#include "sqlite_sql.h"

namespace weft::sqlite_plugin {

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

}  // namespace weft::sqlite_plugin
