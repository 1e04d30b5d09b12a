// Parsing of `redis.url` (docs/api.md §7.2). hiredis 0.14.1 has no URL parser, so
// the plugin parses the URL itself.
#pragma once

#include <string>

namespace weft::redis_plugin {

struct RedisUrl {
  std::string host = "localhost";
  int port = 6379;
  std::string user;      // empty: AUTH with the password only (legacy form)
  std::string password;  // empty: no AUTH
  int db = 0;
};

// Parses redis://[[user]:pass@]host[:port][/db]. user and pass are
// percent-decoded; userinfo without ':' is taken as the password (as redis-cli
// does). An IPv6 host is written in brackets: redis://[::1]:6379. An empty host
// means localhost. Returns false and sets *error for any other scheme (rediss://
// included: hiredis 0.14.1 has no TLS), a bad port or db, or trailing junk.
bool parseRedisUrl(const std::string& url, RedisUrl* out, std::string* error);

// The URL for logs: the password replaced by "***".
std::string redactedUrl(const RedisUrl& url);

}  // namespace weft::redis_plugin
