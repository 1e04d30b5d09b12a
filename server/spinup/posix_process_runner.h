// The ProcessRunner of weftd (weft/spin_up_io.h): posix_spawn from an argv,
// never a shell. Detached children get a new session (setsid) and /dev/null
// for stdio; waited children get their own process group, so a timeout kills
// whatever they started too. Every child is reaped: by the call itself, or,
// when it outlives the call (detached, or left running at shutdown), by a
// reaper thread that polls exactly the pids it adopted (never waitpid(-1),
// which would steal the children of other code in the process).
//
// Children never inherit Weft's descriptors (listening socket, backend
// connections: closefrom(3) in the child), its signal mask or its ignored
// signals (weftd ignores SIGPIPE; an agent must not).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "weft/spin_up_io.h"

namespace weft {

class PosixProcessRunner : public ProcessRunner {
 public:
  PosixProcessRunner();
  // Stops the reaper. Children still running are not killed (docs/api.md §4.5);
  // once Weft exits, init reaps them.
  ~PosixProcessRunner() override;
  PosixProcessRunner(const PosixProcessRunner&) = delete;
  PosixProcessRunner& operator=(const PosixProcessRunner&) = delete;

  Result<ProcessOutcome> run(const ProcessRequest& request, const CancelToken& cancel) override;
  Status checkExecutable(const std::string& command, const std::string& workingDirectory) override;
  bool isDirectory(const std::string& path) override;

  // Children handed to the reaper and not reaped yet (for tests).
  size_t adoptedCount() const;

 private:
  void adopt(pid_t pid);
  void reaperLoop();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::set<pid_t> adopted_;
  bool stopping_ = false;
  std::thread reaper_;
};

}  // namespace weft
