#include "http/errors.h"

#include "weft/log.h"

namespace weft::http {

ApiResponse errorResponse(const Status& status, const ErrorMapping& mapping) {
  switch (status.code()) {
    case Code::NotFound:
      return ApiResponse::error(404, "APIError", status.message());
    case Code::AlreadyExists:
    case Code::Conflict:
      return ApiResponse::error(409, "APIError", status.message());
    case Code::InvalidArgument:
      return ApiResponse::error(400, "APIError", status.message());
    case Code::PermissionDenied:
      return ApiResponse::error(403, "APIError", status.message());
    case Code::ResourceExhausted:
      return ApiResponse::error(429, "APIError", status.message());
    case Code::Unimplemented:
      return ApiResponse::error(501, "APIError", status.message());
    case Code::Unprocessable:
      return ApiResponse::error(422, "APIError", status.message());
    case Code::Unavailable:
      return unavailableResponse(status.message().empty() ? "Unavailable" : status.message(),
                                 mapping);
    case Code::Timeout:
      // The backend did not answer in time: a write may still have been
      // applied. Say so, so a client knows to check before it repeats one.
      return unavailableResponse(
          "timed out, outcome unknown" +
              (status.message().empty() ? std::string() : ": " + status.message()),
          mapping);
    case Code::Internal:
    case Code::Ok:
      break;
  }
  // Ok here means a handler mapped a success as an error: a bug, reported
  // like any other internal fault rather than as a misleading 2xx.
  log::error("internal error", {{"code", codeName(status.code())}, {"error", status.message()}});
  return internalErrorResponse();
}

ApiResponse unavailableResponse(const std::string& reason, const ErrorMapping& mapping) {
  return ApiResponse::error(503, "ServiceUnavailable",
                            "Storage backend " + mapping.backendName + " unavailable: " + reason)
      .withHeader("Retry-After", std::to_string(mapping.retryAfterSeconds));
}

ApiResponse internalErrorResponse() {
  return ApiResponse::error(500, "InternalError", "Internal server error");
}

ApiResponse jsonOrError(Result<Json> result, const ErrorMapping& mapping, int status) {
  if (!result) return errorResponse(result.status(), mapping);
  return ApiResponse::jsonBody(status, std::move(*result));
}

}  // namespace weft::http
