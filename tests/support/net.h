// Loopback networking helpers for tests that start servers.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <string>

namespace weft::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it for
// a bind to port 0). Another process may take it before the caller binds, so
// callers that start a server should check that the server really came up.
// Throws std::runtime_error when no socket can be bound.
int findFreePort();

// 127.0.0.1:port as a socket address.
sockaddr_in loopbackAddress(int port);

// A blocking TCP connect to 127.0.0.1:port: the connected socket (close-on-
// exec), or -1 when it failed (errno says why).
int connectLoopback(int port);

// Polls until a TCP connect to 127.0.0.1:port succeeds, or the deadline
// passes. Returns whether it connected.
bool waitForPort(int port, std::chrono::milliseconds timeout);

// Connects to 127.0.0.1:port, sends request, and reads until the reply
// contains expect; a connection that answered something else and then went
// quiet for 200 ms is dropped and the request sent again on a new one, until
// timeout passes. For readiness probes of text protocols (e.g. Redis
// "PING\r\n" -> "+PONG", which answers -LOADING while it replays its AOF).
// Returns whether expect was seen.
bool probeTcp(int port, const std::string& request, const std::string& expect,
              std::chrono::milliseconds timeout);

}  // namespace weft::testing
