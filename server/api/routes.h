// The REST routes of the domain (agents, work, stats). Each handler parses
// the request, calls one service method and maps the result; errors go
// through errorResponse(), the one place that picks status codes.
#pragma once

#include "weft/services.h"
#include "http/errors.h"
#include "http/router.h"

namespace weft {

void registerApiRoutes(http::Router& router, Services& services,
                       const http::ErrorMapping& errors);

}  // namespace weft
