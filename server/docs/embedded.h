// Files compiled into weftd at build time (server/docs/embed.cmake): the docs
// page and its assets (server/docs/assets/) and the OpenAPI components.
#pragma once

#include <optional>
#include <string_view>

namespace weft::docs {

// The content of the embedded file with that name (no directories, e.g.
// "docs.js"), or nullopt. The view points into static storage.
std::optional<std::string_view> embeddedFile(std::string_view name);

}  // namespace weft::docs
