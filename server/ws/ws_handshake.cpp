#include "ws/ws_handshake.h"

#include <memory>
#include <ostream>
#include <stdexcept>

#include "weft/log.h"
#include "ws/ws_frame.h"
#include "ws/ws_server.h"

namespace weft::ws {

namespace {

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

http::ApiResponse refusal(int status, const std::string& kind, const std::string& message) {
  return http::ApiResponse::error(status, kind, message);
}

// Answers the handshake. On success the response is the 101 and `upgrade`
// hands the socket to the WebSocket server once the front end wrote it.
http::ApiResponse handleUpgrade(WsServer& server, const http::TokenAuth& auth,
                                const http::ApiRequest& api,
                                std::shared_ptr<http::Upgrade>& upgrade) {
  if (auto rejection = checkHandshakeAuth(auth, api)) {
    http::ApiResponse out = refusal(401, "Unauthorized", *rejection);
    out.reason = *rejection;
    return out;
  }
  const bool isUpgrade =
      http::equalsIgnoreCase(trim(api.header("Upgrade").value_or("")), "websocket") &&
      hasToken(api.header("Connection").value_or(""), "upgrade");
  const std::string version = trim(api.header("Sec-WebSocket-Version").value_or(""));
  if (!isUpgrade || version != "13") {
    return refusal(426, "APIError",
                   isUpgrade ? "Unsupported WebSocket version" : "WebSocket upgrade required")
        .withHeader("Upgrade", "websocket")
        .withHeader("Sec-WebSocket-Version", "13");
  }
  const std::string key = trim(api.header("Sec-WebSocket-Key").value_or(""));
  if (key.empty()) return refusal(400, "BadRequest", "Missing Sec-WebSocket-Key");
  if (!server.admit()) {
    return refusal(503, "ServiceUnavailable", "Too many WebSocket connections; retry later")
        .withHeader("Retry-After", "5");
  }
  // The place reserved by admit() is used by adopt() or given back by
  // abandon(); the front end calls exactly one of them.
  upgrade = std::make_shared<http::Upgrade>();
  upgrade->adopt = [&server](Poco::Net::StreamSocket socket, std::string buffered) {
    server.adopt(std::move(socket), std::move(buffered));
  };
  upgrade->abandon = [&server] { server.release(); };

  http::ApiResponse out;
  out.status = 101;
  out.withHeader("Upgrade", "websocket");
  out.withHeader("Connection", "Upgrade");
  out.withHeader("Sec-WebSocket-Accept", computeAccept(key));
  const std::vector<std::string> protocols = offeredProtocols(api);
  // Browsers drop a connection whose offered subprotocol is not echoed.
  if (!protocols.empty()) out.withHeader("Sec-WebSocket-Protocol", protocols.front());
  return out;
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
      [&server, &auth](const http::ApiRequest& api, std::shared_ptr<http::Upgrade>& upgrade) {
        return handleUpgrade(server, auth, api, upgrade);
      },
      options);
}

}  // namespace weft::ws
