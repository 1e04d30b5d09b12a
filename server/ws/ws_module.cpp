#include "ws/ws_module.h"

#include "weft/services.h"
#include "app_context.h"
#include "weft/config.h"
#include "ws/ws_handshake.h"
#include "ws/ws_stats.h"

namespace weft::ws {

namespace {

WsSettings settingsFrom(const Config& config) {
  WsSettings s;
  s.pingIntervalMs = config.getInt("ws.pingIntervalMs");
  s.statsIntervalMs = config.getInt("ws.statsIntervalMs");
  s.maxConnections = config.getInt("ws.maxConnections");
  return s;
}

}  // namespace

WebSocketModule::WebSocketModule(AppContext& ctx, Services& services)
    : auth_(ctx.config.getList("http.tokens")) {
  events_.attach(services.agents, services.work);

  LiveStatsSources sources;
  sources.agents = &services.agents;
  sources.work = &services.work;
  sources.deadLetters = &services.deadLetters;
  sources.clock = services.context.clock;
  sources.staleAfterMs = services.context.options.staleAfterMs;
  const Targets* targets = &services.targets;
  sources.targets = [targets](const std::optional<std::string>& projectId) {
    return targets->liveStats(projectId);
  };
  server_ = std::make_unique<WsServer>(
      settingsFrom(ctx.config), services.context.clock,
      [sources](const std::optional<std::string>& projectId) {
        return computeLiveStats(sources, projectId);
      },
      &ctx.websocketConnections);
  registerWsRoute(ctx.router, *server_, auth_);
  subscription_ = events_.subscribe([this](const Event& e) { server_->publish(e); });
  server_->start();
}

WebSocketModule::~WebSocketModule() {
  stop();
}

void WebSocketModule::beginShutdown() {
  server_->beginShutdown();
}

void WebSocketModule::stop() {
  if (subscription_ != 0) {
    events_.unsubscribe(subscription_);
    subscription_ = 0;
  }
  server_->stop();
}

}  // namespace weft::ws
