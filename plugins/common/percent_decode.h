// Shared by the plugins that parse server URLs (nats, redis): strict
// percent-decoding of the user-info part of a URL.
#pragma once

#include <string>

namespace weft::plugin_common {

// Decodes %XX escapes of `in` into *out. False when an escape is cut short
// or not hexadecimal (*out is then unspecified). '+' stays '+'.
bool percentDecode(const std::string& in, std::string* out);

}  // namespace weft::plugin_common
