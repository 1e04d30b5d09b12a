#include "api/channel_routes.h"

#include "api/rest_mapping.h"

#include "weft/channels.h"
#include "weft/log.h"

namespace weft {

using http::ApiRequest;
using http::ApiResponse;

void registerChannelRoutes(http::Router& router, Services& s, const http::ErrorMapping& errors) {
  // Channels holds nothing but a reference to the context, which lives as
  // long as the Services the routes are bound to.
  auto channels = std::make_shared<Channels>(s.context);
  router.add("GET", "/api/channels", [channels, &errors](const ApiRequest& req) {
    Result<ChannelList> result = channels->list(req.query("projectId"));
    if (!result) return http::errorResponse(result.status(), errors);
    return ApiResponse::jsonBody(200, rest::toJson(*result));
  });
  router.add("GET", "/api/channels/{name}/messages", [channels, &errors](const ApiRequest& req) {
    Result<ChannelMessages> result =
        channels->messages(req.param("name"), req.query("projectId"), req.query("limit"));
    if (result) return ApiResponse::jsonBody(200, rest::toJson(*result));
    // The one 500 whose message reaches the client (docs/api.md §1.4, §2.8):
    // Channels::messages builds it as "Failed to read messages from <name>:
    // <reason>"; errorResponse() would replace it with "Internal server error".
    if (result.code() == Code::Internal) {
      log::error("channel read failed", {{"error", result.status().message()}});
      return ApiResponse::error(500, "InternalError", result.status().message());
    }
    return http::errorResponse(result.status(), errors);
  });
}

}  // namespace weft
