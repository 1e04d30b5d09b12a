// The sqlite store: its settings, the shared core (connections, readiness,
// transactions and the outage state) and the KvStore that opens buckets and
// runs the maintenance thread (sqlite_maintenance.cpp).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <system_error>
#include <utility>

#include "sqlite_kv.h"
#include "sqlite_sql.h"

namespace weft::sqlite_plugin {

namespace {

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
