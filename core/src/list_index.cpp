#include "weft/list_index.h"

namespace weft {

Json ListKey::toJson() const {
  Json k = Json::array();
  k.push(Json(major));
  k.push(Json(minor));
  k.push(Json(id));
  return k;
}

std::optional<ListKey> ListKey::fromJson(const Json& value) {
  if (!value.isArray() || value.asArray().size() != 3) return std::nullopt;
  const auto& a = value.asArray();
  if (!a[0].isInteger() || !a[1].isInteger() || !a[2].isString()) return std::nullopt;
  return ListKey{a[0].asInt(), a[1].asInt(), a[2].asString()};
}

}  // namespace weft
