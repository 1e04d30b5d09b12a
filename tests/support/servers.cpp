#include "support/servers.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/net.h"

namespace weft::testing {
namespace {

constexpr std::chrono::milliseconds kReadyTimeout{15000};
// A free port can be taken by another process before our server binds it;
// the server then exits and we try another port.
constexpr int kStartAttempts = 3;

std::string binaryFromEnv(const std::string& envVar, const std::string& fallback) {
  const char* value = std::getenv(envVar.c_str());
  return value && *value ? value : fallback;
}

}  // namespace

ServerProcess::ServerProcess(std::string name, std::string binaryEnvVar, std::string defaultBinary,
                             const ServerOptions& options)
    : name_(std::move(name)),
      binaryEnvVar_(std::move(binaryEnvVar)),
      binary_(binaryFromEnv(binaryEnvVar_, defaultBinary)) {
  if (options.dataDir.empty()) {
    ownedDir_ = std::make_unique<TempDir>("weft-" + name_ + "-");
    if (const char* keep = std::getenv("WEFT_TEST_KEEP_TMP"); keep && *keep) ownedDir_->keep();
    dataDir_ = ownedDir_->file("data");
    logFile_ = ownedDir_->file("server.log");
  } else {
    dataDir_ = options.dataDir;
    logFile_ = options.dataDir + "/server.log";
  }
  extraArgs_ = options.extraArgs;
  port_ = options.port;
  fixedPort_ = options.port != 0;
}

ServerProcess::~ServerProcess() {
  // The child's own destructor SIGKILLs it; reset it before the data dir goes.
  child_.reset();
}

void ServerProcess::startInitially() {
  std::string failures;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    if (!fixedPort_) port_ = findFreePort();
    if (startOnce(&failures)) return;
    if (fixedPort_) break;
  }
  throw std::runtime_error(failures);
}

bool ServerProcess::startOnce(std::string* failure) {
  std::error_code error;
  std::filesystem::create_directories(dataDir_, error);
  if (error) {
    *failure += "cannot create " + dataDir_ + ": " + error.message() + "\n";
    return false;
  }
  ChildOptions options;
  options.argv.push_back(binary_);
  for (auto& arg : arguments()) options.argv.push_back(arg);
  for (auto& arg : extraArgs_) options.argv.push_back(arg);
  options.outputFile = logFile_;
  std::string command;
  for (const auto& arg : options.argv) command += (command.empty() ? "" : " ") + arg;
  try {
    child_.emplace(options);
  } catch (const std::exception& e) {
    *failure += name_ + ": " + e.what() + " (is it installed? " + binaryEnvVar_ +
                " overrides the binary)\n";
    return false;
  }
  bool ready = probeReady(kReadyTimeout);
  // Readiness of a port someone else holds would be a lie: our server must
  // still be alive.
  if (ready && child_->running()) return true;
  std::string why = child_->running()
                        ? "not ready after " + std::to_string(kReadyTimeout.count()) + " ms"
                        : "exited (" + child_->exitStatus()->toString() + ")";
  child_.reset();
  *failure += name_ + " on port " + std::to_string(port_) + " " + why + ": " + command +
              "\n--- log tail ---\n" + logTail() + "\n";
  return false;
}

std::string ServerProcess::logTail() const {
  std::ifstream in(logFile_);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

void ServerProcess::kill9() {
  if (child_) child_->killAndWait();
  child_.reset();
}

void ServerProcess::pause() {
  if (!child_ || !child_->pause(std::chrono::seconds(5))) {
    throw std::runtime_error(name_ + " on port " + std::to_string(port_) + " did not stop");
  }
}

void ServerProcess::resume() {
  if (child_) child_->resume();
}

void ServerProcess::stop() {
  if (!child_) return;
  child_->kill(SIGCONT);  // a paused server cannot handle SIGTERM
  child_->kill(SIGTERM);
  if (!child_->wait(std::chrono::seconds(10))) child_->killAndWait();
  child_.reset();
}

void ServerProcess::restart() {
  kill9();
  std::string failure;
  if (!startOnce(&failure)) throw std::runtime_error("restart failed: " + failure);
}

NatsServer::NatsServer(const ServerOptions& options)
    : ServerProcess("nats-server", "WEFT_NATS_SERVER_BIN", "nats-server", options) {
  startInitially();
}

std::vector<std::string> NatsServer::arguments() const {
  return {"-js", "-a", "127.0.0.1", "-p", std::to_string(port()), "-sd", dataDir()};
}

bool NatsServer::probeReady(std::chrono::milliseconds timeout) const {
  // The server greets every client with INFO; it opens the client port only
  // after JetStream has recovered its streams.
  return probeTcp(port(), "", "INFO {", timeout);
}

RedisServer::RedisServer(const ServerOptions& options)
    : ServerProcess("redis-server", "WEFT_REDIS_SERVER_BIN", "redis-server", options) {
  startInitially();
}

std::vector<std::string> RedisServer::arguments() const {
  // Append-only with Redis's default fsync policy (everysec). That policy can
  // acknowledge a write before it reached the file (Redis postpones the AOF
  // write while a background fsync is slow), so tests that count acknowledged
  // writes after a kill -9 add --appendfsync always through extraArgs.
  std::vector<std::string> args = {"--port", std::to_string(port()), "--bind", "127.0.0.1"};
  for (const char* arg : {"--dir", dataDir().c_str(), "--appendonly", "yes", "--save", ""}) {
    args.push_back(arg);
  }
  return args;
}

bool RedisServer::probeReady(std::chrono::milliseconds timeout) const {
  // Redis accepts connections while it loads the AOF and answers -LOADING
  // meanwhile; only +PONG means it serves.
  return probeTcp(port(), "PING\r\n", "+PONG", timeout);
}

}  // namespace weft::testing
