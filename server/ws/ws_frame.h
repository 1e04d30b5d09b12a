// RFC 6455 framing for the WebSocket server: encoding of server frames and an
// incremental parser of client frames. Pure functions over bytes, so the I/O
// loop (ws_server.h) can run non-blocking sockets without Poco's blocking
// WebSocket class.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace weft::ws {

enum class Opcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

// Close codes used by the server (RFC 6455 §7.4.1).
enum CloseCode : uint16_t {
  kCloseNormal = 1000,
  kCloseGoingAway = 1001,
  kCloseProtocolError = 1002,
  kClosePolicyViolation = 1008,
  kCloseTooBig = 1009,
  kCloseInternalError = 1011,
};

// A server frame: FIN set, unmasked (servers never mask).
std::string encodeFrame(Opcode opcode, std::string_view payload);
// A close frame with a status code and a UTF-8 reason (cut to fit the 125
// byte control-frame limit).
std::string encodeClose(uint16_t code, std::string_view reason);

// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
std::string computeAccept(std::string_view key);

struct Frame {
  bool fin = true;
  Opcode opcode = Opcode::Text;
  std::string payload;  // unmasked
};

enum class ParseStatus {
  Complete,       // one frame parsed; `consumed` bytes used
  Incomplete,     // need more bytes
  TooBig,         // the message would exceed the limit (known from the header)
  ProtocolError,  // not a valid client frame; `error` says why
};

// Parses one client frame from data[0, size). Client frames must be masked,
// carry no RSV bits (no extension is negotiated) and use a known opcode;
// control frames must be final and at most 125 bytes. For data frames,
// `messageSoFar` is the size of the fragmented message received before this
// frame, and the frame is TooBig when messageSoFar + its payload exceeds
// `maxMessageBytes` - decided from the header alone, so an oversized message
// is refused before its payload is buffered.
ParseStatus parseClientFrame(const char* data, size_t size, uint64_t messageSoFar,
                             uint64_t maxMessageBytes, Frame& frame, size_t& consumed,
                             std::string& error);

// A masked client frame (for tests that speak the protocol by hand).
std::string encodeClientFrame(Opcode opcode, std::string_view payload, bool fin = true,
                              uint32_t mask = 0x12345678);

}  // namespace weft::ws
