// Unit tests of the channel rules (docs/api.md §2.8) over a fake KvMessaging.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/rest_channels.h"
#include "weft/channels.h"
#include "weft/clock.h"
#include "weft/memory_kv.h"

namespace weft {
namespace {

// A memory store plus a scripted messaging table: streams by name, messages
// by (stream, seq), and injectable failures.
class FakeChannelStore : public KvStore, public KvMessaging {
 public:
  FakeChannelStore() : inner_(createMemoryStore()) {}
  const std::string& name() const override { return name_; }
  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& n,
                                               const BucketOptions& o) override {
    return inner_->openBucket(n, o);
  }
  Status ping() override { return Status::ok(); }
  ConnectionState state() const override { return state_; }
  KvMessaging* messaging() override { return this; }
  Status publish(const std::string&, const std::string&) override { return Status::ok(); }
  Status publishJetStream(const std::string&, const std::string&) override {
    return Status::ok();
  }

  Result<std::vector<StreamInfo>> listStreams(const std::string& prefix) override {
    ++calls;
    if (!listFailure.isOk()) return listFailure;
    std::vector<StreamInfo> out;
    for (const auto& [n, s] : streams) {
      if (n.compare(0, prefix.size(), prefix) == 0) out.push_back(s);
    }
    return out;
  }
  Result<StreamInfo> streamInfo(const std::string& stream) override {
    ++calls;
    if (!infoFailure.isOk()) return infoFailure;
    auto it = streams.find(stream);
    if (it == streams.end()) return Status::notFound("no stream");
    return it->second;
  }
  Result<StreamMessage> getMessage(const std::string& stream, uint64_t seq) override {
    ++calls;
    requested.push_back(seq);
    if (!getFailure.isOk()) return getFailure;
    auto it = messages.find({stream, seq});
    if (it == messages.end()) return Status::notFound("no message");
    return it->second;
  }

  void addStream(const std::string& n, std::vector<std::string> subjects,
                 const std::string& description = "") {
    StreamInfo s;
    s.name = n;
    s.subjects = std::move(subjects);
    s.description = description;
    s.firstSeq = 1;
    s.lastSeq = 0;
    streams[n] = s;
  }
  void addMessage(const std::string& stream, const std::string& data, int64_t timeMs = 0) {
    StreamInfo& s = streams.at(stream);
    ++s.lastSeq;
    messages[{stream, s.lastSeq}] = StreamMessage{data, timeMs};
  }

  std::map<std::string, StreamInfo> streams;
  std::map<std::pair<std::string, uint64_t>, StreamMessage> messages;
  Status listFailure, infoFailure, getFailure;
  ConnectionState state_ = ConnectionState::Connected;
  int calls = 0;
  std::vector<uint64_t> requested;

