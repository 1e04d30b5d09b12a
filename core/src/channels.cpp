#include "weft/channels.h"

#include <algorithm>
#include <chrono>

#include "weft/clock.h"
#include "weft/field_rules.h"
#include "weft/pagination.h"

namespace weft {
namespace {

constexpr int64_t kDefaultLimit = 50;
constexpr int64_t kMaxLimit = 1000;

struct DefaultChannel {
  const char* name;
  const char* description;
};
// Returned when no stream qualifies, in this order (docs/api.md §2.8); their texts
// also stand in for a qualifying stream without a description.
constexpr DefaultChannel kDefaults[] = {
    {"roadmap", "Discussion about project roadmap and planning"},
    {"parallel-work", "Coordination for parallel work among agents"},
    {"errors", "Error reporting and troubleshooting"},
};

// The common checks of §2.8, in order, after the backend check.
Status checkProject(const std::optional<std::string>& projectId) {
  if (!projectId || projectId->empty()) {
    return Status::invalidArgument("projectId query parameter is required");
  }
  if (!isValidProjectId(*projectId)) return Status::invalidArgument(kProjectIdRule);
  return Status::ok();
}

// ^[a-z0-9][a-z0-9-]{0,63}$
bool isChannelName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name.front() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// The subject rule: the stream is a channel of the project only when its
// subjects are exactly ["<P>.<name>"].
bool qualifies(const StreamInfo& stream, const std::string& projectId, const std::string& name) {
  return stream.subjects.size() == 1 && stream.subjects[0] == projectId + "." + name;
}

Status noMessaging() { return Status(Code::Unimplemented, "channels require the nats backend"); }

// Stream payloads are arbitrary bytes; a JSON string must be valid UTF-8.
// Invalid sequences become U+FFFD, as a JavaScript client decoding the
// payload would show them.
std::string sanitizeUtf8(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= in.size();
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; ok && k < len; ++k) {
      auto cc = static_cast<unsigned char>(in[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid too.
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))) {
      ok = false;
    }
    if (ok) {
      out.append(in, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// The deadline of one request's backend work (docs/api.md §1.9).
class RequestDeadline {
 public:
  explicit RequestDeadline(int64_t timeoutMs)
      : end_(std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs)) {}
  Status check() const {
    if (std::chrono::steady_clock::now() >= end_) return Status::timeout("deadline exceeded");
    return Status::ok();
  }

 private:
  std::chrono::steady_clock::time_point end_;
};

}  // namespace

std::string channelStreamName(const std::string& projectId, const std::string& name) {
  std::string upper = name;
  for (char& c : upper) {
    if (c == '-') {
      c = '_';
    } else if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return projectId + "_" + upper;
}

int64_t channelMessageLimit(const std::optional<std::string>& limit) {
  long long v = limit ? parseLeadingInt(*limit).value_or(0) : 0;
  if (v == 0) v = kDefaultLimit;
  return std::clamp<long long>(v, 1, kMaxLimit);
}

Result<ChannelList> Channels::list(const std::optional<std::string>& projectId) const {
  KvMessaging* messaging = ctx_.store->messaging();
  if (messaging == nullptr) return noMessaging();
  if (Status st = checkProject(projectId); !st) return st;
  if (Status st = ctx_.checkConnected(); !st) return st;

  const std::string& p = *projectId;
  Result<std::vector<StreamInfo>> streams = messaging->listStreams(p + "_");
  if (!streams) return streams.status();

  std::vector<std::pair<std::string, std::string>> found;  // name, description
  for (const StreamInfo& stream : *streams) {
    if (stream.subjects.size() != 1 || stream.subjects[0].compare(0, p.size() + 1, p + ".") != 0) {
      continue;
    }
    std::string name = stream.subjects[0].substr(p.size() + 1);
    // The stream must also be the one that name maps to, so one stream is
    // never listed under a name whose messages would be read elsewhere.
    if (name.empty() || stream.name != channelStreamName(p, name)) continue;
    std::string description = stream.description;
    if (description.empty()) {
      for (const DefaultChannel& d : kDefaults) {
        if (name == d.name) description = d.description;
      }
    }
    found.emplace_back(std::move(name), std::move(description));
  }
  std::sort(found.begin(), found.end());
  if (found.empty()) {
    for (const DefaultChannel& d : kDefaults) found.emplace_back(d.name, d.description);
  }

  ChannelList out;
  out.projectId = p;
  for (auto& [name, description] : found) {
    out.channels.push_back(ChannelInfo{std::move(name), std::move(description)});
  }
  return out;
}

Result<ChannelMessages> Channels::messages(const std::string& name,
                                           const std::optional<std::string>& projectId,
                                           const std::optional<std::string>& limitText) const {
  KvMessaging* messaging = ctx_.store->messaging();
  if (messaging == nullptr) return noMessaging();
  if (Status st = checkProject(projectId); !st) return st;
  if (!isChannelName(name)) return Status::invalidArgument("Invalid channel name: " + name);
  const int64_t limit = channelMessageLimit(limitText);
  if (Status st = ctx_.checkConnected(); !st) return st;

  const std::string& p = *projectId;
  // Any failure that is not an outage is a 500 with this message (§2.8).
  auto readFailure = [&name](const Status& st) {
    if (st.isOutage()) return st;
    return Status::internal("Failed to read messages from " + name + ": " + st.message());
  };

  ChannelMessages out;
  out.channel = name;
  out.projectId = p;

  RequestDeadline deadline(ctx_.options.timeoutMs);
  const std::string stream = channelStreamName(p, name);
  Result<StreamInfo> info = messaging->streamInfo(stream);
  if (!info && info.code() != Code::NotFound) return readFailure(info.status());
  if (info && qualifies(*info, p, name) && info->lastSeq > 0 &&
      info->lastSeq >= info->firstSeq) {
    uint64_t last = info->lastSeq;
    uint64_t first = std::max<uint64_t>(
        info->firstSeq, last >= static_cast<uint64_t>(limit) ? last - limit + 1 : 1);
    for (uint64_t seq = first; seq <= last; ++seq) {
      if (Status st = deadline.check(); !st) return st;
      Result<StreamMessage> msg = messaging->getMessage(stream, seq);
      if (!msg) {
        if (msg.code() == Code::NotFound) continue;  // deleted or purged meanwhile
        return readFailure(msg.status());
      }
      std::string text = sanitizeUtf8(msg->data);
      Json parsed;
      if (Result<Json> j = Json::parse(msg->data); j && j->isObject()) parsed = std::move(*j);
      auto field = [&parsed](const char* key) -> const Json* {
        const Json* v = parsed.find(key);
        return v != nullptr && !v->isNull() ? v : nullptr;  // absent = missing or null
      };
      ChannelMessage m;
      const Json* ts = field("timestamp");
      m.timestamp = ts ? *ts : Json(formatIso(msg->timeMs > 0 ? msg->timeMs : ctx_.now()));
      const Json* handle = field("handle");
      m.handle = handle ? *handle : Json("unknown");
      const Json* message = field("message");
      m.message = message ? *message : Json(text);
      out.messages.push_back(std::move(m));
    }
  }
  return out;
}

}  // namespace weft
