// Self-test of the test support library: processes, ports, temp dirs and the
// real servers, including a crash and restart on the same port and data dir.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/child_process.h"
#include "support/net.h"
#include "support/servers.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
using namespace weft::testing;

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The state letter of /proc/<pid>/stat: R, S, T (stopped), Z...
char processState(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
}

}  // namespace

TEST_CASE("TempDir creates a private directory and removes it", "[support]") {
  std::string path;
  {
    TempDir dir("weft-support-");
    path = dir.path();
    REQUIRE(exists(path));
    std::ofstream(dir.file("f")) << "x";
    REQUIRE(exists(dir.file("f")));
  }
  CHECK_FALSE(exists(path));
}

TEST_CASE("ChildProcess runs argv with extra env and reports the exit", "[support]") {
  TempDir dir("weft-support-");
  ChildOptions options;
  options.argv = {"sh", "-c", "echo \"$WEFT_SUPPORT_X\"; echo err >&2; exit 3"};
  options.env["WEFT_SUPPORT_X"] = "hello there";
  options.outputFile = dir.file("out.log");
  ChildProcess child(options);
  CHECK(child.pid() > 0);
  auto status = child.wait(5000ms);
  REQUIRE(status);
  CHECK(status->exited);
  CHECK(status->code == 3);
  CHECK(readFile(dir.file("out.log")) == "hello there\nerr\n");
  CHECK_FALSE(child.running());
}

TEST_CASE("ChildProcess wait times out, kill ends it, the destructor reaps", "[support]") {
  ChildOptions options;
  options.argv = {"sleep", "30"};
  pid_t pid;
  {
    ChildProcess child(options);
    pid = child.pid();
    CHECK_FALSE(child.wait(50ms));
    CHECK(child.running());
    SECTION("kill") {
      child.kill(SIGTERM);
      auto status = child.wait(5000ms);
      REQUIRE(status);
      CHECK_FALSE(status->exited);
      CHECK(status->signal == SIGTERM);
    }
    SECTION("pause and resume") {
      REQUIRE(child.pause(5000ms));
      CHECK(processState(pid) == 'T');
      child.resume();
      CHECK(processState(pid) != 'T');  // SIGCONT takes effect before kill() returns
      CHECK(child.running());
    }
    SECTION("destructor") {}
  }
  // Reaped: the pid no longer names our child (kill fails with ESRCH unless
  // the number was reused in between, which a test run will not do).
  CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("ChildProcess throws for a missing binary", "[support]") {
  ChildOptions options;
  options.argv = {"weft-no-such-binary-here"};
  CHECK_THROWS_WITH(ChildProcess(options), Catch::Contains("weft-no-such-binary-here"));
}

TEST_CASE("findFreePort and waitForPort", "[support]") {
  int port = findFreePort();
  CHECK(port > 0);
  CHECK_FALSE(waitForPort(port, 50ms));
}

TEST_CASE("probeTcp asks again on a new connection after a wrong reply", "[support]") {
  // A fake server: the first client gets "-LOADING" and an idle connection,
  // the second "+PONG", like Redis while it replays its append-only file.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  // accept() gives up after 10 s (SO_RCVTIMEO applies to it on Linux), so the
  // fake server cannot hang the test when the probe never connects again.
  timeval acceptTimeout{10, 0};
  REQUIRE(::setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &acceptTimeout, sizeof acceptTimeout) == 0);
  std::thread server([listener] {
    int first = ::accept(listener, nullptr, nullptr);
    (void)!::write(first, "-LOADING\r\n", 10);
    int second = ::accept(listener, nullptr, nullptr);
    (void)!::write(second, "+PONG\r\n", 7);
    ::close(second);
    ::close(first);
  });
  auto start = std::chrono::steady_clock::now();
  CHECK(probeTcp(ntohs(addr.sin_port), "PING\r\n", "+PONG", 5000ms));
  CHECK(std::chrono::steady_clock::now() - start < 2000ms);
  server.join();
  ::close(listener);
}

TEST_CASE("RedisServer survives kill9 and restart with its data", "[support][server]") {
  RedisServer redis;
  int port = redis.port();
  REQUIRE(redis.running());
  CHECK(redis.url() == "redis://127.0.0.1:" + std::to_string(port) + "/0");
  REQUIRE(probeTcp(port, "SET weft-support-key kept\r\n", "+OK", 5000ms));
  redis.kill9();
  CHECK_FALSE(redis.running());
  CHECK_FALSE(waitForPort(port, 100ms));
  redis.restart();
  CHECK(redis.port() == port);
  CHECK(redis.running());
  // appendonly yes: the acknowledged write survived the crash.
  CHECK(probeTcp(port, "GET weft-support-key\r\n", "kept", 5000ms));
}

TEST_CASE("NatsServer starts with JetStream and restarts on the same port", "[support][server]") {
  NatsServer nats;
  int port = nats.port();
  REQUIRE(nats.running());
  CHECK(probeTcp(port, "", "\"jetstream\":true", 5000ms));
  nats.kill9();
  CHECK_FALSE(nats.running());
  nats.restart();
  CHECK(nats.port() == port);
  CHECK(probeTcp(port, "", "\"jetstream\":true", 5000ms));
}
