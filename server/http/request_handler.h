// The request pipeline of API.md §1.5, as a Poco request-handler factory.
//
// For every request, in this order:
//  1. OPTIONS on any path -> 204 CORS preflight (§1.7), no auth.
//  2. Body over maxBodyBytes -> 413 PayloadTooLarge (at once on Content-Length,
//     or while reading a chunked body). The rejected body is drained up to a
//     bound, or the connection is closed, so Poco never resets it mid-reply.
//  3. Bearer auth for protected paths (§1.6) -> 401; before routing, so an
//     unknown /api/... path without a valid token gets 401, not 404.
//  4. Routing -> 404 NotFound / 405 MethodNotAllowed with Allow.
//  5. Body parsing, only for routes that read a body -> 400.
//  6. The route handler; an exception becomes 500 InternalError.
// Every response carries the CORS headers, JSON ones Content-Type
// application/json; charset=utf-8. One access-log line per request at info
// (method, route template, path without query, status, duration) - never the
// Authorization header or a token.
#pragma once

#include <Poco/Net/HTTPRequestHandlerFactory.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/api_types.h"
#include "http/auth.h"
#include "http/router.h"

namespace weft::http {

struct HttpSettings {
  size_t maxBodyBytes = 1048576;    // http.maxBodyBytes
  std::string corsOrigin = "*";     // http.corsOrigin
  std::vector<std::string> tokens;  // http.tokens; empty = auth off
};

// What the pipeline reports once per request, after the response was sent
// (for metrics). `route` is the matched template or "unmatched".
struct RequestRecord {
  std::string_view method;
  std::string_view route;
  int status;
  double seconds;
};
using RequestObserver = std::function<void(const RequestRecord&)>;

// How a request body was classified by Content-Type (§1.1).
bool isJsonContentType(std::string_view contentType);

// Parses a body for a route that reads one: {} when empty or not JSON by
// content type; the object when valid; otherwise the 400 response to send.
// Exposed for unit tests.
struct BodyParse {
  Json body;
  std::optional<ApiResponse> error;
};
BodyParse parseRequestBody(std::string_view contentType, const std::string& raw);

class RequestPipeline;

// Creates one handler per request; all of them share one immutable pipeline.
// The router must outlive the factory and must not change once the server
// accepts requests.
class ApiRequestHandlerFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  ApiRequestHandlerFactory(const Router& router, HttpSettings settings,
                           RequestObserver observer = {});
  ~ApiRequestHandlerFactory() override;

  // Never nullptr: Poco would answer 501 for that.
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest& request) override;

 private:
  std::shared_ptr<const RequestPipeline> pipeline_;
};

}  // namespace weft::http
