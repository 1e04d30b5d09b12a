// Logs (docs/api.md §1.6, docs/reliability.md "Security basics"): every answered request
// gets one access-log line with its route template, status and duration, and
// no log line ever carries a bearer token, the Authorization header, the
// WebSocket `token` query parameter or the credentials of a URL.
//
// The in-process case captures the log with log::setSink while weftd's real
// pipeline and routes (tests/support/inprocess_weftd.h) serve requests that
// carry secrets in every place a client can put them. The child-process case
// checks the start-up configuration summary of a real weftd.
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/inprocess_weftd.h"
#include "support/temp_dir.h"
#include "support/weftd.h"
#include "weft/log.h"

using namespace weft;
using weft::testing::HttpClient;
using weft::testing::HttpHeaders;
using weft::testing::HttpResponse;
using weft::testing::InProcessWeftd;
using weft::testing::TempDir;
using weft::testing::Weftd;
using weft::testing::WeftdOptions;

namespace {

// Captures every log line at info and above; restores stderr at the end.
class LogCapture {
 public:
  LogCapture() {
    log::setLevel(LogLevel::Info);
    log::setSink([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mutex_);
      lines_.push_back(line);
    });
  }
  ~LogCapture() {
    log::setSink(nullptr);
    log::setLevel(LogLevel::Warn);
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  std::string text() {
    std::string out;
    for (const auto& l : lines()) out += l;
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

// Every marker below is unique, so finding one anywhere in the log is a leak.
const std::vector<std::string> kSecrets = {
    "TOKEN-SECRET-1", "WRONG-SECRET-2", "WS-SECRET-3",   "QUERY-SECRET-4",
    "URL-SECRET-5",   "URL-SECRET-6",   "BODY-SECRET-7", "WS-PROTO-SECRET-8",
};

void checkNoSecrets(const std::string& text) {
  for (const std::string& secret : kSecrets) {
    INFO("leaked: " << secret);
    CHECK(text.find(secret) == std::string::npos);
  }
  CHECK(text.find("Authorization") == std::string::npos);
  CHECK(text.find("Bearer") == std::string::npos);
}

}  // namespace

TEST_CASE("logs: one access-log line per request, and no secret in any line", "[log]") {
  LogCapture logs;  // before weftd, so start-up and shutdown lines are caught too
  {
    InProcessWeftd weftd({"http.tokens=TOKEN-SECRET-1"});
    HttpClient client(weftd.port());
    const HttpHeaders auth = {{"Authorization", "Bearer TOKEN-SECRET-1"}};
    // The services answer once their views have caught up with the store.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (client.get("/api/stats", auth).status != 200 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }

    HttpResponse submitted = client.request(
        "POST", "/api/work", R"({"boundary":"b","capability":"c","description":"d"})", auth);
    REQUIRE(submitted.status == 201);
    const std::string id = submitted.json.getString("id");
    CHECK(client.get("/api/work/" + id, auth).status == 200);
    CHECK(client.get("/api/agents", {{"Authorization", "Bearer WRONG-SECRET-2"}}).status == 401);
    CHECK(client.get("/api/work?token=QUERY-SECRET-4&limit=1", auth).status == 200);
    // The WebSocket token travels in the query string or the subprotocol
    // header (§5.1); this is a plain GET, so the handshake is refused, but
    // the secret must not be logged on the way.
    client.get("/api/ws?token=WS-SECRET-3");
    client.reset();
    client.get("/api/ws", {{"Upgrade", "websocket"},
                           {"Connection", "Upgrade"},
                           {"Sec-WebSocket-Version", "13"},
                           {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                           {"Sec-WebSocket-Protocol", "bearer, WS-PROTO-SECRET-8"}});
    client.reset();
    // Credentials in the request target: absolute form, and a path that
    // looks like an authority.
    CHECK(client.get("http://user:URL-SECRET-5@127.0.0.1/api/work", auth).status == 200);
    CHECK(client.get("//user:URL-SECRET-6@example.com/x").status == 404);
    // Credentials inside a body are stored, never logged.
    CHECK(client
              .request("POST", "/api/agents",
                       R"({"handle":"h","capabilities":[],
                             "natsUrl":"nats://u:BODY-SECRET-7@127.0.0.1:4222"})",
                       auth)
              .status == 201);
  }

  const std::vector<std::string> lines = logs.lines();
  REQUIRE(!lines.empty());
  checkNoSecrets(logs.text());

  // The access log: JSON lines with msg "request" and the fields of the
  // pipeline's contract.
  int accessLines = 0;
  bool sawTemplate = false, sawUnmatched = false;
  for (const std::string& line : lines) {
    auto parsed = Json::parse(line);
    INFO(line);
    REQUIRE(parsed);  // every line is one JSON object
    if (parsed->getString("msg") != "request") continue;
    ++accessLines;
    const Json& r = *parsed;
    CHECK(!r.getString("method").empty());
    CHECK(!r.getString("route").empty());
    CHECK(r.get("status").isInteger());
    CHECK(r.get("durationMs").isNumber());
    CHECK(r.get("durationMs").asDouble() >= 0);
    CHECK(r.getString("path").find('?') == std::string::npos);
    if (r.getString("route") == "/api/work/{id}") sawTemplate = true;
    if (r.getString("route") == "unmatched" && r.get("status").asInt() == 404) sawUnmatched = true;
  }
  CHECK(accessLines >= 8);
  CHECK(sawTemplate);
  CHECK(sawUnmatched);
}

TEST_CASE("logs: the start-up configuration summary masks tokens and URL credentials",
          "[log][weftd]") {
  TempDir dir("weft-log-");
  for (const char* format : {"json", "text"}) {
    INFO("log.format=" << format);
    WeftdOptions options;
    options.settings = {
        {"kv.backend", "sqlite"},
        {"sqlite.path", dir.file(std::string(format) + ".db")},
        {"log.format", format},
        {"http.tokens", "CFG-SECRET-10,second-CFG-SECRET-11"},
        {"nats.url", "nats://natsuser:CFG-SECRET-12@127.0.0.1:4222"},
        {"nats.pass", "CFG-SECRET-13"},
        {"redis.url", "redis://:CFG-SECRET-14@127.0.0.1:6379/0"},
    };
    Weftd weftd(options);
    const HttpHeaders auth = {{"Authorization", "Bearer CFG-SECRET-10"}};
    REQUIRE(weftd.waitServing(std::chrono::seconds(20), auth));
    CHECK(weftd.get("/api/work", auth).status == 200);
    CHECK(weftd.get("/api/work?token=CFG-SECRET-15").status == 401);
    const auto exit = weftd.terminate();
    REQUIRE(exit.has_value());
    CHECK(exit->exited);

    // weftd's output only: the test helper's own "### start: <argv>" lines
    // show the command line, secrets included.
    std::ifstream in(weftd.logFile());
    std::string text, line;
    while (std::getline(in, line)) {
      if (line.rfind("### ", 0) != 0) text += line + "\n";
    }
    CHECK(text.find("weftd starting") != std::string::npos);
    CHECK(text.find("nats://***@127.0.0.1:4222") != std::string::npos);
    CHECK(text.find("redis://***@127.0.0.1:6379/0") != std::string::npos);
    for (int i = 10; i <= 15; ++i) {
      const std::string secret = "CFG-SECRET-" + std::to_string(i);
      INFO("leaked: " << secret);
      CHECK(text.find(secret) == std::string::npos);
    }
  }
}
