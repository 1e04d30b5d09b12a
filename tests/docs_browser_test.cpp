// GET /api/docs end to end in a real browser: a weftd (sqlite backend) serves
// the page, headless Chromium loads it, runs its script, fetches
// /api/openapi.json and renders it; the test reads the rendered DOM
// (--dump-dom) and finds every operation of the served document in it.
//
// Chromium is required: when it is missing the test FAILS (install the
// Debian package `chromium`; scripts/lib.sh does). WEFT_TEST_CHROMIUM may
// name another binary.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/cdp.h"
#include "support/child_process.h"
#include "support/temp_dir.h"
#include "support/weftd.h"

using namespace weft;
using weft::testing::ChildOptions;
using weft::testing::ChildProcess;
using weft::testing::findChromium;
using weft::testing::HttpResponse;
using weft::testing::TempDir;
using weft::testing::Weftd;
using weft::testing::WeftdOptions;

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TEST_CASE("docs page: headless Chromium renders every operation of the document", "[browser]") {
  const std::string chromium = findChromium();
  INFO("headless Chromium is required for this test: apt-get install -y chromium");
  REQUIRE(!chromium.empty());

  TempDir dir("weft-docs-browser-");
  WeftdOptions options;
  options.settings = {{"kv.backend", "sqlite"}, {"sqlite.path", dir.file("weft.db")}};
  Weftd weftd(options);

  HttpResponse doc = weftd.get("/api/openapi.json");
  REQUIRE(doc.status == 200);
  std::vector<std::string> operations;
  for (const auto& [path, item] : doc.json.get("paths").asObject()) {
    for (const auto& [method, op] : item.asObject()) {
      if (op.isObject() && op.contains("responses"))
        operations.push_back(upper(method) + " " + path);
    }
  }
  REQUIRE(operations.size() > 30);

  const std::string url = "http://127.0.0.1:" + std::to_string(weftd.port()) + "/api/docs";
  ChildOptions browser;
  browser.argv = {chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage",
                  "--user-data-dir=" + dir.file("profile"),
                  // Virtual time waits for the page's fetch before dumping.
                  "--virtual-time-budget=10000", "--dump-dom", url};
  browser.outputFile = dir.file("chromium.out");
  ChildProcess process(browser);
  const auto exit = process.wait(std::chrono::seconds(90));
  const std::string output = readFile(browser.outputFile);
  INFO("chromium output (DOM and its log):\n" << output.substr(0, 3000));
  REQUIRE(exit.has_value());
  CHECK(exit->exited);
  CHECK(exit->code == 0);

  // The script ran and finished rendering (it sets these only on success).
  CHECK(output.find("data-state=\"ready\"") != std::string::npos);
  CHECK(output.find("data-operations=\"" + std::to_string(operations.size()) + "\"") !=
        std::string::npos);
  // Every operation is on the page, e.g. POST /api/work/claim.
  CHECK(output.find("data-op=\"POST /api/work/claim\"") != std::string::npos);
  for (const std::string& op : operations) {
    INFO(op);
    CHECK(output.find("data-op=\"" + op + "\"") != std::string::npos);
  }
  // Grouped by tag, with parameters, bodies and responses rendered.
  for (const char* text : {"id=\"tag-work-execution\"", ">Parameters<", ">Request body<",
                           ">Responses<", "id=\"schema-WorkItem\"", "ClaimRequest"}) {
    INFO(text);
    CHECK(output.find(text) != std::string::npos);
  }
}
