#include "support/recording_http_server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <cctype>
#include <chrono>
#include <thread>

namespace weft::testing {

namespace {

bool sameName(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(RecordingHttpServer& server) : server_(server) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    RecordedRequest recorded;
    recorded.method = request.getMethod();
    recorded.target = request.getURI();
    for (const auto& [name, value] : request) recorded.headers.emplace_back(name, value);
    Poco::StreamCopier::copyToString(request.stream(), recorded.body);
    CannedResponse canned = server_.handle(recorded);
    if (canned.delayMs > 0 && !server_.pause(canned.delayMs)) return;
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(canned.status));
    for (const auto& [name, value] : canned.headers) response.set(name, value);
    if (canned.status == 204 || recorded.method == "HEAD") {
      response.setContentLength(0);
      response.send();
      return;
    }
    response.setContentType(canned.contentType);
    response.setContentLength(static_cast<std::streamsize>(canned.body.size()));
    std::ostream& out = response.send();
    if (canned.dripMs > 0) {
      for (char c : canned.body) {
        out << c << std::flush;
        if (!out || !server_.pause(canned.dripMs)) return;  // the client or the server went away
      }
    } else {
      out << canned.body;
    }
  }

 private:
  RecordingHttpServer& server_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(RecordingHttpServer& server) : server_(server) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(server_);
  }

 private:
  RecordingHttpServer& server_;
};

}  // namespace

std::optional<std::string> RecordedRequest::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (sameName(k, name)) return v;
  }
  return std::nullopt;
}

RecordingHttpServer::RecordingHttpServer(Handler handler) : handler_(std::move(handler)) {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  port_ = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(8);
  params->setKeepAlive(false);
  // A pool of its own, so the destructor can wait for exactly its threads.
  pool_ = std::make_unique<Poco::ThreadPool>(2, 8);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), *pool_, socket, params);
  server_->start();
}

RecordingHttpServer::~RecordingHttpServer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stopCv_.notify_all();
  server_->stopAll(true);
  pool_->joinAll();  // no handler may touch this object any more
  server_.reset();
}

bool RecordingHttpServer::pause(int ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !stopCv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
}

std::string RecordingHttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void RecordingHttpServer::setHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mutex_);
  handler_ = std::move(handler);
}

std::vector<RecordedRequest> RecordingHttpServer::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

CannedResponse RecordingHttpServer::handle(const RecordedRequest& request) {
  Handler h;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(request);
    h = handler_;
  }
  if (h) return h(request);
  CannedResponse r;
  r.body = "{}";
  return r;
}

}  // namespace weft::testing
