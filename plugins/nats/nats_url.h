// Parsing of the `nats.url` setting (docs/api.md §7.2): which servers to dial,
// whether TLS is mandatory, and the credentials carried in the URL.
#pragma once

#include <string>
#include <vector>

#include "weft/status.h"

namespace weft::nats_plugin {

struct NatsServerSpec {
  // The URLs as handed to nats.c, with any credentials removed, so they can
  // never leak through a library log line or natsConnection_GetConnectedUrl.
  std::vector<std::string> urls;
  // The same URLs for our logs: credentials shown as `user:***@` / `***@`.
  std::vector<std::string> redacted;
  // True when any URL uses tls://. TLS is then required on every connection
  // attempt (natsOptions_SetSecure): a tls:// URL is never downgraded.
  bool secure = false;
  // Credentials from the first URL that carries some, percent-decoded. They
  // take precedence over nats.user / nats.pass. `user@host` (no colon) is a
  // token, as in the NATS URL convention.
  bool hasCredentials = false;
  std::string user;
  std::string password;
  std::string token;

  std::string redactedList() const;
};

// Parses one URL or a comma-separated list. Accepted forms: `nats://h:p`,
// `tls://h:p`, `h:p` and `h` (meaning nats://), each optionally with
// `user:pass@` or `token@`. Any other scheme (ws://, wss://, http://...) fails
// with "unsupported NATS URL scheme: <scheme>". Error messages never contain
// credentials.
Result<NatsServerSpec> parseNatsUrl(const std::string& text);

// A URL with its credentials masked, for logs. Works on any string: when it
// cannot find credentials it returns the input unchanged.
std::string redactNatsUrl(const std::string& url);

}  // namespace weft::nats_plugin
