// The client side of the event stream protocol (docs/api.md §5): frames
// from a client, its subscribe/unsubscribe messages and their answers, and
// the stats frames.
#include <algorithm>
#include <string>

#include "weft/ids.h"
#include "weft/log.h"
#include "ws/ws_connection.h"
#include "ws/ws_filter.h"
#include "ws/ws_frame.h"
#include "ws/ws_server.h"

namespace weft::ws {

namespace {

constexpr const char* kTopics[] = {"work", "agents", "targets", "stats"};

bool isTopic(const std::string& t) {
  return std::find(std::begin(kTopics), std::end(kTopics), t) != std::end(kTopics);
}

// How a JSON value reads inside an error text, the way the original
// JavaScript server interpolated it (`${value}`): strings raw, a missing
// value "undefined".
std::string shown(const Json* v) {
  if (!v) return "undefined";
  if (v->isString()) return v->asString();
  return v->dump();
}

}  // namespace

void WsServer::onFrame(Conn& c, int opcode, bool fin, std::string& payload) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::Close: {
      c.peerClosed = true;
      c.discardInput = true;  // nothing may follow a close frame
      if (c.closing) {
        // The answer to our close: the handshake is complete.
        if (c.closeFlushed) terminate(c, "closed");
        return;
      }
      // Echo the peer's status code (RFC 6455 §5.5.1) when it is one that may
      // be sent; a malformed close is answered with 1002.
      uint16_t code = kCloseNormal;
      if (payload.size() == 1) {
        code = kCloseProtocolError;
      } else if (payload.size() >= 2) {
        code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                     static_cast<uint8_t>(payload[1]));
        const bool sendable = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                              (code >= 3000 && code <= 4999);
        if (!sendable) code = kCloseProtocolError;
      }
      beginClose(c, code, "");
      return;
    }
    case Opcode::Ping:
      if (!c.closing)
        enqueue(c, std::make_shared<const std::string>(encodeFrame(Opcode::Pong, payload)));
      return;
    case Opcode::Pong:
      c.awaitingPong = false;
      return;
    case Opcode::Text:
    case Opcode::Binary:
      if (c.inMessage) {
        beginClose(c, kCloseProtocolError, "expected a continuation frame");
        c.discardInput = true;
        return;
      }
      if (fin) {
        if (!c.closing) onMessage(c, payload);
      } else {
        c.inMessage = true;
        c.message = std::move(payload);
      }
      return;
    case Opcode::Continuation:
      if (!c.inMessage) {
        beginClose(c, kCloseProtocolError, "unexpected continuation frame");
        c.discardInput = true;
        return;
      }
      c.message += payload;
      if (fin) {
        c.inMessage = false;
        std::string message = std::move(c.message);
        c.message.clear();
        if (!c.closing) onMessage(c, message);
      }
      return;
  }
}

void WsServer::onMessage(Conn& c, const std::string& text) {
  auto parsed = Json::parse(text);
  if (!parsed || !parsed->isObject()) {
    sendError(c, "Invalid message format");
    return;
  }
  const Json* type = parsed->find("type");
  const std::string typeName = type && type->isString() ? type->asString() : "";
  if (typeName == "subscribe") {
    onSubscribe(c, *parsed);
  } else if (typeName == "unsubscribe") {
    onUnsubscribe(c, *parsed);
  } else if (typeName == "ping") {
    std::string reply = "{\"type\":\"pong\",\"timestamp\":";
    appendJsonString(reply, now());
    reply += '}';
    sendText(c, std::move(reply));
  } else {
    sendError(c, "Unknown message type: " + shown(type));
  }
}

// The fields a subscription filter may have (§5.2 defines at most 6 per topic).
constexpr size_t kMaxFilterFields = 16;

void WsServer::onSubscribe(Conn& c, const Json& message) {
  const Json* topic = message.find("topic");
  if (!topic || !topic->isString() || !isTopic(topic->asString())) {
    sendError(c, "Invalid topic: " + shown(topic));
    return;
  }
  const Json* filter = message.find("filter");
  if (filter && !filter->isNull() && !filter->isObject()) {
    sendError(c, "Invalid filter");
    return;
  }
  // Every field of a filter is compared for every event sent to this client:
  // a bounded filter keeps one client from multiplying the I/O thread's work.
  // (Subscriptions themselves are bounded by construction: one per topic.)
  if (filter && filter->isObject() && filter->size() > kMaxFilterFields) {
    sendError(c, "Invalid filter: more than " + std::to_string(kMaxFilterFields) + " fields");
    return;
  }
  const std::string& name = topic->asString();
  const bool added = c.subs.find(name) == c.subs.end();
  c.subs[name] = filter && filter->isObject() ? *filter : Json::object();
  if (added) ++subscriptions_;
  std::string reply = "{\"type\":\"ack\",\"subscribed\":";
  appendJsonString(reply, name);
  reply += ",\"timestamp\":";
  appendJsonString(reply, now());
  reply += '}';
  sendText(c, std::move(reply));
  if (name == "stats") {
    // Right after the ack, then every statsIntervalMs from now (§5.3).
    sendStats(c, c.subs[name]);
    c.nextStats = Clock::now() + std::chrono::milliseconds(settings_.statsIntervalMs);
  }
}

void WsServer::onUnsubscribe(Conn& c, const Json& message) {
  const Json* topic = message.find("topic");
  auto it = topic && topic->isString() ? c.subs.find(topic->asString()) : c.subs.end();
  if (it == c.subs.end()) {
    sendError(c, "Not subscribed to topic: " + shown(topic));
    return;
  }
  c.subs.erase(it);
  --subscriptions_;
  std::string reply = "{\"type\":\"ack\",\"unsubscribed\":";
  appendJsonString(reply, topic->asString());
  reply += ",\"timestamp\":";
  appendJsonString(reply, now());
  reply += '}';
  sendText(c, std::move(reply));
}

void WsServer::sendText(Conn& c, std::string text) {
  enqueue(c, std::make_shared<const std::string>(encodeFrame(Opcode::Text, text)));
}

void WsServer::sendError(Conn& c, const std::string& error) {
  std::string text = "{\"type\":\"error\",\"error\":";
  appendJsonString(text, error);
  text += ",\"timestamp\":";
  appendJsonString(text, now());
  text += '}';
  sendText(c, std::move(text));
}

WsServer::Frame WsServer::statsFrame(const Json& filter) {
  // Only projectId filters stats (§5.5). A non-string value selects a
  // project that cannot exist: zero counts, echoed as given.
  const Json* project = filter.find("projectId");
  const bool scoped = project && !project->isNull();
  std::optional<std::string> scope;
  if (scoped) scope = project->isString() ? project->asString() : "\x01" + project->dump();
  Json data = stats_ ? stats_(scope) : Json::object();
  if (!data.isObject()) data = Json::object();
  Json websocket = Json::object();
  websocket.set("connections", Json(connections_.load()));
  websocket.set("subscriptions", Json(subscriptions_.load()));
  data.set("websocket", std::move(websocket));
  std::string text = "{\"type\":\"stats\",\"data\":";
  data.dumpTo(text);
  text += ",\"timestamp\":";
  appendJsonString(text, now());
  text += ",\"projectId\":";
  text += scoped ? project->dump() : "null";
  text += '}';
  return std::make_shared<const std::string>(encodeFrame(Opcode::Text, text));
}

void WsServer::sendStats(Conn& c, const Json& filter) {
  enqueue(c, statsFrame(filter));
}


}  // namespace weft::ws
