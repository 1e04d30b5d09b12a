// A small HTTP server for tests that stands in for a webhook receiver or the
// GitHub API: it listens on a free loopback port, records every request
// (method, target, headers, body) and answers through a handler the test
// supplies, which may also delay the answer or drip the body slowly.
//
// Thread-safety: requests are served on Poco worker threads; requests() and
// setHandler() may be called from any thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace Poco {
class ThreadPool;
namespace Net {
class HTTPServer;
}
}  // namespace Poco

namespace weft::testing {

struct RecordedRequest {
  std::string method;
  std::string target;  // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::optional<std::string> header(const std::string& name) const;  // case-insensitive
};

struct CannedResponse {
  int status = 200;
  std::string body;
  std::string contentType = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  int delayMs = 0;  // before anything is sent
  int dripMs = 0;   // when > 0: the body is sent one byte per dripMs
};

class RecordingHttpServer {
 public:
  using Handler = std::function<CannedResponse(const RecordedRequest&)>;

  // Starts at once on 127.0.0.1:<free port>. Default handler: 200 "{}".
  explicit RecordingHttpServer(Handler handler = {});
  // Stops, aborting connections still open, and waits for every handler
  // thread (a delayed or dripping answer is cut short).
  ~RecordingHttpServer();
  RecordingHttpServer(const RecordingHttpServer&) = delete;
  RecordingHttpServer& operator=(const RecordingHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "") const;
  void setHandler(Handler handler);
  std::vector<RecordedRequest> requests() const;

  // Internal: called by the request handler.
  CannedResponse handle(const RecordedRequest& request);
  // Internal: sleeps ms unless the server stops first; false when stopping.
  bool pause(int ms);

 private:
  mutable std::mutex mutex_;
  Handler handler_;
  std::vector<RecordedRequest> requests_;
  std::condition_variable stopCv_;
  bool stopping_ = false;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  int port_ = 0;
};

}  // namespace weft::testing
