// The outbound side effects of spin-up (docs/api.md §4.4, §4.5), behind small
// interfaces: the core decides WHAT to run or call, the server supplies HOW
// (posix_spawn, Poco HTTP), and tests replace both with fakes. Core code
// never spawns a process or opens a socket itself.
//
// Every call is bounded: by its own timeout and by a CancelToken, which the
// spin-up component trips at its operation deadline and at shutdown, so no
// call can hold a thread past either.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "weft/status.h"

namespace weft {

// A one-way "stop now" flag shared between the caller and an outbound call.
// Thread-safe. Callbacks run exactly once: in cancel() (on the cancelling
// thread) or, when registered after it, at once in onCancel().
class CancelToken {
 public:
  bool cancelled() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cancelled_;
  }

  void cancel() {
    std::map<uint64_t, std::function<void()>> callbacks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cancelled_) return;
      cancelled_ = true;
      callbacks.swap(callbacks_);
    }
    for (auto& [id, fn] : callbacks) {
      try {
        fn();
      } catch (...) {
        // A callback only aborts I/O; a failure there changes nothing.
      }
    }
  }

  // Registers fn to run on cancel. Returns an id for removeCallback(), or 0
  // when the token was already cancelled (fn then ran before returning).
  // const: whoever only observes the token (the outbound call) may still
  // hook its abort into it.
  uint64_t onCancel(std::function<void()> fn) const {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!cancelled_) {
        callbacks_.emplace(++nextId_, std::move(fn));
        return nextId_;
      }
    }
    fn();
    return 0;
  }

  // After it returns, the callback of id will not start (it may be running
  // already when cancel() is in progress on another thread).
  void removeCallback(uint64_t id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    callbacks_.erase(id);
  }

 private:
  mutable std::mutex mutex_;
  bool cancelled_ = false;
  mutable uint64_t nextId_ = 0;
  mutable std::map<uint64_t, std::function<void()>> callbacks_;
};

// ---- processes ---------------------------------------------------------------

struct ProcessRequest {
  // argv[0] is the program: a path, or a name looked up in Weft's PATH. Run
  // directly with these arguments, never through a shell (a caller that
  // wants one passes {"/bin/sh", "-c", ...} itself).
  std::vector<std::string> argv;
  // Added to, or replacing entries of, Weft's own environment, in order.
  std::vector<std::pair<std::string, std::string>> env;
  // "" = Weft's working directory.
  std::string workingDirectory;
  // Detached: a new session (setsid), stdin/stdout/stderr on /dev/null; the
  // call watches the child for observeMs and returns, leaving it running.
  // Otherwise the call waits for the exit, at most timeoutMs, capturing
  // stdout and stderr; at the deadline the child's process group is killed.
  bool detached = false;
  int64_t observeMs = 500;
  int64_t timeoutMs = 60000;
  // Written to the child's stdin (then closed); nullopt = /dev/null.
  std::optional<std::string> stdinData;
  // Each of stdout and stderr is cut after this many bytes (the rest is read
  // and dropped, so the child never blocks on a full pipe).
  size_t captureLimit = 64 * 1024;
};

struct ProcessOutcome {
  int pid = -1;
  // Detached only: still running when the observation window ended.
  bool running = false;
  bool exited = false;  // exited normally: exitCode is valid
  int exitCode = -1;
  int signal = 0;          // the terminating signal when it did not exit normally
  bool timedOut = false;   // killed at timeoutMs
  bool cancelled = false;  // the token fired first; the child was left running
  std::string stdoutData, stderrData;
};

// Thread-safe; one call may block for up to its timeout (or observeMs).
class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;

  // Starts argv and watches or waits as the request says. Every child is
  // reaped eventually (no zombies), also a detached one that outlives the
  // call. A child still running when the token fires is not killed: the call
  // returns at once with cancelled = true (a waited child's output pipes are
  // closed then, so it sees EPIPE/SIGPIPE if it writes more). A failure to start (missing
  // program, bad working directory) is a non-Ok Status whose message says
  // why; an exit code is not a failure of this call.
  virtual Result<ProcessOutcome> run(const ProcessRequest& request, const CancelToken& cancel) = 0;

  // The local probe (§4.4): Ok when `command` resolves to an executable
  // regular file (absolute or relative path, relative paths taken from
  // workingDirectory when it is set, or a PATH lookup for a bare name).
  // NotFound with `command not found: <command>` otherwise.
  virtual Status checkExecutable(const std::string& command,
                                 const std::string& workingDirectory) = 0;
  virtual bool isDirectory(const std::string& path) = 0;
};

// ---- HTTP --------------------------------------------------------------------

struct HttpCall {
  std::string method;  // GET, HEAD, POST, PUT
  std::string url;     // http:// or https://
  // Sent in order; a later header of the same name replaces an earlier one.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent for POST and PUT
  int64_t timeoutMs = 30000;
  // The response body is read up to this many bytes, the rest dropped.
  size_t bodyLimit = 64 * 1024;
};

struct HttpReply {
  int status = 0;
  std::string body;  // possibly truncated to HttpCall::bodyLimit
};

// Thread-safe. Redirects are never followed (a 3xx is the answer); TLS
// certificates and host names are verified.
class HttpCaller {
 public:
  virtual ~HttpCaller() = default;
  // The reply, or: Timeout when timeoutMs passed; Unavailable when the
  // connection failed or was cancelled; InvalidArgument for a URL it cannot
  // call. Messages are short and contain no response body.
  virtual Result<HttpReply> call(const HttpCall& call, const CancelToken& cancel) = 0;
};

}  // namespace weft
