#include "api/target_routes.h"

#include <optional>
#include <string>
#include <utility>

#include "api/rest_mapping.h"
#include "weft/spin_up.h"
#include "weft/spin_up_mechanisms.h"

namespace weft {

using http::ApiRequest;
using http::ApiResponse;
using http::RouteOptions;

namespace {

constexpr RouteOptions kReadsBody{true};

// POST {path}: an operation on the target the path names, without a body.
template <typename R>
void addOperation(http::Router& router, Targets& t, const http::ErrorMapping& errors,
                  const char* path,
                  Result<R> (Targets::*operation)(const std::string&,
                                                  const std::optional<std::string>&)) {
  router.add("POST", path, [&t, &errors, operation](const ApiRequest& req) {
    auto result = (t.*operation)(req.param("id"), req.query("projectId"));
    return http::jsonOrError(rest::rendered(result), errors);
  });
}

}  // namespace

void registerTargetRoutes(http::Router& router, Services& s, const http::ErrorMapping& errors) {
  Targets& t = s.targets;
  router.add("GET", "/api/targets", [&t, &errors](const ApiRequest& req) {
    TargetFilter f{req.query("type"),     req.query("status"),    req.query("capability"),
                   req.query("boundary"), req.query("mechanism"), req.query("projectId")};
    bool deprecatedAlias = false;
    if (!f.boundary) {
      f.boundary = req.query("classification");
      deprecatedAlias = f.boundary.has_value();
    }
    ApiResponse response = http::jsonOrError(
        rest::rendered(t.list(f, {req.query("limit"), req.query("cursor")})), errors);
    if (deprecatedAlias) {
      response.withHeader("X-Deprecated-Param", "classification (use boundary instead)");
    }
    return response;
  });
  router.add(
      "POST", "/api/targets",
      [&t, &errors](const ApiRequest& req) {
        auto request = rest::parseCreateTargetRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        return http::jsonOrError(rest::rendered(t.create(*request)), errors, 201);
      },
      kReadsBody);
  router.add(
      "POST", "/api/targets/disable-batch",
      [&t, &errors](const ApiRequest& req) {
        auto request = rest::parseDisableBatchRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        return http::jsonOrError(rest::rendered(t.disableBatch(*request)), errors);
      },
      kReadsBody);
  router.add("GET", "/api/targets/{id}", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(rest::rendered(t.get(req.param("id"), req.query("projectId"))),
                             errors);
  });
  router.add(
      "PUT", "/api/targets/{id}",
      [&t, &errors](const ApiRequest& req) {
        auto request = rest::parseUpdateTargetRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        return http::jsonOrError(
            rest::rendered(t.update(req.param("id"), req.query("projectId"), *request)), errors);
      },
      kReadsBody);
  router.add("DELETE", "/api/targets/{id}", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(rest::rendered(t.remove(req.param("id"), req.query("projectId"))),
                             errors);
  });
  // Read-only: which mechanisms spinup.allow* switches on, so a client shows
  // "off" instead of a button that answers 403 (docs/dashboard.md).
  router.add("GET", "/api/spinup/mechanisms", [&t](const ApiRequest&) {
    const SpinUpSettings& settings = t.spinUp().settings();
    Json mechanisms = Json::object();
    for (const char* m : spinup::kMechanisms) mechanisms.set(m, Json(settings.allows(m)));
    Json body = Json::object();
    body.set("mechanisms", std::move(mechanisms));
    body.set("maxConcurrent", Json(settings.maxConcurrent));
    body.set("cooldownMs", Json(settings.cooldownMs));
    return ApiResponse::jsonBody(200, std::move(body));
  });
  addOperation(router, t, errors, "/api/targets/{id}/test", &Targets::test);
  addOperation(router, t, errors, "/api/targets/{id}/spin-up", &Targets::spinUpTarget);
  addOperation(router, t, errors, "/api/targets/{id}/enable", &Targets::enable);
  addOperation(router, t, errors, "/api/targets/{id}/disable", &Targets::disable);
}

}  // namespace weft
