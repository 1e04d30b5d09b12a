#include "api/target_routes.h"

namespace weft {

using http::ApiRequest;
using http::ApiResponse;
using http::RouteOptions;

namespace {

constexpr RouteOptions kReadsBody{true};

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
    ApiResponse response = http::jsonOrError(t.list(f, {req.query("limit"), req.query("cursor")}), errors);
    if (deprecatedAlias) {
      response.withHeader("X-Deprecated-Param", "classification (use boundary instead)");
    }
    return response;
  });
  router.add(
      "POST", "/api/targets",
      [&t, &errors](const ApiRequest& req) { return http::jsonOrError(t.create(req.body), errors, 201); },
      kReadsBody);
  router.add(
      "POST", "/api/targets/disable-batch",
      [&t, &errors](const ApiRequest& req) { return http::jsonOrError(t.disableBatch(req.body), errors); },
      kReadsBody);
  router.add("GET", "/api/targets/{id}", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(t.get(req.param("id"), req.query("projectId")), errors);
  });
  router.add(
      "PUT", "/api/targets/{id}",
      [&t, &errors](const ApiRequest& req) {
        return http::jsonOrError(t.update(req.param("id"), req.query("projectId"), req.body), errors);
      },
      kReadsBody);
  router.add("DELETE", "/api/targets/{id}", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(t.remove(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/test", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(t.test(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/spin-up", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(t.spinUpTarget(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/enable", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(t.enable(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/disable", [&t, &errors](const ApiRequest& req) {
    return http::jsonOrError(t.disable(req.param("id"), req.query("projectId")), errors);
  });
}

}  // namespace weft
