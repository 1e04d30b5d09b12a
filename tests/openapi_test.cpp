// GET /api/openapi.json and the docs routes (docs/api.md §2.1) against weftd's
// REAL route table: installDomain() + /health and /ready, built in process on
// the memory backend (tests/support/inprocess_weftd.h).
//
// The cross-check walks Router::routes() and the served document both ways:
//  * every route the router serves is documented: registering a route the
//    table in server/docs/openapi.cpp does not describe fails this test (it
//    shows up as `undocumented`);
//  * every documented operation is served;
//  * the documented operations are exactly the contract's (the index of
//    docs/api.md §2.0 plus the docs page's two assets), so an endpoint
//    cannot silently drop out of the document either.
#include "docs/openapi.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "docs/embedded.h"
#include "http/api_types.h"
#include "support/inprocess_weftd.h"
#include "support/weftd.h"
#include "weft/log.h"

using namespace weft;
using weft::testing::HttpClient;
using weft::testing::HttpResponse;
using weft::testing::InProcessWeftd;

namespace {

const bool kQuietLog = [] {
  log::setLevel(LogLevel::Warn);
  return true;
}();

// docs/api.md §2.0, one entry per method and path, plus the docs page's assets.
const std::set<std::string> kContract = {
    "GET /health",
    "GET /ready",
    "GET /metrics",
    "GET /api/openapi.json",
    "GET /api/docs",
    "GET /api/docs/docs.js",
    "GET /api/docs/docs.css",
    "GET /",
    "GET /ui",
    "GET /ui/dashboard.js",
    "GET /ui/dashboard.css",
    "GET /api/agents",
    "POST /api/agents",
    "GET /api/agents/{guid}",
    "DELETE /api/agents/{guid}",
    "POST /api/agents/{guid}/heartbeat",
    "POST /api/agents/{guid}/shutdown",
    "POST /api/agents/shutdown-batch",
    "GET /api/work",
    "POST /api/work",
    "GET /api/work/{id}",
    "POST /api/work/{id}/cancel",
    "POST /api/work/cancel-batch",
    "POST /api/work/claim",
    "POST /api/work/{id}/start",
    "POST /api/work/{id}/progress",
    "POST /api/work/{id}/complete",
    "POST /api/work/{id}/fail",
    "GET /api/dlq",
    "GET /api/dlq/{id}",
    "POST /api/dlq/{id}/retry",
    "DELETE /api/dlq/{id}",
    "GET /api/targets",
    "POST /api/targets",
    "GET /api/targets/{id}",
    "PUT /api/targets/{id}",
    "DELETE /api/targets/{id}",
    "POST /api/targets/{id}/test",
    "POST /api/targets/{id}/spin-up",
    "POST /api/targets/{id}/enable",
    "POST /api/targets/{id}/disable",
    "POST /api/targets/disable-batch",
    "GET /api/spinup/mechanisms",
    "GET /api/stats",
    "GET /api/stats/projects",
    "GET /api/channels",
    "GET /api/channels/{name}/messages",
    "GET /api/ws",
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

const std::set<std::string> kMethods = {"get",     "put",  "post",  "delete",
                                        "options", "head", "patch", "trace"};

// Calls f(key "METHOD /path", path, operation) for every operation.
void forEachOperation(
    const Json& doc,
    const std::function<void(const std::string&, const std::string&, const Json&)>& f) {
  for (const auto& [path, item] : doc.get("paths").asObject()) {
    for (const auto& [method, op] : item.asObject()) {
      if (kMethods.count(method)) f(upper(method) + " " + path, path, op);
    }
  }
}

// Every "$ref" anywhere under node.
void collectRefs(const Json& node, std::vector<std::string>& out) {
  if (node.isObject()) {
    for (const auto& [k, v] : node.asObject()) {
      if (k == "$ref" && v.isString()) out.push_back(v.asString());
      collectRefs(v, out);
    }
  } else if (node.isArray()) {
    for (const Json& v : node.asArray()) collectRefs(v, out);
  }
}

const Json* resolvePointer(const Json& doc, const std::string& ref) {
  if (ref.rfind("#/", 0) != 0) return nullptr;
  const Json* node = &doc;
  size_t pos = 2;
  while (pos <= ref.size()) {
    size_t slash = ref.find('/', pos);
    if (slash == std::string::npos) slash = ref.size();
    node = node->find(ref.substr(pos, slash - pos));
    if (!node) return nullptr;
    pos = slash + 1;
  }
  return node;
}

std::vector<std::string> templateParams(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = path.find('{', pos)) != std::string::npos) {
    const size_t end = path.find('}', pos);
    out.push_back(path.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return out;
}

Json fetchDocument(InProcessWeftd& weftd) {
  HttpClient client(weftd.port());
  HttpResponse r = client.get("/api/openapi.json");
  REQUIRE(r.status == 200);
  REQUIRE(r.header("Content-Type").value_or("") == "application/json; charset=utf-8");
  REQUIRE(r.json.isObject());
  return r.json;
}

}  // namespace

TEST_CASE("openapi: the router and the document describe the same operations", "[openapi]") {
  InProcessWeftd weftd;
  const Json doc = fetchDocument(weftd);

  std::set<std::string> served;
  for (const http::RouteInfo& r : weftd.router().routes()) {
    served.insert(r.method + " " + r.pathTemplate);
  }

  std::set<std::string> documented;
  forEachOperation(doc, [&](const std::string& key, const std::string&, const Json& op) {
    documented.insert(key);
    INFO(key);
    CHECK(op.getString("x-weft-status").empty());  // never "undocumented"
  });

  // Router -> document: every route is documented.
  for (const std::string& key : served) {
    INFO("served by the router but not in the OpenAPI table (server/docs/openapi.cpp): " << key);
    CHECK(documented.count(key) == 1);
  }
  // Document -> router: every documented operation is served.
  for (const std::string& key : documented) {
    INFO("documented operation that the router does not serve: " << key);
    CHECK(served.count(key) == 1);
  }
  // The document covers the whole contract, nothing more.
  for (const std::string& key : kContract) {
    INFO("contract operation missing from the document: " << key);
    CHECK(documented.count(key) == 1);
  }
  for (const std::string& key : documented) {
    INFO("documented operation that is not in the contract: " << key);
    CHECK(kContract.count(key) == 1);
  }
}

TEST_CASE("openapi: the document is well-formed OpenAPI 3.0", "[openapi]") {
  InProcessWeftd weftd;
  const Json doc = fetchDocument(weftd);

  CHECK(doc.getString("openapi").rfind("3.0.", 0) == 0);
  CHECK(!doc.get("info").getString("title").empty());
  CHECK(!doc.get("info").getString("version").empty());

  const Json& bearer = doc.get("components").get("securitySchemes").get("bearerAuth");
  CHECK(bearer.getString("type") == "http");
  CHECK(bearer.getString("scheme") == "bearer");
  REQUIRE(doc.get("security").isArray());
  CHECK(doc.get("security").asArray().at(0).contains("bearerAuth"));

  const Json& envelope = doc.get("components").get("schemas").get("ErrorEnvelope");
  CHECK(envelope.get("required").size() == 2);
  CHECK(envelope.get("properties").contains("details"));

  std::set<std::string> tags;
  for (const Json& t : doc.get("tags").asArray()) tags.insert(t.getString("name"));

  // Every reference resolves.
  std::vector<std::string> refs;
  collectRefs(doc, refs);
  CHECK(refs.size() > 100);
  for (const std::string& ref : refs) {
    INFO(ref);
    CHECK(resolvePointer(doc, ref) != nullptr);
  }

  std::set<std::string> operationIds;
  forEachOperation(doc, [&](const std::string& key, const std::string& path, const Json& op) {
    INFO(key);
    CHECK(operationIds.insert(op.getString("operationId")).second);
    REQUIRE(op.get("tags").size() == 1);
    CHECK(tags.count(op.get("tags").asArray()[0].asString()) == 1);
    CHECK(!op.getString("summary").empty());
    REQUIRE(op.get("responses").isObject());
    CHECK(op.get("responses").size() > 0);

    // Path parameters: exactly the template's, all required.
    std::vector<std::string> declared;
    if (op.contains("parameters")) {
      for (const Json& p : op.get("parameters").asArray()) {
        CHECK(!p.getString("name").empty());
        if (p.getString("in") == "path") {
          CHECK(p.getBool("required"));
          declared.push_back(p.getString("name"));
        }
      }
    }
    CHECK(declared == templateParams(path));

    // Auth: protected paths inherit bearerAuth and document 401; public ones
    // override it (docs/api.md §1.6).
    const bool isProtected = http::Router::protectedByDefault(path);
    if (path == "/metrics") {
      CHECK(op.get("security").size() == 2);  // public, or bearer with metrics.requireAuth
    } else if (path == "/api/ws") {
      CHECK(op.get("security").asArray().at(0).contains("wsToken"));
    } else if (isProtected) {
      CHECK(!op.contains("security"));
      CHECK(op.get("responses").contains("401"));
      // Every protected path needs storage, except the read-only view of the
      // spin-up configuration.
      CHECK(op.get("responses").contains("503") == (path != "/api/spinup/mechanisms"));
    } else {
      REQUIRE(op.get("security").isArray());
      CHECK(op.get("security").size() == 0);
    }

    // Errors carry the envelope.
    for (const auto& [status, response] : op.get("responses").asObject()) {
      if (status[0] < '4' || path == "/ready") continue;
      const Json* resolved =
          response.contains("$ref") ? resolvePointer(doc, response.getString("$ref")) : &response;
      REQUIRE(resolved != nullptr);
      const Json& schema = resolved->get("content").get("application/json").get("schema");
      INFO(status);
      CHECK(schema.getString("$ref") == "#/components/schemas/ErrorEnvelope");
    }
    if (op.contains("requestBody")) {
      CHECK(op.get("requestBody").get("content").contains("application/json"));
      CHECK(op.get("responses").contains("400"));
      CHECK(op.get("responses").contains("413"));
    }
  });
  CHECK(operationIds.size() == kContract.size());
}

TEST_CASE("openapi: examples from the contract are in the document", "[openapi]") {
  InProcessWeftd weftd;
  const Json doc = fetchDocument(weftd);
  const Json& paths = doc.get("paths");

  const Json& claim = paths.get("/api/work/claim").get("post");
  CHECK(claim.get("responses").contains("200"));
  CHECK(claim.get("responses").contains("204"));
  CHECK(claim.get("requestBody")
            .get("content")
            .get("application/json")
            .get("schema")
            .getString("$ref") == "#/components/schemas/ClaimRequest");

  const Json& list = paths.get("/api/work").get("get");
  std::set<std::string> query;
  for (const Json& p : list.get("parameters").asArray()) {
    if (p.getString("in") == "query") query.insert(p.getString("name"));
  }
  CHECK(query == std::set<std::string>{"status", "boundary", "capability", "classification",
                                       "assignedTo", "projectId", "cursor", "limit"});

  CHECK(paths.get("/api/stats").get("get").get("responses").contains("304"));
  CHECK(paths.get("/metrics")
            .get("get")
            .get("responses")
            .get("200")
            .get("content")
            .contains("text/plain; version=0.0.4; charset=utf-8"));
  CHECK(doc.get("components").get("schemas").get("WorkStatus").get("enum").size() == 6);

  // Idempotent submits: the request header, the replay header, the 422.
  const Json& submit = paths.get("/api/work").get("post");
  std::set<std::string> headers;
  for (const Json& p : submit.get("parameters").asArray()) {
    if (p.getString("in") == "header") headers.insert(p.getString("name"));
  }
  CHECK(headers == std::set<std::string>{"Idempotency-Key"});
  CHECK(submit.get("responses").get("201").get("headers").get("Idempotent-Replayed").getString(
            "$ref") == "#/components/headers/IdempotentReplayed");
  CHECK(doc.get("components").get("headers").contains("IdempotentReplayed"));
  CHECK(submit.get("responses").contains("422"));
}

TEST_CASE("openapi: the document and the docs page are public and self-contained",
          "[openapi][docs]") {
  InProcessWeftd weftd({"http.tokens=sekret"});
  HttpClient client(weftd.port());

  // Auth is on: an API path needs the token, the docs do not (docs/api.md §1.6).
  CHECK(client.get("/api/agents").status == 401);
  HttpResponse doc = client.get("/api/openapi.json");
  CHECK(doc.status == 200);
  CHECK(doc.json.isObject());

  HttpResponse page = client.get("/api/docs");
  REQUIRE(page.status == 200);
  CHECK(page.header("Content-Type").value_or("") == "text/html; charset=utf-8");
  CHECK(page.header("Content-Security-Policy").value_or("").find("default-src 'none'") !=
        std::string::npos);
  CHECK(page.body.find("/api/docs/docs.js") != std::string::npos);
  CHECK(page.body.find("/api/docs/docs.css") != std::string::npos);
  CHECK(client.get("/api/docs/").status == 200);  // one trailing slash is ignored

  HttpResponse script = client.get("/api/docs/docs.js");
  CHECK(script.status == 200);
  CHECK(script.header("Content-Type").value_or("") == "text/javascript; charset=utf-8");
  CHECK(script.body.find("/api/openapi.json") != std::string::npos);
  HttpResponse style = client.get("/api/docs/docs.css");
  CHECK(style.status == 200);
  CHECK(style.header("Content-Type").value_or("") == "text/css; charset=utf-8");

  // Anything else under /api/docs/ is a plain 404, still without auth.
  HttpResponse missing = client.get("/api/docs/nope.js");
  CHECK(missing.status == 404);
  CHECK(missing.errorKind() == "NotFound");

  // No third-party hosts: no absolute or protocol-relative URL in any asset.
  for (const char* name : {"index.html", "docs.js", "docs.css"}) {
    INFO(name);
    const auto content = docs::embeddedFile(name);
    REQUIRE(content.has_value());
    CHECK(content->find("http://") == std::string_view::npos);
    CHECK(content->find("https://") == std::string_view::npos);
    CHECK(content->find("=\"//") == std::string_view::npos);
    CHECK(content->find("url(") == std::string_view::npos);
  }
}

TEST_CASE("openapi: a route the table lacks is listed as undocumented", "[openapi]") {
  // An extra route shows up, marked, instead of being hidden.
  std::vector<http::RouteInfo> routes = {
      {"GET", "/health", {}, false},
      {"POST", "/api/work/claim", {}, false},
      {"GET", "/api/extra", {}, false},
  };
  const Json doc = docs::buildOpenApi(routes);
  const Json& paths = doc.get("paths");
  CHECK(!paths.get("/health").get("get").contains("x-weft-status"));
  CHECK(!paths.get("/api/work/claim").get("post").contains("x-weft-status"));
  CHECK(paths.get("/api/extra").get("get").getString("x-weft-status") == "undocumented");
}
