// Channels (docs/api.md §2.8): a read-only view of the JetStream streams that
// NATS-native agents use as chat channels. Needs the store's messaging
// extension (nats backend); without it every call is Unimplemented (HTTP 501).
//
// Channel <name> of project <P> is stream <P>_<NAME> (NAME = name upper-cased,
// '-' -> '_'), and that stream is used ONLY when its subjects are exactly
// ["<P>.<name>"]; anything else counts as missing, so a crafted name cannot
// read an unrelated stream.
//
// Errors: validation -> InvalidArgument with the §2.8 messages; backend
// outage or the request deadline (kv.timeoutMs from the first backend call)
// -> Unavailable/Timeout; any other JetStream failure while reading messages
// -> Internal "Failed to read messages from <name>: <reason>", a message the
// route sends to the client as is (docs/api.md §1.4 lists it as the one 500 that
// is not "Internal server error").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "weft/json.h"
#include "weft/service_context.h"

namespace weft {

struct ChannelInfo {
  std::string name;
  std::string description;  // the stream's, or the default channel's, or ""
};

// The channels of a project, sorted by name (the three defaults when it has
// none).
struct ChannelList {
  std::string projectId;
  std::vector<ChannelInfo> channels;
};

// One chat message as an agent published it. The three values are the
// agent's own JSON (any type), returned as written: `timestamp` defaults to
// the stream's time of the message, `handle` to "unknown", and `message` to
// the whole payload as text (invalid UTF-8 replaced) when the payload is not
// an object carrying one.
struct ChannelMessage {
  Json timestamp, handle, message;
};

struct ChannelMessages {
  std::string channel, projectId;
  std::vector<ChannelMessage> messages;  // oldest first
};

class Channels {
 public:
  // ctx must outlive this object. Cheap to build; holds no state.
  explicit Channels(const ServiceContext& ctx) : ctx_(ctx) {}

  // GET /api/channels?projectId=<P>.
  Result<ChannelList> list(const std::optional<std::string>& projectId) const;

  // GET /api/channels/{name}/messages?projectId=<P>&limit=<n>: the newest
  // `limit` messages, oldest first.
  Result<ChannelMessages> messages(const std::string& name,
                                   const std::optional<std::string>& projectId,
                                   const std::optional<std::string>& limit) const;

 private:
  const ServiceContext& ctx_;
};

// Exposed for tests: the stream of a channel (<P>_<NAME>) and the limit rule
// (leading integer; none or 0 -> 50; clamped to 1..1000).
std::string channelStreamName(const std::string& projectId, const std::string& name);
int64_t channelMessageLimit(const std::optional<std::string>& limit);

}  // namespace weft
