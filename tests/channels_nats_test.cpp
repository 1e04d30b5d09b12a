// Channels (docs/api.md §2.8) against a real nats-server through weft-kv-nats.so.
// The streams are made with nats.c directly: the storage interface only reads.
#include <nats/nats.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/servers.h"
#include "support/rest_channels.h"
#include "weft/channels.h"
#include "weft/clock.h"
#include "weft/plugin_loader.h"

namespace weft {
namespace {

// A plain nats.c connection for arranging streams and messages.
class Admin {
 public:
  explicit Admin(const std::string& url) {
    REQUIRE(natsConnection_ConnectTo(&nc_, url.c_str()) == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js_, nc_, nullptr) == NATS_OK);
  }
  ~Admin() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  void addStream(const std::string& name, const std::vector<std::string>& subjects,
                 const char* description = nullptr) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name.c_str();
    cfg.Description = description;
    std::vector<const char*> subs;
    for (const auto& s : subjects) subs.push_back(s.c_str());
    cfg.Subjects = subs.data();
    cfg.SubjectsLen = static_cast<int>(subs.size());
    cfg.Storage = js_MemoryStorage;
    jsStreamInfo* si = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    REQUIRE(js_AddStream(&si, js_, &cfg, nullptr, &ec) == NATS_OK);
    jsStreamInfo_Destroy(si);
  }
  void publish(const std::string& subject, const std::string& data) {
    jsPubAck* ack = nullptr;
    REQUIRE(js_Publish(&ack, js_, subject.c_str(), data.data(), static_cast<int>(data.size()),
                       nullptr, nullptr) == NATS_OK);
    jsPubAck_Destroy(ack);
  }
  void deleteMsg(const std::string& stream, uint64_t seq) {
    REQUIRE(js_DeleteMsg(js_, stream.c_str(), seq, nullptr, nullptr) == NATS_OK);
  }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

std::shared_ptr<KvStore> loadNats(const std::string& url) {
  PluginContext context;
  context.settings = {{"nats.url", url}, {"kv.timeoutMs", "2000"}, {"kv.reconnectWaitMs", "200"}};
  context.log = [](LogLevel, const std::string&) {};
  return loadKvStore("nats", "", context);
}

// Bounded polling for a connection state change.
bool reaches(KvStore& store, bool wantConnected) {
  for (int i = 0; i < 250; ++i) {
    if ((store.state() == ConnectionState::Connected) == wantConnected) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST_CASE("channels on nats: list, subject rule, newest messages, payload mapping, outage") {
  testing::NatsServer server;
  {
    Admin admin(server.url());
    admin.addStream("P_ROADMAP", {"P.roadmap"}, "Our plans");
    admin.addStream("P_ERRORS", {"P.errors"});
    admin.addStream("P_DECOY", {"P.decoy", "decoy.>"});
    admin.addStream("P_SECRET", {"secret.stuff"});
    admin.publish("P.roadmap", R"({"handle":"alice","message":"hi","timestamp":"T1"})");
    admin.publish("P.roadmap", "not json");
    admin.publish("P.roadmap", R"({"handle":"bob","message":"three"})");
    admin.publish("P.roadmap", R"({"message":"four"})");
    admin.deleteMsg("P_ROADMAP", 3);
    admin.publish("secret.stuff", "do not read");
    admin.publish("P.decoy", "nor this");
  }
  std::shared_ptr<KvStore> store = loadNats(server.url());
  REQUIRE(reaches(*store, true));
  ServiceContext ctx;
  ctx.store = store;
  testing::RestChannels channels(ctx);
  const std::optional<std::string> p = std::string("P");

  Result<Json> list = channels.list(p);
  REQUIRE(list.isOk());
  CHECK(list->dump() == R"({"channels":[{"name":"errors","description":"Error reporting and )"
                        R"(troubleshooting"},{"name":"roadmap","description":"Our plans"}],)"
                        R"("count":2,"projectId":"P"})");
  Result<Json> none = channels.list(std::string("nobody"));
  REQUIRE(none.isOk());
  CHECK(none->getInt("count") == 3);

  Result<Json> all = channels.messages("roadmap", p, std::nullopt);
  REQUIRE(all.isOk());
  const Json::Array& m = all->get("messages").asArray();
  REQUIRE(m.size() == 3);  // seq 3 deleted
  CHECK(m[0].dump() == R"({"timestamp":"T1","handle":"alice","message":"hi"})");
  CHECK(m[1].getString("handle") == "unknown");
  CHECK(m[1].getString("message") == "not json");
  // The stream's store time, ISO with milliseconds.
  CHECK(parseIso(m[1].getString("timestamp")).has_value());
  CHECK(m[2].getString("message") == "four");

  Result<Json> newest = channels.messages("roadmap", p, std::string("2"));
  REQUIRE(newest.isOk());
  REQUIRE(newest->getInt("count") == 1);  // seqs 3..4, 3 is deleted
  CHECK(newest->get("messages").asArray()[0].getString("message") == "four");

  for (const char* name : {"decoy", "secret", "nothing"}) {
    Result<Json> r = channels.messages(name, p, std::nullopt);
    REQUIRE(r.isOk());
    CHECK(r->getInt("count") == 0);
  }

  server.kill9();
  REQUIRE(reaches(*store, false));
  CHECK(channels.list(p).status().isOutage());
  CHECK(channels.messages("roadmap", p, std::nullopt).status().isOutage());
}

}  // namespace
}  // namespace weft
