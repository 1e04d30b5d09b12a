#include "http/request_handler.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <istream>

#include "http/errors.h"
#include "weft/log.h"

namespace weft::http {

namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

// Depth limit of request JSON (API.md §1.1).
constexpr int kMaxJsonDepth = 32;
// How much of a rejected (413) body we read and discard to keep the
// connection usable. Beyond this the connection is closed instead: reading
// more would let one client occupy a worker for as long as it keeps sending.
constexpr uint64_t kMaxDrainBytes = 16u * 1024 * 1024;
constexpr size_t kReadChunk = 64 * 1024;

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Reads and discards up to `limit` bytes. True when the stream ended within
// the limit (the connection can be reused).
bool drain(std::istream& in, uint64_t limit) {
  char buf[kReadChunk];
  uint64_t total = 0;
  while (in && total <= limit) {
    in.read(buf, sizeof buf);
    total += static_cast<uint64_t>(in.gcount());
    if (in.gcount() == 0) break;
  }
  return in.eof() && total <= limit;
}

enum class BodyRead { Ok, TooLarge, Incomplete };

struct BodyResult {
  BodyRead outcome = BodyRead::Ok;
  bool keepAlive = true;  // false when the rest of the body was not drained
  std::string data;
};

// Reads the body into memory, enforcing maxBytes for both Content-Length and
// chunked bodies. Always leaves the connection either fully read or marked
// for closing.
BodyResult readBody(HTTPServerRequest& request, size_t maxBytes) {
  BodyResult result;
  const bool chunked = request.getChunkedTransferEncoding();
  if (!chunked && !request.hasContentLength()) {
    // RFC 7230 §3.3.3: a request with neither header has no body. (Poco
    // would otherwise read until the client closes the connection.)
    return result;
  }
  std::istream& in = request.stream();
  if (!chunked) {
    const auto declared = static_cast<uint64_t>(request.getContentLength64());
    if (declared > maxBytes) {
      result.outcome = BodyRead::TooLarge;
      result.keepAlive = declared <= kMaxDrainBytes && drain(in, kMaxDrainBytes);
      return result;
    }
    result.data.resize(static_cast<size_t>(declared));
    in.read(result.data.data(), static_cast<std::streamsize>(declared));
    result.data.resize(static_cast<size_t>(in.gcount()));
    // A short body means the client went away or lied; either way the
    // connection cannot carry another request.
    if (result.data.size() != declared) {
      result.outcome = BodyRead::Incomplete;
      result.keepAlive = false;
    }
    return result;
  }
  char buf[kReadChunk];
  while (in) {
    in.read(buf, sizeof buf);
    const auto got = static_cast<size_t>(in.gcount());
    if (got == 0) break;
    if (result.data.size() + got > maxBytes) {
      result.outcome = BodyRead::TooLarge;
      result.data.clear();
      result.keepAlive = drain(in, kMaxDrainBytes);
      return result;
    }
    result.data.append(buf, got);
  }
  // Not at EOF: a malformed chunk or a socket error stopped the stream.
  if (!in.eof()) {
    result.outcome = BodyRead::Incomplete;
    result.keepAlive = false;
  }
  return result;
}

}  // namespace

