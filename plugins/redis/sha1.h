// SHA-1, only to name Lua scripts for EVALSHA without a SCRIPT LOAD round trip.
// Not used for anything security-related.
#pragma once

#include <string>

namespace weft::redis_plugin {

// The lowercase hex SHA-1 of data (40 characters), as Redis names scripts.
std::string sha1Hex(const std::string& data);

}  // namespace weft::redis_plugin
