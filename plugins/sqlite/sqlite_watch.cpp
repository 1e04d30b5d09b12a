// Watches of the sqlite store: a thread per watch that replays a snapshot and
// then polls the change log, which also shows writes of other processes.
#include <algorithm>
#include <utility>

#include "sqlite_kv.h"
#include "sqlite_sql.h"

namespace weft::sqlite_plugin {

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
  // Reads the bucket in one read transaction, handing each entry to each()
  // as it is read.
  Status readSnapshot(const std::function<void(KvEntry&)>& each, uint64_t* maxSeq);
  Status readChanges(std::vector<Change>* changes, bool* trimmed, uint64_t* examinedThrough);
  // Emits (Reset), the snapshot's Puts and CaughtUp.
  Status snapshot(bool reset);
  bool partial_ = false;  // a snapshot failed after emitting: the next one resets
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

Status WatchWorker::readSnapshot(const std::function<void(KvEntry&)>& each, uint64_t* maxSeq) {
  // The deadline bounds a read that makes no progress: it moves on every
  // 1,024 rows (a large bucket takes many calls' budgets, and each row is
  // handed on before the next is read).
  conn_->setDeadline(Clock::now() + core_->timeout());
  // One read transaction: the values and the max seq are of the same instant,
  // so the poll that follows misses nothing and repeats nothing.
  Status status = runSimple(*conn_, kBegin, "begin watch snapshot");
  if (!status.isOk()) return status;
  const int64_t cutoff = maxAgeMs_ > 0 ? nowMs() - maxAgeMs_ : kNever;
  size_t rows = 0;
  status = forEachEntry(*conn_, bucket_, prefix_, cutoff, [&](KvEntry& entry) {
    each(entry);
    if (++rows % 1024 == 0) conn_->setDeadline(Clock::now() + core_->timeout());
  });
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
  uint64_t maxSeq = 0;
  int64_t version = 0;
  // data_version first: a commit after it makes the next check differ, so
  // nothing committed after the snapshot can be skipped.
  Status status = readDataVersion(&version);
  if (!status.isOk()) return status;
  // Each value is handed on as it is read, inside the snapshot's read
  // transaction: a bucket of a million values is never held whole (held, it
  // cost weftd a gigabyte at the peak, and the view's entries, allocated in
  // the holes the freed values left, kept that memory fragmented).
  bool resetSent = false;
  const bool resetting = reset || partial_;
  auto sendReset = [&] {
    if (resetSent || !resetting) return;
    resetSent = true;
    WatchEvent event;
    event.type = WatchEvent::Type::Reset;
    deliver(event);
  };
  status = readSnapshot(
      [&](KvEntry& entry) {
        sendReset();
        partial_ = true;  // until the snapshot completes
        WatchEvent event;
        event.type = WatchEvent::Type::Put;
        event.key = std::move(entry.key);
        event.value = std::move(entry.value);
        event.revision = entry.revision;
        deliver(event);
      },
      &maxSeq);
  // A snapshot that failed after emitting some values is followed by one
  // that resets: a key emitted here and deleted before the next snapshot
  // must not stay in the consumer's view.
  if (!status.isOk()) return status;
  sendReset();  // an empty bucket after a reset
  partial_ = false;
  dataVersion_ = version;
  lastSeq_ = maxSeq;
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
}  // namespace weft::sqlite_plugin
