// weftd as a child process of a test, plus a tiny HTTP client for it.
//
// Weftd starts the built server binary (WEFT_TEST_WEFTD_BIN, else the path
// compiled in as WEFT_TEST_WEFTD_DEFAULT_BIN) on a free loopback port with
// `--set key=value` options, logs to a file in its own temp dir, and is
// SIGKILLed when the object dies, so a failing test leaves no server behind.
// Every start failure throws std::runtime_error with the command and the tail
// of the log: a test that needs weftd fails, it never skips.
//
// HttpClient is one keep-alive connection (Poco HTTPClientSession). It never
// throws for transport errors: a request that gets no answer returns status 0
// with the reason in `error`, so tests can assert on it. One client per
// thread; an HttpClient is not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/child_process.h"
#include "support/temp_dir.h"
#include "weft/json.h"

namespace Poco::Net {
class HTTPClientSession;
}

namespace weft::testing {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;       // 0 = no answer (see error)
  std::string error;    // transport failure, when status == 0
  HttpHeaders headers;  // as received
  std::string body;     // raw bytes
  Json json;            // body parsed as JSON; null when empty or not JSON
  double ms = 0;        // wall time of the request, connect included

  // The first header of that name (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  bool hasHeader(std::string_view name) const { return header(name).has_value(); }
  // json.get("error") / json.get("message") as strings ("" when absent).
  std::string errorKind() const { return json.getString("error"); }
  std::string message() const { return json.getString("message"); }
  // "STATUS body" (or the transport error), for failure messages.
  std::string describe() const;
};

class HttpClient {
 public:
  explicit HttpClient(int port, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request. body, when given, is sent as is with contentType
  // ("" = no Content-Type header), with Content-Length or, when chunked, with
  // chunked transfer encoding. Never throws for I/O errors.
  HttpResponse request(const std::string& method, const std::string& path,
                       const std::optional<std::string>& body = std::nullopt,
                       const HttpHeaders& headers = {},
                       const std::string& contentType = "application/json", bool chunked = false);

  HttpResponse get(const std::string& path, const HttpHeaders& headers = {}) {
    return request("GET", path, std::nullopt, headers);
  }
  // POSTs body serialised as application/json.
  HttpResponse post(const std::string& path, const Json& body, const HttpHeaders& headers = {}) {
    return request("POST", path, body.dump(), headers);
  }
  // POST without a body.
  HttpResponse post(const std::string& path) { return request("POST", path); }
  HttpResponse del(const std::string& path, const HttpHeaders& headers = {}) {
    return request("DELETE", path, std::nullopt, headers);
  }

  // Drops the connection; the next request opens a new one.
  void reset();
  int port() const { return port_; }

 private:
  int port_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
};

struct WeftdOptions {
  // Passed as `--set key=value`, after http.host=127.0.0.1.
  std::map<std::string, std::string> settings;
  // Added to the inherited environment (e.g. API_TOKENS).
  std::map<std::string, std::string> env;
  // 0 = a free port.
  int port = 0;
};

class Weftd {
 public:
  // Starts weftd and waits until it answers GET /health. Does NOT wait for
  // the backend (use waitServing()), so a weftd can be started against a
  // backend that is down.
  explicit Weftd(WeftdOptions options);
  // SIGKILLs the process when still running. Prints the tail of the log to
  // stderr when destroyed during a failed test (stack unwinding) or when
  // weftd ended by itself (a crash: the test only sees refused connections).
  ~Weftd();
  Weftd(const Weftd&) = delete;
  Weftd& operator=(const Weftd&) = delete;

  // The binary that is started.
  static std::string binary();

  int port() const { return port_; }
  pid_t pid() const { return child_ ? child_->pid() : -1; }
  bool running() { return child_ && child_->running(); }
  const std::string& logFile() const { return logFile_; }
  // The last maxBytes of the log.
  std::string logTail(size_t maxBytes = 4000) const;

  // The client of the test's main thread (reset on every restart).
  HttpClient& http() { return *client_; }
  HttpResponse get(const std::string& path, const HttpHeaders& headers = {}) {
    return http().get(path, headers);
  }
  HttpResponse post(const std::string& path, const Json& body, const HttpHeaders& headers = {}) {
    return http().post(path, body, headers);
  }
  HttpResponse post(const std::string& path) { return http().post(path); }
  HttpResponse del(const std::string& path) { return http().del(path); }

  // Polls until every storage-backed view answers (GET /api/stats is 200),
  // or timeout passes. Returns whether it did. headers: e.g. the bearer token
  // when auth is on.
  bool waitServing(std::chrono::milliseconds timeout = std::chrono::seconds(20),
                   const HttpHeaders& headers = {});

  // SIGKILL and reap: a crash without any shutdown work.
  void kill9();
  // SIGTERM, then waits up to timeout; returns the exit status, or nullopt
  // when it is still running then (it is SIGKILLed in that case).
  std::optional<ExitStatus> terminate(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Starts again (SIGKILLing first when still running) on the same port with
  // the same options, and waits for /health.
  void restart();

 private:
  // Spawns weftd on port_ and waits for /health; false (with the reason
  // appended to failure) when it exited or did not answer. Throws when the
  // binary cannot be started at all.
  bool startOnce(std::string* failure);

  WeftdOptions options_;
  std::unique_ptr<TempDir> dir_;
  std::string logFile_;
  int port_ = 0;
  std::optional<ChildProcess> child_;
  bool stoppedByTest_ = false;  // terminate() was called on this child
  std::unique_ptr<HttpClient> client_;
};

}  // namespace weft::testing
