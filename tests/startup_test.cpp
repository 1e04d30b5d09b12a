// weftd's start-up as an operator meets it: the storage plugin declares and
// validates its own settings (plugin.h, WeftKvSettingSpec), a bad one stops
// weftd with exit code 2 and a message naming the key, and --help lists
// every backend's keys. Runs the built weftd as a child process.
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/net.h"
#include "support/temp_dir.h"

using namespace weft::testing;

namespace {

std::string weftdBinary() {
  const char* env = std::getenv("WEFT_TEST_WEFTD_BIN");
  return env != nullptr && *env != '\0' ? env : WEFT_TEST_WEFTD_DEFAULT_BIN;
}

struct Run {
  ExitStatus status;
  std::string output;  // stdout and stderr
};

// Runs weftd with args (and env) until it exits, at most 20 s.
Run runWeftd(const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env = {}) {
  TempDir dir("weft-startup-");
  ChildOptions options;
  options.argv = {weftdBinary(), "--set", "http.host=127.0.0.1", "--port",
                  std::to_string(findFreePort()), "--set", "log.format=text"};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env = env;
  options.env["WEFT_CONFIG"] = "";
  options.outputFile = dir.file("out.log");
  ChildProcess child(options);
  std::optional<ExitStatus> status = child.wait(std::chrono::seconds(20));
  if (!status) {
    child.killAndWait();
    FAIL("weftd " << args.front() << " ... did not exit within 20 s");
  }
  std::ifstream in(options.outputFile);
  std::stringstream text;
  text << in.rdbuf();
  return Run{*status, text.str()};
}

void checkRefused(const Run& run, const std::string& key) {
  INFO(run.output);
  CHECK(run.status.exited);
  CHECK(run.status.code == 2);
  CHECK(run.output.find(key) != std::string::npos);
}

}  // namespace

TEST_CASE("a backend's own invalid setting stops weftd with exit code 2 naming it",
          "[startup]") {
  SECTION("sqlite") {
    TempDir data("weft-startup-db-");
    checkRefused(runWeftd({"--backend", "sqlite", "--set", "sqlite.path=" + data.file("w.db"),
                           "--set", "sqlite.synchronous=SOMETIMES"}),
                 "sqlite.synchronous");
  }
  SECTION("nats, through --set") {
    checkRefused(runWeftd({"--backend", "nats", "--set", "nats.url=ws://h:443"}), "nats.url");
  }
  SECTION("nats, through the older environment name the plugin declares") {
    checkRefused(runWeftd({"--backend", "nats"}, {{"NATS_URL", "ws://h:443"}}), "nats.url");
  }
  SECTION("nats, a value the plugin checks beyond the URL") {
    checkRefused(runWeftd({"--backend", "nats", "--set", "nats.replicas=2"}), "nats.replicas");
  }
  SECTION("redis") {
    checkRefused(runWeftd({"--backend", "redis", "--set", "redis.url=rediss://h:6379"}),
                 "redis.url");
  }
}

TEST_CASE("weftd --help lists every backend's keys", "[startup]") {
  ChildOptions options;
  TempDir dir("weft-startup-");
  options.argv = {weftdBinary(), "--help"};
  options.outputFile = dir.file("help.txt");
  ChildProcess child(options);
  std::optional<ExitStatus> status = child.wait(std::chrono::seconds(20));
  REQUIRE(status);
  CHECK(status->code == 0);
  std::ifstream in(options.outputFile);
  std::stringstream text;
  text << in.rdbuf();
  const std::string help = text.str();
  for (const char* key : {"nats.url", "nats.user", "nats.pass", "nats.replicas", "nats.casGuard",
                          "redis.url", "sqlite.path", "sqlite.synchronous",
                          "sqlite.pollIntervalMs", "sqlite.changeLogMaxRows"}) {
    INFO(key);
    CHECK(help.find(std::string("  ") + key + " (default") != std::string::npos);
  }
  CHECK(help.find("also $NATS_URL") != std::string::npos);
}

// A crash says where it happened: a fatal signal makes weftd print the signal
// and a stack trace on stderr (server/crash_report.h), then die of the same
// signal, so the exit status and any core dump are what they would have been.
TEST_CASE("a fatal signal makes weftd print the signal and a stack, then die of it",
          "[startup]") {
  for (int sig : {SIGSEGV, SIGABRT}) {
    TempDir dir("weft-startup-");
    const int port = findFreePort();
    ChildOptions options;
    options.argv = {weftdBinary(),         "--set", "http.host=127.0.0.1", "--port",
                    std::to_string(port), "--backend", "sqlite", "--set",
                    "sqlite.path=" + dir.file("w.db")};
    options.env["WEFT_CONFIG"] = "";
    options.outputFile = dir.file("out.log");
    ChildProcess child(options);
    REQUIRE(waitForPort(port, std::chrono::milliseconds(15000)));
    child.kill(sig);
    std::optional<ExitStatus> status = child.wait(std::chrono::seconds(20));
    REQUIRE(status);
    std::ifstream in(options.outputFile);
    std::stringstream text;
    text << in.rdbuf();
    const std::string out = text.str();
    const std::string name = sig == SIGSEGV ? "SIGSEGV" : "SIGABRT";
    INFO(name << "\n" << out);
    CHECK_FALSE(status->exited);
    CHECK(status->signal == sig);
    const auto at = out.find("weftd: fatal signal " + name + "; stack:\n");
    REQUIRE(at != std::string::npos);
    // backtrace_symbols_fd: one "object(+offset)[address]" line per frame.
    const std::string stack = out.substr(at);
    CHECK(stack.find("weftd(") != std::string::npos);
    CHECK(stack.find(")[0x") != std::string::npos);
  }
}
