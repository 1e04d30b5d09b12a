// A WebSocket client for tests (Poco::Net::WebSocket): text messages as
// JSON, protocol pings answered on the way, subscribe with its ack checked.
// Header-only because it reports failures through Catch2 (FAIL, REQUIRE), so
// only test executables include it.
#pragma once

#include <Poco/Buffer.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/WebSocket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "support/weftd.h"
#include "weft/json.h"

namespace weft::testing {

// One WebSocket client connection (Poco). Not thread-safe.
class WsClient {
 public:
  struct In {
    enum Kind { Timeout, Frame, Closed } kind = Timeout;
    int opcode = 0;
    std::string payload;
  };

  explicit WsClient(int port, const std::string& target = "/api/ws",
                    const HttpHeaders& headers = {})
      : session_("127.0.0.1", static_cast<Poco::UInt16>(port)) {
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, target,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [k, v] : headers) request.set(k, v);
    ws_ = std::make_unique<Poco::Net::WebSocket>(session_, request, response_);
    ws_->setMaxPayloadSize(16 * 1024 * 1024);
  }

  const Poco::Net::HTTPResponse& response() const { return response_; }
  Poco::Net::WebSocket& socket() { return *ws_; }

  void send(const std::string& text) {
    ws_->sendFrame(text.data(), static_cast<int>(text.size()), Poco::Net::WebSocket::FRAME_TEXT);
  }
  void sendJson(const Json& message) { send(message.dump()); }

  // The next frame of any kind.
  In read(int timeoutMs) {
    In in;
    try {
      ws_->setReceiveTimeout(
          Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(timeoutMs) * 1000));
      Poco::Buffer<char> buffer(0);
      int flags = 0;
      const int n = ws_->receiveFrame(buffer, flags);
      if (n == 0 && flags == 0) {
        in.kind = In::Closed;
        return in;
      }
      in.kind = In::Frame;
      in.opcode = flags & Poco::Net::WebSocket::FRAME_OP_BITMASK;
      in.payload.assign(buffer.begin(), buffer.size());
    } catch (const Poco::TimeoutException&) {
      in.kind = In::Timeout;
    } catch (const Poco::Exception&) {
      in.kind = In::Closed;
    }
    return in;
  }

  // The next text message as JSON, answering protocol pings on the way;
  // nullopt on timeout or close.
  std::optional<Json> next(int timeoutMs = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      In in = read(static_cast<int>(left.count()));
      if (in.kind != In::Frame) return std::nullopt;
      if (in.opcode == Poco::Net::WebSocket::FRAME_OP_PING) {
        ws_->sendFrame(in.payload.data(), static_cast<int>(in.payload.size()),
                       Poco::Net::WebSocket::FRAME_FLAG_FIN | Poco::Net::WebSocket::FRAME_OP_PONG);
        continue;
      }
      if (in.opcode == Poco::Net::WebSocket::FRAME_OP_CLOSE) {
        closeFrame_ = in.payload;
        return std::nullopt;
      }
      auto parsed = Json::parse(in.payload);
      if (!parsed) FAIL("not JSON from the server: " << in.payload);
      return *parsed;
    }
  }

  Json expect(int timeoutMs = 5000) {
    auto m = next(timeoutMs);
    if (!m) FAIL("no message from the server within " << timeoutMs << " ms");
    return *m;
  }

  // The next message whose `event` is name (skipping others).
  Json expectEvent(const std::string& name, int timeoutMs = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = next(static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
              .count()));
      if (!m) break;
      if (m->getString("event") == name) return *m;
    }
    FAIL("no " << name << " event within " << timeoutMs << " ms");
    return Json();
  }

  // Waits for the server's close frame; returns {code, reason}. code -1 when
  // the connection ended without one.
  std::pair<int, std::string> expectClose(int timeoutMs = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    while (std::chrono::steady_clock::now() < deadline) {
      In in = read(50);
      if (in.kind == In::Closed) return {-1, ""};
      if (in.kind == In::Frame && in.opcode == Poco::Net::WebSocket::FRAME_OP_CLOSE) {
        closeFrame_ = in.payload;
        break;
      }
    }
    if (closeFrame_.size() < 2) return {-1, ""};
    const int code =
        (static_cast<uint8_t>(closeFrame_[0]) << 8) | static_cast<uint8_t>(closeFrame_[1]);
    return {code, closeFrame_.substr(2)};
  }

  void subscribe(const std::string& topic, const std::optional<Json>& filter = std::nullopt) {
    Json m = Json::object();
    m.set("type", "subscribe");
    m.set("topic", topic);
    if (filter) m.set("filter", *filter);
    sendJson(m);
    Json ack = expect();
    REQUIRE(ack.getString("type") == "ack");
    REQUIRE(ack.getString("subscribed") == topic);
  }

 private:
  Poco::Net::HTTPClientSession session_;
  Poco::Net::HTTPResponse response_;
  std::unique_ptr<Poco::Net::WebSocket> ws_;
  std::string closeFrame_;
};

}  // namespace weft::testing
