#include "http/auth.h"

#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>

#include "http/api_types.h"

namespace weft::http {
namespace {

Poco::DigestEngine::Digest sha256(std::string_view s) {
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  engine.update(s.data(), static_cast<unsigned>(s.size()));
  return engine.digest();
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return {};
  const auto end = s.find_last_not_of(" \t\r\n");
  return s.substr(begin, end - begin + 1);
}

}  // namespace

TokenAuth::TokenAuth(const std::vector<std::string>& tokens) {
  for (const std::string& t : tokens) {
    const std::string token = trim(t);
    if (!token.empty()) digests_.push_back(sha256(token));
  }
}

std::optional<std::string> TokenAuth::parseBearer(std::string_view header) {
  constexpr std::string_view kScheme = "bearer";
  if (header.size() < kScheme.size() + 2) return std::nullopt;
  if (!equalsIgnoreCase(header.substr(0, kScheme.size()), kScheme)) return std::nullopt;
  if (header[kScheme.size()] != ' ') return std::nullopt;
  const std::string_view token = header.substr(kScheme.size() + 1);
  // "exactly one space": a second space would start the token.
  if (token.empty() || token.front() == ' ') return std::nullopt;
  return std::string(token);
}

TokenAuth::Outcome TokenAuth::check(const std::optional<std::string>& authorization) const {
  if (!enabled()) return Outcome::Ok;
  if (!authorization) return Outcome::MissingHeader;
  const auto token = parseBearer(*authorization);
  if (!token) return Outcome::BadFormat;
  // Fixed-length digests make the comparison independent of the token's
  // length and contents; the loop visits every configured token.
  const auto presented = sha256(*token);
  bool matched = false;
  for (const auto& digest : digests_) {
    matched |= Poco::DigestEngine::constantTimeEquals(presented, digest);
  }
  return matched ? Outcome::Ok : Outcome::InvalidToken;
}

const char* TokenAuth::message(Outcome outcome) {
  switch (outcome) {
    case Outcome::MissingHeader:
      return "Missing Authorization header";
    case Outcome::BadFormat:
      return "Invalid Authorization header format. Expected: Bearer <token>";
    case Outcome::InvalidToken:
      return "Invalid authentication token";
    case Outcome::Ok:
      break;
  }
  return "";
}

}  // namespace weft::http
