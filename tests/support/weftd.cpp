#include "support/weftd.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/net.h"

#ifndef WEFT_TEST_WEFTD_DEFAULT_BIN
#define WEFT_TEST_WEFTD_DEFAULT_BIN "weftd"
#endif

namespace weft::testing {
namespace {

using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

constexpr Ms kStartTimeout{15000};
// A free port can be taken before weftd binds it; weftd then exits with
// "cannot listen" and we try another one.
constexpr int kStartAttempts = 3;

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (equalsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

std::string HttpResponse::describe() const {
  if (status == 0) return "no response: " + error;
  std::string text = std::to_string(status) + " " + body;
  if (text.size() > 2000) text = text.substr(0, 2000) + "...";
  return text;
}

HttpClient::HttpClient(int port, std::chrono::milliseconds timeout)
    : port_(port), timeout_(timeout) {}

HttpClient::~HttpClient() = default;

void HttpClient::reset() {
  session_.reset();
}

HttpResponse HttpClient::request(const std::string& method, const std::string& path,
                                 const std::optional<std::string>& body, const HttpHeaders& headers,
                                 const std::string& contentType, bool chunked) {
  HttpResponse out;
  const auto start = Clock::now();
  try {
    if (!session_) {
      session_ =
          std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", static_cast<uint16_t>(port_));
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout_).count();
      session_->setTimeout(Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(us)));
      session_->setKeepAlive(true);
    }
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.setKeepAlive(true);
    if (body) {
      if (!contentType.empty()) req.setContentType(contentType);
      if (chunked) {
        req.setChunkedTransferEncoding(true);
      } else {
        req.setContentLength(static_cast<std::streamsize>(body->size()));
      }
    }
    for (const auto& [name, value] : headers) req.set(name, value);
    std::ostream& os = session_->sendRequest(req);
    if (body) os << *body;
    Poco::Net::HTTPResponse res;
    std::istream& is = session_->receiveResponse(res);
    Poco::StreamCopier::copyToString(is, out.body);
    out.status = static_cast<int>(res.getStatus());
    for (const auto& [name, value] : res) out.headers.emplace_back(name, value);
    if (!res.getKeepAlive()) session_.reset();
  } catch (const Poco::Exception& e) {
    out.status = 0;
    out.error = e.displayText();
    session_.reset();
  } catch (const std::exception& e) {
    out.status = 0;
    out.error = e.what();
    session_.reset();
  }
  out.ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (!out.body.empty()) {
    auto parsed = Json::parse(out.body, 256);
    if (parsed) out.json = std::move(*parsed);
  }
  return out;
}

std::string Weftd::binary() {
  const char* fromEnv = std::getenv("WEFT_TEST_WEFTD_BIN");
  return fromEnv && *fromEnv ? fromEnv : WEFT_TEST_WEFTD_DEFAULT_BIN;
}

Weftd::Weftd(WeftdOptions options) : options_(std::move(options)) {
  dir_ = std::make_unique<TempDir>("weft-weftd-");
  if (const char* keep = std::getenv("WEFT_TEST_KEEP_TMP"); keep && *keep) dir_->keep();
  logFile_ = dir_->file("weftd.log");
  std::string failures;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    port_ = options_.port != 0 ? options_.port : findFreePort();
    if (startOnce(&failures)) return;
    if (options_.port != 0) break;
  }
  throw std::runtime_error(failures);
}

Weftd::~Weftd() {
  // A weftd that ended by itself (a crash, an abort) is always worth the log:
  // the test's own checks only see refused connections.
  const bool diedOnItsOwn = child_ && !stoppedByTest_ && !child_->running();
  if (std::uncaught_exceptions() > 0 || diedOnItsOwn) {
    const std::string how =
        diedOnItsOwn ? " weftd ended by itself: " + child_->exitStatus()->toString() : "";
    std::fprintf(stderr, "--- weftd log tail (%s)%s ---\n%s\n--- end of weftd log ---\n",
                 logFile_.c_str(), how.c_str(), logTail().c_str());
  }
  client_.reset();
  child_.reset();  // SIGKILLs and reaps
}

std::string Weftd::logTail(size_t maxBytes) const {
  std::ifstream in(logFile_);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  return text.size() > maxBytes ? text.substr(text.size() - maxBytes) : text;
}

bool Weftd::startOnce(std::string* failure) {
  ChildOptions child;
  child.argv = {binary(), "--port", std::to_string(port_), "--set", "http.host=127.0.0.1"};
  // Each weftd saves its views in its own directory (kept across
  // restart()), unless the test says where.
  if (options_.settings.count("views.saveDir") == 0) {
    child.argv.push_back("--set");
    child.argv.push_back("views.saveDir=" + dir_->file("views"));
  }
  for (const auto& [key, value] : options_.settings) {
    child.argv.push_back("--set");
    child.argv.push_back(key + "=" + value);
  }
  child.env = options_.env;
  child.outputFile = logFile_;
  std::string command;
  for (const auto& arg : child.argv) command += (command.empty() ? "" : " ") + arg;
  {
    std::ofstream marker(logFile_, std::ios::app);
    marker << "### start: " << command << "\n";
  }
  stoppedByTest_ = false;
  try {
    child_.emplace(child);
  } catch (const std::exception& e) {
    // Not a port race: another attempt cannot help.
    throw std::runtime_error(std::string("weftd: ") + e.what() +
                             " (build the weftd target, or set WEFT_TEST_WEFTD_BIN)");
  }
  client_ = std::make_unique<HttpClient>(port_, Ms(2000));
  const auto deadline = Clock::now() + kStartTimeout;
  while (Clock::now() < deadline && child_->running()) {
    // /health never touches the backend, so it answers as soon as the HTTP
    // server runs, whatever the backend does.
    if (waitForPort(port_, Ms(50)) && http().get("/health").status == 200) {
      client_ = std::make_unique<HttpClient>(port_);
      return true;
    }
    std::this_thread::sleep_for(Ms(20));
  }
  std::string why = child_->running() ? "did not answer /health within " +
                                            std::to_string(kStartTimeout.count()) + " ms"
                                      : "exited (" + child_->exitStatus()->toString() + ")";
  child_.reset();
  *failure += "weftd on port " + std::to_string(port_) + " " + why + ": " + command +
              "\n--- log tail ---\n" + logTail(2000) + "\n";
  return false;
}

bool Weftd::waitServing(std::chrono::milliseconds timeout, const HttpHeaders& headers) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (http().get("/api/stats", headers).status == 200) return true;
    if (Clock::now() >= deadline || !running()) return false;
    std::this_thread::sleep_for(Ms(20));
  }
}

void Weftd::kill9() {
  if (child_) child_->killAndWait();
  child_.reset();
  if (client_) client_->reset();
}

std::optional<ExitStatus> Weftd::terminate(std::chrono::milliseconds timeout) {
  if (!child_) return std::nullopt;
  if (client_) client_->reset();
  stoppedByTest_ = true;
  child_->kill(SIGTERM);
  auto status = child_->wait(timeout);
  if (!status) child_->killAndWait();
  return status;
}

void Weftd::restart() {
  if (child_) child_->killAndWait();
  child_.reset();
  std::string failure;
  if (!startOnce(&failure)) throw std::runtime_error("weftd restart failed: " + failure);
}

}  // namespace weft::testing
