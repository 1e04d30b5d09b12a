// The request and response values that route handlers see. They carry no
// Poco types, so handlers (and their tests) stay independent of the HTTP
// library; the request pipeline (request_handler.h) fills an ApiRequest and
// writes an ApiResponse.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weft/json.h"
#include "weft/json_list_stream.h"

namespace weft::http {

constexpr const char* kJsonContentType = "application/json; charset=utf-8";

struct ApiRequest {
  using Pairs = std::vector<std::pair<std::string, std::string>>;

  std::string method;  // upper case as sent ("GET", "POST", ...)
  // The path without query string, percent-encoded as sent, with one trailing
  // '/' removed ("/api/work/" -> "/api/work"; "/" stays "/").
  std::string path;
  // The template of the matched route, e.g. "/api/work/{id}".
  std::string routeTemplate;
  // Path parameters by template name, percent-decoded.
  std::map<std::string, std::string> params;
  // Query parameters in request order, percent-decoded ('+' is a space).
  Pairs queryParams;
  // Request headers in request order, names as sent.
  Pairs headers;
  // The parsed body: always an object. {} when the route reads no body, the
  // body is empty, or its Content-Type is not JSON (docs/api.md §1.1).
  Json body = Json::object();
  // The raw body bytes (empty when the route reads no body).
  std::string rawBody;
  // When the pipeline received the request; handlers derive deadlines from it.
  std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();

  // The first value of a query parameter (docs/api.md §1.1: first value wins).
  std::optional<std::string> query(std::string_view name) const {
    for (const auto& [k, v] : queryParams) {
      if (k == name) return v;
    }
    return std::nullopt;
  }

  // The first header of that name, compared case-insensitively.
  std::optional<std::string> header(std::string_view name) const;

  // A path parameter; empty when the template has no such name.
  const std::string& param(const std::string& name) const {
    static const std::string kEmpty;
    auto it = params.find(name);
    return it == params.end() ? kEmpty : it->second;
  }
};

class PendingResponse;

struct ApiResponse {
  // Deferred: the handler returned before it had the response; it completes
  // the PendingResponse later, from any thread (ApiResponse::later).
  enum class BodyKind { None, Json, Raw, Stream, Deferred };
  // Appends the next piece of a streamed body to `out` (a few tens of KB);
  // returns true once the body is complete. Called on the front end's I/O
  // thread as the client reads, after the handler returned.
  using Producer = std::function<bool(std::string& out)>;

  int status = 200;
  // The reason phrase; empty = the standard one for the status. (The
  // WebSocket handshake's 401 names its cause here, docs/api.md §5.1.)
  std::string reason;
  BodyKind kind = BodyKind::None;
  Json json;                // when kind == Json
  std::string raw;          // when kind == Raw
  std::string contentType;  // when kind == Raw or Stream
  Producer stream;          // when kind == Stream
  std::shared_ptr<PendingResponse> pending;  // when kind == Deferred
  // Extra headers (ETag, Retry-After, Allow, WWW-Authenticate, ...). CORS and
  // Content-Type are added by the pipeline.
  using Headers = std::vector<std::pair<std::string, std::string>>;
  Headers headers;

  // A JSON body with Content-Type application/json; charset=utf-8.
  static ApiResponse jsonBody(int status, Json body) {
    ApiResponse r;
    r.status = status;
    r.kind = BodyKind::Json;
    r.json = std::move(body);
    return r;
  }
  // Any other body, e.g. Prometheus text or the docs HTML.
  static ApiResponse rawBody(int status, std::string body, std::string contentType) {
    ApiResponse r;
    r.status = status;
    r.kind = BodyKind::Raw;
    r.raw = std::move(body);
    r.contentType = std::move(contentType);
    return r;
  }
  // A JSON list rendered while it is sent (chunked transfer coding), so its
  // memory stays bounded however long it is.
  static ApiResponse jsonList(int status, JsonListStream list);
  // The response comes later, through `pending` (a handler that would
  // otherwise park its worker on the backend, e.g. POST /api/work).
  static ApiResponse later(std::shared_ptr<PendingResponse> pending) {
    ApiResponse r;
    r.kind = BodyKind::Deferred;
    r.pending = std::move(pending);
    return r;
  }
  // 204 without a body.
  static ApiResponse noContent() {
    ApiResponse r;
    r.status = 204;
    return r;
  }
  // The error envelope of docs/api.md §1.4; details only when given.
  static ApiResponse error(int status, std::string kind, std::string message,
                           std::optional<Json> details = std::nullopt) {
    Json body = Json::object();
    body.set("error", Json(std::move(kind)));
    body.set("message", Json(std::move(message)));
    if (details) body.set("details", std::move(*details));
    return jsonBody(status, std::move(body));
  }

  ApiResponse& withHeader(std::string name, std::string value) & {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  ApiResponse&& withHeader(std::string name, std::string value) && {
    headers.emplace_back(std::move(name), std::move(value));
    return std::move(*this);
  }
  // The first extra header of that name (case-insensitive), if any.
  std::optional<std::string> header(std::string_view name) const;
};

// A response a handler completes after it returned (ApiResponse::later).
// complete() may be called from any thread, before or after the pipeline
// picked the PendingResponse up; the first call counts. If the last
// reference goes away without a complete(), the client gets a 500
// InternalError instead of waiting forever. A handler must complete within
// a bounded time (the storage timeout): the server's shutdown waits for it.
class PendingResponse {
 public:
  PendingResponse() = default;
  ~PendingResponse();
  PendingResponse(const PendingResponse&) = delete;
  PendingResponse& operator=(const PendingResponse&) = delete;

  void complete(ApiResponse response);

  // What to do when the client goes away before the response is complete
  // (it closed or half-closed its connection): e.g. stop waiting for
  // something on its behalf. Runs at most once, on the front end's I/O
  // thread, only while the response is not complete yet; it must be quick and
  // should complete() the response (nobody reads it). Set it before the
  // handler returns.
  void onClientGone(std::function<void()> callback);
  // For the front end: the client went away.
  void clientGone();

  // For the request pipeline: where the response goes. Runs `sink` at once
  // when complete() came first. Once only.
  using Sink = std::function<void(ApiResponse)>;
  void attach(Sink sink);

 private:
  std::mutex mu_;
  Sink sink_;
  std::optional<ApiResponse> early_;
  bool completed_ = false;
  std::function<void()> onClientGone_;
};

// ASCII case-insensitive equality, for header names and auth schemes.
bool equalsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace weft::http
