// The operator dashboard (GET /ui, docs/dashboard.md) end to end in a real
// headless Chromium, driven over the DevTools protocol (support/cdp.h): a
// weftd on sqlite serves the page, the test seeds agents, work, a dead letter
// and targets through REST, and then reads, clicks and types in the page.
//
//  * seeded data appears in every view; an item completed through REST
//    changes its row without a reload (the live path: /api/ws events);
//  * a dead letter retried through the page (click, confirm) is pending
//    again, checked through REST;
//  * a target whose mechanism is off says so and offers no Test button;
//  * the WebSocket drop is shown and the page reconnects by itself;
//  * with http.tokens the page shows nothing until a token works, then uses
//    it for REST and the WebSocket;
//  * every request the page made went to the weftd on 127.0.0.1.
// Screenshots of each view go to <build>/tests/artifacts/ui-*.png.
//
// Chromium is required: without it the tests FAIL (install the Debian package
// `chromium`; scripts/lib.sh does). WEFT_TEST_CHROMIUM may name another binary.
//
// The load-time case seeds 1,000 agents and 10,000 items (about 10 s through
// REST on eight connections) and prints how long the page takes to show its
// lists.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "support/cdp.h"
#include "support/temp_dir.h"
#include "support/weftd.h"

using namespace weft;
using weft::testing::Browser;
using weft::testing::HttpClient;
using weft::testing::HttpHeaders;
using weft::testing::HttpResponse;
using weft::testing::TempDir;
using weft::testing::Weftd;
using weft::testing::WeftdOptions;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWait = std::chrono::seconds(30);

Json J(const std::string& text) {
  auto parsed = Json::parse(text);
  if (!parsed) throw std::runtime_error("bad JSON in test: " + text);
  return *parsed;
}

std::string q(const std::string& s) { return Json(s).dump(); }

