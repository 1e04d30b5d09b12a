#include "support/cdp.h"

#include <Poco/Base64Decoder.h>
#include <Poco/Buffer.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/WebSocket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace weft::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// GET http://127.0.0.1:port<path>; "" on any failure.
std::string httpGet(int port, const std::string& path) {
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
    session.setTimeout(Poco::Timespan(10, 0));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    std::stringstream body;
    body << in.rdbuf();
    return response.getStatus() == 200 ? body.str() : "";
  } catch (const Poco::Exception&) {
    return "";
  }
}

std::string quoted(const std::string& s) { return Json(s).dump(); }

}  // namespace

std::string findChromium() {
  if (const char* given = std::getenv("WEFT_TEST_CHROMIUM"); given && *given) return given;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    for (const char* name : {"chromium", "chromium-browser"}) {
      const std::string candidate = dir + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return "";
}

Browser::Browser(const std::string& profileDir, int width, int height)
    : profileDir_(profileDir), logFile_(profileDir + ".log") {
  const std::string chromium = findChromium();
  if (chromium.empty()) {
    throw std::runtime_error(
        "headless Chromium is required: apt-get install -y chromium (or set WEFT_TEST_CHROMIUM)");
  }
  ChildOptions options;
  options.argv = {chromium,
                  "--headless",
                  "--no-sandbox",
                  "--disable-gpu",
                  "--disable-quic",
                  "--no-first-run",
                  "--no-default-browser-check",
                  "--disable-background-networking",
                  "--disable-component-update",
                  "--disable-sync",
                  "--disable-extensions",
                  "--disable-default-apps",
                  "--disable-domain-reliability",
                  "--disable-client-side-phishing-detection",
                  "--disable-features=Translate,OptimizationHints,MediaRouter",
                  "--metrics-recording-only",
                  "--disable-dev-shm-usage",
                  "--hide-scrollbars",
                  // No name resolves, so nothing can reach another host.
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--window-size=" + std::to_string(width) + "," + std::to_string(height),
                  "--remote-debugging-address=127.0.0.1",
                  "--remote-debugging-port=0",
                  "--user-data-dir=" + profileDir,
                  "about:blank"};
  options.outputFile = logFile_;
  process_.emplace(options);

  // The port Chromium picked: the first line of DevToolsActivePort.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  int port = 0;
  while (Clock::now() < deadline && port == 0) {
    const std::string text = readFile(profileDir + "/DevToolsActivePort");
    const size_t eol = text.find('\n');
    if (eol != std::string::npos) port = std::atoi(text.substr(0, eol).c_str());
    if (port == 0) {
      if (!process_->running()) {
        throw std::runtime_error("Chromium exited at start:\n" + chromiumLog());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (port == 0) throw std::runtime_error("Chromium wrote no DevToolsActivePort:\n" + chromiumLog());

  // The page target's WebSocket.
  std::string wsPath;
  while (Clock::now() < deadline && wsPath.empty()) {
    auto list = Json::parse(httpGet(port, "/json/list"), 64);
    if (list && list->isArray()) {
      for (const Json& target : list->asArray()) {
        if (target.getString("type") != "page") continue;
        const std::string url = target.getString("webSocketDebuggerUrl");
        const size_t path = url.find("/devtools/");
        if (path != std::string::npos) wsPath = url.substr(path);
        break;
      }
    }
    if (wsPath.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (wsPath.empty()) throw std::runtime_error("Chromium offered no page target:\n" + chromiumLog());

  session_ = std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1",
                                                            static_cast<Poco::UInt16>(port));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, wsPath,
                                 Poco::Net::HTTPMessage::HTTP_1_1);
  Poco::Net::HTTPResponse response;
  ws_ = std::make_unique<Poco::Net::WebSocket>(*session_, request, response);
  ws_->setMaxPayloadSize(256 * 1024 * 1024);

  call("Page.enable");
  call("Runtime.enable");
  call("Network.enable");
}

Browser::~Browser() {
  try {
    if (ws_) ws_->close();
  } catch (const Poco::Exception&) {
  }
  ws_.reset();
  if (process_) process_->killAndWait();
}

std::string Browser::chromiumLog() const {
  const std::string text = readFile(logFile_);
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

std::optional<Json> Browser::readMessage(std::chrono::milliseconds timeout) {
  std::string payload;
  for (;;) {
    ws_->setReceiveTimeout(
        Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(timeout.count()) * 1000));
    Poco::Buffer<char> buffer(0);
    int flags = 0;
    int n = 0;
    try {
      n = ws_->receiveFrame(buffer, flags);
    } catch (const Poco::TimeoutException&) {
      return std::nullopt;
    }
    if (n == 0 && flags == 0) throw std::runtime_error("Chromium closed the DevTools connection");
    const int opcode = flags & Poco::Net::WebSocket::FRAME_OP_BITMASK;
    if (opcode == Poco::Net::WebSocket::FRAME_OP_CLOSE) {
      throw std::runtime_error("Chromium closed the DevTools connection");
    }
    if (opcode == Poco::Net::WebSocket::FRAME_OP_PING) {
      ws_->sendFrame(buffer.begin(), static_cast<int>(buffer.size()),
                     Poco::Net::WebSocket::FRAME_FLAG_FIN | Poco::Net::WebSocket::FRAME_OP_PONG);
      continue;
    }
    payload.append(buffer.begin(), buffer.size());
    if (flags & Poco::Net::WebSocket::FRAME_FLAG_FIN) break;
  }
  auto parsed = Json::parse(payload, 512);
  if (!parsed) throw std::runtime_error("DevTools sent something that is not JSON");
  return std::move(*parsed);
}

void Browser::handleEvent(const Json& message) {
  const std::string method = message.getString("method");
  const Json& params = message.get("params");
  if (method == "Network.requestWillBeSent") {
    urls_.push_back(params.get("request").getString("url"));
  } else if (method == "Network.webSocketCreated") {
    urls_.push_back(params.getString("url"));
  } else if (method == "Runtime.consoleAPICalled") {
    std::string line = params.getString("type") + ":";
    for (const Json& arg : params.get("args").asArray()) {
      line += " " + (arg.contains("value") ? arg.get("value").dump() : arg.getString("description"));
    }
    console_.push_back(line);
  } else if (method == "Runtime.exceptionThrown") {
    const Json& details = params.get("exceptionDetails");
    console_.push_back("exception: " + details.getString("text") + " " +
                       details.get("exception").getString("description"));
  }
}

Json Browser::call(const std::string& method, Json params, std::chrono::milliseconds timeout) {
  const long long id = nextId_++;
  Json message = Json::object();
  message.set("id", Json(id));
  message.set("method", Json(method));
  message.set("params", std::move(params));
  const std::string text = message.dump();
  ws_->sendFrame(text.data(), static_cast<int>(text.size()), Poco::Net::WebSocket::FRAME_TEXT);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) throw std::runtime_error("no answer to " + method + " from Chromium");
    auto in = readMessage(left);
    if (!in) continue;
    if (!in->contains("id")) {
      handleEvent(*in);
      continue;
    }
    if (in->getInt("id") != id) continue;
    if (in->contains("error")) {
      throw std::runtime_error(method + " failed: " + in->get("error").dump());
    }
    return in->get("result");
  }
}

Json Browser::eval(const std::string& expression) {
  Json params = Json::object();
  params.set("expression", Json(expression));
  params.set("awaitPromise", Json(true));
  params.set("returnByValue", Json(true));
  Json result = call("Runtime.evaluate", std::move(params));
  if (result.contains("exceptionDetails")) {
    const Json& details = result.get("exceptionDetails");
    throw std::runtime_error("page script threw: " + details.getString("text") + " " +
                             details.get("exception").getString("description") +
                             "\nexpression: " + expression);
  }
  return result.get("result").get("value");
}

bool Browser::waitFor(const std::string& condition, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string expression = "(() => { try { return !!(" + condition + "); } catch (e) { return false; } })()";
  for (;;) {
    if (eval(expression) == Json(true)) return true;
    if (Clock::now() >= deadline) return false;
    // Wait 100 ms for the next event (handled, so the network log stays
    // complete) before polling again.
    if (auto event = readMessage(std::chrono::milliseconds(100))) handleEvent(*event);
  }
}

void Browser::navigate(const std::string& url) {
  Json params = Json::object();
  params.set("url", Json(url));
  call("Page.navigate", std::move(params));
}

void Browser::click(const std::string& selector) {
  const Json box = eval("(() => { const e = document.querySelector(" + quoted(selector) +
                        "); if (!e) return null; e.scrollIntoView({block: 'center'});"
                        " const r = e.getBoundingClientRect();"
                        " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()");
  if (!box.isObject()) throw std::runtime_error("nothing to click: " + selector);
  for (const char* type : {"mouseMoved", "mousePressed", "mouseReleased"}) {
    Json params = Json::object();
    params.set("type", Json(type));
    params.set("x", box.get("x"));
    params.set("y", box.get("y"));
    if (std::string(type) != "mouseMoved") {
      params.set("button", Json("left"));
      params.set("clickCount", Json(1));
    }
    call("Input.dispatchMouseEvent", std::move(params));
  }
}

void Browser::type(const std::string& selector, const std::string& text) {
  click(selector);
  Json params = Json::object();
  params.set("text", Json(text));
  call("Input.insertText", std::move(params));
}

void Browser::screenshot(const std::string& path) {
  Json params = Json::object();
  params.set("format", Json("png"));
  params.set("captureBeyondViewport", Json(false));
  const Json result = call("Page.captureScreenshot", std::move(params));
  std::istringstream encoded(result.getString("data"));
  Poco::Base64Decoder decoder(encoded);
  std::ofstream out(path, std::ios::binary);
  out << decoder.rdbuf();
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace weft::testing
