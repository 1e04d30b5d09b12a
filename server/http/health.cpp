#include "http/health.h"

#include <chrono>
#include <cmath>

#include "weft/clock.h"
#include "weft/log.h"

namespace weft::http {

void addHealthRoutes(Router& router, HealthDeps deps) {
  auto shared = std::make_shared<const HealthDeps>(std::move(deps));

  // /health reads only atomics: it runs on the front end's I/O thread, so it
  // answers while every worker waits on the backend.
  RouteOptions inlined;
  inlined.inlined = true;
  router.add("GET", "/health", [shared](const ApiRequest&) {
    const KvStore& store = *shared->store;
    const int64_t ws = shared->websocketConnections ? shared->websocketConnections->load() : 0;
    Json websocket = Json::object();
    websocket.set("connections", Json(ws));
    websocket.set("status", Json("ok"));
    Json backend = Json::object();
    backend.set("name", Json(store.name()));
    backend.set("connected", Json(store.state() == ConnectionState::Connected));
    Json body = Json::object();
    body.set("status", Json("ok"));
    body.set("timestamp", Json(formatIso(SystemClock::instance().nowMs())));
    body.set("documentation", Json("/api/docs"));
    body.set("websocket", std::move(websocket));
    body.set("backend", std::move(backend));
    return ApiResponse::jsonBody(200, std::move(body));
  }, inlined);

  router.add("GET", "/ready", [shared](const ApiRequest&) {
    KvStore& store = *shared->store;
    // ping() is bounded by kv.timeoutMs by the KvStore contract (and fails at
    // once while disconnected), so no extra timer is needed here.
    const auto start = std::chrono::steady_clock::now();
    const Status status = store.ping();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const std::string timestamp = formatIso(SystemClock::instance().nowMs());

    Json backend = Json::object();
    backend.set("name", Json(store.name()));
    Json body = Json::object();
    if (status.isOk()) {
      backend.set("connected", Json(true));
      backend.set("latencyMs", Json(static_cast<int64_t>(std::llround(
                                   std::chrono::duration<double, std::milli>(elapsed).count()))));
      const std::string loading = shared->loading ? shared->loading() : std::string();
      body.set("status", Json(loading.empty() ? "ready" : "loading"));
      body.set("timestamp", Json(timestamp));
      body.set("backend", std::move(backend));
      if (loading.empty()) return ApiResponse::jsonBody(200, std::move(body));
      // Connected, but lists, stats, submits and claims would still answer
      // 503 (reads by id are served already).
      body.set("loading", Json(loading));
      body.set("error", Json("still loading: " + loading));
      return ApiResponse::jsonBody(503, std::move(body))
          .withHeader("Retry-After", std::to_string(shared->retryAfterSeconds));
    }
    backend.set("connected", Json(false));
    body.set("status", Json("unavailable"));
    body.set("timestamp", Json(timestamp));
    body.set("backend", std::move(backend));
    body.set("error", Json(status.message().empty() ? std::string(codeName(status.code()))
                                                    : status.message()));
    log::debug("not ready", {{"backend", store.name()}, {"error", status.toString()}});
    return ApiResponse::jsonBody(503, std::move(body))
        .withHeader("Retry-After", std::to_string(shared->retryAfterSeconds));
  });
}

}  // namespace weft::http