// Where screenshots go: <build>/tests/artifacts (the test runs in
// <build>/tests), or WEFT_TEST_ARTIFACTS.
std::string artifact(const std::string& name) {
  std::string dir = "artifacts";
  if (const char* given = std::getenv("WEFT_TEST_ARTIFACTS"); given && *given) dir = given;
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

// A Weftd on a fresh sqlite file with quick stats messages.
WeftdOptions sqliteOptions(TempDir& dir, std::map<std::string, std::string> extra = {}) {
  WeftdOptions options;
  options.settings = {{"kv.backend", "sqlite"},
                      {"sqlite.path", dir.file("weft.db")},
                      {"ws.statsIntervalMs", "1000"}};
  for (auto& [k, v] : extra) options.settings[k] = v;
  return options;
}

std::string registerAgent(HttpClient& http, const std::string& guid, const std::string& handle,
                          const std::string& capability, const std::string& project,
                          const HttpHeaders& auth = {}) {
  HttpResponse r = http.post("/api/agents",
                             J(R"({"guid":)" + q(guid) + R"(,"handle":)" + q(handle) +
                               R"(,"capabilities":[)" + q(capability) + R"(],"projectId":)" +
                               q(project) + R"(,"agentType":"builder","maxConcurrentTasks":2})"),
                             auth);
  INFO(r.describe());
  REQUIRE(r.status == 201);
  return guid;
}

std::string submit(HttpClient& http, const std::string& taskId, const std::string& capability,
                   const std::string& project, int maxAttempts = 3) {
  HttpResponse r = http.post("/api/work", J(R"({"taskId":)" + q(taskId) + R"(,"capability":)" +
                                            q(capability) + R"(,"boundary":"internal",)" +
                                            R"("description":"task )" + taskId + R"(",)" +
                                            R"("projectId":)" + q(project) +
                                            R"(,"maxAttempts":)" + std::to_string(maxAttempts) +
                                            "}"));
  INFO(r.describe());
  REQUIRE(r.status == 201);
  return r.json.getString("id");
}

// Claims the next item of capability for agent; returns {id, claimToken}.
std::pair<std::string, std::string> claim(HttpClient& http, const std::string& agent,
                                          const std::string& capability,
                                          const std::string& project) {
  HttpResponse r = http.post("/api/work/claim", J(R"({"agentGuid":)" + q(agent) +
                                                  R"(,"capabilities":[)" + q(capability) +
                                                  R"(],"projectId":)" + q(project) + "}"));
  INFO(r.describe());
  REQUIRE(r.status == 200);
  return {r.json.getString("id"), r.json.getString("claimToken")};
}

Json holder(const std::string& agent, const std::string& token) {
  return J(R"({"agentGuid":)" + q(agent) + R"(,"claimToken":)" + q(token) + "}");
}

std::string workStatus(HttpClient& http, const std::string& id) {
  return http.get("/api/work/" + id).json.getString("status");
}

// Every URL the page requested is on the weftd under test.
void checkLoopbackOnly(const Browser& browser, int port) {
  const std::string http = "http://127.0.0.1:" + std::to_string(port) + "/";
  const std::string ws = "ws://127.0.0.1:" + std::to_string(port) + "/";
  REQUIRE(!browser.requestedUrls().empty());
  size_t checked = 0;
  for (const std::string& url : browser.requestedUrls()) {
    if (url == "about:blank" || url.rfind("data:", 0) == 0) continue;
    INFO("the page requested " << url);
    CHECK((url.rfind(http, 0) == 0 || url.rfind(ws, 0) == 0));
    ++checked;
  }
  CHECK(checked > 5);
  bool sawSocket = false;
  for (const std::string& url : browser.requestedUrls()) sawSocket |= url.rfind(ws, 0) == 0;
  CHECK(sawSocket);
}

std::string pageDiagnostics(Browser& browser) {
  std::string out = "console:\n";
  for (const auto& line : browser.consoleLog()) out += "  " + line + "\n";
  try {
    out += "main: " + browser.eval("document.getElementById('main').outerHTML.slice(0, 3000)").dump();
  } catch (const std::exception& e) {
    out += e.what();
  }
  return out;
}

#define WAIT_FOR(browser, condition)                                  \
  do {                                                                \
    const bool ok_ = (browser).waitFor(condition, kWait);             \
    INFO("waited for: " << condition << "\n" << pageDiagnostics(browser)); \
    REQUIRE(ok_);                                                     \
  } while (0)

}  // namespace

