// Disk full (docs/reliability.md): the backend's data directory on a
// small tmpfs that a filler file fills up while weftd writes to it. Writes
// must fail with a clear 503 (never a 500, never a hang), nothing
// acknowledged may be lost, and once the filler is deleted writes must work
// again without restarting weftd. What each backend does in between (reads,
// whether the server itself survives) is recorded and asserted per backend,
// because they differ; see kExpectations.
//
// Needs root (mount(2)); a failed mount FAILS the case. Redis runs twice: the
// durable configuration of the fault tests (appendfsync always) and Redis's
// default (everysec), because they behave completely differently on ENOSPC.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "faults/fault_support.h"

namespace weft::faults {
namespace {

using testing::HttpResponse;
using testing::Weftd;

constexpr int kTimeoutMs = 2000;                // kv.timeoutMs of this case
constexpr double kBoundMs = kTimeoutMs + 1000;  // the longest a failing write may take
constexpr int kTmpfsMiB = 48;
// What the filler leaves free: a little room, so a few writes still land
// before the backend hits ENOSPC.
constexpr int64_t kLeaveBytes = 96 * 1024;

// A tmpfs mounted on a fresh temp dir for the lifetime of the object.
class Tmpfs {
 public:
  explicit Tmpfs(int sizeMiB) : dir_("weft-faults-diskfull-") {
    path_ = dir_.file("mnt");
    REQUIRE(::mkdir(path_.c_str(), 0755) == 0);
    const std::string options = "size=" + std::to_string(sizeMiB) + "m";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      FAIL("mount(tmpfs, " << path_ << ", " << options << ") failed: " << std::strerror(errno)
                           << " (the disk-full test needs root / CAP_SYS_ADMIN)");
    }
    mounted_ = true;
  }
  // A lazy unmount: the backend's files may still be open when this runs
  // after a failure, and nothing may stay mounted.
  ~Tmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  const std::string& path() const { return path_; }
  int64_t freeBytes() const {
    struct statvfs s {};
    if (::statvfs(path_.c_str(), &s) != 0) return -1;
    return static_cast<int64_t>(s.f_bavail) * static_cast<int64_t>(s.f_frsize);
  }

 private:
  testing::TempDir dir_;
  std::string path_;
  bool mounted_ = false;
};

// Fills the tmpfs until only about `leave` bytes are free; returns the bytes
// written. FAILs when the file cannot be written at all.
int64_t fill(const Tmpfs& fs, const std::string& file, int64_t leave) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) FAIL("cannot create the filler " << file << ": " << std::strerror(errno));
  std::string chunk(64 * 1024, 'x');
  int64_t written = 0;
  for (;;) {
    const int64_t room = fs.freeBytes() - leave;
    if (room <= 0) break;
    const size_t n = static_cast<size_t>(std::min<int64_t>(room, chunk.size()));
    const ssize_t w = ::write(fd, chunk.data(), n);
    if (w <= 0) break;  // ENOSPC already (the backend wrote meanwhile)
    written += w;
  }
  ::close(fd);
  if (written <= 0) FAIL("the filler " << file << " got no bytes");
  return written;
}

// What a backend does when its disk fills up, as measured on this machine
// (nats-server 2.9.10, redis-server 7.0.15, SQLite 3.40); the test asserts
// exactly this, so a change of behaviour shows up as a failure to look at.
struct Expectation {
  std::string label;
  // The failing writes carry "disk full" in their 503 message.
  bool clearMessage;
  // What GET /api/work/<id> and GET /api/work answer while the disk is full.
  int getStatus;
  int listStatus;
  // Writes do not come back after the filler is deleted until the server is
  // restarted on the same data (weftd itself is never restarted).
  bool serverNeedsRestart;
};

// sqlite: SQLITE_FULL on COMMIT -> 503 "... database or disk is full (disk
//   full: ...)". The file stays readable and the plugin keeps its state
//   Connected on a full disk, so reads go on. Writes work again at once.
// nats: nats-server 2.9.10 logs nothing and stops answering: JetStream calls
//   time out (503 "timed out, outcome unknown"), then the client's pings go
//   unanswered and the connection drops (503 "not connected"). It does not
//   come back within 5 s of freeing the space; a restart on the same data
//   restores everything. GET /api/work is still 200 (weftd serves the list
//   from its watch-fed cache), GET /api/work/<id> is 503.
// redis, appendfsync always: redis-server exits ("Can't recover from AOF
//   write error when the AOF fsync policy is 'always'. Exiting..."): the
//   write in flight gets no reply (indeterminate), the rest 503, reads 503;
//   restarted on the same data it loads the AOF (the torn tail is dropped).
// redis, appendfsync everysec: writes get -MISCONF -> 503 "... No space left
//   on device ... (disk full on the redis server)". Redis also answers PING
//   with -MISCONF while it cannot persist; the plugin takes that as "up,
//   read-only", so reads go on (200) and /ready says 503 with the reason.
//   Redis retries the AOF write itself: writes work again once space is free.
const Expectation kSqlite{"sqlite", true, 200, 200, false};
const Expectation kNats{"nats", false, 503, 200, true};
const Expectation kRedisAlways{"redis appendfsync always", false, 503, 503, true};
const Expectation kRedisEverysec{"redis appendfsync everysec", true, 200, 200, false};

