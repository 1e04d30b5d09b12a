#include "redis_url.h"

#include <cctype>
#include <cstdlib>

#include "percent_decode.h"

namespace weft::redis_plugin {
namespace {

// Parses a decimal integer in [min, max]; the whole string must be digits.
bool parseInt(const std::string& s, long min, long max, int* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  long v = std::strtol(s.c_str(), nullptr, 10);
  if (v < min || v > max) return false;
  *out = static_cast<int>(v);
  return true;
}

}  // namespace

bool parseRedisUrl(const std::string& url, RedisUrl* out, std::string* error) {
  RedisUrl result;
  const std::string scheme = "redis://";  // matched case-insensitively
  size_t schemeEnd = url.find("://");
  if (schemeEnd == std::string::npos) {
    *error = "invalid redis.url '" + url + "': expected redis://[[user]:pass@]host[:port][/db]";
    return false;
  }
  std::string got = url.substr(0, schemeEnd);
  for (char& c : got) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (got != "redis") {
    *error = "unsupported redis.url scheme '" + got + "://'" +
             (got == "rediss" ? " (TLS is not supported by this build: hiredis 0.14.1 has no TLS)"
                              : "") +
             "; use redis://[[user]:pass@]host[:port][/db]";
    return false;
  }
  std::string rest = url.substr(scheme.size());

  // The userinfo ends at the last '@' so a password may contain a raw '@'.
  size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = userinfo.find(':');
    std::string rawUser = colon == std::string::npos ? "" : userinfo.substr(0, colon);
    std::string rawPass = colon == std::string::npos ? userinfo : userinfo.substr(colon + 1);
    if (!plugin_common::percentDecode(rawUser, &result.user) || !plugin_common::percentDecode(rawPass, &result.password)) {
      *error = "invalid redis.url: bad percent-encoding in the credentials";
      return false;
    }
  }

  std::string hostport = rest;
  std::string dbPart;
  size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    hostport = rest.substr(0, slash);
    dbPart = rest.substr(slash + 1);
  }

  std::string host;
  std::string portPart;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) {
      *error = "invalid redis.url: unterminated '[' in the host";
      return false;
    }
    host = hostport.substr(1, close - 1);
    std::string after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        *error = "invalid redis.url: unexpected '" + after + "' after the host";
        return false;
      }
      portPart = after.substr(1);
      if (portPart.empty()) {
        *error = "invalid redis.url: empty port";
        return false;
      }
    }
  } else {
    size_t colon = hostport.find(':');
    host = hostport.substr(0, colon);
    if (colon != std::string::npos) {
      portPart = hostport.substr(colon + 1);
      if (portPart.empty()) {
        *error = "invalid redis.url: empty port";
        return false;
      }
    }
  }
  if (!host.empty()) result.host = host;
  for (char c : result.host) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '?' || c == '#' || c == '/') {
      *error = "invalid redis.url: bad host '" + result.host + "'";
      return false;
    }
  }
  if (!portPart.empty() && !parseInt(portPart, 1, 65535, &result.port)) {
    *error = "invalid redis.url: port '" + portPart + "' is not a number in 1..65535";
    return false;
  }
  if (!dbPart.empty() && !parseInt(dbPart, 0, 1000000, &result.db)) {
    *error = "invalid redis.url: database '" + dbPart + "' is not a non-negative integer";
    return false;
  }
  *out = result;
  return true;
}

std::string redactedUrl(const RedisUrl& url) {
  std::string s = "redis://";
  if (!url.user.empty() || !url.password.empty()) {
    s += url.user + ":" + (url.password.empty() ? "" : "***") + "@";
  }
  bool v6 = url.host.find(':') != std::string::npos;
  s += (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port) + "/" +
       std::to_string(url.db);
  return s;
}

}  // namespace weft::redis_plugin
