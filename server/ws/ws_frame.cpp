#include "ws/ws_frame.h"

#include <Poco/Base64Encoder.h>
#include <Poco/SHA1Engine.h>

#include <algorithm>
#include <sstream>

namespace weft::ws {

namespace {

constexpr const char* kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool isControl(uint8_t opcode) {
  return opcode >= 0x8;
}

bool isKnown(uint8_t opcode) {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA);
}

void appendHeader(std::string& out, uint8_t firstByte, uint64_t length, bool masked) {
  out.push_back(static_cast<char>(firstByte));
  const uint8_t maskBit = masked ? 0x80 : 0x00;
  if (length < 126) {
    out.push_back(static_cast<char>(maskBit | length));
  } else if (length <= 0xFFFF) {
    out.push_back(static_cast<char>(maskBit | 126));
    out.push_back(static_cast<char>((length >> 8) & 0xFF));
    out.push_back(static_cast<char>(length & 0xFF));
  } else {
    out.push_back(static_cast<char>(maskBit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((length >> shift) & 0xFF));
    }
  }
}

}  // namespace

std::string encodeFrame(Opcode opcode, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 10);
  appendHeader(out, 0x80 | static_cast<uint8_t>(opcode), payload.size(), false);
  out.append(payload.data(), payload.size());
  return out;
}

std::string encodeClose(uint16_t code, std::string_view reason) {
  // 125 bytes of control payload minus the 2-byte code. Cut on a UTF-8
  // character boundary so the reason stays valid UTF-8.
  size_t n = std::min<size_t>(reason.size(), 123);
  while (n > 0 && n < reason.size() && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
  std::string payload;
  payload.push_back(static_cast<char>((code >> 8) & 0xFF));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason.data(), n);
  return encodeFrame(Opcode::Close, payload);
}

std::string computeAccept(std::string_view key) {
  Poco::SHA1Engine sha1;
  sha1.update(std::string(key) + kAcceptGuid);
  const Poco::DigestEngine::Digest& digest = sha1.digest();
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.write(reinterpret_cast<const char*>(digest.data()),
                static_cast<std::streamsize>(digest.size()));
  encoder.close();
  return out.str();
}

ParseStatus parseClientFrame(const char* data, size_t size, uint64_t messageSoFar,
                             uint64_t maxMessageBytes, Frame& frame, size_t& consumed,
                             std::string& error) {
  if (size < 2) return ParseStatus::Incomplete;
  const auto* p = reinterpret_cast<const uint8_t*>(data);
  const bool fin = (p[0] & 0x80) != 0;
  const uint8_t opcode = p[0] & 0x0F;
  if ((p[0] & 0x70) != 0) {
    error = "reserved bits set";
    return ParseStatus::ProtocolError;
  }
  if (!isKnown(opcode)) {
    error = "unknown opcode";
    return ParseStatus::ProtocolError;
  }
  if ((p[1] & 0x80) == 0) {
    error = "client frame not masked";
    return ParseStatus::ProtocolError;
  }
  uint64_t length = p[1] & 0x7F;
  size_t header = 2;
  if (length == 126) {
    if (size < 4) return ParseStatus::Incomplete;
    length = (uint64_t{p[2]} << 8) | p[3];
    header = 4;
  } else if (length == 127) {
    if (size < 10) return ParseStatus::Incomplete;
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | p[2 + i];
    header = 10;
    if (length >> 63) {
      error = "invalid payload length";
      return ParseStatus::ProtocolError;
    }
  }
  if (isControl(opcode)) {
    if (!fin || length > 125) {
      error = "invalid control frame";
      return ParseStatus::ProtocolError;
    }
  } else if (length > maxMessageBytes || messageSoFar + length > maxMessageBytes) {
    return ParseStatus::TooBig;
  }
  header += 4;  // the masking key
  if (size < header || size - header < length) return ParseStatus::Incomplete;
  const uint8_t* mask = p + header - 4;
  frame.fin = fin;
  frame.opcode = static_cast<Opcode>(opcode);
  frame.payload.assign(data + header, static_cast<size_t>(length));
  for (size_t i = 0; i < frame.payload.size(); ++i) {
    frame.payload[i] = static_cast<char>(static_cast<uint8_t>(frame.payload[i]) ^ mask[i % 4]);
  }
  consumed = header + static_cast<size_t>(length);
  return ParseStatus::Complete;
}

std::string encodeClientFrame(Opcode opcode, std::string_view payload, bool fin, uint32_t mask) {
  std::string out;
  appendHeader(out, (fin ? 0x80 : 0x00) | static_cast<uint8_t>(opcode), payload.size(), true);
  const uint8_t key[4] = {static_cast<uint8_t>(mask >> 24), static_cast<uint8_t>(mask >> 16),
                          static_cast<uint8_t>(mask >> 8), static_cast<uint8_t>(mask)};
  out.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(static_cast<uint8_t>(payload[i]) ^ key[i % 4]));
  }
  return out;
}

}  // namespace weft::ws
