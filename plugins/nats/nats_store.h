// NatsKvStore: the weft::KvStore of the nats plugin. Owns the connection, the
// opened buckets (one NatsKvBucket each, shared by every caller) and the
// registry of live watches; also provides the NATS-only messaging table.
//
// Settings read from PluginContext::settings (docs/api.md §7.2):
//   nats.url            nats://localhost:4222; nats:// or tls:// (TLS is then
//                       mandatory), bare host[:port], user:pass@ or token@
//   nats.user/nats.pass used only when the URL carries no credentials
//   kv.timeoutMs        2000; bound of every call (jsOptions.Wait, connect)
//   kv.reconnectWaitMs  2000; first reconnect wait, backing off to 5x
//   nats.replicas       1, 3 or 5 (default 1): replicas of every bucket this
//                       store creates. An existing bucket keeps its own; a
//                       different count is logged as a warning.
//   nats.casGuard       auto (default) | always | off: whether compare-and-set
//                       on replicated buckets is guarded (nats_bucket.h). auto
//                       guards unless the server reports 2.9.21 or later; off
//                       is UNSAFE on replicated buckets of older servers and
//                       exists for the tests' positive control.
//
// Buckets (openBucket): a missing bucket is created as stream KV_<bucket>
// with js_AddStream, for every history value, so one code path makes every
// bucket. The settings are those agents use for agent-registry (docs/api.md §6.3),
// which for history >= 1 equal js_CreateKeyValue's up to the discard policy
// (moot without size limits); nats.c's own KV API opens such buckets: subjects
// $KV.<bucket>.>, file storage, max age = maxAgeMs (in nanoseconds), per-
// subject limit = history (history 0 = unlimited = -1, which kvConfig cannot
// express), rollup allowed, deny delete, direct get, discard old. An existing
// bucket keeps its settings; any stream named KV_<b> holding $KV.<b>.> is
// accepted, whoever created it. Two processes creating the same bucket at once
// both end up opening it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "nats_connection.h"
#include "nats_feed.h"
#include "nats_watch.h"
#include "weft/kv.h"
#include "weft/plugin.h"

namespace weft::nats_plugin {

class NatsKvBucket;

class NatsMessaging : public KvMessaging {
 public:
  explicit NatsMessaging(std::shared_ptr<NatsConnection> conn) : conn_(std::move(conn)) {}
  // Core publish; Unavailable while disconnected (never parked in the
  // reconnect buffer), InvalidArgument for a subject that is not a plain
  // publishable subject (no spaces, wildcards or empty tokens).
  Status publish(const std::string& subject, const std::string& payload) override;
  // JetStream publish acknowledged by the stream; NotFound when no stream
  // captures the subject (no responders).
  Status publishJetStream(const std::string& subject, const std::string& payload) override;
  // Channel reads (docs/api.md §2.8), each one request bounded by kv.timeoutMs;
  // Unavailable at once while disconnected. A stream name outside
  // [A-Za-z0-9_-] (all Weft ever asks for) is NotFound without a request.
  Result<std::vector<StreamInfo>> listStreams(const std::string& prefix) override;
  Result<StreamInfo> streamInfo(const std::string& stream) override;
  Result<StreamMessage> getMessage(const std::string& stream, uint64_t seq) override;

 private:
  std::shared_ptr<NatsConnection> conn_;
};

class NatsKvStore : public KvStore {
 public:
  // Reads the settings and starts connecting. Fails only on configuration
  // errors; the message names the setting.
  static Result<std::unique_ptr<NatsKvStore>> create(const PluginContext& context);

  // Stops every watch, then closes the connection.
  ~NatsKvStore() override;

  const std::string& name() const override { return name_; }
  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& name,
                                               const BucketOptions& options) override;
  Status ping() override;
  ConnectionState state() const override { return conn_->state(); }
  KvMessaging* messaging() override { return &messaging_; }

 private:
  enum class CasGuard { Auto, Always, Off };

  NatsKvStore(std::shared_ptr<NatsConnection> conn, int replicas, CasGuard guard);
  // Whether compare-and-set on a bucket with `replicas` replicas is guarded:
  // reads the server's version once (logged) when the mode is auto.
  bool guardFor(int replicas);
  // The bucket's stream; NotFound when it does not exist.
  Result<BucketRef> describeBucket(const std::string& name, const Deadline& deadline);
  Status createBucket(const std::string& name, const BucketOptions& options,
                      const Deadline& deadline);

  const std::string name_ = "nats";
  std::shared_ptr<NatsConnection> conn_;
  const int replicas_;
  const CasGuard casGuard_;
  // Set by guardFor() under bucketsMu_: the server's version, once read.
  bool versionKnown_ = false;
  bool serverHasCasFix_ = false;
  std::shared_ptr<WatchRegistry> watches_;
  NatsMessaging messaging_;
  std::mutex bucketsMu_;  // also serialises bucket creation within this process
  std::map<std::string, std::shared_ptr<NatsKvBucket>> buckets_;
};

}  // namespace weft::nats_plugin
