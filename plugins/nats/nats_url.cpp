#include "nats_url.h"

#include <cctype>

#include "percent_decode.h"

namespace weft::nats_plugin {
namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool allDigits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Validates `host[:port]` (IPv6 literals in brackets).
bool validHostPort(const std::string& hostPort) {
  if (hostPort.empty()) return false;
  std::string host, port;
  if (hostPort[0] == '[') {
    size_t close = hostPort.find(']');
    if (close == std::string::npos || close == 1) return false;
    std::string rest = hostPort.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    host = hostPort.substr(1, close - 1);
  } else {
    size_t colon = hostPort.rfind(':');
    if (colon != std::string::npos) {
      host = hostPort.substr(0, colon);
      port = hostPort.substr(colon + 1);
      if (port.empty()) return false;
    } else {
      host = hostPort;
    }
    if (host.empty() || host.find(':') != std::string::npos) return false;
  }
  for (char c : host) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '@') return false;
  }
  if (!port.empty()) {
    if (!allDigits(port) || port.size() > 5) return false;
    long p = std::stol(port);
    if (p < 1 || p > 65535) return false;
  }
  return true;
}

struct OneUrl {
  std::string scheme;
  std::string hostPort;
  bool hasCredentials = false;
  bool isToken = false;
  std::string user, password, token;
};

Status parseOne(const std::string& raw, OneUrl* out) {
  std::string s = trim(raw);
  if (s.empty()) return Status::invalidArgument("nats.url is empty");
  std::string rest = s;
  out->scheme = "nats";
  size_t sep = s.find("://");
  if (sep != std::string::npos) {
    out->scheme = s.substr(0, sep);
    for (char& c : out->scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    rest = s.substr(sep + 3);
  }
  // nats.c 3.4.1 has no WebSocket transport, so ws:// and wss:// are refused
  // here rather than failing obscurely on every reconnect attempt.
  if (out->scheme != "nats" && out->scheme != "tls") {
    return Status::invalidArgument("unsupported NATS URL scheme: " + out->scheme);
  }
  // The credentials may contain '/', '?' or '#' only percent-encoded, so the
  // authority ends at the first of those after the last '@'.
  size_t at = rest.rfind('@');
  std::string userInfo;
  if (at != std::string::npos) {
    userInfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  size_t pathStart = rest.find_first_of("/?#");
  if (pathStart != std::string::npos) {
    std::string path = rest.substr(pathStart);
    if (path != "/") {
      return Status::invalidArgument(
          "nats.url must be scheme://[user:pass@]host[:port] without a path");
    }
    rest = rest.substr(0, pathStart);
  }
  if (!validHostPort(rest)) {
    return Status::invalidArgument("nats.url has an invalid host or port: " + out->scheme + "://" +
                                   rest);
  }
  out->hostPort = rest;
  if (at != std::string::npos) {
    out->hasCredentials = true;
    size_t colon = userInfo.find(':');
    bool ok;
    if (colon == std::string::npos) {
      out->isToken = true;
      ok = plugin_common::percentDecode(userInfo, &out->token);
    } else {
      ok = plugin_common::percentDecode(userInfo.substr(0, colon), &out->user) &&
           plugin_common::percentDecode(userInfo.substr(colon + 1), &out->password);
    }
    if (!ok)
      return Status::invalidArgument("nats.url has invalid percent-encoding in its credentials");
  }
  return Status::ok();
}

}  // namespace

std::string NatsServerSpec::redactedList() const {
  std::string out;
  for (const auto& r : redacted) {
    if (!out.empty()) out += ",";
    out += r;
  }
  return out;
}

Result<NatsServerSpec> parseNatsUrl(const std::string& text) {
  NatsServerSpec spec;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    OneUrl one;
    Status st = parseOne(item, &one);
    if (!st) return st;
    spec.urls.push_back(one.scheme + "://" + one.hostPort);
    std::string masked;
    if (one.hasCredentials) masked = one.isToken ? "***@" : one.user + ":***@";
    spec.redacted.push_back(one.scheme + "://" + masked + one.hostPort);
    if (one.scheme == "tls") spec.secure = true;
    if (one.hasCredentials && !spec.hasCredentials) {
      spec.hasCredentials = true;
      spec.user = one.user;
      spec.password = one.password;
      spec.token = one.token;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return spec;
}

std::string redactNatsUrl(const std::string& url) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t comma = url.find(',', start);
    std::string item =
        url.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t sep = item.find("://");
    size_t authStart = sep == std::string::npos ? 0 : sep + 3;
    size_t at = item.rfind('@');
    if (at != std::string::npos && at >= authStart) {
      std::string userInfo = item.substr(authStart, at - authStart);
      size_t colon = userInfo.find(':');
      std::string masked = colon == std::string::npos ? "***" : userInfo.substr(0, colon) + ":***";
      item = item.substr(0, authStart) + masked + item.substr(at);
    }
    if (start > 0) out += ",";
    out += item;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace weft::nats_plugin