 private:
  std::string name_ = "nats";
  std::shared_ptr<KvStore> inner_;
};

struct Fixture {
  Fixture() : store(std::make_shared<FakeChannelStore>()), clock(1700000000000) {
    ctx.store = store;
    ctx.clock = &clock;
  }
  std::shared_ptr<FakeChannelStore> store;
  ManualClock clock;
  ServiceContext ctx;
  testing::RestChannels channels{ctx};
};

const std::optional<std::string> kP = std::string("proj");
const std::optional<std::string> kNoLimit;

std::vector<std::string> names(const Json& body) {
  std::vector<std::string> out;
  for (const Json& c : body.get("channels").asArray()) out.push_back(c.getString("name"));
  return out;
}

TEST_CASE("channels: a backend without messaging answers Unimplemented before validation") {
  ServiceContext ctx;
  ctx.store = createMemoryStore();
  testing::RestChannels channels(ctx);
  for (const Result<Json>& r :
       {channels.list(std::nullopt), channels.messages("BAD NAME", std::nullopt, kNoLimit)}) {
    REQUIRE(r.code() == Code::Unimplemented);
    CHECK(r.status().message() == "channels require the nats backend");
  }
}

TEST_CASE("channels: projectId and name validation, in order, before any backend call") {
  Fixture f;
  auto msg = [](const Result<Json>& r) {
    REQUIRE(r.code() == Code::InvalidArgument);
    return r.status().message();
  };
  CHECK(msg(f.channels.list(std::nullopt)) == "projectId query parameter is required");
  CHECK(msg(f.channels.list(std::string())) == "projectId query parameter is required");
  CHECK(msg(f.channels.list(std::string("a.b"))) ==
        "projectId must be 1-64 characters from [A-Za-z0-9_-]");
  CHECK(msg(f.channels.list(std::string(65, 'a'))) ==
        "projectId must be 1-64 characters from [A-Za-z0-9_-]");
  CHECK(f.channels.list(std::string(64, 'a')).isOk());
  // projectId is checked before the name.
  CHECK(msg(f.channels.messages("BAD", std::nullopt, kNoLimit)) ==
        "projectId query parameter is required");
  for (const char* bad : {"Roadmap", "-x", "a.b", "a_b", "", "r*"}) {
    CHECK(msg(f.channels.messages(bad, kP, kNoLimit)) == std::string("Invalid channel name: ") + bad);
  }
  CHECK(msg(f.channels.messages(std::string(65, 'a'), kP, kNoLimit)).rfind("Invalid channel", 0) ==
        0);
  f.store->calls = 0;
  CHECK(f.channels.messages(std::string(64, 'a'), kP, kNoLimit).isOk());
  CHECK(f.channels.messages("9-lives-", kP, kNoLimit).isOk());
}

TEST_CASE("channels: stream name and limit rules") {
  CHECK(channelStreamName("proj", "parallel-work") == "proj_PARALLEL_WORK");
  CHECK(channelStreamName("My-P", "a1") == "My-P_A1");
  CHECK(channelMessageLimit(std::nullopt) == 50);
  CHECK(channelMessageLimit(std::string("abc")) == 50);
  CHECK(channelMessageLimit(std::string("0")) == 50);
  CHECK(channelMessageLimit(std::string("7")) == 7);
  CHECK(channelMessageLimit(std::string("12abc")) == 12);
  CHECK(channelMessageLimit(std::string("-3")) == 1);
  CHECK(channelMessageLimit(std::string("5000")) == 1000);
  CHECK(channelMessageLimit(std::string("99999999999999999999")) == 1000);
}

TEST_CASE("channels: list applies the subject rule, sorts, and fills descriptions") {
  Fixture f;
  f.store->addStream("proj_ROADMAP", {"proj.roadmap"});  // default text
  f.store->addStream("proj_ALPHA", {"proj.alpha"}, "First");
  f.store->addStream("proj_OTHER", {"proj.other"});  // no default text -> ""
  f.store->addStream("proj_DECOY", {"proj.decoy", "proj.more"});
  f.store->addStream("proj_WILD", {"proj.>"});
  f.store->addStream("proj_MISMATCH", {"proj.something"});  // name does not map to stream
  f.store->addStream("proj_X_Y", {"proj.x-y"}, "dash");
  f.store->addStream("other_ERRORS", {"other.errors"});
  f.store->addStream("KV_agent-registry", {"$KV.agent-registry.>"});
  Result<Json> r = f.channels.list(kP);
  REQUIRE(r.isOk());
  CHECK(names(*r) == std::vector<std::string>{"alpha", "other", "roadmap", "x-y"});
  CHECK(r->getInt("count") == 4);
  CHECK(r->getString("projectId") == "proj");
  const Json::Array& c = r->get("channels").asArray();
  CHECK(c[0].getString("description") == "First");
  CHECK(c[1].getString("description") == "");
  CHECK(c[1].contains("description"));
  CHECK(c[2].getString("description") == "Discussion about project roadmap and planning");
  CHECK(r->dump().find("\"channels\":[{\"name\":\"alpha\",\"description\":\"First\"}") !=
        std::string::npos);
}

TEST_CASE("channels: no qualifying stream gives the three defaults") {
  Fixture f;
  f.store->addStream("proj_DECOY", {"elsewhere.decoy"});
  Result<Json> r = f.channels.list(kP);
  REQUIRE(r.isOk());
  CHECK(r->dump() ==
        R"({"channels":[{"name":"roadmap","description":"Discussion about project roadmap and )"
        R"(planning"},{"name":"parallel-work","description":"Coordination for parallel work )"
        R"(among agents"},{"name":"errors","description":"Error reporting and troubleshooting"}],)"
        R"("count":3,"projectId":"proj"})");
}

TEST_CASE("channels: newest limit messages, oldest first, skipping missing sequences") {
  Fixture f;
  f.store->addStream("proj_ROADMAP", {"proj.roadmap"});
  for (int i = 1; i <= 10; ++i) {
    f.store->addMessage("proj_ROADMAP",
                        R"({"handle":"h)" + std::to_string(i) + R"(","message":"m)" +
                            std::to_string(i) + R"(","timestamp":"t)" + std::to_string(i) + "\"}");
  }
  f.store->messages.erase({"proj_ROADMAP", 9});
  Result<Json> r = f.channels.messages("roadmap", kP, std::string("3"));
  REQUIRE(r.isOk());
  CHECK(f.store->requested == std::vector<uint64_t>{8, 9, 10});
  CHECK(r->getString("channel") == "roadmap");
  CHECK(r->getInt("count") == 2);
  CHECK(r->getString("projectId") == "proj");
  const Json::Array& m = r->get("messages").asArray();
  REQUIRE(m.size() == 2);
  CHECK(m[0].dump() == R"({"timestamp":"t8","handle":"h8","message":"m8"})");
  CHECK(m[1].getString("message") == "m10");

  // first_seq bounds the range.
  f.store->streams["proj_ROADMAP"].firstSeq = 6;
  f.store->requested.clear();
  r = f.channels.messages("roadmap", kP, kNoLimit);
  REQUIRE(r.isOk());
  CHECK(f.store->requested == std::vector<uint64_t>{6, 7, 8, 9, 10});
  CHECK(r->getInt("count") == 4);
}

