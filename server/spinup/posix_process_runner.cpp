#include "spinup/posix_process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "weft/log.h"

extern char** environ;

namespace weft {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kPollSliceMs = 20;

std::string errnoText(int err) {
  return std::strerror(err);
}

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// posix_spawn's two attribute objects, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

// Weft's environment with the request's additions (replacing same names).
std::vector<std::string> buildEnvironment(
    const std::vector<std::pair<std::string, std::string>>& additions) {
  std::vector<std::string> out;
  std::map<std::string, size_t> index;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (index.count(name)) continue;
    index[name] = out.size();
    out.push_back(std::move(entry));
  }
  for (const auto& [name, value] : additions) {
    std::string entry = name + "=" + value;
    auto it = index.find(name);
    if (it != index.end()) {
      out[it->second] = std::move(entry);
    } else {
      index[name] = out.size();
      out.push_back(std::move(entry));
    }
  }
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void setNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Appends what fd has now to out (up to limit, dropping the rest). Returns
// false at end of file or on an error other than "would block".
bool drain(int fd, std::string& out, size_t limit) {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      size_t room = out.size() < limit ? limit - out.size() : 0;
      out.append(buf, std::min(room, static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

// Writes to a pipe without letting SIGPIPE kill the process when the child
// closed its end (weftd ignores SIGPIPE, a test binary may not): the signal
// is blocked on this thread and a pending one is consumed.
ssize_t writeNoSigpipe(int fd, const char* data, size_t size) {
  sigset_t pipeSet, old;
  sigemptyset(&pipeSet);
  sigaddset(&pipeSet, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipeSet, &old);
  ssize_t n = ::write(fd, data, size);
  int err = errno;
  if (n < 0 && err == EPIPE) {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipeSet, nullptr, &zero) > 0) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return n;
}

void fillExit(ProcessOutcome& out, int status) {
  if (WIFEXITED(status)) {
    out.exited = true;
    out.exitCode = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
}

bool isExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

PosixProcessRunner::PosixProcessRunner() : reaper_([this] { reaperLoop(); }) {}

PosixProcessRunner::~PosixProcessRunner() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

size_t PosixProcessRunner::adoptedCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return adopted_.size();
}

void PosixProcessRunner::adopt(pid_t pid) {
  std::lock_guard<std::mutex> lock(mutex_);
  adopted_.insert(pid);
}

void PosixProcessRunner::reaperLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    for (auto it = adopted_.begin(); it != adopted_.end();) {
      int status = 0;
      pid_t r = ::waitpid(*it, &status, WNOHANG);
      // r == pid: reaped; -1 (ECHILD): not ours to wait for any more.
      it = (r == *it || (r < 0 && errno != EINTR)) ? adopted_.erase(it) : std::next(it);
    }
    cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_; });
  }
}

bool PosixProcessRunner::isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status PosixProcessRunner::checkExecutable(const std::string& command,
                                           const std::string& workingDirectory) {
  const Status missing = Status::notFound("command not found: " + command);
  if (command.empty()) return missing;
  if (command.find('/') != std::string::npos) {
    std::string path = command;
    if (command[0] != '/' && !workingDirectory.empty()) path = workingDirectory + "/" + command;
    return isExecutableFile(path) ? Status::ok() : missing;
  }
  // The lookup posix_spawnp does: Weft's PATH, or the default one.
  const char* env = std::getenv("PATH");
  std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    if (isExecutableFile(dir + "/" + command)) return Status::ok();
    start = end + 1;
  }
  return missing;
}