bool isJsonContentType(std::string_view contentType) {
  std::string_view media = contentType.substr(0, contentType.find(';'));
  const std::string type = lowerAscii(trimView(media));
  if (type == "application/json") return true;
  const size_t slash = type.find('/');
  if (slash == std::string::npos || slash == 0) return false;
  constexpr std::string_view kSuffix = "+json";
  return type.size() > slash + 1 + kSuffix.size() &&
         type.compare(type.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

BodyParse parseRequestBody(std::string_view contentType, const std::string& raw) {
  BodyParse out;
  out.body = Json::object();
  if (raw.empty() || !isJsonContentType(contentType)) return out;
  auto parsed = Json::parse(raw, kMaxJsonDepth);
  if (!parsed) {
    out.error = ApiResponse::error(400, "BadRequest", "Malformed JSON in request body");
    return out;
  }
  if (!parsed->isObject()) {
    out.error = ApiResponse::error(400, "APIError", "Request body must be a JSON object");
    return out;
  }
  out.body = std::move(parsed.value());
  return out;
}

class RequestPipeline {
 public:
  RequestPipeline(const Router& router, HttpSettings settings, RequestObserver observer)
      : router_(router),
        settings_(std::move(settings)),
        auth_(settings_.tokens),
        observer_(std::move(observer)) {}

  void handle(HTTPServerRequest& request, HTTPServerResponse& response) const;

 private:
  // Runs steps 1-6; fills `route` with the matched template. Returns nullopt
  // when a raw handler already answered.
  std::optional<ApiResponse> process(HTTPServerRequest& request, HTTPServerResponse& response,
                                     ApiRequest& api, std::string& route) const;
  void send(HTTPServerResponse& response, const ApiResponse& out) const;
  void setCors(HTTPServerResponse& response) const;

  const Router& router_;
  const HttpSettings settings_;
  const TokenAuth auth_;
  const RequestObserver observer_;
};

void RequestPipeline::setCors(HTTPServerResponse& response) const {
  response.set("Access-Control-Allow-Origin", settings_.corsOrigin);
  response.set("Access-Control-Expose-Headers", "ETag, Retry-After, X-Deprecated-Param");
}

void RequestPipeline::send(HTTPServerResponse& response, const ApiResponse& out) const {
  response.setStatusAndReason(
      static_cast<HTTPResponse::HTTPStatus>(out.status),
      HTTPResponse::getReasonForStatus(static_cast<HTTPResponse::HTTPStatus>(out.status)));
  for (const auto& [name, value] : out.headers) response.set(name, value);
  // 204 and 304 carry no body (and Poco writes none for them).
  const bool bodyless = out.status == 204 || out.status == 304 || out.status < 200;
  if (bodyless || out.kind == ApiResponse::BodyKind::None) {
    if (!bodyless) response.setContentLength(0);
    response.send();
    return;
  }
  std::string body;
  if (out.kind == ApiResponse::BodyKind::Json) {
    out.json.dumpTo(body);
    response.setContentType(kJsonContentType);
  } else {
    body = out.raw;
    response.setContentType(out.contentType);
  }
  response.setContentLength64(static_cast<Poco::Int64>(body.size()));
  response.sendBuffer(body.data(), body.size());
}

std::optional<ApiResponse> RequestPipeline::process(HTTPServerRequest& request,
                                                    HTTPServerResponse& response, ApiRequest& api,
                                                    std::string& route) const {
  // 1. CORS preflight: answered for any path, before anything else.
  if (api.method == "OPTIONS") {
    const BodyResult ignored = readBody(request, settings_.maxBodyBytes);
    if (!ignored.keepAlive) response.setKeepAlive(false);
    ApiResponse out = ApiResponse::noContent();
    out.withHeader("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    out.withHeader("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match");
    out.withHeader("Access-Control-Max-Age", "600");
    return out;
  }

  // 2. Body limit. Every body is read here, also for routes that ignore it,
  // because the limit precedes auth and routing.
  BodyResult body = readBody(request, settings_.maxBodyBytes);
  if (!body.keepAlive) response.setKeepAlive(false);
  if (body.outcome == BodyRead::TooLarge) {
    return ApiResponse::error(
        413, "PayloadTooLarge",
        "Request body exceeds " + std::to_string(settings_.maxBodyBytes) + " bytes");
  }
  if (body.outcome == BodyRead::Incomplete) {
    return ApiResponse::error(400, "BadRequest", "Incomplete request body");
  }

  // 3. Auth: the match is computed first only to learn the route's policy;
  // its 404/405 is answered after auth.
  RouteMatch match = router_.match(api.method, api.path);
  if (auth_.enabled() && Router::requiresAuth(match, api.path)) {
    const TokenAuth::Outcome outcome = auth_.check(api.header("Authorization"));
    if (outcome != TokenAuth::Outcome::Ok) {
      return ApiResponse::error(401, "Unauthorized", TokenAuth::message(outcome))
          .withHeader("WWW-Authenticate", "Bearer");
    }
  }

  // 4. Routing. The message names the path as sent, without query string.
  const std::string& target = request.getURI();
  const std::string sentPath = target.substr(0, target.find_first_of("?#"));
  if (match.kind == RouteMatch::Kind::NoRoute) {
    return ApiResponse::error(404, "NotFound",
                              "Route " + api.method + " " + sentPath + " not found");
  }
  if (match.kind == RouteMatch::Kind::MethodNotAllowed) {
    return ApiResponse::error(405, "MethodNotAllowed",
                              "Method " + api.method + " not allowed for " + sentPath)
        .withHeader("Allow", match.allow);
  }
  const Route& matched = *match.route;
  route = matched.info.pathTemplate;
  api.routeTemplate = matched.info.pathTemplate;
  api.params = std::move(match.params);

  if (matched.info.raw) {
    matched.rawHandler(request, response, api);
    return std::nullopt;
  }

  // 5. Body parsing, for routes that read one.
  if (matched.info.options.readsBody) {
    BodyParse parsed = parseRequestBody(api.header("Content-Type").value_or(""), body.data);
    if (parsed.error) return std::move(*parsed.error);
    api.body = std::move(parsed.body);
    api.rawBody = std::move(body.data);
  }

  // 6. The handler.
  try {
    return matched.handler(api);
  } catch (const Poco::Exception& e) {
    log::error("request handler failed",
               {{"method", api.method}, {"route", route}, {"error", e.displayText()}});
  } catch (const std::exception& e) {
    log::error("request handler failed",
               {{"method", api.method}, {"route", route}, {"error", e.what()}});
  } catch (...) {
    log::error("request handler failed",
               {{"method", api.method}, {"route", route}, {"error", "unknown exception"}});
  }
  return internalErrorResponse();
}

void RequestPipeline::handle(HTTPServerRequest& request, HTTPServerResponse& response) const {
  const auto start = std::chrono::steady_clock::now();
  std::string route = "unmatched";
  ApiRequest api;
  api.received = start;
  api.method = request.getMethod();
  try {
    const std::string& target = request.getURI();
    api.path = Router::normalizePath(target);
    const size_t q = target.find('?');
    if (q != std::string::npos) {
      const size_t hash = target.find('#', q);
      api.queryParams = parseQueryString(
          std::string_view(target).substr(q + 1, hash == std::string::npos ? hash : hash - q - 1));
    }
    for (const auto& [name, value] : request) api.headers.emplace_back(name, value);

    setCors(response);
    std::optional<ApiResponse> out = process(request, response, api, route);
    if (out) send(response, *out);
  } catch (const std::exception& e) {
    // A socket error while reading or writing ends up here too; there may be
    // nobody left to answer. (what() of a Poco exception is its class name.)
    const auto* poco = dynamic_cast<const Poco::Exception*>(&e);
    log::warn("request failed", {{"method", api.method},
                                 {"route", route},
                                 {"error", poco ? poco->displayText() : std::string(e.what())}});
    response.setKeepAlive(false);
    if (!response.sent()) {
      try {
        send(response, internalErrorResponse());
      } catch (...) {
        // The connection is gone; Poco closes it.
      }
    }
  } catch (...) {
    log::warn("request failed", {{"method", api.method}, {"route", route}});
    response.setKeepAlive(false);
  }

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int status = static_cast<int>(response.getStatus());
  if (log::enabled(LogLevel::Info)) {
    // The path is client input: a target like "//user:pass@host/x" (which
    // normalizePath keeps) must not put a credential into the log. The query
    // string, where a WebSocket token may travel, is never logged.
    const bool maybeCredential = api.path.find('@') != std::string::npos;
    log::info("request", {{"method", api.method},
                          {"route", route},
                          {"path", maybeCredential ? log::redactUrl(api.path) : api.path},
                          {"status", status},
                          {"durationMs", std::round(seconds * 10000.0) / 10.0}});
  }
  if (observer_) {
    try {
      observer_(RequestRecord{api.method, route, status, seconds});
    } catch (...) {
      // Metrics must never break a request that has already been answered.
    }
  }
}

namespace {

class PipelineHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit PipelineHandler(std::shared_ptr<const RequestPipeline> pipeline)
      : pipeline_(std::move(pipeline)) {}
  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
    pipeline_->handle(request, response);
  }

 private:
  std::shared_ptr<const RequestPipeline> pipeline_;
};

}  // namespace

ApiRequestHandlerFactory::ApiRequestHandlerFactory(const Router& router, HttpSettings settings,
                                                   RequestObserver observer)
    : pipeline_(std::make_shared<const RequestPipeline>(router, std::move(settings),
                                                        std::move(observer))) {}

ApiRequestHandlerFactory::~ApiRequestHandlerFactory() = default;

Poco::Net::HTTPRequestHandler* ApiRequestHandlerFactory::createRequestHandler(
    const HTTPServerRequest&) {
  return new PipelineHandler(pipeline_);
}

}  // namespace weft::http
