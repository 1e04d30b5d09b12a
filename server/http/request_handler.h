// The request pipeline of docs/api.md §1.5: from a parsed request to the encoded
// response. It knows nothing of sockets; the front end (http_server.h) reads
// and frames requests (request_parser.h, which also enforces the body limit,
// step 2) and writes what this returns.
//
// For every request, in this order:
//  1. OPTIONS on any path -> 204 CORS preflight (§1.7), no auth.
//  2. Body over maxBodyBytes -> 413 PayloadTooLarge (by the parser, before
//     anything below).
//  3. Bearer auth for protected paths (§1.6) -> 401; before routing, so an
//     unknown /api/... path without a valid token gets 401, not 404.
//  4. Routing -> 404 NotFound / 405 MethodNotAllowed with Allow.
//  5. Body parsing, only for routes that read a body -> 400.
//  6. The route handler; an exception becomes 500 InternalError.
// Every response carries the CORS headers, JSON ones Content-Type
// application/json; charset=utf-8, and a Date. One access-log line per
// request at info (method, route template, path without query, status,
// duration) - never the Authorization header or a token.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/api_types.h"
#include "http/auth.h"
#include "http/request_parser.h"
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

// One encoded response and what becomes of the connection after it.
struct EncodedReply {
  std::string bytes;  // status line, header fields and body
  int status = 0;
  bool close = false;                // close the connection once written
  std::shared_ptr<Upgrade> upgrade;  // or hand it over once written
  // A streamed body (ApiResponse::Stream): pieces to write after `bytes`,
  // each framed as a chunk when `chunked` (HTTP/1.1), else delimited by
  // closing the connection (HTTP/1.0).
  ApiResponse::Producer stream;
  bool chunked = false;
};

// Shared by the front end's I/O thread and its workers: immutable after
// construction, so every method may run on any number of threads at once.
// The router must outlive the pipeline.
class RequestPipeline {
 public:
  RequestPipeline(const Router& router, HttpSettings settings, RequestObserver observer = {});

  // Whether the request may be answered on the I/O thread: a preflight or an
  // inlined route. Cheap (one route match).
  bool runsInline(const ParsedRequest& request) const;

  // Steps 1 and 3-6 for a request whose body the parser already read, then
  // the encoding. `closing`: the connection closes after this response
  // whatever the request asked (shutdown in progress). Never throws.
  EncodedReply handle(ParsedRequest request, bool closing) const;

  // handle() for a caller that must not wait: the reply, or nullopt when
  // the route answered ApiResponse::later. Then, and only then, makeSink()
  // is called once, and the sink it returns gets the reply on whichever
  // thread completes it. (A factory, so the common synchronous path builds
  // no callback.)
  // When the reply is deferred, *deferred (if given) is set to the route's
  // PendingResponse, so the front end can tell it the client went away.
  using ReplySink = std::function<void(EncodedReply)>;
  std::optional<EncodedReply> handleOrDefer(
      ParsedRequest request, bool closing, const std::function<ReplySink()>& makeSink,
      std::shared_ptr<PendingResponse>* deferred = nullptr) const;

  // A refusal by the front end itself (a parse error, 408, 503 when full),
  // with the error envelope and the CORS headers; logged and observed like
  // any other response, with route "unmatched".
  EncodedReply refuse(int status, const std::string& kind, const std::string& message,
                      bool close, const std::string& method = "-",
                      const ApiResponse::Headers& extraHeaders = {}) const;

  // The encoding alone (exposed for tests): status line, the response's
  // headers, CORS, Content-Type/Length, Date, Connection. `headOnly` leaves
  // the body out (a HEAD request) but keeps its Content-Length.
  std::string encode(const ApiResponse& response, bool close, bool headOnly,
                     bool chunked = false) const;

 private:
  struct ReplyContext;
  EncodedReply finishReply(ApiResponse out, const ReplyContext& ctx,
                           std::shared_ptr<Upgrade> upgrade) const;
  void failReply(EncodedReply& reply, const ReplyContext& ctx, const char* error) const;
  ApiResponse process(ApiRequest& api, std::string& route, const std::string& target,
                      std::string& rawBody, std::shared_ptr<Upgrade>& upgrade) const;
  void record(const std::string& method, const std::string& route, const std::string& path,
              int status, std::chrono::steady_clock::time_point start) const;

  const Router& router_;
  const HttpSettings settings_;
  const TokenAuth auth_;
  const RequestObserver observer_;
};

}  // namespace weft::http
