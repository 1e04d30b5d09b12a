// One keep-alive HTTP/1.1 connection to weftd (Poco HTTPClientSession) that
// never throws and never retries: a benchmark that classifies acknowledged
// writes must know whether each request reached the server, and a hidden
// retry could both hide a failure and create a duplicate.
//
// Not thread-safe: one client per load thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace Poco::Net {
class HTTPClientSession;
}

namespace weft::bench {

struct HttpResult {
  enum class Transport {
    Answered,  // a complete HTTP response arrived (status holds its code)
    NotSent,   // the connection could not be opened: the server never saw the request
    NoAnswer,  // the request may have been sent, but no complete response came back
  };
  Transport transport = Transport::NoAnswer;
  int status = 0;     // HTTP status when Answered, else 0
  std::string body;   // response body when Answered
  std::string error;  // transport error text otherwise
  // Wall-clock (CLOCK_REALTIME) times in ns, comparable with `date +%s%N`
  // in the scripts that kill and restart servers.
  int64_t sentAtNs = 0;
  int64_t doneAtNs = 0;

  bool answered() const { return transport == Transport::Answered; }
  bool is2xx() const { return answered() && status >= 200 && status < 300; }
  // A short outcome label for counts: "200", "503", "refused", "no-answer".
  std::string outcome() const;
};

class HttpClient {
 public:
  HttpClient(std::string host, int port, int timeoutMs);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request; body (when not empty) as application/json, plus any
  // extra headers. After a transport error the connection is dropped and the
  // next call reconnects.
  HttpResult request(const std::string& method, const std::string& path,
                     const std::string& body = std::string(),
                     const std::vector<std::pair<std::string, std::string>>& headers = {});

 private:
  std::string host_;
  int port_;
  int timeoutMs_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
};

// Wall-clock now in ns since the epoch.
int64_t wallNowNs();

// Splits "http://host:port" (path ignored); false when it does not parse.
bool parseHttpUrl(const std::string& url, std::string* host, int* port);

// The `total` of a paginated list (e.g. "/api/work?limit=1"), or -1 when the
// request failed.
int64_t listTotal(HttpClient& client, const std::string& path);

// Polls a list until its total reaches want (watch-fed views lag writes by up
// to about a second); false after timeoutMs.
bool waitForTotal(HttpClient& client, const std::string& path, int64_t want, int timeoutMs);

}  // namespace weft::bench
