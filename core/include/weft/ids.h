// Identifiers and secrets from the kernel's CSPRNG (getrandom), so claim
// tokens cannot be guessed and ids never collide across instances.
#pragma once

#include <string>
#include <string_view>

namespace weft {

// Lowercase UUID v4.
std::string newUuid();
// True when s is a lowercase UUID v4 as newUuid() makes them (docs/api.md §1.2:
// a path id of any other form is simply not found).
bool isUuid(std::string_view s);
// 128 random bits as 32 lowercase hex characters.
std::string newToken();

// Hex digests.
std::string sha256Hex(std::string_view data);
std::string md5Hex(std::string_view data);
// base64url without padding, and back (nullopt-like: returns false on bad input).
std::string base64UrlEncode(std::string_view data);
bool base64UrlDecode(std::string_view text, std::string& out);

}  // namespace weft