TEST_CASE("dashboard: seeded data in every view, live updates, DLQ retry by click, loopback only",
          "[browser]") {
  TempDir dir("weft-ui-browser-");
  Weftd weftd(sqliteOptions(dir, {{"spinup.allowLocal", "true"}}));
  REQUIRE(weftd.waitServing());
  HttpClient& http = weftd.http();
  const std::string base = "http://127.0.0.1:" + std::to_string(weftd.port());

  // / redirects to the dashboard; the page is served without a token.
  HttpResponse root = weftd.get("/");
  CHECK((root.status == 302 || root.status == 307));
  CHECK(root.header("Location").value_or("") == "/ui");
  HttpResponse page = weftd.get("/ui");
  REQUIRE(page.status == 200);
  CHECK(page.header("Content-Type").value_or("").rfind("text/html", 0) == 0);
  CHECK(weftd.get("/ui/dashboard.js").status == 200);
  CHECK(weftd.get("/ui/dashboard.css").status == 200);
  // What the Targets view asks to know which mechanisms are off.
  HttpResponse mechanisms = weftd.get("/api/spinup/mechanisms");
  REQUIRE(mechanisms.status == 200);
  CHECK(mechanisms.json.get("mechanisms").getBool("local") == true);
  for (const char* off : {"ssh", "github-actions", "webhook", "kubernetes"}) {
    INFO(off);
    CHECK(mechanisms.json.get("mechanisms").get(off) == Json(false));
  }
  CHECK(mechanisms.json.getInt("maxConcurrent") == 3);

  // Seed: three agents, five items, one dead letter, two targets.
  const std::vector<std::string> agents = {
      registerAgent(http, "ui-agent-1", "alice", "build", "alpha"),
      registerAgent(http, "ui-agent-2", "bob", "build", "alpha"),
      registerAgent(http, "ui-agent-3", "carol", "review", "beta")};
  std::vector<std::string> items;
  for (int i = 1; i <= 5; ++i) items.push_back(submit(http, "ui-task-" + std::to_string(i), "build", "alpha"));
  // Two dead letters: one failed twice (a recoverable failure, then a fatal
  // one), one failed once.
  auto failOnce = [&](const std::string& expected, const std::string& message, bool recoverable) {
    auto [id, token] = claim(http, "ui-agent-3", "review", "beta");
    REQUIRE(id == expected);
    Json body = holder("ui-agent-3", token);
    Json error = Json::object();
    error.set("message", Json(message));
    error.set("code", Json("E_TEST"));
    error.set("recoverable", Json(recoverable));
    body.set("error", error);
    HttpResponse failed = http.post("/api/work/" + id + "/fail", body);
    INFO(failed.describe());
    REQUIRE(failed.status == 200);
  };
  const std::string doomed = submit(http, "ui-doomed", "review", "beta", 2);
  failOnce(doomed, "flaky network", true);
  failOnce(doomed, "compiler exploded", false);
  const std::string discarded = submit(http, "ui-discarded", "review", "beta", 1);
  failOnce(discarded, "out of disk", false);
  REQUIRE(http.get("/api/dlq/" + doomed).status == 200);
  REQUIRE(http.get("/api/dlq/" + discarded).status == 200);
  HttpResponse localTarget = http.post(
      "/api/targets", J(R"({"name":"local-runner","agentType":"claude-code","capabilities":["build"],)"
                        R"("mechanism":"local","projectId":"alpha",)"
                        R"("config":{"command":"/bin/true","workingDirectory":"/tmp"}})"));
  REQUIRE(localTarget.status == 201);
  HttpResponse sshTarget = http.post(
      "/api/targets", J(R"({"name":"ssh-box","agentType":"copilot-cli","capabilities":["review"],)"
                        R"("mechanism":"ssh","projectId":"beta","config":{"host":"box.invalid"}})"));
  REQUIRE(sshTarget.status == 201);

  TempDir profile("weft-ui-chromium-");
  Browser browser(profile.file("profile"));

  // Fleet: every agent, with type, status, project and capabilities.
  browser.navigate(base + "/ui#/fleet");
  WAIT_FOR(browser, "document.body.dataset.auth === 'ok'");
  WAIT_FOR(browser, "document.querySelector('#conn').dataset.state === 'live'");
  WAIT_FOR(browser, "document.querySelectorAll('#agents tr[data-agent-guid]').length === 3");
  // Without tokens there is no prompt on screen.
  CHECK(browser.eval("getComputedStyle(document.getElementById('login')).display") == Json("none"));
  for (const std::string& guid : agents) {
    INFO(guid);
    CHECK(browser.eval("!!document.querySelector('tr[data-agent-guid=\"" + guid + "\"]')") == Json(true));
  }
  CHECK(browser.eval("document.querySelector('tr[data-agent-guid=\"ui-agent-3\"]').innerText")
            .asString()
            .find("review") != std::string::npos);
  CHECK(browser.eval("document.querySelectorAll('[data-action=shutdown]').length") == Json(3));
  browser.screenshot(artifact("ui-fleet.png"));

  // Shutdown request through the page: click, confirm, recorded on the entry.
  browser.click("tr[data-agent-guid=\"ui-agent-2\"] button[data-action=shutdown]");
  WAIT_FOR(browser, "!document.getElementById('modal').hidden");
  browser.click("#modal-ok");
  WAIT_FOR(browser, "document.querySelector('tr[data-agent-guid=\"ui-agent-2\"]').innerText.includes('shutdown requested')");
  CHECK(http.get("/api/agents/ui-agent-2").json.contains("shutdownRequested"));

  // Work board: counts and every item; then a completion through REST moves
  // the row while the page stays loaded (the marker survives: no reload).
  browser.navigate(base + "/ui#/work");
  WAIT_FOR(browser, "document.querySelectorAll('#work tr[data-work-id]').length === 7");
  WAIT_FOR(browser, "document.querySelector('[data-count=pending] .n').textContent === '5'");
  for (const std::string& id : items) {
    INFO(id);
    CHECK(browser.eval("document.querySelector('tr[data-work-id=\"" + id + "\"]').dataset.status") ==
          Json("pending"));
  }
  browser.eval("window.__noReload = 'still here'");
  const int64_t eventsBefore = browser.eval("window.weftDashboard.events").asInt();
  auto [claimed, token] = claim(http, "ui-agent-1", "build", "alpha");
  REQUIRE(http.post("/api/work/" + claimed + "/start", holder("ui-agent-1", token)).status == 200);
  Json done = holder("ui-agent-1", token);
  done.set("result", J(R"({"summary":"all green"})"));
  REQUIRE(http.post("/api/work/" + claimed + "/complete", done).status == 200);
  WAIT_FOR(browser, "document.querySelector('tr[data-work-id=\"" + claimed + "\"]').dataset.status === 'completed'");
  WAIT_FOR(browser, "document.querySelector('[data-count=completed] .n').textContent === '1'");
  CHECK(browser.eval("window.__noReload") == Json("still here"));
  CHECK(browser.eval("window.weftDashboard.events").asInt() > eventsBefore);
  // The status filter narrows the list through the API.
  browser.eval("(() => { const s = document.getElementById('f-work-status'); s.value = 'completed';"
               " s.dispatchEvent(new Event('change', {bubbles: true})); })()");
  WAIT_FOR(browser, "document.querySelectorAll('#work tr[data-work-id]').length === 1 && "
                    "document.querySelector('#work tr[data-work-id]').dataset.workId === " + q(claimed));
  browser.eval("(() => { const s = document.getElementById('f-work-status'); s.value = '';"
               " s.dispatchEvent(new Event('change', {bubbles: true})); })()");
  WAIT_FOR(browser, "document.querySelectorAll('#work tr[data-work-id]').length === 7");
  browser.screenshot(artifact("ui-work.png"));

  // The item page: its timeline from the transition log.
  browser.navigate(base + "/ui#/work/" + claimed);
  WAIT_FOR(browser, "document.querySelectorAll('#timeline li[data-step]').length === 4");
  CHECK(browser.eval("[...document.querySelectorAll('#timeline li')].map(l => l.dataset.step).join(',')") ==
        Json("submitted,assigned,started,completed"));
  CHECK(browser.eval("document.getElementById('timeline').innerText").asString().find("ui-agent-1") !=
        std::string::npos);
  browser.screenshot(artifact("ui-item.png"));
  // A failed item's timeline carries the error.
  browser.navigate(base + "/ui#/work/" + doomed);
  WAIT_FOR(browser, "document.querySelectorAll('#timeline li[data-step=failed]').length === 2");
  CHECK(browser.eval("[...document.querySelectorAll('#timeline li')].map(l => l.dataset.step).join(',')") ==
        Json("submitted,assigned,failed,assigned,failed"));
  CHECK(browser.eval("document.getElementById('timeline').innerText").asString().find("flaky network") !=
        std::string::npos);
  CHECK(browser.eval("document.querySelectorAll('#timeline li[data-step=failed]')[1].innerText")
            .asString()
            .find("compiler exploded") != std::string::npos);
  // Cancel through the item page.
  const std::string toCancel = items.back();
  browser.navigate(base + "/ui#/work/" + toCancel);
  WAIT_FOR(browser, "document.querySelector('button[data-action=cancel]')");
  browser.click("button[data-action=cancel]");
  WAIT_FOR(browser, "!document.getElementById('modal').hidden");
  browser.click("#modal-ok");
  WAIT_FOR(browser, "document.getElementById('item') && document.getElementById('item').dataset.status === 'cancelled'");
  CHECK(workStatus(http, toCancel) == "cancelled");

  // Delayed work (§4.8): the board says when a pending item comes due, the
  // item page and its timeline say from when it may be claimed. Cancelled
  // afterwards, so the counts checked below stay as they were.
  HttpResponse delayed = http.post(
      "/api/work", J(R"({"taskId":"ui-delayed","capability":"build","boundary":"internal",)"
                     R"("description":"task ui-delayed","projectId":"alpha","delayMs":3600000,)"
                     R"("retry":{"backoff":"exponential","baseDelayMs":2000}})"));
  REQUIRE(delayed.status == 201);
  const std::string delayedId = delayed.json.getString("id");
  browser.navigate(base + "/ui#/work");
  WAIT_FOR(browser, "!!document.querySelector('tr[data-work-id=\"" + delayedId + "\"] [data-due]')");
  CHECK(browser.eval("document.querySelector('tr[data-work-id=\"" + delayedId + "\"] [data-due]').innerText")
            .asString()
            .find("due in") != std::string::npos);
  browser.navigate(base + "/ui#/work/" + delayedId);
  WAIT_FOR(browser, "document.getElementById('item') && document.getElementById('item').innerText.includes('next attempt')");
  CHECK(browser.eval("document.getElementById('item').innerText").asString().find("exponential") !=
        std::string::npos);
  CHECK(browser.eval("document.querySelector('#timeline li[data-step=submitted]').innerText")
            .asString()
            .find("not claimable before") != std::string::npos);
  REQUIRE(http.post("/api/work/" + delayedId + "/cancel").status == 200);

  // Dead letters: the entry with its failure history; retry by click + confirm.
  browser.navigate(base + "/ui#/dlq");
  WAIT_FOR(browser, "document.querySelector('tr[data-dlq-id=\"" + doomed + "\"]')");
  CHECK(browser.eval("document.querySelector('tr[data-dlq-id=\"" + doomed + "\"]').innerText")
            .asString()
            .find("compiler exploded") != std::string::npos);
  browser.eval("document.querySelector('tr[data-dlq-id=\"" + doomed + "\"] details').open = true");
  CHECK(browser.eval("document.querySelector('tr[data-dlq-id=\"" + doomed + "\"] details').innerText")
            .asString()
            .find("flaky network") != std::string::npos);
  browser.screenshot(artifact("ui-dlq.png"));
  // Discard: click, cancel (nothing happens), click, confirm (gone; the item stays failed).
  const std::string discardRow = "tr[data-dlq-id=\"" + discarded + "\"]";
  browser.click(discardRow + " button[data-action=discard]");
  WAIT_FOR(browser, "!document.getElementById('modal').hidden");
  browser.click("#modal-cancel");
  WAIT_FOR(browser, "document.getElementById('modal').hidden");
  CHECK(http.get("/api/dlq/" + discarded).status == 200);
  browser.click(discardRow + " button[data-action=discard]");
  WAIT_FOR(browser, "!document.getElementById('modal').hidden");
  browser.click("#modal-ok");
  WAIT_FOR(browser, "!document.querySelector('" + discardRow + "')");
  CHECK(http.get("/api/dlq/" + discarded).status == 404);
  CHECK(workStatus(http, discarded) == "failed");
  browser.click("tr[data-dlq-id=\"" + doomed + "\"] button[data-action=retry]");
  WAIT_FOR(browser, "!document.getElementById('modal').hidden");
  CHECK(http.get("/api/dlq/" + doomed).status == 200);  // nothing happens before the confirmation
  browser.click("#modal-ok");
  {
    const auto deadline = Clock::now() + kWait;
    while (Clock::now() < deadline && workStatus(http, doomed) != "pending") {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  CHECK(workStatus(http, doomed) == "pending");
  CHECK(http.get("/api/dlq/" + doomed).status == 404);
  WAIT_FOR(browser, "!document.querySelector('tr[data-dlq-id=\"" + doomed + "\"]')");

  // Targets: health, uses, mechanism switches; ssh is off on this server.
  browser.navigate(base + "/ui#/targets");
  WAIT_FOR(browser, "document.querySelectorAll('#targets tr[data-target-id]').length === 2");
  const std::string sshRow = "tr[data-target-id=\"" + sshTarget.json.getString("id") + "\"]";
  const std::string localRow = "tr[data-target-id=\"" + localTarget.json.getString("id") + "\"]";
  CHECK(browser.eval("document.querySelector('" + sshRow + "').dataset.mechanismAllowed") == Json("false"));
  CHECK(browser.eval("document.querySelector('" + sshRow + "').innerText").asString().find("spinup.allowSsh") !=
        std::string::npos);
  CHECK(browser.eval("!!document.querySelector('" + sshRow + " button[data-action=test]')") == Json(false));
  CHECK(browser.eval("!!document.querySelector('" + sshRow + " button[data-action=spin-up]')") == Json(false));
  CHECK(browser.eval("!!document.querySelector('" + localRow + " button[data-action=test]')") == Json(true));
  // Disable through the page; the target event refreshes the row.
  browser.click(sshRow + " button[data-action=disable]");
  WAIT_FOR(browser, "document.querySelector('" + sshRow + "').dataset.status === 'disabled'");
  CHECK(http.get("/api/targets/" + sshTarget.json.getString("id")).json.getString("status") == "disabled");
  // The local mechanism is on: test, then spin up (confirmed); the health
  // and the outcome arrive through the target events.
  browser.click(localRow + " button[data-action=test]");
  WAIT_FOR(browser, "document.querySelector('" + localRow + "').innerText.includes('healthy')");
  browser.click(localRow + " button[data-action=spin-up]");
  WAIT_FOR(browser, "!document.getElementById('modal').hidden");
  browser.click("#modal-ok");
  WAIT_FOR(browser, "document.querySelector('" + localRow + " .s-success')");
  CHECK(http.get("/api/targets/" + localTarget.json.getString("id")).json.get("lastSpinUp").getString("outcome") ==
        "success");
  browser.screenshot(artifact("ui-targets.png"));

  // Overview: counts and the three charts; a submission shows up live.
  browser.navigate(base + "/ui#/overview");
  WAIT_FOR(browser, "document.querySelectorAll('.chart svg').length === 3");
  submit(http, "ui-late", "build", "alpha");
  WAIT_FOR(browser, "document.querySelector('[data-chart=submitted] rect')");
  browser.screenshot(artifact("ui-overview.png"));

  // The stream drops: the page says so, reconnects by itself, and refetches
  // the view (events of the gap are not replayed), with no event to prompt it.
  const int64_t refetchesBefore = browser.eval("window.weftDashboard.refetches").asInt();
  weftd.kill9();
  WAIT_FOR(browser, "document.querySelector('#conn').dataset.state === 'disconnected' && "
                    "!document.getElementById('banner').hidden");
  browser.screenshot(artifact("ui-disconnected.png"));
  weftd.restart();
  REQUIRE(weftd.waitServing());
  WAIT_FOR(browser, "document.querySelector('#conn').dataset.state === 'live'");
  WAIT_FOR(browser, "window.weftDashboard.connects >= 2");
  WAIT_FOR(browser, "window.weftDashboard.refetches > " + std::to_string(refetchesBefore) +
                        " && document.getElementById('main').dataset.state === 'ready'");
  CHECK(browser.eval("document.querySelector('[data-count=pending] .n').textContent") == Json("5"));

  checkLoopbackOnly(browser, weftd.port());
  INFO(pageDiagnostics(browser));
  for (const std::string& line : browser.consoleLog()) CHECK(line.find("exception") == std::string::npos);
}

TEST_CASE("dashboard: with tokens configured nothing shows until a token works", "[browser]") {
  TempDir dir("weft-ui-auth-");
  const std::string token = "ui-test-token-5f2c";
  Weftd weftd(sqliteOptions(dir, {{"http.tokens", token}}));
  const HttpHeaders auth = {{"Authorization", "Bearer " + token}};
  REQUIRE(weftd.waitServing(std::chrono::seconds(20), auth));
  HttpClient& http = weftd.http();
  registerAgent(http, "secret-agent", "hidden-handle", "build", "alpha", auth);
  // The page is public, the API is not.
  CHECK(weftd.get("/ui").status == 200);
  CHECK(weftd.get("/api/agents").status == 401);
  CHECK(weftd.get("/api/spinup/mechanisms").status == 401);
  CHECK(weftd.get("/api/spinup/mechanisms", auth).status == 200);

  const std::string base = "http://127.0.0.1:" + std::to_string(weftd.port());
  TempDir profile("weft-ui-chromium-");
  Browser browser(profile.file("profile"));
  browser.navigate(base + "/ui#/fleet");
  WAIT_FOR(browser, "document.body.dataset.auth === 'needed'");
  CHECK(browser.eval("document.getElementById('main').hidden") == Json(true));
  CHECK(browser.eval("getComputedStyle(document.getElementById('main')).display") == Json("none"));
  CHECK(browser.eval("getComputedStyle(document.getElementById('login')).display") != Json("none"));
  CHECK(browser.eval("document.body.innerText.includes('hidden-handle')") == Json(false));
  CHECK(browser.eval("document.querySelectorAll('tr[data-agent-guid]').length") == Json(0));
  CHECK(browser.eval("document.querySelector('#conn').dataset.state") == Json("idle"));
  browser.screenshot(artifact("ui-token-prompt.png"));

  // A wrong token is refused and nothing is shown.
  browser.type("#token", "not-the-token");
  browser.click("#login-submit");
  WAIT_FOR(browser, "!document.getElementById('login-error').hidden");
  CHECK(browser.eval("document.body.dataset.auth") == Json("needed"));
  CHECK(browser.eval("document.body.innerText.includes('hidden-handle')") == Json(false));

  // The right one opens the dashboard; REST and the WebSocket (bearer
  // subprotocol) both work with it.
  browser.type("#token", token);
  browser.click("#login-submit");
  WAIT_FOR(browser, "document.body.dataset.auth === 'ok'");
  WAIT_FOR(browser, "document.querySelector('tr[data-agent-guid=\"secret-agent\"]')");
  WAIT_FOR(browser, "document.querySelector('#conn').dataset.state === 'live'");
  CHECK(browser.eval("sessionStorage.getItem('weft.dashboard.token')") == Json(token));
  // Live with the token: a new agent appears without a reload.
  registerAgent(http, "second-agent", "second-handle", "build", "alpha", auth);
  WAIT_FOR(browser, "document.querySelector('tr[data-agent-guid=\"second-agent\"]')");

  // Kept for the tab: a reload does not ask again.
  browser.eval("window.__beforeReload = true");
  browser.call("Page.reload");
  WAIT_FOR(browser, "!window.__beforeReload && document.body.dataset.auth === 'ok' && "
                    "document.querySelector('tr[data-agent-guid=\"second-agent\"]')");
  CHECK(browser.eval("getComputedStyle(document.getElementById('login')).display") == Json("none"));
  browser.navigate(base + "/ui#/overview");
  WAIT_FOR(browser, "document.querySelectorAll('.chart svg').length === 3");
  checkLoopbackOnly(browser, weftd.port());
}

TEST_CASE("dashboard: page load time with 1,000 agents and 10,000 work items", "[browser][bench]") {
  TempDir dir("weft-ui-bench-");
  WeftdOptions options = sqliteOptions(dir);
  Weftd weftd(options);
  REQUIRE(weftd.waitServing());
  const int port = weftd.port();
  const int kAgents = 1000, kItems = 10000, kThreads = 8;

  const auto seedStart = Clock::now();
  std::vector<std::future<int>> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.push_back(std::async(std::launch::async, [=] {
      HttpClient client(port, std::chrono::seconds(60));
      int ok = 0;
      for (int i = t; i < kAgents; i += kThreads) {
        const std::string n = std::to_string(i);
        HttpResponse r = client.post(
            "/api/agents", J(R"({"guid":"bench-agent-)" + n + R"(","handle":"agent-)" + n +
                             R"(","capabilities":["cap-)" + std::to_string(i % 7) +
                             R"("],"projectId":"proj-)" + std::to_string(i % 5) + R"("})"));
        ok += r.status == 201;
      }
      for (int i = t; i < kItems; i += kThreads) {
        const std::string n = std::to_string(i);
        HttpResponse r = client.post(
            "/api/work", J(R"({"taskId":"bench-)" + n + R"(","capability":"cap-)" +
                           std::to_string(i % 7) + R"(","boundary":"internal","description":"bench item )" +
                           n + R"(","projectId":"proj-)" + std::to_string(i % 5) +
                           R"(","priority":)" + std::to_string(1 + i % 10) + "}"));
        ok += r.status == 201;
      }
      return ok;
    }));
  }
  int created = 0;
  for (auto& w : workers) created += w.get();
  const double seedSeconds = std::chrono::duration<double>(Clock::now() - seedStart).count();
  REQUIRE(created == kAgents + kItems);
  HttpResponse stats = weftd.get("/api/stats");
  REQUIRE(stats.json.get("totals").getInt("pendingWork") == kItems);

  TempDir profile("weft-ui-chromium-");
  Browser browser(profile.file("profile"));
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  struct Measure {
    const char* view;
    std::string ready;
  };
  const Measure measures[] = {
      {"work", "document.getElementById('main').dataset.state === 'ready' && "
               "document.querySelectorAll('#work tr[data-work-id]').length === 50"},
      {"fleet", "document.getElementById('main').dataset.state === 'ready' && "
                "document.querySelectorAll('#agents tr[data-agent-guid]').length === 50"},
      {"overview", "document.getElementById('main').dataset.state === 'ready' && "
                   "document.querySelectorAll('.chart svg').length === 3"},
  };
  std::cout << "dashboard bench: seeded " << kAgents << " agents and " << kItems << " items in "
            << seedSeconds << " s\n";
  for (int round = 0; round < 2; ++round) {
    for (const Measure& m : measures) {
      browser.navigate("about:blank");
      REQUIRE(browser.waitFor("document.readyState === 'complete'"));
      const auto start = Clock::now();
      browser.navigate(base + "/ui#/" + m.view);
      WAIT_FOR(browser, m.ready);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      const double inPage = browser.eval("Math.round(window.weftDashboard.lastRender)").asDouble();
      std::cout << "dashboard bench: " << (round == 0 ? "cold " : "warm ") << m.view
                << " view: navigation to rendered list " << ms << " ms (page's own clock: "
                << inPage << " ms after navigation start)\n";
      CHECK(ms < 10000);
    }
  }
  // Live at this size: a completion moves its row on the work view.
  browser.navigate(base + "/ui#/work");
  WAIT_FOR(browser, measures[0].ready);
  const std::string firstId = browser.eval("document.querySelector('#work tr[data-work-id]').dataset.workId").asString();
  HttpResponse cancelled = weftd.post("/api/work/" + firstId + "/cancel");
  REQUIRE(cancelled.status == 200);
  const auto liveStart = Clock::now();
  WAIT_FOR(browser, "!document.querySelector('tr[data-work-id=\"" + firstId + "\"]') || "
                    "document.querySelector('tr[data-work-id=\"" + firstId + "\"]').dataset.status === 'cancelled'");
  std::cout << "dashboard bench: a cancel reached the page in "
            << std::chrono::duration<double, std::milli>(Clock::now() - liveStart).count() << " ms\n";
  browser.screenshot(artifact("ui-bench-work.png"));
  checkLoopbackOnly(browser, port);
}
