// The live event stream as one piece of weftd's domain: the EventHub fed by
// the services' views, the WsServer, and the `GET /api/ws` route.
//
// Lifecycle (driven by domain.cpp):
//  1. constructed after the services are built and BEFORE they start (the
//     event derivation adds view listeners, which views accept only before
//     start); registers the route and starts the I/O thread;
//  2. beginShutdown(): closes every WebSocket with 1001 "Server shutting
//     down" (docs/api.md §7.3), returns at once;
//  3. stop(): waits for the closes, at most 5 s after beginShutdown(), then
//     terminates stragglers.
// The services' views call into events(), so the module must outlive the
// services' threads (destroy it after the services stopped).
#pragma once

#include <memory>

#include "http/auth.h"
#include "weft/events.h"
#include "ws/ws_server.h"

namespace weft {

struct AppContext;
struct Services;

namespace ws {

class WebSocketModule {
 public:
  WebSocketModule(AppContext& ctx, Services& services);
  ~WebSocketModule();
  WebSocketModule(const WebSocketModule&) = delete;
  WebSocketModule& operator=(const WebSocketModule&) = delete;

  // Where events go; spin-up code calls events().emit() for spin-up:* events.
  EventHub& events() { return events_; }
  WsServer& server() { return *server_; }

  void beginShutdown();
  void stop();

 private:
  EventHub events_;
  http::TokenAuth auth_;
  std::unique_ptr<WsServer> server_;
  EventHub::SubscriptionId subscription_ = 0;
};

}  // namespace ws
}  // namespace weft