TEST_CASE("channels: payload mapping for JSON and non-JSON messages") {
  Fixture f;
  f.store->addStream("proj_ERRORS", {"proj.errors"});
  const int64_t t = 1765430580836;  // 2025-12-11T05:23:00.836Z
  f.store->addMessage("proj_ERRORS", "plain text", t);
  f.store->addMessage("proj_ERRORS", R"({"message":{"k":1}})", t);
  f.store->addMessage("proj_ERRORS", R"({"handle":"bob","message":null,"timestamp":null})", t);
  f.store->addMessage("proj_ERRORS", "[1,2]", 0);  // JSON but no object; no stream time
  f.store->addMessage("proj_ERRORS", std::string("bad\xff utf8"), t);
  Result<Json> r = f.channels.messages("errors", kP, kNoLimit);
  REQUIRE(r.isOk());
  const Json::Array& m = r->get("messages").asArray();
  REQUIRE(m.size() == 5);
  CHECK(m[0].dump() ==
        R"({"timestamp":"2025-12-11T05:23:00.836Z","handle":"unknown","message":"plain text"})");
  CHECK(m[1].dump() ==
        R"({"timestamp":"2025-12-11T05:23:00.836Z","handle":"unknown","message":{"k":1}})");
  CHECK(m[2].dump() == R"({"timestamp":"2025-12-11T05:23:00.836Z","handle":"bob",)"
                       R"("message":"{\"handle\":\"bob\",\"message\":null,\"timestamp\":null}"})");
  CHECK(m[3].getString("timestamp") == formatIso(1700000000000));  // now
  CHECK(m[3].getString("message") == "[1,2]");
  CHECK(m[4].getString("message") == "bad\xEF\xBF\xBD utf8");
}

TEST_CASE("channels: a missing or non-qualifying stream reads as an empty channel") {
  Fixture f;
  f.store->addStream("proj_ROADMAP", {"proj.roadmap", "proj.extra"});
  f.store->addMessage("proj_ROADMAP", "secret");
  f.store->addStream("proj_EMPTY", {"proj.empty"});
  for (const char* name : {"roadmap", "missing", "empty"}) {
    Result<Json> r = f.channels.messages(name, kP, kNoLimit);
    REQUIRE(r.isOk());
    CHECK(r->getInt("count") == 0);
    CHECK(r->get("messages").asArray().empty());
  }
  CHECK(f.store->requested.empty());
}

TEST_CASE("channels: outages are Unavailable/Timeout, other failures Internal with the message") {
  Fixture f;
  f.store->addStream("proj_ROADMAP", {"proj.roadmap"});
  f.store->addMessage("proj_ROADMAP", "x");

  f.store->state_ = ConnectionState::Disconnected;
  CHECK(f.channels.list(kP).code() == Code::Unavailable);
  CHECK(f.channels.messages("roadmap", kP, kNoLimit).code() == Code::Unavailable);
  f.store->state_ = ConnectionState::Connected;

  f.store->listFailure = Status::timeout("slow");
  CHECK(f.channels.list(kP).code() == Code::Timeout);
  f.store->infoFailure = Status::unavailable("down");
  CHECK(f.channels.messages("roadmap", kP, kNoLimit).code() == Code::Unavailable);
  f.store->infoFailure = Status::internal("stream info of proj_ROADMAP: boom");
  Result<Json> r = f.channels.messages("roadmap", kP, kNoLimit);
  REQUIRE(r.code() == Code::Internal);
  CHECK(r.status().message() ==
        "Failed to read messages from roadmap: stream info of proj_ROADMAP: boom");
  f.store->infoFailure = Status::ok();
  f.store->getFailure = Status::timeout("get: timeout");
  CHECK(f.channels.messages("roadmap", kP, kNoLimit).code() == Code::Timeout);
  f.store->getFailure = Status::invalidArgument("weird");
  r = f.channels.messages("roadmap", kP, kNoLimit);
  REQUIRE(r.code() == Code::Internal);
  CHECK(r.status().message() == "Failed to read messages from roadmap: weird");
}

}  // namespace
}  // namespace weft
