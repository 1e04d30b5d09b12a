// Headless Chromium driven over the DevTools protocol (CDP), for browser tests
// that must click, type and wait (--dump-dom cannot).
//
// Chromium starts with --remote-debugging-port=0 and its own profile
// directory; the port it picked is read from <profile>/DevToolsActivePort,
// the page's WebSocket from http://127.0.0.1:<port>/json/list, and commands
// go over that WebSocket (Poco::Net::WebSocket). Host names never resolve
// (--host-resolver-rules maps everything but 127.0.0.1 to NOTFOUND), and every
// request the page makes is recorded from Network events, so a test can
// assert that nothing left loopback.
//
// Failures throw std::runtime_error with the reason (a test that needs
// Chromium fails, it never skips). Not thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "weft/json.h"

namespace Poco::Net {
class HTTPClientSession;
class WebSocket;
}  // namespace Poco::Net

namespace weft::testing {

// The Chromium binary: WEFT_TEST_CHROMIUM, else chromium or chromium-browser
// in PATH; "" when there is none.
std::string findChromium();

class Browser {
 public:
  // Starts Chromium with its profile in profileDir (created by the caller)
  // and attaches to its first page. Throws when Chromium cannot be started or
  // does not offer a page within 60 s.
  explicit Browser(const std::string& profileDir, int width = 1400, int height = 1000);
  ~Browser();
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;

  // One CDP command; returns its `result`. Throws on an error answer or when
  // no answer comes within timeout. Events that arrive meanwhile are handled
  // (recorded requests, console messages).
  Json call(const std::string& method, Json params = Json::object(),
            std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Runtime.evaluate with awaitPromise and returnByValue: the value of the
  // expression. Throws when the expression throws.
  Json eval(const std::string& expression);

  // Polls eval(condition) every 100 ms until it is truthy or timeout passes.
  bool waitFor(const std::string& condition,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Page.navigate, without waiting for the load (use waitFor).
  void navigate(const std::string& url);
  // A real mouse click (Input.dispatchMouseEvent) at the centre of the first
  // element matching selector, scrolled into view. Throws when none matches.
  void click(const std::string& selector);
  // Focuses the element and types text into it (Input.insertText).
  void type(const std::string& selector, const std::string& text);
  // Page.captureScreenshot of the viewport, written as PNG to path.
  void screenshot(const std::string& path);

  // Every URL the page requested (Network.requestWillBeSent) or opened a
  // WebSocket to (Network.webSocketCreated), in order.
  const std::vector<std::string>& requestedUrls() const { return urls_; }
  // Console messages and uncaught exceptions of the page.
  const std::vector<std::string>& consoleLog() const { return console_; }
  // Chromium's own output (for failure messages).
  std::string chromiumLog() const;

 private:
  void handleEvent(const Json& message);
  std::optional<Json> readMessage(std::chrono::milliseconds timeout);

  std::string profileDir_;
  std::string logFile_;
  std::optional<ChildProcess> process_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
  std::unique_ptr<Poco::Net::WebSocket> ws_;
  long long nextId_ = 1;
  std::vector<std::string> urls_;
  std::vector<std::string> console_;
};

}  // namespace weft::testing
