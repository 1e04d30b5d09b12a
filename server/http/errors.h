// THE mapping from a core Status to an HTTP response (docs/api.md §1.4, §1.9).
// Handlers never pick error status codes themselves for core failures: they
// pass the Status here.
#pragma once

#include <string>

#include "http/api_types.h"
#include "weft/status.h"

namespace weft::http {

struct ErrorMapping {
  std::string backendName;    // for "Storage backend <name> unavailable: ..."
  int retryAfterSeconds = 2;  // http.retryAfterSeconds
};

// NotFound -> 404 APIError; AlreadyExists, Conflict -> 409 APIError;
// InvalidArgument -> 400 APIError; PermissionDenied -> 403 APIError;
// ResourceExhausted -> 429 APIError; Unprocessable -> 422 APIError;
// Unimplemented -> 501 APIError (the 4xx/501
// message is the Status message verbatim);
// Unavailable, Timeout -> 503 ServiceUnavailable
//   "Storage backend <name> unavailable: <reason>" + Retry-After;
// Internal (and, defensively, Ok or an unknown code) -> 500 InternalError
//   "Internal server error", with the real message logged at error level.
ApiResponse errorResponse(const Status& status, const ErrorMapping& mapping);

// A service result as an answer: its JSON with `status` when it succeeded,
// else the error of errorResponse().
ApiResponse jsonOrError(Result<Json> result, const ErrorMapping& mapping, int status = 200);

// The 503 of a storage outage, for callers that detect one without a Status
// (e.g. a deadline measured by the server).
ApiResponse unavailableResponse(const std::string& reason, const ErrorMapping& mapping);

// 500 InternalError "Internal server error". The caller logs the details.
ApiResponse internalErrorResponse();

}  // namespace weft::http
