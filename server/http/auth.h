// Bearer-token authentication (docs/api.md §1.6).
//
// Thread-safety: immutable after construction; check() may be called from
// any number of threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weft::http {

class TokenAuth {
 public:
  enum class Outcome { Ok, MissingHeader, BadFormat, InvalidToken };

  // tokens: the configured tokens (http.tokens); entries are trimmed and
  // empty entries dropped. Only their SHA-256 digests are kept.
  explicit TokenAuth(const std::vector<std::string>& tokens);

  // Auth is on when at least one token is configured.
  bool enabled() const { return !digests_.empty(); }

  // Checks an Authorization header value (nullopt when the header is absent).
  // Ok when auth is disabled. The comparison hashes the presented token and
  // compares its digest with EVERY configured digest in constant time, without
  // early exit, so timing reveals neither which token nor how much of it
  // matched.
  Outcome check(const std::optional<std::string>& authorization) const;

  // The 401 message for a failed outcome (the exact texts of §1.6).
  static const char* message(Outcome outcome);

  // Parses "Bearer <token>": the scheme case-insensitive, then exactly one
  // space and a non-empty token. nullopt when the header has another form.
  static std::optional<std::string> parseBearer(std::string_view header);

 private:
  std::vector<std::vector<unsigned char>> digests_;
};

}  // namespace weft::http
