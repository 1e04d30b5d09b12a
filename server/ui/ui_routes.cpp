#include "ui/ui_routes.h"

#include <string>

#include "docs/embedded.h"

namespace weft::ui {
namespace {

// Same-origin only: scripts, styles, fetches and the WebSocket (CSP 3 lets
// 'self' match ws: on the same host and port); images only inline (the
// charts are inline SVG).
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

http::ApiResponse asset(const char* file, const char* contentType) {
  const auto content = docs::embeddedFile(file);
  // Missing only if the build forgot the file; tests catch that.
  if (!content) return http::ApiResponse::error(500, "InternalError", "Internal server error");
  return http::ApiResponse::rawBody(200, std::string(*content), contentType)
      .withHeader("Cache-Control", "no-cache")
      .withHeader("X-Content-Type-Options", "nosniff");
}

}  // namespace

void addDashboardRoutes(http::Router& router) {
  router.add("GET", "/", [](const http::ApiRequest&) {
    return http::ApiResponse::rawBody(302, "", "text/plain; charset=utf-8")
        .withHeader("Location", "/ui");
  });
  router.add("GET", "/ui", [](const http::ApiRequest&) {
    return asset("dashboard.html", "text/html; charset=utf-8")
        .withHeader("Content-Security-Policy", kContentSecurityPolicy)
        .withHeader("Referrer-Policy", "no-referrer");
  });
  router.add("GET", "/ui/dashboard.js", [](const http::ApiRequest&) {
    return asset("dashboard.js", "text/javascript; charset=utf-8");
  });
  router.add("GET", "/ui/dashboard.css", [](const http::ApiRequest&) {
    return asset("dashboard.css", "text/css; charset=utf-8");
  });
}

}  // namespace weft::ui
