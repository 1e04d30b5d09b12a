// The real outbound implementations of weftd (server/spinup/): the posix_spawn
// ProcessRunner against real programs, and the Poco HttpCaller against a
// local recording server. No shell is involved unless a case runs /bin/sh
// itself as the program.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <thread>

#include "spinup/poco_http_caller.h"
#include "spinup/posix_process_runner.h"
#include "support/recording_http_server.h"
#include "support/temp_dir.h"

namespace weft {
namespace {

using SteadyClock = std::chrono::steady_clock;
using testing::CannedResponse;
using testing::RecordedRequest;
using testing::RecordingHttpServer;
using testing::TempDir;

int64_t msSince(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t).count();
}

template <typename F>
bool eventually(F&& f, int timeoutMs = 3000) {
  auto until = SteadyClock::now() + std::chrono::milliseconds(timeoutMs);
  while (SteadyClock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

bool processGone(pid_t pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

ProcessOutcome mustRun(ProcessRunner& runner, const ProcessRequest& req) {
  CancelToken never;
  auto r = runner.run(req, never);
  INFO(r.status().toString());
  REQUIRE(r.isOk());
  return *r;
}

ProcessRequest waited(std::vector<std::string> argv, int64_t timeoutMs = 5000) {
  ProcessRequest req;
  req.argv = std::move(argv);
  req.detached = false;
  req.timeoutMs = timeoutMs;
  return req;
}

}  // namespace

TEST_CASE("runner: argv is passed literally, output captured", "[runtime][process]") {
  PosixProcessRunner runner;
  TempDir dir("weft-runner-");
  const std::string marker = dir.file("x");
  auto out = mustRun(runner, waited({"/bin/echo", "; touch " + marker, "$(id)", "a b"}));
  CHECK(out.exited);
  CHECK(out.exitCode == 0);
  CHECK(out.stdoutData == "; touch " + marker + " $(id) a b\n");
  CHECK(::access(marker.c_str(), F_OK) != 0);  // nothing ran through a shell

  auto failing = mustRun(runner, waited({"/bin/sh", "-c", "echo err >&2; exit 7"}));
  CHECK(failing.exitCode == 7);
  CHECK(failing.stderrData == "err\n");
}

TEST_CASE("runner: environment, working directory and stdin", "[runtime][process]") {
  PosixProcessRunner runner;
  TempDir dir("weft-runner-");
  ProcessRequest env = waited({"/usr/bin/env"});
  env.env = {{"WEFT_TEST_A", "one"}, {"PATH", "/usr/bin:/bin"}};
  auto e = mustRun(runner, env);
  CHECK(e.stdoutData.find("WEFT_TEST_A=one\n") != std::string::npos);
  CHECK(e.stdoutData.find("PATH=/usr/bin:/bin\n") != std::string::npos);

  ProcessRequest pwd = waited({"/bin/pwd"});
  pwd.workingDirectory = dir.path();
  CHECK(mustRun(runner, pwd).stdoutData == dir.path() + "\n");

  ProcessRequest cat = waited({"cat"});      // found through PATH
  cat.stdinData = std::string(200000, 'x');  // more than a pipe buffer
  auto c = mustRun(runner, cat);
  CHECK(c.exitCode == 0);
  CHECK(c.stdoutData.size() == 64 * 1024);  // capped, and the child never blocked

  ProcessRequest missingDir = waited({"/bin/true"});
  missingDir.workingDirectory = dir.file("nope");
  CancelToken never;
  auto r = runner.run(missingDir, never);
  CHECK(r.status().message() == "working directory not found: " + dir.file("nope"));
  auto missing = runner.run(waited({"no-such-program-weft"}), never);
  REQUIRE_FALSE(missing.isOk());
  CHECK(missing.status().message().find("cannot start no-such-program-weft") == 0);
}

TEST_CASE("runner: children inherit no descriptors and no ignored SIGPIPE", "[runtime][process]") {
  PosixProcessRunner runner;
  int fd = ::open("/dev/null", O_RDONLY);  // not close-on-exec
  REQUIRE(fd > 2);
  auto out = mustRun(runner, waited({"/bin/sh", "-c",
                                     "[ -e /proc/$$/fd/" + std::to_string(fd) +
                                         " ] && echo leaked || echo clean; "
                                         "grep SigIgn /proc/$$/status"}));
  ::close(fd);
  CHECK(out.stdoutData.find("clean\n") == 0);
  // SIGPIPE is bit 13: an ignore mask without it (the shell may ignore others).
  std::string mask = out.stdoutData.substr(out.stdoutData.find(':') + 1);
  unsigned long long bits = std::stoull(mask, nullptr, 16);
  CHECK((bits & (1ULL << (SIGPIPE - 1))) == 0);
}

TEST_CASE("runner: a timeout kills the whole process group", "[runtime][process]") {
  PosixProcessRunner runner;
  TempDir dir("weft-runner-");
  const std::string pidFile = dir.file("bg.pid");
  auto started = SteadyClock::now();
  auto out =
      mustRun(runner, waited({"/bin/sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"}, 300));
  CHECK(out.timedOut);
  CHECK_FALSE(out.exited);
  CHECK(out.signal == SIGKILL);
  CHECK(msSince(started) < 2000);
  std::ifstream in(pidFile);
  pid_t bg = 0;
  in >> bg;
  REQUIRE(bg > 0);
  CHECK(eventually([&] { return processGone(bg) || ::waitpid(bg, nullptr, WNOHANG) != 0; }));
}

TEST_CASE("runner: detached children run in their own session and are reaped",
          "[runtime][process]") {
  PosixProcessRunner runner;
  ProcessRequest req;
  req.argv = {"/bin/sleep", "30"};
  req.detached = true;
  req.observeMs = 100;
  auto out = mustRun(runner, req);
  CHECK(out.running);
  REQUIRE(out.pid > 0);
  CHECK(::getsid(out.pid) == out.pid);
  CHECK(runner.adoptedCount() == 1);
  ::kill(out.pid, SIGKILL);
  // The reaper waits for it: no zombie is left behind.
  CHECK(eventually([&] { return runner.adoptedCount() == 0; }));
  CHECK(processGone(out.pid));

  ProcessRequest quick;
  quick.argv = {"/bin/sh", "-c", "exit 3"};
  quick.detached = true;
  quick.observeMs = 2000;
  auto started = SteadyClock::now();
  auto q = mustRun(runner, quick);
  CHECK(q.exited);
  CHECK(q.exitCode == 3);
  CHECK(msSince(started) < 1500);  // an early exit ends the watch at once
  CHECK(processGone(q.pid));
}

TEST_CASE("runner: cancel leaves a waited child running, reaped later", "[runtime][process]") {
  PosixProcessRunner runner;
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.cancel();
  });
  auto started = SteadyClock::now();
  auto r = runner.run(waited({"/bin/sleep", "30"}, 10000), cancel);
  canceller.join();
  REQUIRE(r.isOk());
  CHECK(r->cancelled);
  CHECK(msSince(started) < 1500);
  CHECK_FALSE(processGone(r->pid));
  ::kill(r->pid, SIGKILL);
  CHECK(eventually([&] { return runner.adoptedCount() == 0; }));
  CHECK(processGone(r->pid));
}

TEST_CASE("runner: executable lookup for the local probe", "[runtime][process]") {
  PosixProcessRunner runner;
  TempDir dir("weft-runner-");
  CHECK(runner.checkExecutable("sh", "").isOk());
  CHECK(runner.checkExecutable("/bin/sh", "").isOk());
  CHECK(runner.checkExecutable("no-such-program-weft", "").message() ==
        "command not found: no-such-program-weft");
  const std::string script = dir.file("agent.sh");
  std::ofstream(script) << "#!/bin/sh\n";
  CHECK_FALSE(runner.checkExecutable("./agent.sh", dir.path()).isOk());  // not executable yet
  ::chmod(script.c_str(), 0755);
  CHECK(runner.checkExecutable("./agent.sh", dir.path()).isOk());
  CHECK(runner.isDirectory(dir.path()));
  CHECK_FALSE(runner.isDirectory(script));
}

// ---- HTTP ------------------------------------------------------------------------

TEST_CASE("http caller: request shape and reply", "[runtime][http]") {
  RecordingHttpServer server([](const RecordedRequest&) {
    CannedResponse r;
    r.status = 202;
    r.body = "accepted";
    return r;
  });
  PocoHttpCaller caller;
  CancelToken never;
  HttpCall call;
  call.method = "POST";
  call.url = server.url("/hook?x=1");
  call.headers = {{"Content-Type", "application/json"}, {"X-Key", "secret"}};
  call.body = R"({"a":1})";
  auto reply = caller.call(call, never);
  REQUIRE(reply.isOk());
  CHECK(reply->status == 202);
  CHECK(reply->body == "accepted");
  auto seen = server.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "POST");
  CHECK(seen[0].target == "/hook?x=1");
  CHECK(seen[0].header("X-Key") == std::optional<std::string>("secret"));
  CHECK(seen[0].body == R"({"a":1})");

