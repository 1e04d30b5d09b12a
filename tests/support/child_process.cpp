#include "support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace weft::testing {

namespace {

// What waitpid() reported for an ended child, or a placeholder when it
// failed (the child was reaped elsewhere, which should not happen).
ExitStatus decodeStatus(pid_t waitResult, int raw) {
  ExitStatus status;
  if (waitResult < 0) {
    status.exited = true;
    status.code = -1;
  } else if (WIFEXITED(raw)) {
    status.exited = true;
    status.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    status.signal = WTERMSIG(raw);
  }
  return status;
}

}  // namespace

std::string ExitStatus::toString() const {
  return exited ? "exit code " + std::to_string(code)
                : "killed by signal " + std::to_string(signal);
}

ChildProcess::ChildProcess(const ChildOptions& options) {
  if (options.argv.empty()) throw std::runtime_error("ChildProcess: empty argv");
  program_ = options.argv[0];

  std::vector<std::string> envStrings;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (options.env.count(name) == 0) envStrings.push_back(std::move(entry));
  }
  for (const auto& [name, value] : options.env) envStrings.push_back(name + "=" + value);

  std::vector<char*> argv;
  for (const auto& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : envStrings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (!options.outputFile.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.outputFile.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  // A default signal mask and dispositions, whatever the test runner set.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  int rc = ::posix_spawnp(&pid_, program_.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start '" + program_ + "': " + std::strerror(rc));
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) killAndWait();
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), program_(std::move(other.program_)), status_(std::move(other.status_)) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) killAndWait();
    pid_ = other.pid_;
    program_ = std::move(other.program_);
    status_ = std::move(other.status_);
    other.pid_ = -1;
  }
  return *this;
}

bool ChildProcess::tryReap(bool block) {
  if (pid_ <= 0 || status_) return true;
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  status_ = decodeStatus(r, raw);
  return true;
}

bool ChildProcess::running() {
  return pid_ > 0 && !tryReap(false);
}

void ChildProcess::kill(int signal) {
  // Never signal a reaped pid: the number may belong to another process now.
  if (pid_ > 0 && !status_) ::kill(pid_, signal);
}

std::optional<ExitStatus> ChildProcess::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!tryReap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

bool ChildProcess::pause(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || status_) return false;
  ::kill(pid_, SIGSTOP);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int raw = 0;
    // WUNTRACED reports the group stop once all threads have stopped; it also
    // reaps the child if it died meanwhile, which must be recorded.
    pid_t r = ::waitpid(pid_, &raw, WUNTRACED | WNOHANG);
    if (r == pid_ && WIFSTOPPED(raw)) return true;
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      status_ = decodeStatus(r, raw);
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void ChildProcess::resume() {
  kill(SIGCONT);
}

ExitStatus ChildProcess::killAndWait() {
  kill(SIGKILL);
  tryReap(true);
  return status_.value_or(ExitStatus{});
}

}  // namespace weft::testing
