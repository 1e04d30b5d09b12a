// The operator dashboard (docs/dashboard.md): GET /ui, its script and style
// sheet under /ui/, and GET / redirecting to /ui. Public like /api/docs (the
// page asks for a token and sends it on every API call); none touches the
// backend, and the assets are compiled into weftd (server/ui/assets/, embedded
// with server/docs/embed.cmake), so nothing is loaded from another host.
#pragma once

#include "http/router.h"

namespace weft::ui {

void addDashboardRoutes(http::Router& router);

}  // namespace weft::ui