  call.method = "HEAD";
  call.body.clear();
  auto head = caller.call(call, never);
  REQUIRE(head.isOk());
  CHECK(head->status == 202);
}

TEST_CASE("http caller: no redirects, bounded body", "[runtime][http]") {
  RecordingHttpServer server([](const RecordedRequest& req) {
    CannedResponse r;
    if (req.target == "/moved") {
      r.status = 302;
      r.headers = {{"Location", "/elsewhere"}};
    } else {
      r.body = std::string(100000, 'b');
    }
    return r;
  });
  PocoHttpCaller caller;
  CancelToken never;
  HttpCall call;
  call.method = "GET";
  call.url = server.url("/moved");
  auto moved = caller.call(call, never);
  REQUIRE(moved.isOk());
  CHECK(moved->status == 302);
  CHECK(server.requests().size() == 1);  // not followed
  call.url = server.url("/big");
  call.bodyLimit = 1000;
  auto big = caller.call(call, never);
  REQUIRE(big.isOk());
  CHECK(big->body.size() == 1000);
}

TEST_CASE("http caller: the deadline holds against slow and dripping servers", "[runtime][http]") {
  RecordingHttpServer server([](const RecordedRequest& req) {
    CannedResponse r;
    if (req.target == "/slow") r.delayMs = 3000;
    if (req.target == "/drip") {
      r.body = std::string(100, 'd');
      r.dripMs = 50;  // 5 s in all, each byte well within a socket timeout
    }
    return r;
  });
  PocoHttpCaller caller;
  CancelToken never;
  for (const char* path : {"/slow", "/drip"}) {
    HttpCall call;
    call.method = "GET";
    call.url = server.url(path);
    call.timeoutMs = 400;
    auto started = SteadyClock::now();
    auto r = caller.call(call, never);
    INFO(path);
    CHECK(r.code() == Code::Timeout);
    CHECK(msSince(started) < 1500);
  }
}

