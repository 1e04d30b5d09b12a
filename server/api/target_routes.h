// The REST routes of spin-up targets (docs/api.md §2.6). Thin handlers: parse,
// call one Targets method, map the result through errorResponse().
#pragma once

#include "weft/services.h"
#include "http/errors.h"
#include "http/router.h"

namespace weft {

void registerTargetRoutes(http::Router& router, Services& services,
                          const http::ErrorMapping& errors);

}  // namespace weft
