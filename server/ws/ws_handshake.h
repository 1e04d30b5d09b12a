// The `GET /api/ws` route: authentication and the WebSocket upgrade (docs/api.md
// §5.1), then the hand-over of the socket to the WsServer (see ws_server.h
// for why the connection leaves Poco's worker thread).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http/api_types.h"
#include "http/auth.h"
#include "http/router.h"

namespace weft::ws {

class WsServer;

// The subprotocols offered in every Sec-WebSocket-Protocol header, split on
// commas and trimmed, empty elements dropped, in order.
std::vector<std::string> offeredProtocols(const http::ApiRequest& request);

// §5.1 auth when tokens are configured: nullopt when accepted, else the
// rejection text ("Invalid token" or "No token provided").
//  1. a `token` query parameter is checked first; present and invalid ->
//     rejected, even when the subprotocols carry a valid token;
//  2. otherwise the element right after the literal `bearer` among the
//     offered subprotocols is the token;
//  3. no token -> rejected.
// Always nullopt when auth is off.
std::optional<std::string> checkHandshakeAuth(const http::TokenAuth& auth,
                                              const http::ApiRequest& request);

// Registers `GET /api/ws` (AuthPolicy::None: it has its own rules above).
// Answers: 401 with reason text and {"error":"Unauthorized","message":...}
// on an auth failure; 426 `Upgrade Required` for a request that is not a
// WebSocket upgrade or asks for a version other than 13; 400 for a missing
// Sec-WebSocket-Key; otherwise 101, echoing the FIRST offered subprotocol
// when any is offered (a connection upgraded after shutdown began is closed
// with 1001 at once). The server and the TokenAuth must outlive the router.
void registerWsRoute(http::Router& router, WsServer& server, const http::TokenAuth& auth);

}  // namespace weft::ws
