// The REST routes of channels (docs/api.md §2.8): GET /api/channels and
// GET /api/channels/{name}/messages. Thin handlers over weft::Channels.
#pragma once

#include "weft/services.h"
#include "http/errors.h"
#include "http/router.h"

namespace weft {

void registerChannelRoutes(http::Router& router, Services& services,
                           const http::ErrorMapping& errors);

}  // namespace weft
