// A child process owned by a test: started with posix_spawn from an argv
// (never through a shell), killed with SIGKILL and reaped when the owner
// forgets to, so a failing test leaves no server behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace weft::testing {

struct ChildOptions {
  // argv[0] is the program: a path, or a name searched in PATH.
  std::vector<std::string> argv;
  // Added to (or replacing entries of) the parent's environment.
  std::map<std::string, std::string> env;
  // When not empty, stdout and stderr are appended to this file; otherwise
  // they are inherited. stdin is always /dev/null.
  std::string outputFile;
};

struct ExitStatus {
  bool exited = false;  // exited normally; code is valid
  int code = 0;
  int signal = 0;  // the terminating signal when !exited
  std::string toString() const;
};

class ChildProcess {
 public:
  // Starts the process. Throws std::runtime_error (with the program name and
  // the errno text) when it cannot be spawned, e.g. the binary is missing.
  explicit ChildProcess(const ChildOptions& options);
  // SIGKILLs and reaps the process when it is still running.
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Whether the process has not been reaped yet (reaps it when it has ended).
  bool running();
  // Sends signal to this process only. No-op once it was reaped.
  void kill(int signal);
  // Waits up to timeout for the process to end and reaps it. Returns its
  // exit status, or nullopt when it is still running at the deadline.
  std::optional<ExitStatus> wait(std::chrono::milliseconds timeout);
  // Sends SIGSTOP and waits until every thread of the process has stopped
  // (a signal is delivered asynchronously: without the wait, a busy process
  // keeps running for a moment). False when it did not stop within timeout.
  bool pause(std::chrono::milliseconds timeout);
  // Sends SIGCONT.
  void resume();
  // SIGKILL, then reap (blocking; SIGKILL cannot be ignored).
  ExitStatus killAndWait();
  // The status once reaped.
  const std::optional<ExitStatus>& exitStatus() const { return status_; }

 private:
  bool tryReap(bool block);

  pid_t pid_ = -1;
  std::string program_;
  std::optional<ExitStatus> status_;
};

}  // namespace weft::testing