TEST_CASE("http caller: cancel, refused connections and bad URLs", "[runtime][http]") {
  RecordingHttpServer server([](const RecordedRequest&) {
    CannedResponse r;
    r.delayMs = 3000;
    return r;
  });
  PocoHttpCaller caller;
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.cancel();
  });
  HttpCall call;
  call.method = "GET";
  call.url = server.url("/");
  call.timeoutMs = 10000;
  auto started = SteadyClock::now();
  auto r = caller.call(call, cancel);
  canceller.join();
  CHECK(r.code() == Code::Unavailable);
  CHECK(r.status().message() == "cancelled");
  CHECK(msSince(started) < 1500);

  CancelToken never;
  int port = server.port();
  {
    RecordingHttpServer other;  // take a port, then free it
    port = other.port();
  }
  call.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  call.timeoutMs = 2000;
  CHECK(caller.call(call, never).code() == Code::Unavailable);
  call.url = "ftp://127.0.0.1/";
  CHECK(caller.call(call, never).status().message() == "unsupported URL scheme: ftp");
}

TEST_CASE("http caller: TLS certificates are verified", "[runtime][http]") {
  // A TLS listener with a self-signed certificate: the handshake must fail
  // (an unverified peer would be accepted by a client without verification).
  TempDir dir("weft-tls-");
  const std::string key = dir.file("key.pem"), cert = dir.file("cert.pem");
  const std::string gen =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  REQUIRE(std::system(gen.c_str()) == 0);
  int port = 0;
  {
    RecordingHttpServer probe;
    port = probe.port();
  }
  const std::string serve = "openssl s_server -quiet -accept 127.0.0.1:" + std::to_string(port) +
                            " -key " + key + " -cert " + cert + " -www >/dev/null 2>&1 & echo $!";
  FILE* p = ::popen(serve.c_str(), "r");
  REQUIRE(p);
  int serverPid = 0;
  REQUIRE(std::fscanf(p, "%d", &serverPid) == 1);
  ::pclose(p);
  struct Killer {
    int pid;
    ~Killer() { ::kill(pid, SIGKILL); }
  } killer{serverPid};
  PocoHttpCaller caller;
  CancelToken never;
  HttpCall call;
  call.method = "GET";
  call.url = "https://127.0.0.1:" + std::to_string(port) + "/";
  call.timeoutMs = 3000;
  Result<HttpReply> r = Status::internal("not called");
  // s_server needs a moment to listen; a refused connection is retried.
  REQUIRE(eventually(
      [&] {
        r = caller.call(call, never);
        return r.isOk() || r.status().message().find("refused") == std::string::npos;
      },
      5000));
  const std::string outcome =
      r.isOk() ? "answered " + std::to_string(r->status) : r.status().toString();
  INFO(outcome);
  CHECK_FALSE(r.isOk());
  CHECK(outcome.find("certificate verify failed") != std::string::npos);
}

}  // namespace weft
