#include "http_client.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/StreamCopier.h>

#include <chrono>
#include <exception>
#include <istream>
#include <ostream>
#include <thread>

#include "weft/json.h"

namespace weft::bench {

int64_t wallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool parseHttpUrl(const std::string& url, std::string* host, int* port) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) return false;
  std::string rest = url.substr(scheme.size());
  rest = rest.substr(0, rest.find('/'));
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  try {
    *port = std::stoi(rest.substr(colon + 1));
  } catch (const std::exception&) {
    return false;
  }
  *host = rest.substr(0, colon);
  return *port > 0 && *port < 65536;
}

std::string HttpResult::outcome() const {
  switch (transport) {
    case Transport::Answered:
      return std::to_string(status);
    case Transport::NotSent:
      return "refused";
    case Transport::NoAnswer:
      return "no-answer";
  }
  return "?";
}

HttpClient::HttpClient(std::string host, int port, int timeoutMs)
    : host_(std::move(host)), port_(port), timeoutMs_(timeoutMs) {}

HttpClient::~HttpClient() = default;

HttpResult HttpClient::request(const std::string& method, const std::string& path,
                               const std::string& body,
                               const std::vector<std::pair<std::string, std::string>>& headers) {
  HttpResult r;
  r.sentAtNs = wallNowNs();
  bool connecting = false;
  try {
    if (!session_) {
      session_ =
          std::make_unique<Poco::Net::HTTPClientSession>(host_, static_cast<uint16_t>(port_));
      session_->setKeepAlive(true);
      session_->setTimeout(Poco::Timespan(static_cast<long>(timeoutMs_) * 1000));
    }
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.setKeepAlive(true);
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty()) {
      req.setContentType("application/json");
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    } else if (method == "POST" || method == "PUT") {
      req.setContentLength(0);
    }
    // sendRequest connects first when the session has no socket; a refusal
    // there means nothing was sent.
    connecting = !session_->connected();
    std::ostream& out = session_->sendRequest(req);
    connecting = false;
    if (!body.empty()) out << body;
    Poco::Net::HTTPResponse res;
    std::istream& in = session_->receiveResponse(res);
    Poco::StreamCopier::copyToString(in, r.body);
    r.status = static_cast<int>(res.getStatus());
    r.transport = HttpResult::Transport::Answered;
    if (!res.getKeepAlive()) session_.reset();
  } catch (const Poco::Net::ConnectionRefusedException& e) {
    r.transport = connecting ? HttpResult::Transport::NotSent : HttpResult::Transport::NoAnswer;
    r.error = e.displayText();
    session_.reset();
  } catch (const Poco::Exception& e) {
    r.transport = HttpResult::Transport::NoAnswer;
    r.error = e.displayText();
    session_.reset();
  } catch (const std::exception& e) {
    r.transport = HttpResult::Transport::NoAnswer;
    r.error = e.what();
    session_.reset();
  }
  r.doneAtNs = wallNowNs();
  return r;
}

int64_t listTotal(HttpClient& client, const std::string& path) {
  HttpResult r = client.request("GET", path);
  if (!r.is2xx()) return -1;
  Result<Json> j = Json::parse(r.body, 64);
  if (!j.isOk()) return -1;
  return j->getInt("total", -1);
}

bool waitForTotal(HttpClient& client, const std::string& path, int64_t want, int timeoutMs) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (std::chrono::steady_clock::now() < deadline) {
    if (listTotal(client, path) >= want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace weft::bench
