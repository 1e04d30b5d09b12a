#include "api/routes.h"

#include "api/channel_routes.h"
#include "api/rest_mapping.h"
#include "api/target_routes.h"
#include "http/auth.h"

#include "weft/ids.h"

namespace weft {

using http::ApiRequest;
using http::ApiResponse;
using http::RouteOptions;

namespace {

constexpr RouteOptions kReadsBody{true};
constexpr const char* kDeprecatedClassification = "classification (use boundary instead)";

// The bearer token the caller sent, if any (auth already checked it).
std::optional<std::string> bearerToken(const ApiRequest& req) {
  auto authorization = req.header("Authorization");
  if (!authorization) return std::nullopt;
  return http::TokenAuth::parseBearer(*authorization);
}

PageRequest pageOf(const ApiRequest& req) { return {req.query("limit"), req.query("cursor")}; }

// Stats responses carry an ETag over the body without its timestamp and
// answer 304 when the client already has it (docs/api.md §2.7).
ApiResponse cached(const ApiRequest& req, const Result<Json>& result,
                   const http::ErrorMapping& errors) {
  if (!result) return http::errorResponse(result.status(), errors);
  Json withoutTimestamp = *result;
  withoutTimestamp.erase("timestamp");
  std::string etag = "\"" + md5Hex(withoutTimestamp.dump()) + "\"";
  ApiResponse response = req.header("If-None-Match") == etag
                             ? ApiResponse{}
                             : ApiResponse::jsonBody(200, *result);
  if (response.kind == ApiResponse::BodyKind::None) response.status = 304;
  response.withHeader("Cache-Control", "max-age=30, must-revalidate");
  response.withHeader("ETag", etag);
  return response;
}

// A list of a few hundred elements is sent whole, with a Content-Length;
// longer ones are rendered while the client reads, so 64 concurrent full
// lists of 10,000 items do not each hold their whole body (docs/http.md).
constexpr size_t kStreamListsLongerThan = 500;

ApiResponse listResponse(JsonListStream list) {
  if (list.count <= kStreamListsLongerThan) {
    return ApiResponse::rawBody(200, list.renderAll(), http::kJsonContentType);
  }
  return ApiResponse::jsonList(200, std::move(list));
}

void agentRoutes(http::Router& router, Services& s, const http::ErrorMapping& errors) {
  router.add("GET", "/api/agents", [&s, &errors](const ApiRequest& req) {
    AgentFilter f{req.query("type"), req.query("status"), req.query("capability"),
                  req.query("projectId")};
    auto page = s.agents.list(f, pageOf(req));
    if (!page) return http::errorResponse(page.status(), errors);
    return listResponse(rest::toListStream(std::move(*page)));
  });
  router.add(
      "POST", "/api/agents",
      [&s, &errors](const ApiRequest& req) {
        auto request = rest::parseRegisterRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        auto reg = s.agents.registerAgent(*request);
        if (!reg) return http::errorResponse(reg.status(), errors);
        return ApiResponse::jsonBody(reg->created ? 201 : 200,
                                     rest::toJson(*reg->agent, s.agents.isStale(*reg->agent)));
      },
      kReadsBody);
  router.add("GET", "/api/agents/{guid}", [&s, &errors](const ApiRequest& req) {
    return http::jsonOrError(rest::rendered(s.agents, s.agents.get(req.param("guid"))), errors);
  });
  router.add("DELETE", "/api/agents/{guid}", [&s, &errors](const ApiRequest& req) {
    return http::jsonOrError(rest::rendered(s.agents, s.agents.deregister(req.param("guid"))),
                             errors);
  });
  router.add(
      "POST", "/api/agents/{guid}/shutdown",
      [&s, &errors](const ApiRequest& req) {
        auto request = rest::parseShutdownRequest(req.body);
        return http::jsonOrError(rest::rendered(s.agents.shutdown(req.param("guid"), request)),
                                 errors);
      },
      kReadsBody);
  router.add(
      "POST", "/api/agents/shutdown-batch",
      [&s, &errors](const ApiRequest& req) {
        auto request = rest::parseShutdownBatchRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        return http::jsonOrError(
            rest::rendered(s.agents.shutdownBatch(
                *request, [&s](const std::string& g) { return s.work.hasActiveWork(g); },
                [&s](const AgentRecord& a) { return s.monitor.idleMs(a); })),
            errors);
      },
      kReadsBody);
  router.add(
      "POST", "/api/agents/{guid}/heartbeat",
      [&s, &errors](const ApiRequest& req) {
        auto request = rest::parseHeartbeatRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        return http::jsonOrError(
            rest::rendered(s.agents, s.agents.heartbeat(req.param("guid"), *request)), errors);
      },
      kReadsBody);
}

// An agent's report on claimed work (§2.4): the body parsed into Report, then
// the WorkQueue method for the item at {id}.
template <typename Report>
void reportRoute(http::Router& router, Services& s, const http::ErrorMapping& errors,
                 const char* path, Result<Report> (*parse)(const Json&),
                 Result<WorkItemView> (WorkQueue::*method)(const std::string&, const Report&)) {
  router.add(
      "POST", path,
      [&s, &errors, parse, method](const ApiRequest& req) {
        return http::jsonOrError(
            rest::parsedThenRendered(
                req.body, parse,
                [&](const Report& r) { return (s.work.*method)(req.param("id"), r); }),
            errors);
      },
      kReadsBody);
}

void workRoutes(http::Router& router, Services& s, const http::ErrorMapping& errors) {
  router.add(
      "POST", "/api/work",
      [&s, &errors](const ApiRequest& req) {
        auto request = rest::parseSubmitRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        auto key = rest::parseIdempotencyKey(req.header("Idempotency-Key"), bearerToken(req));
        if (!key) return http::errorResponse(key.status(), errors);
        if (*key) {
          // A few round trips (record, item): answered from this worker.
          auto submitted = s.work.submit(*request, **key);
          ApiResponse response = http::jsonOrError(rest::rendered(submitted), errors, 201);
          if (submitted && submitted->replayed) response.withHeader("Idempotent-Replayed", "true");
          return response;
        }
        // Answered when the backend acknowledges the write, from the
        // storage plugin's thread: no worker waits for the round trip.
        auto pending = std::make_shared<http::PendingResponse>();
        s.work.submitAsync(*request, [pending, &errors](Result<Submitted> submitted) {
          pending->complete(http::jsonOrError(rest::rendered(submitted), errors, 201));
        });
        return ApiResponse::later(std::move(pending));
      },
      kReadsBody);
  router.add("GET", "/api/work", [&s, &errors](const ApiRequest& req) {
    WorkFilter f{req.query("status"), req.query("boundary"), req.query("capability"),
                 req.query("assignedTo"), req.query("projectId")};
    bool deprecatedAlias = false;
    if (!f.boundary) {
      f.boundary = req.query("classification");
      deprecatedAlias = f.boundary.has_value();
    }
    auto page = s.work.list(f, pageOf(req));
    if (!page) return http::errorResponse(page.status(), errors);
    ApiResponse response = listResponse(rest::toJsonStream(std::move(*page)));
    if (deprecatedAlias) response.withHeader("X-Deprecated-Param", kDeprecatedClassification);
    return response;
  });
  router.add("GET", "/api/work/{id}", [&s, &errors](const ApiRequest& req) {
    return http::jsonOrError(rest::rendered(s.work.get(req.param("id"))), errors);
  });
  router.add("POST", "/api/work/{id}/cancel", [&s, &errors](const ApiRequest& req) {
    auto cancelled = s.work.cancel(req.param("id"));
    if (!cancelled) return http::errorResponse(cancelled.status(), errors);
    return ApiResponse::jsonBody(200, rest::cancelledJson(req.param("id")));
  });
  router.add(
      "POST", "/api/work/cancel-batch",
      [&s, &errors](const ApiRequest& req) {
        return http::jsonOrError(
            rest::parsedThenRendered(req.body, rest::parseCancelBatchRequest,
                       [&s](const CancelBatchRequest& r) { return s.work.cancelBatch(r); }),
            errors);
      },
      kReadsBody);
  router.add(
      "POST", "/api/work/claim",
      [&s, &errors](const ApiRequest& req) {
        auto request = rest::parseClaimRequest(req.body);
        if (!request) return http::errorResponse(request.status(), errors);
        auto answer = [&errors](const Result<std::optional<ClaimedItem>>& claimed) {
          if (!claimed) return http::errorResponse(claimed.status(), errors);
          if (!claimed->has_value()) return ApiResponse::noContent();
          return ApiResponse::jsonBody(200, rest::toJson(**claimed));
        };
        if (request->waitMs.value_or(0) <= 0) return answer(s.work.claim(*request));
        // Long poll: answered when an item is claimed or the wait ends; no
        // thread waits meanwhile. A client that goes away ends its wait.
        auto pending = std::make_shared<http::PendingResponse>();
        const uint64_t waitId = s.work.claimWait(
            *request, [pending, answer](Result<std::optional<ClaimedItem>> claimed) {
              pending->complete(answer(claimed));
            });
        if (waitId != 0) {
          pending->onClientGone([&s, waitId] { s.work.cancelClaimWait(waitId); });
        }
        return ApiResponse::later(std::move(pending));
      },
      kReadsBody);
  reportRoute(router, s, errors, "/api/work/{id}/start", rest::parseClaimHolder, &WorkQueue::start);
  reportRoute(router, s, errors, "/api/work/{id}/progress", rest::parseProgressReport,
              &WorkQueue::progress);
  reportRoute(router, s, errors, "/api/work/{id}/complete", rest::parseCompleteReport,
              &WorkQueue::complete);
  reportRoute(router, s, errors, "/api/work/{id}/fail", rest::parseFailReport, &WorkQueue::fail);
}

void deadLetterRoutes(http::Router& router, Services& s, const http::ErrorMapping& errors) {
  router.add("GET", "/api/dlq", [&s, &errors](const ApiRequest& req) {
    DeadLetterFilter f{req.query("capability"), req.query("projectId")};
    auto page = s.deadLetters.list(f, pageOf(req));
    if (!page) return http::errorResponse(page.status(), errors);
    return ApiResponse::jsonBody(200, rest::toJson(*page));
  });
  router.add("GET", "/api/dlq/{id}", [&s, &errors](const ApiRequest& req) {
    auto entry = s.deadLetters.get(req.param("id"));
    if (!entry) return http::errorResponse(entry.status(), errors);
    return ApiResponse::jsonBody(200, rest::toJson(**entry));
  });
  router.add(
      "POST", "/api/dlq/{id}/retry",
      [&s, &errors](const ApiRequest& req) {
        auto resetAttempts = rest::parseRetryRequest(req.body);
        if (!resetAttempts) return http::errorResponse(resetAttempts.status(), errors);
        return http::jsonOrError(
            rest::rendered(s.work.retryDeadLetter(req.param("id"), *resetAttempts)), errors);
      },
      kReadsBody);
  router.add("DELETE", "/api/dlq/{id}", [&s, &errors](const ApiRequest& req) {
    auto status = s.deadLetters.discard(req.param("id"));
    if (!status) return http::errorResponse(status, errors);
    return ApiResponse::noContent();
  });
}

void statsRoutes(http::Router& router, Services& s, const http::ErrorMapping& errors) {
  router.add("GET", "/api/stats", [&s, &errors](const ApiRequest& req) {
    return cached(req, rest::rendered(s.stats.overview()), errors);
  });
  router.add("GET", "/api/stats/projects", [&s, &errors](const ApiRequest& req) {
    return cached(req, rest::rendered(s.stats.projects()), errors);
  });
}

}  // namespace

void registerApiRoutes(http::Router& router, Services& services,
                       const http::ErrorMapping& errors) {
  agentRoutes(router, services, errors);
  workRoutes(router, services, errors);
  deadLetterRoutes(router, services, errors);
  statsRoutes(router, services, errors);
  registerTargetRoutes(router, services, errors);  // spin-up targets
  registerChannelRoutes(router, services, errors);  // channels (docs/api.md §2.8)
}

}  // namespace weft
