#include "nats_version.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <tuple>

namespace weft::nats_plugin {

std::optional<ServerVersion> parseServerVersion(const std::string& text) {
  size_t i = 0;
  if (i < text.size() && (text[i] == 'v' || text[i] == 'V')) ++i;
  int parts[3];
  for (int n = 0; n < 3; ++n) {
    if (i >= text.size() || text[i] < '0' || text[i] > '9') return std::nullopt;
    long value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      if (value > 100000) return std::nullopt;
      ++i;
    }
    parts[n] = static_cast<int>(value);
    if (n < 2) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  ServerVersion v;
  v.major = parts[0];
  v.minor = parts[1];
  v.patch = parts[2];
  v.text = text;
  return v;
}

std::optional<ServerVersion> versionFromInfoLine(const std::string& line) {
  if (line.compare(0, 5, "INFO ") != 0) return std::nullopt;
  const std::string key = "\"version\"";
  size_t at = line.find(key);
  if (at == std::string::npos) return std::nullopt;
  at = line.find('"', line.find(':', at + key.size()));
  if (at == std::string::npos) return std::nullopt;
  size_t end = line.find('"', at + 1);
  if (end == std::string::npos) return std::nullopt;
  return parseServerVersion(line.substr(at + 1, end - at - 1));
}

bool hasReplicatedCasFix(const ServerVersion& v) {
  return std::make_tuple(v.major, v.minor, v.patch) >= std::make_tuple(2, 9, 21);
}

bool splitHostPort(const std::string& url, std::string* host, int* port) {
  std::string rest = url;
  size_t scheme = rest.find("://");
  if (scheme != std::string::npos) rest = rest.substr(scheme + 3);
  size_t at = rest.rfind('@');
  if (at != std::string::npos) rest = rest.substr(at + 1);
  size_t slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string h = rest.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  char* endp = nullptr;
  long p = std::strtol(rest.c_str() + colon + 1, &endp, 10);
  if (endp == rest.c_str() + colon + 1 || *endp != '\0' || p <= 0 || p > 65535) return false;
  *host = h;
  *port = static_cast<int>(p);
  return true;
}

std::optional<ServerVersion> probeServerVersion(const std::string& host, int port,
                                                int64_t timeoutMs) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  auto leftMs = [&] {
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return ms > 0 ? static_cast<int>(ms) : 0;
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    return std::nullopt;
  }
  std::optional<ServerVersion> out;
  for (addrinfo* ai = found; ai != nullptr && !out && leftMs() > 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0) continue;
    bool connected = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!connected && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      connected = ::poll(&p, 1, leftMs()) == 1 &&
                  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    std::string line;
    while (connected && line.size() < 16384 && line.find("\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, leftMs()) != 1) break;
      char buffer[2048];
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      line.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    size_t eol = line.find("\r\n");
    if (eol != std::string::npos) out = versionFromInfoLine(line.substr(0, eol));
  }
  freeaddrinfo(found);
  return out;
}

}  // namespace weft::nats_plugin
