// What every core service is built from: the store, the clock and the
// settings that shape the domain rules. Services never see HTTP.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "weft/clock.h"
#include "weft/kv.h"
#include "weft/retry_policy.h"

namespace weft {

// Bucket names (docs/api.md §6.2). agent-registry is fixed: agents write it directly.
inline constexpr const char* kAgentBucket = "agent-registry";
inline constexpr const char* kWorkBucket = "weft-work";
inline constexpr const char* kDlqBucket = "weft-dlq";
inline constexpr const char* kTargetBucket = "weft-targets";
inline constexpr const char* kTargetNameBucket = "weft-target-names";
inline constexpr const char* kIdempotencyBucket = "weft-idempotency";

struct CoreOptions {
  std::string defaultProject = "default";
  int64_t staleAfterMs = 180000;
  bool markStaleOffline = false;
  int64_t registryMaxAgeMs = 86400000;
  int64_t idleTimeoutMs = 300000;
  int64_t idleCheckIntervalMs = 60000;
  int64_t maxAttempts = 3;
  int64_t leaseMs = 300000;
  int64_t sweepIntervalMs = 5000;
  int64_t retentionMs = 86400000;
  int64_t dlqRetentionMs = 604800000;
  // How long an Idempotency-Key of POST /api/work is remembered (capped at
  // retentionMs, so the item a key names is never purged before the key).
  int64_t idempotencyRetentionMs = 86400000;
  int64_t statsVerifyIntervalMs = 300000;  // 0 = never
  // Where the work and dead-letter views are saved (views.saveDir; "" =
  // never) and how often while they change (views.saveIntervalMs).
  std::string viewSaveDir;
  int64_t viewSaveIntervalMs = 300000;
  bool spinupOnSubmit = true;
  int64_t timeoutMs = 2000;  // kv.timeoutMs: the deadline of one request's backend work
  RetryPolicy retry;  // work.retry*: the wait before a failed item's next attempt
};

struct ServiceContext {
  std::shared_ptr<KvStore> store;
  const Clock* clock = &SystemClock::instance();
  CoreOptions options;
  // This weftd instance (the senderGuid of agent inbox messages).
  std::string instanceId;

  int64_t now() const { return clock->nowMs(); }
  // Unavailable at once while the backend is known to be down, so requests
  // fail fast instead of waiting for a timeout.
  Status checkConnected() const {
    if (store->state() != ConnectionState::Connected) {
      return Status::unavailable("not connected");
    }
    return Status::ok();
  }
};

}  // namespace weft
