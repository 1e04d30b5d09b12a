// Shared pieces of the fault tests (ctest label `faults`, docs/reliability.md):
// the backend of one case, weftd on it, a write load that records what every
// client learned, and the classification of every write afterwards against
// what the backend really holds (read through the production plugin loader,
// not through weftd).
//
// WEFT_TEST_BACKEND selects the backend (ctest runs each fault suite once per
// backend). Every case starts its own server or SQLite file: a server that
// cannot start fails the case, nothing skips.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/servers.h"
#include "support/temp_dir.h"
#include "support/test_util.h"
#include "support/weftd.h"
#include "weft/json.h"
#include "weft/kv.h"

namespace weft::faults {

using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;
using Settings = std::map<std::string, std::string>;

// backendName() (WEFT_TEST_BACKEND), eventually(), elapsedMs(), fixed().
using testing::backendName;
using testing::elapsedMs;
using testing::eventually;
using testing::fixed;

// Prints one measured figure as "[faults.<backend>] text" on stdout; the
// closing notes quote these lines. Figures are reported, never asserted.
void figure(const std::string& text);

// The backend of one case: a nats-server or redis-server child process (own
// loopback port, data dir that survives kill9()/restart(); redis with
// appendonly yes and appendfsync always), or a SQLite file.
class Backend {
 public:
  // dataDir: where the server keeps its data, or the directory of the SQLite
  // file ("" = a fresh temp dir removed with this object). serverArgs: added
  // to the server's command line after ours (e.g. {"--appendonly", "no"} for
  // the positive control that must lose writes).
  explicit Backend(const std::string& name, const std::string& dataDir = "",
                   const std::vector<std::string>& serverArgs = {});
  ~Backend();

  const std::string& name() const { return name_; }
  bool isServer() const { return server_ != nullptr; }
  // The server process; throws std::logic_error for sqlite.
  testing::ServerProcess& server();
  const std::string& dataDir() const { return dataDir_; }

  // kv.backend plus the URL or file of this backend.
  Settings settings() const;
  // The same, but with the server's URL pointing at 127.0.0.1:port (a proxy
  // in front of the server). Throws std::logic_error for sqlite.
  Settings settingsVia(int port) const;

 private:
  std::string name_;
  std::unique_ptr<testing::TempDir> ownedDir_;
  std::string dataDir_;
  std::unique_ptr<testing::ServerProcess> server_;
};

// Settings every weftd of the fault tests gets: quick reconnects and a short
// sweep, so outages heal and leases expire within seconds.
Settings commonSettings();

// Starts weftd with commonSettings() + settings + extra and waits (up to 20 s)
// until it serves; FAILs the case otherwise.
std::unique_ptr<testing::Weftd> startWeftd(const Settings& settings, const Settings& extra = {});

// Opens the store that `settings` describe through the production loader,
// waiting up to 20 s until it answers ping(). FAILs the case otherwise.
std::shared_ptr<KvStore> openStore(const Settings& settings);

// One POST /api/work and what its client learned.
struct WriteAttempt {
  enum class Outcome {
    Acked,          // 201 with an id
    Failed,         // an answer that says the write was not made (4xx, 503 not timed out)
    Indeterminate,  // no answer, or a 503 saying the backend timed out (may be applied)
  };
  std::string marker;  // unique per attempt; the work item's description
  Outcome outcome = Outcome::Failed;
  int status = 0;     // HTTP status, 0 = no answer
  std::string id;     // when acked
  std::string error;  // the error message or transport error
  double ms = 0;      // request wall time
  Clock::time_point startedAt;
};

// The work item body a WriteLoad submits.
Json workBody(const std::string& capability, const std::string& description);

// `threads` client threads, each on its own keep-alive connection to weftd on
// `port`, submitting work items back to back (with `pause` between requests)
// until stop(). Every attempt is recorded.
class WriteLoad {
 public:
  WriteLoad(int port, int threads, std::string capability, Ms pause = Ms(0),
            Ms requestTimeout = Ms(10000));
  ~WriteLoad();
  WriteLoad(const WriteLoad&) = delete;
  WriteLoad& operator=(const WriteLoad&) = delete;

  // Stops the threads (each finishes its current request) and joins them.
  void stop();
  std::vector<WriteAttempt> attempts() const;
  size_t count() const;
  size_t ackedCount() const;
  // Blocks until at least n more attempts than now were recorded, or timeout.
  bool waitForMore(size_t n, Ms timeout) const;

 private:
  void run(int thread);

  int port_;
  std::string capability_;
  Ms pause_;
  Ms requestTimeout_;
  std::string runTag_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::vector<WriteAttempt> attempts_;
  std::vector<std::thread> threads_;
};

// docs/reliability.md's classes, over every attempt.
struct Classification {
  int ackedPresent = 0;
  int ackedLost = 0;
  int failedAbsent = 0;
  int failedPresent = 0;
  int indeterminatePresent = 0;
  int indeterminateAbsent = 0;
  int duplicated = 0;               // markers stored more than once
  std::map<int, int> statuses;      // HTTP status -> count (0 = no answer)
  std::vector<std::string> lost;    // the first few lost markers
  std::vector<std::string> strays;  // the first few failed-but-present markers
  int total() const;
  std::string summary() const;
};

// Reads every work item of the backend (a scan of the work bucket through
// `store`) and classifies each attempt by its marker. An acked attempt also
// counts as lost when the item stored under its marker has another id.
Classification classify(const std::vector<WriteAttempt>& attempts, KvStore& store);

// Statuses of a request set, as "201×120 503×7 0×1".
std::string statusHistogram(const std::map<int, int>& statuses);

}  // namespace weft::faults
