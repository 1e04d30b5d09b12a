#include "http/request_handler.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPResponse.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <exception>
#include <mutex>
#include <optional>

#include "http/errors.h"
#include "weft/log.h"

namespace weft::http {

namespace {

// Depth limit of request JSON (docs/api.md §1.1).
constexpr int kMaxJsonDepth = 32;

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

// The IMF-fixdate of now, formatted once a second per thread.
const std::string& httpDate() {
  thread_local std::time_t cachedSecond = 0;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cachedSecond) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = buf;
    cachedSecond = now;
  }
  return cached;
}

void appendHeader(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  // A value must not end the header block early: CR and LF are dropped.
  for (char c : value) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  out.append("\r\n");
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

RequestPipeline::RequestPipeline(const Router& router, HttpSettings settings,
                                 RequestObserver observer)
    : router_(router),
      settings_(std::move(settings)),
      auth_(settings_.tokens),
      observer_(std::move(observer)) {}

bool RequestPipeline::runsInline(const ParsedRequest& request) const {
  if (request.method == "OPTIONS") return true;
  const RouteMatch match = router_.match(request.method, Router::normalizePath(request.target));
  return match.kind == RouteMatch::Kind::Found && match.route->info.options.inlined;
}

std::string RequestPipeline::encode(const ApiResponse& out, bool close, bool headOnly,
                                    bool chunked) const {
  std::string body;
  const char* contentType = nullptr;
  // 1xx, 204 and 304 carry no body and no Content-Length.
  const bool bodyless = out.status == 204 || out.status == 304 || out.status < 200;
  if (!bodyless && out.kind == ApiResponse::BodyKind::Json) {
    out.json.dumpTo(body);
    contentType = kJsonContentType;
  } else if (!bodyless && out.kind == ApiResponse::BodyKind::Raw) {
    body = out.raw;
    contentType = out.contentType.c_str();
  } else if (!bodyless && out.kind == ApiResponse::BodyKind::Stream) {
    contentType = out.contentType.c_str();
  }
  const bool streamed = !bodyless && out.kind == ApiResponse::BodyKind::Stream;
  std::string text;
  text.reserve(256 + body.size());
  text.append("HTTP/1.1 ");
  text.append(std::to_string(out.status));
  text.push_back(' ');
  if (out.reason.empty()) {
    text.append(Poco::Net::HTTPResponse::getReasonForStatus(
        static_cast<Poco::Net::HTTPResponse::HTTPStatus>(out.status)));
  } else {
    for (char c : out.reason) {
      if (c != '\r' && c != '\n') text.push_back(c);
    }
  }
  text.append("\r\n");
  appendHeader(text, "Date", httpDate());
  appendHeader(text, "Access-Control-Allow-Origin", settings_.corsOrigin);
  appendHeader(text, "Access-Control-Expose-Headers",
               "ETag, Retry-After, X-Deprecated-Param, Idempotent-Replayed");
  for (const auto& [name, value] : out.headers) appendHeader(text, name, value);
  if (contentType) appendHeader(text, "Content-Type", contentType);
  if (streamed) {
    // Its length is not known in advance: chunked, or (HTTP/1.0) until close.
    if (chunked) appendHeader(text, "Transfer-Encoding", "chunked");
  } else if (!bodyless) {
    appendHeader(text, "Content-Length", std::to_string(body.size()));
  }
  if (out.status != 101) appendHeader(text, "Connection", close ? "close" : "keep-alive");
  text.append("\r\n");
  if (!headOnly) text.append(body);
  return text;
}

ApiResponse RequestPipeline::process(ApiRequest& api, std::string& route,
                                     const std::string& target, std::string& rawBody,
                                     std::shared_ptr<Upgrade>& upgrade) const {
  // 1. CORS preflight: answered for any path, before anything else.
  if (api.method == "OPTIONS") {
    ApiResponse out = ApiResponse::noContent();
    out.withHeader("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    out.withHeader("Access-Control-Allow-Headers",
                   "Authorization, Content-Type, If-None-Match, Idempotency-Key");
    out.withHeader("Access-Control-Max-Age", "600");
    return out;
  }

  // 2. The body limit was applied by the parser. 3. Auth: the match is
  // computed first only to learn the route's policy; its 404/405 is answered
  // after auth.
  RouteMatch match = router_.match(api.method, api.path);
  if (auth_.enabled() && Router::requiresAuth(match, api.path)) {
    const TokenAuth::Outcome outcome = auth_.check(api.header("Authorization"));
    if (outcome != TokenAuth::Outcome::Ok) {
      return ApiResponse::error(401, "Unauthorized", TokenAuth::message(outcome))
          .withHeader("WWW-Authenticate", "Bearer");
    }
  }

  // 4. Routing. The message names the path as sent, without query string.
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

  // 5. Body parsing, for routes that read one.
  if (matched.info.options.readsBody) {
    BodyParse parsed = parseRequestBody(api.header("Content-Type").value_or(""), rawBody);
    if (parsed.error) return std::move(*parsed.error);
    api.body = std::move(parsed.body);
    api.rawBody = std::move(rawBody);
  }

  // 6. The handler.
  try {
    if (matched.info.raw) return matched.rawHandler(api, upgrade);
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
  upgrade.reset();
  return internalErrorResponse();
}

void RequestPipeline::record(const std::string& method, const std::string& route,
                             const std::string& path, int status,
                             std::chrono::steady_clock::time_point start) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (log::enabled(LogLevel::Info)) {
    // The path is client input: a target like "//user:pass@host/x" (which
    // normalizePath keeps) must not put a credential into the log. The query
    // string, where a WebSocket token may travel, is never logged.
    const bool maybeCredential = path.find('@') != std::string::npos;
    log::info("request", {{"method", method},
                          {"route", route},
                          {"path", maybeCredential ? log::redactUrl(path) : path},
                          {"status", status},
                          {"durationMs", std::round(seconds * 10000.0) / 10.0}});
  }
  if (observer_) {
    try {
      observer_(RequestRecord{method, route, status, seconds});
    } catch (...) {
      // Metrics must never break a request that has already been answered.
    }
  }
}

// What turning an ApiResponse into bytes needs to know of its request, kept
// for a deferred response that is encoded after handle() returned.
struct RequestPipeline::ReplyContext {
  std::chrono::steady_clock::time_point start;
  std::string method, route, path;
  bool close = false;
  bool head = false;
  int minorVersion = 1;
};

EncodedReply RequestPipeline::finishReply(ApiResponse out, const ReplyContext& ctx,
                                          std::shared_ptr<Upgrade> upgrade) const {
  EncodedReply reply;
  reply.close = ctx.close;
  reply.upgrade = std::move(upgrade);
  try {
    if (reply.upgrade && out.status != 101) reply.upgrade.reset();
    reply.status = out.status;
    if (out.kind == ApiResponse::BodyKind::Stream && out.status >= 200 && out.status != 204 &&
        out.status != 304) {
      // HTTP/1.0 has no chunked coding: the body ends with the connection.
      reply.chunked = ctx.minorVersion >= 1;
      if (!reply.chunked) reply.close = true;
      if (!ctx.head) reply.stream = std::move(out.stream);
    }
    reply.bytes = encode(out, reply.close, ctx.head, reply.chunked);
  } catch (const std::exception& e) {
    failReply(reply, ctx, e.what());
  }
  record(ctx.method, ctx.route, ctx.path, reply.status, ctx.start);
  return reply;
}

void RequestPipeline::failReply(EncodedReply& reply, const ReplyContext& ctx,
                                const char* error) const {
  // Only the encoding or the request's own parsing can get here (out of
  // memory, say): answer 500 and close.
  log::warn("request failed",
            {{"method", ctx.method}, {"route", ctx.route}, {"error", std::string(error)}});
  reply.upgrade.reset();
  reply.stream = nullptr;
  reply.close = true;
  reply.status = 500;
  try {
    reply.bytes = encode(internalErrorResponse(), true, false);
  } catch (...) {
    reply.bytes.clear();
  }
}

std::optional<EncodedReply> RequestPipeline::handleOrDefer(
    ParsedRequest request, bool closing, const std::function<ReplySink()>& makeSink,
    std::shared_ptr<PendingResponse>* deferred) const {
  ReplyContext ctx;
  ctx.start = std::chrono::steady_clock::now();
  ctx.route = "unmatched";
  ctx.close = closing || !request.keepAlive;
  ctx.minorVersion = request.minorVersion;
  ApiRequest api;
  api.received = ctx.start;
  api.method = std::move(request.method);
  ApiResponse out;
  std::shared_ptr<Upgrade> upgrade;
  try {
    const std::string& target = request.target;
    api.path = Router::normalizePath(target);
    const size_t q = target.find('?');
    if (q != std::string::npos) {
      const size_t hash = target.find('#', q);
      api.queryParams = parseQueryString(
          std::string_view(target).substr(q + 1, hash == std::string::npos ? hash : hash - q - 1));
    }
    api.headers = std::move(request.headers);
    out = process(api, ctx.route, target, request.body, upgrade);
    ctx.method = api.method;
    ctx.path = api.path;
    ctx.head = api.method == "HEAD";
  } catch (const std::exception& e) {
    ctx.method = api.method;
    ctx.path = api.path;
    EncodedReply reply;
    failReply(reply, ctx, e.what());
    record(ctx.method, ctx.route, ctx.path, reply.status, ctx.start);
    return reply;
  }
  if (out.kind != ApiResponse::BodyKind::Deferred) {
    return finishReply(std::move(out), ctx, std::move(upgrade));
  }
  std::shared_ptr<PendingResponse> pending = std::move(out.pending);
  if (!pending) return finishReply(internalErrorResponse(), ctx, nullptr);
  if (deferred) *deferred = pending;
  pending->attach([this, ctx = std::move(ctx), done = makeSink()](ApiResponse later) {
    if (later.kind == ApiResponse::BodyKind::Deferred) later = internalErrorResponse();
    done(finishReply(std::move(later), ctx, nullptr));
  });
  return std::nullopt;
}

EncodedReply RequestPipeline::handle(ParsedRequest request, bool closing) const {
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<EncodedReply> result;
  };
  std::shared_ptr<Waiter> waiter;
  std::optional<EncodedReply> reply = handleOrDefer(std::move(request), closing, [&] {
    waiter = std::make_shared<Waiter>();
    return ReplySink([waiter](EncodedReply r) {
      std::lock_guard<std::mutex> lock(waiter->mu);
      waiter->result = std::move(r);
      waiter->cv.notify_all();
    });
  });
  if (reply) return std::move(*reply);
  std::unique_lock<std::mutex> lock(waiter->mu);
  waiter->cv.wait(lock, [&] { return waiter->result.has_value(); });
  return std::move(*waiter->result);
}

EncodedReply RequestPipeline::refuse(int status, const std::string& kind,
                                     const std::string& message, bool close,
                                     const std::string& method,
                                     const ApiResponse::Headers& extraHeaders) const {
  const auto start = std::chrono::steady_clock::now();
  ApiResponse out = ApiResponse::error(status, kind, message);
  for (const auto& [name, value] : extraHeaders) out.withHeader(name, value);
  EncodedReply reply;
  reply.status = status;
  reply.close = close;
  reply.bytes = encode(out, close, false);
  record(method, "unmatched", "-", status, start);
  return reply;
}

}  // namespace weft::http