Result<ProcessOutcome> PosixProcessRunner::run(const ProcessRequest& request,
                                               const CancelToken& cancel) {
  if (request.argv.empty() || request.argv[0].empty()) {
    return Status::invalidArgument("no program to run");
  }
  const std::string& program = request.argv[0];
  std::vector<std::string> argvStrings = request.argv;
  std::vector<std::string> envStrings = buildEnvironment(request.env);
  std::vector<char*> argv = pointers(argvStrings);
  std::vector<char*> envp = pointers(envStrings);

  // Pipes are created close-on-exec so a child spawned concurrently by
  // another thread never inherits them; dup2 onto 0-2 clears the flag.
  Fd stdinRead, stdinWrite, outRead, outWrite, errRead, errWrite;
  auto makePipe = [](Fd& r, Fd& w) -> bool {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    r.reset(fds[0]);
    w.reset(fds[1]);
    return true;
  };
  const bool capture = !request.detached;
  const bool feedStdin = capture && request.stdinData.has_value();
  if ((feedStdin && !makePipe(stdinRead, stdinWrite)) ||
      (capture && (!makePipe(outRead, outWrite) || !makePipe(errRead, errWrite)))) {
    return Status::internal("cannot create pipes: " + errnoText(errno));
  }

  SpawnSetup setup;
  if (feedStdin) {
    posix_spawn_file_actions_adddup2(&setup.actions, stdinRead.get(), 0);
  } else {
    posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (capture) {
    posix_spawn_file_actions_adddup2(&setup.actions, outWrite.get(), 1);
    posix_spawn_file_actions_adddup2(&setup.actions, errWrite.get(), 2);
  } else {
    posix_spawn_file_actions_addopen(&setup.actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&setup.actions, 2, "/dev/null", O_WRONLY, 0);
  }
  if (!request.workingDirectory.empty()) {
    posix_spawn_file_actions_addchdir_np(&setup.actions, request.workingDirectory.c_str());
  }
  // Nothing of Weft's beyond stdio: not the listening socket (which would
  // keep the port bound after Weft exits), not the backend connections.
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);

  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  flags |= request.detached ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP;
  posix_spawnattr_setflags(&setup.attr, flags);
  if (!request.detached) posix_spawnattr_setpgroup(&setup.attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &all);

  pid_t pid = -1;
  int rc =
      ::posix_spawnp(&pid, program.c_str(), &setup.actions, &setup.attr, argv.data(), envp.data());
  if (rc != 0) {
    if (!request.workingDirectory.empty() && !isDirectory(request.workingDirectory)) {
      return Status::notFound("working directory not found: " + request.workingDirectory);
    }
    return Status::notFound("cannot start " + program + ": " + errnoText(rc));
  }
  // The child's ends are the child's now.
  stdinRead.reset();
  outWrite.reset();
  errWrite.reset();

  ProcessOutcome out;
  out.pid = pid;
  int status = 0;

  if (request.detached) {
    const auto until = SteadyClock::now() + std::chrono::milliseconds(request.observeMs);
    for (;;) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        fillExit(out, status);
        return out;
      }
      if (cancel.cancelled()) {
        out.cancelled = true;
        break;
      }
      if (SteadyClock::now() >= until) {
        out.running = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    adopt(pid);
    return out;
  }

  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(request.timeoutMs);
  setNonBlocking(outRead.get());
  setNonBlocking(errRead.get());
  size_t written = 0;
  if (feedStdin) {
    setNonBlocking(stdinWrite.get());
    if (request.stdinData->empty()) stdinWrite.reset();
  }
  bool outOpen = true, errOpen = true;
  for (;;) {
    pollfd fds[3];
    nfds_t n = 0;
    if (outOpen) fds[n++] = {outRead.get(), POLLIN, 0};
    if (errOpen) fds[n++] = {errRead.get(), POLLIN, 0};
    if (stdinWrite.get() >= 0) fds[n++] = {stdinWrite.get(), POLLOUT, 0};
    if (n > 0) {
      ::poll(fds, n, kPollSliceMs);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollSliceMs));
    }
    if (outOpen) outOpen = drain(outRead.get(), out.stdoutData, request.captureLimit);
    if (errOpen) errOpen = drain(errRead.get(), out.stderrData, request.captureLimit);
    if (stdinWrite.get() >= 0) {
      const std::string& data = *request.stdinData;
      ssize_t w = writeNoSigpipe(stdinWrite.get(), data.data() + written, data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (written >= data.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        stdinWrite.reset();  // all sent (or the child closed stdin): EOF for it
      }
    }
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      fillExit(out, status);
      // What the child wrote just before exiting; a grandchild that keeps
      // the pipe open is not waited for.
      if (outOpen) drain(outRead.get(), out.stdoutData, request.captureLimit);
      if (errOpen) drain(errRead.get(), out.stderrData, request.captureLimit);
      return out;
    }
    if (cancel.cancelled()) {
      out.cancelled = true;
      adopt(pid);
      return out;
    }
    if (SteadyClock::now() >= deadline) {
      // The whole process group: a shell's or an ssh's children too.
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      fillExit(out, status);
      out.timedOut = true;
      return out;
    }
  }
}

}  // namespace weft
