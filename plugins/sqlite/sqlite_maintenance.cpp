// Maintenance of the sqlite store, on the store's own thread: removing
// expired keys, trimming the change log, and WAL checkpoints.
#include <algorithm>
#include <utility>

#include "sqlite_kv.h"
#include "sqlite_sql.h"

namespace weft::sqlite_plugin {

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
}  // namespace weft::sqlite_plugin
