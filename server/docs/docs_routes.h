// GET /api/openapi.json, GET /api/docs and the page's assets under
// /api/docs/ (docs/api.md §2.1). All public by the default auth rule, none touches
// the backend, and nothing is loaded from third-party hosts: the page, its
// script and style sheet are compiled into weftd (server/docs/assets/).
#pragma once

#include "http/router.h"

namespace weft::docs {

// Registers the routes. The OpenAPI document is built from router.routes() on
// the first request, when the route table is complete and read-only, and then
// served from memory. router must outlive the routes' use (it owns them).
void addDocsRoutes(http::Router& router);

}  // namespace weft::docs