// The backend of one run: fault_support's Backend, or (for redis everysec) a
// redis-server with Redis's default fsync policy.
struct DiskBackend {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<testing::RedisServer> everysec;

  Settings settings() const {
    if (everysec) return {{"kv.backend", "redis"}, {"redis.url", everysec->url()}};
    return backend->settings();
  }
  testing::ServerProcess* server() {
    if (everysec) return everysec.get();
    return backend->isServer() ? &backend->server() : nullptr;
  }
};

bool mentionsDiskFull(const std::string& message) {
  return message.find("disk full") != std::string::npos;
}

// Collects the attempts of several loads for the classification at the end.
void append(std::vector<WriteAttempt>& all, const WriteLoad& load) {
  auto more = load.attempts();
  all.insert(all.end(), more.begin(), more.end());
}

void runDiskFull(const std::string& name, bool redisEverysec, const Expectation& expect) {
  const std::string what = expect.label;
  Tmpfs fs(kTmpfsMiB);
  std::string dataDir = fs.path() + "/data";
  std::filesystem::create_directories(dataDir);
  // nats-server keeps its store in <dataDir>/jetstream and its log (our
  // ServerProcess's) in <dataDir>/server.log: only the store goes on the
  // tmpfs, so the log lines written while the disk is full are kept.
  std::unique_ptr<testing::TempDir> natsDir;
  if (name == "nats") {
    natsDir = std::make_unique<testing::TempDir>("weft-faults-diskfull-nats-");
    std::filesystem::create_symlink(dataDir, natsDir->file("jetstream"));
    dataDir = natsDir->path();
  }
  DiskBackend db;
  if (redisEverysec) {
    testing::ServerOptions options;
    options.dataDir = dataDir;
    db.everysec = std::make_unique<testing::RedisServer>(options);
  } else {
    db.backend = std::make_unique<Backend>(name, dataDir);
  }
  const Settings settings = db.settings();
  auto weftd = startWeftd(settings, {{"kv.timeoutMs", std::to_string(kTimeoutMs)}});
  std::vector<WriteAttempt> all;

  // 1. Some items while there is room.
  std::string keptId;
  {
    WriteLoad load(weftd->port(), 2, "disk-full");
    REQUIRE(eventually([&] { return load.ackedCount() >= 20; }, Ms(20000)));
    load.stop();
    append(all, load);
    for (const auto& a : all) {
      if (a.outcome == WriteAttempt::Outcome::Acked) keptId = a.id;
    }
  }
  REQUIRE_FALSE(keptId.empty());

  // 2. Fill the disk, then write until writes fail (bounded in time).
  const std::string filler = fs.path() + "/filler";
  const int64_t filled = fill(fs, filler, kLeaveBytes);
  figure(what + ": filler of " + fixed(filled / 1048576.0) + " MiB leaves " +
         std::to_string(fs.freeBytes() / 1024) + " KiB free on a " + std::to_string(kTmpfsMiB) +
         " MiB tmpfs");
  const auto fullAt = Clock::now();
  std::vector<WriteAttempt> full;
  {
    // Paced: a failing write can take well under a millisecond.
    WriteLoad load(weftd->port(), 2, "disk-full", Ms(20));
    const bool failed = eventually(
        [&] {
          for (const auto& a : load.attempts())
            if (a.outcome != WriteAttempt::Outcome::Acked) return true;
          return false;
        },
        Ms(30000));
    std::this_thread::sleep_for(Ms(1000));  // a few more failing writes
    load.stop();
    full = load.attempts();
    all.insert(all.end(), full.begin(), full.end());
    INFO(weftd->logTail());
    REQUIRE(failed);
  }
  int ackedWhileFilling = 0;
  int disk = 0;
  std::string firstError;
  double worstFailure = 0;
  for (const auto& a : full) {
    if (a.outcome == WriteAttempt::Outcome::Acked) {
      ++ackedWhileFilling;
      continue;
    }
    INFO(what << ": POST /api/work -> " << a.status << " " << a.error << " in " << a.ms << " ms");
    CHECK(a.status == 503);  // never a 500, never a hang (status 0)
    CHECK(a.ms < kBoundMs);
    worstFailure = std::max(worstFailure, a.ms);
    disk += mentionsDiskFull(a.error);
    if (firstError.empty()) firstError = a.error;
  }
  figure(what + ": " + std::to_string(ackedWhileFilling) +
         " writes acknowledged after the filler, then " +
         std::to_string(full.size() - ackedWhileFilling) + " failed within " +
         fixed(elapsedMs(fullAt) / 1000) + " s (worst " + fixed(worstFailure) +
         " ms); first error: " + firstError);
  if (expect.clearMessage) {
    INFO("first error: " << firstError);
    CHECK(disk > 0);
  }

  // 3. Reads while the disk is full.
  HttpResponse one = weftd->get("/api/work/" + keptId);
  HttpResponse list = weftd->get("/api/work");
  HttpResponse ready = weftd->get("/ready");
  figure(what + ": while full GET /api/work/<id> " + std::to_string(one.status) +
         ", GET /api/work " + std::to_string(list.status) + ", /ready " +
         std::to_string(ready.status) + (one.status == 200 ? "" : " (" + one.message() + ")"));
  CHECK(one.status == expect.getStatus);
  CHECK(list.status == expect.listStatus);
  CHECK(one.ms < kBoundMs);
  CHECK(list.ms < kBoundMs);
  CHECK(weftd->get("/health").status == 200);
  testing::ServerProcess* server = db.server();
  if (server) {
    const bool alive = server->running();
    figure(what + ": server process " + (alive ? "alive" : "EXITED"));
    // Only redis under appendfsync always exits; nats-server hangs instead.
    CHECK(alive == (expect.label != kRedisAlways.label));
  }

  // 4. Free the space: writes work again (after a server restart where the
  // backend needs one), weftd is not restarted.
  REQUIRE(::unlink(filler.c_str()) == 0);
  const auto freedAt = Clock::now();
  bool restarted = false;
  std::optional<double> recovered;
  std::string lastError;
  {
    WriteLoad load(weftd->port(), 1, "disk-full", Ms(50));
    auto acked = [&] { return load.ackedCount() > 0; };
    bool ok = eventually(acked, Ms(expect.serverNeedsRestart ? 5000 : 20000));
    if (!ok && expect.serverNeedsRestart && server) {
      auto attempts = load.attempts();
      if (!attempts.empty()) lastError = attempts.back().error;
      server->restart();
      restarted = true;
      ok = eventually(acked, Ms(20000));
    }
    load.stop();
    append(all, load);
    for (const auto& a : load.attempts()) {
      if (a.outcome == WriteAttempt::Outcome::Acked && !recovered)
        recovered = std::chrono::duration<double, std::milli>(a.startedAt - freedAt).count() + a.ms;
    }
    INFO(weftd->logTail());
    REQUIRE(ok);
  }
  CHECK(restarted == expect.serverNeedsRestart);
  CHECK(weftd->running());
  figure(what + ": writes acknowledged again " + fixed(*recovered) +
         " ms after the filler was deleted" +
         (restarted ? " (server restarted on the same data; error before: " + lastError + ")"
                    : " (no restart of anything)"));
  REQUIRE(eventually([&] { return weftd->get("/ready").status == 200; }, Ms(20000)));
  CHECK(weftd->get("/api/work/" + keptId).status == 200);
  // What the server said about it (its log is on the tmpfs: quote it now).
  if (server) {
    std::ifstream log(server->logFile());
    int quoted = 0;
    for (std::string line; std::getline(log, line) && quoted < 12;) {
      for (const char* word : {"space", "resources", "AOF", "DISABLED", "disabled", "rror", "[ERR]",
                               "[WRN]", "Exiting"}) {
        if (line.find(word) != std::string::npos) {
          figure(what + ": server log: " + line.substr(0, 240));
          ++quoted;
          break;
        }
      }
    }
  }

  // 5. Nothing acknowledged was lost, nothing refused was stored.
  auto store = openStore(settings);
  Classification c = classify(all, *store);
  figure(what + ": " + c.summary());
  CHECK(c.ackedLost == 0);
  CHECK(c.failedPresent == 0);
  CHECK(c.duplicated == 0);
}

}  // namespace

TEST_CASE("the backend's disk fills up under writes, then space is freed", "[disk]") {
  const std::string name = backendName();
  if (name == "sqlite") {
    runDiskFull(name, false, kSqlite);
  } else if (name == "nats") {
    runDiskFull(name, false, kNats);
  } else if (name == "redis") {
    runDiskFull(name, false, kRedisAlways);
    runDiskFull(name, true, kRedisEverysec);
  } else {
    FAIL("unknown backend " << name);
  }
}

}  // namespace weft::faults
