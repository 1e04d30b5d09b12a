// Fuzz target: request targets. Bytes -> Router::normalizePath,
// Router::percentDecode, parseQueryString (on what follows '?'),
// Router::match and Router::requiresAuth on a router holding weftd's real
// route table. The first byte picks the method; the rest is the target.
//
// The table is taken once from weftd's own wiring (tests/support/
// inprocess_weftd.h, as the OpenAPI cross-check does) and copied into a
// router with dummy handlers, so the fuzzer matches exactly the templates
// weftd serves without keeping a server running while it fuzzes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/router.h"
#include "support/inprocess_weftd.h"
#include "weft/log.h"

namespace {

namespace http = weft::http;

http::Router& router() {
  static http::Router r;
  return r;
}

void buildRouter() {
  weft::testing::InProcessWeftd weftd;
  for (const http::RouteInfo& info : weftd.router().routes()) {
    http::Handler dummy = [](const http::ApiRequest&) { return http::ApiResponse{}; };
    router().add(info.method, info.pathTemplate, dummy, info.options);
  }
}

constexpr const char* kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  weft::log::setSink([](const std::string&) {});
  buildRouter();
  WEFT_FUZZ_CHECK(!router().routes().empty());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* method = kMethods[data[0] % (sizeof(kMethods) / sizeof(kMethods[0]))];
  std::string_view target(reinterpret_cast<const char*>(data + 1), size - 1);

  const std::string path = http::Router::normalizePath(target);
  // The query string and fragment are gone, whatever the target held.
  WEFT_FUZZ_CHECK(path.find('?') == std::string::npos);
  WEFT_FUZZ_CHECK(path.find('#') == std::string::npos);
  (void)http::Router::percentDecode(target);
  (void)http::Router::percentDecode(path);
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    (void)http::parseQueryString(target.substr(q + 1));
  }

  http::RouteMatch m = router().match(method, path);
  if (m.kind == http::RouteMatch::Kind::Found) {
    WEFT_FUZZ_CHECK(m.route != nullptr);
  } else if (m.kind == http::RouteMatch::Kind::MethodNotAllowed) {
    WEFT_FUZZ_CHECK(!m.allow.empty());
  }
  (void)http::Router::requiresAuth(m, path);
  (void)http::Router::protectedByDefault(path);
  return 0;
}
