#include "ws/ws_handshake.h"

#include <Poco/Buffer.h>
#include <Poco/Net/HTTPMessage.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerSession.h>

#include <ostream>
#include <stdexcept>

#include "weft/log.h"
#include "ws/ws_frame.h"
#include "ws/ws_server.h"

namespace weft::ws {

namespace {

using Poco::Net::HTTPResponse;

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool hasToken(const std::string& headerValue, const char* token) {
  size_t start = 0;
  while (start <= headerValue.size()) {
    size_t comma = headerValue.find(',', start);
    if (comma == std::string::npos) comma = headerValue.size();
    if (http::equalsIgnoreCase(trim(headerValue.substr(start, comma - start)), token)) return true;
    start = comma + 1;
  }
  return false;
}

bool tokenValid(const http::TokenAuth& auth, const std::string& token) {
  return auth.check("Bearer " + token) == http::TokenAuth::Outcome::Ok;
}

void sendJson(Poco::Net::HTTPServerResponse& response, int status, const std::string& reason,
              const std::string& kind, const std::string& message) {
  Json body = Json::object();
  body.set("error", Json(kind));
  body.set("message", Json(message));
  const std::string text = body.dump();
  response.setStatusAndReason(static_cast<HTTPResponse::HTTPStatus>(status), reason);
  response.setContentType(http::kJsonContentType);
  response.setContentLength64(static_cast<Poco::Int64>(text.size()));
  response.sendBuffer(text.data(), text.size());
}

void handleUpgrade(WsServer& server, const http::TokenAuth& auth,
                   Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                   const http::ApiRequest& api) {
  if (auto rejection = checkHandshakeAuth(auth, api)) {
    sendJson(response, 401, *rejection, "Unauthorized", *rejection);
    return;
  }
  const bool upgrade =
      http::equalsIgnoreCase(trim(api.header("Upgrade").value_or("")), "websocket") &&
      hasToken(api.header("Connection").value_or(""), "upgrade");
  const std::string version = trim(api.header("Sec-WebSocket-Version").value_or(""));
  if (!upgrade || version != "13") {
    response.set("Upgrade", "websocket");
    response.set("Sec-WebSocket-Version", "13");
    sendJson(response, 426, "Upgrade Required", "APIError",
             upgrade ? "Unsupported WebSocket version" : "WebSocket upgrade required");
    return;
  }
  const std::string key = trim(api.header("Sec-WebSocket-Key").value_or(""));
  if (key.empty()) {
    sendJson(response, 400, "Bad Request", "BadRequest", "Missing Sec-WebSocket-Key");
    return;
  }
  auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
  if (!impl) throw std::logic_error("not a Poco server request; cannot take over its socket");
  if (!server.admit()) {
    response.set("Retry-After", "5");
    sendJson(response, 503, "Service Unavailable", "ServiceUnavailable",
             "Too many WebSocket connections; retry later");
    return;
  }

  Poco::Net::StreamSocket socket;
  Poco::Buffer<char> buffered(0);
  try {
    response.setStatusAndReason(HTTPResponse::HTTP_SWITCHING_PROTOCOLS, "Switching Protocols");
    response.set("Upgrade", "websocket");
    response.set("Connection", "Upgrade");
    response.set("Sec-WebSocket-Accept", computeAccept(key));
    const std::vector<std::string> protocols = offeredProtocols(api);
    // Browsers drop a connection whose offered subprotocol is not echoed.
    if (!protocols.empty()) response.set("Sec-WebSocket-Protocol", protocols.front());
    response.setContentLength(Poco::Net::HTTPMessage::UNKNOWN_CONTENT_LENGTH);
    response.send().flush();

    // Take the socket away from Poco (see ws_server.h): keep what its session
    // already buffered, then swap an empty socket into the session so this
    // worker thread is released as soon as we return.
    impl->session().drainBuffer(buffered);
    socket = impl->detachSocket();
  } catch (...) {
    server.release();  // the place reserved above is not used
    throw;
  }
  server.adopt(std::move(socket), std::string(buffered.begin(), buffered.size()));
}

}  // namespace

std::vector<std::string> offeredProtocols(const http::ApiRequest& request) {
  std::vector<std::string> out;
  for (const auto& [name, value] : request.headers) {
    if (!http::equalsIgnoreCase(name, "Sec-WebSocket-Protocol")) continue;
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      if (comma == std::string::npos) comma = value.size();
      std::string element = trim(value.substr(start, comma - start));
      if (!element.empty()) out.push_back(std::move(element));
      start = comma + 1;
    }
  }
  return out;
}

std::optional<std::string> checkHandshakeAuth(const http::TokenAuth& auth,
                                              const http::ApiRequest& request) {
  if (!auth.enabled()) return std::nullopt;
  if (auto token = request.query("token")) {
    if (tokenValid(auth, *token)) return std::nullopt;
    return std::string("Invalid token");
  }
  const std::vector<std::string> protocols = offeredProtocols(request);
  for (size_t i = 0; i + 1 < protocols.size(); ++i) {
    if (protocols[i] == "bearer") {
      if (tokenValid(auth, protocols[i + 1])) return std::nullopt;
      return std::string("Invalid token");
    }
  }
  return std::string("No token provided");
}

void registerWsRoute(http::Router& router, WsServer& server, const http::TokenAuth& auth) {
  http::RouteOptions options;
  options.auth = http::AuthPolicy::None;
  router.addRaw(
      "GET", "/api/ws",
      [&server, &auth](Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response, const http::ApiRequest& api) {
        handleUpgrade(server, auth, request, response, api);
      },
      options);
}

}  // namespace weft::ws
