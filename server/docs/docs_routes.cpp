#include "docs/docs_routes.h"

#include <memory>
#include <mutex>
#include <string>

#include "docs/embedded.h"
#include "docs/openapi.h"

namespace weft::docs {
namespace {

// The page renders only our own document, but it still gets a strict policy:
// nothing but same-origin scripts, styles and fetches.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

http::ApiResponse asset(const char* file, const char* contentType) {
  const auto content = embeddedFile(file);
  // Missing only if the build forgot the file; tests catch that.
  if (!content) return http::ApiResponse::error(500, "InternalError", "Internal server error");
  return http::ApiResponse::rawBody(200, std::string(*content), contentType)
      .withHeader("Cache-Control", "no-cache")
      .withHeader("X-Content-Type-Options", "nosniff");
}

struct OpenApiCache {
  std::once_flag once;
  std::string text;
};

}  // namespace

void addDocsRoutes(http::Router& router) {
  auto cache = std::make_shared<OpenApiCache>();
  const http::Router* routes = &router;
  router.add("GET", "/api/openapi.json", [cache, routes](const http::ApiRequest&) {
    // A throw here (a malformed embedded file) leaves the flag unset, so the
    // next request tries again; the pipeline answers 500 meanwhile.
    std::call_once(cache->once, [&] { cache->text = buildOpenApi(routes->routes()).dump(); });
    return http::ApiResponse::rawBody(200, cache->text, http::kJsonContentType);
  });
  router.add("GET", "/api/docs", [](const http::ApiRequest&) {
    return asset("index.html", "text/html; charset=utf-8")
        .withHeader("Content-Security-Policy", kContentSecurityPolicy);
  });
  router.add("GET", "/api/docs/docs.js", [](const http::ApiRequest&) {
    return asset("docs.js", "text/javascript; charset=utf-8");
  });
  router.add("GET", "/api/docs/docs.css",
             [](const http::ApiRequest&) { return asset("docs.css", "text/css; charset=utf-8"); });
}

}  // namespace weft::docs
