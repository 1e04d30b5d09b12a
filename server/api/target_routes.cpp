#include "api/target_routes.h"

namespace weft {

using http::ApiRequest;
using http::ApiResponse;
using http::RouteOptions;

namespace {

constexpr RouteOptions kReadsBody{true};

ApiResponse ok(const Result<Json>& result, const http::ErrorMapping& errors, int status = 200) {
  if (!result) return http::errorResponse(result.status(), errors);
  return ApiResponse::jsonBody(status, *result);
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
    ApiResponse response = ok(t.list(f, {req.query("limit"), req.query("cursor")}), errors);
    if (deprecatedAlias) {
      response.withHeader("X-Deprecated-Param", "classification (use boundary instead)");
    }
    return response;
  });
  router.add(
      "POST", "/api/targets",
      [&t, &errors](const ApiRequest& req) { return ok(t.create(req.body), errors, 201); },
      kReadsBody);
  router.add(
      "POST", "/api/targets/disable-batch",
      [&t, &errors](const ApiRequest& req) { return ok(t.disableBatch(req.body), errors); },
      kReadsBody);
  router.add("GET", "/api/targets/{id}", [&t, &errors](const ApiRequest& req) {
    return ok(t.get(req.param("id"), req.query("projectId")), errors);
  });
  router.add(
      "PUT", "/api/targets/{id}",
      [&t, &errors](const ApiRequest& req) {
        return ok(t.update(req.param("id"), req.query("projectId"), req.body), errors);
      },
      kReadsBody);
  router.add("DELETE", "/api/targets/{id}", [&t, &errors](const ApiRequest& req) {
    return ok(t.remove(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/test", [&t, &errors](const ApiRequest& req) {
    return ok(t.test(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/spin-up", [&t, &errors](const ApiRequest& req) {
    return ok(t.spinUpTarget(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/enable", [&t, &errors](const ApiRequest& req) {
    return ok(t.enable(req.param("id"), req.query("projectId")), errors);
  });
  router.add("POST", "/api/targets/{id}/disable", [&t, &errors](const ApiRequest& req) {
    return ok(t.disable(req.param("id"), req.query("projectId")), errors);
  });
}

}  // namespace weft
