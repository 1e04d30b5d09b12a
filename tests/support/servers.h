// Real backend servers for tests: nats-server (JetStream) and redis-server,
// each a child process on a loopback port with its data in a directory that
// survives kill9() and restart(), so tests can crash and revive a backend.
//
// Binaries come from PATH; WEFT_NATS_SERVER_BIN and WEFT_REDIS_SERVER_BIN
// override them. Every failure to start throws std::runtime_error with the
// command and the tail of the server's log: a test that needs a server fails,
// it never skips.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/temp_dir.h"

namespace weft::testing {

struct ServerOptions {
  int port = 0;         // 0 = a free port
  std::string dataDir;  // empty = a new temp dir, removed with the server object
  std::vector<std::string> extraArgs;  // appended to the server's command line
};

// What the two servers share: start, readiness, crash and restart.
class ServerProcess {
 public:
  virtual ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  const std::string& dataDir() const { return dataDir_; }
  const std::string& logFile() const { return logFile_; }
  // The current process id, -1 when not running.
  pid_t pid() const { return child_ ? child_->pid() : -1; }
  bool running() { return child_ && child_->running(); }

  // SIGKILL and reap: a crash without any shutdown work.
  void kill9();
  // SIGSTOP / SIGCONT, to simulate a stalled backend. pause() returns once
  // the server has really stopped, and throws when it does not.
  void pause();
  void resume();
  // SIGTERM, then SIGKILL after 10 s; reaps.
  void stop();
  // Starts again (killing first when still running) on the same port and data
  // dir, and waits until it serves.
  void restart();

 protected:
  ServerProcess(std::string name, std::string binaryEnvVar, std::string defaultBinary,
                const ServerOptions& options);
  // Must be called by the subclass constructor (it needs the virtuals).
  void startInitially();
  virtual std::vector<std::string> arguments() const = 0;
  // Whether the server on port() answers like a ready server.
  virtual bool probeReady(std::chrono::milliseconds timeout) const = 0;

 private:
  // Starts the process and waits for readiness; false when it exited or did
  // not become ready (the reason is appended to failure).
  bool startOnce(std::string* failure);
  std::string logTail() const;

  std::string name_;
  std::string binaryEnvVar_;
  std::string binary_;
  std::unique_ptr<TempDir> ownedDir_;
  std::string dataDir_;
  std::string logFile_;
  std::vector<std::string> extraArgs_;
  int port_ = 0;
  bool fixedPort_ = false;
  std::optional<ChildProcess> child_;
};

// nats-server -js -a 127.0.0.1 -p <port> -sd <dataDir>/jetstream
class NatsServer : public ServerProcess {
 public:
  explicit NatsServer(const ServerOptions& options = {});
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port()); }

 protected:
  std::vector<std::string> arguments() const override;
  bool probeReady(std::chrono::milliseconds timeout) const override;
};

// redis-server --port <port> --bind 127.0.0.1 --dir <dataDir> --appendonly yes --save ""
// (appendfsync stays at Redis's default, everysec, unless extraArgs say otherwise)
class RedisServer : public ServerProcess {
 public:
  explicit RedisServer(const ServerOptions& options = {});
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port()) + "/0"; }

 protected:
  std::vector<std::string> arguments() const override;
  bool probeReady(std::chrono::milliseconds timeout) const override;
};

}  // namespace weft::testing
