// The inside of the WebSocket server (ws_server.h): one client connection's
// state, shared by ws_server.cpp (the loop, frames in and out, timers) and
// ws_protocol.cpp (the client messages and what they are answered with).
// Private to server/ws.
#pragma once

#include <deque>
#include <map>
#include <string>

#include <Poco/Net/StreamSocket.h>

#include "weft/json.h"
#include "ws/ws_server.h"

namespace weft::ws {

struct WsServer::Conn {
  uint64_t key = 0;
  std::string id;  // UUID, for logs
  Poco::Net::StreamSocket socket;
  int fd = -1;
  std::string in;       // inbound bytes not parsed yet
  std::string message;  // a fragmented message being assembled
  bool inMessage = false;
  std::deque<Frame> out;
  size_t outOffset = 0;  // bytes of out.front() already written
  size_t outBytes = 0;
  bool writeInterest = false;
  bool awaitingPong = false;
  bool closing = false;       // our close frame is queued: nothing else is sent
  bool closeFlushed = false;  // ... and written (then SHUT_WR)
  bool peerClosed = false;    // the peer's close frame arrived
  bool discardInput = false;  // after a protocol violation: read and drop
  bool dead = false;          // terminated; erased by reap()
  Clock::time_point closeDeadline{};
  Clock::time_point nextStats{};     // while subscribed to stats
  std::map<std::string, Json> subs;  // topic -> filter (an object)
};

}  // namespace weft::ws
