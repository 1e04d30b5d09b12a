// Small pieces shared by the REST mappings of several resources.
#pragma once

#include <string>
#include <utility>

#include "weft/json.h"
#include "weft/pagination.h"

namespace weft::rest {

// A paginated list body: {<key>: [render(item)...], ...the metadata of §1.8}.
template <typename Items, typename Render>
Json pageJson(const char* key, const Items& items, const Pager& pager, size_t total,
              Render&& render) {
  Json list = Json::array();
  for (const auto& item : items) list.push(render(*item));
  Json body = Json::object();
  body.set(key, std::move(list));
  pager.writeMetadata(body, total);
  return body;
}

// {"success": true, "message": message}: the answer of a removal or a switch.
inline Json successMessage(const std::string& message) {
  Json out = Json::object();
  out.set("success", Json(true));
  out.set("message", Json(message));
  return out;
}

}  // namespace weft::rest
