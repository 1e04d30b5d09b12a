// Helpers shared by the parts of the nats plugin: mapping nats.c status codes
// onto weft::Status, and the key / bucket / subject rules of NATS KV.
#pragma once

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

#include "weft/status.h"

namespace weft::nats_plugin {

// Maps a nats.c failure onto the storage error model. `what` says which
// operation failed ("get key x of bucket y"). The text of nats_GetLastError is
// deliberately not used to pick the code: it is thread-local and can be left
// over from an earlier failure.
Status fromNats(natsStatus status, const std::string& what);

// fromNats for a JetStream API call that also returned a jsErrCode. The
// server's "cannot store" answers become Unavailable with a plain message:
// storage limits or a full disk ("disk full"), and JetStream switched off,
// which nats-server does by itself after a write fails with ENOSPC (it stays
// off until the server restarts). Without these, such answers would be a
// bare NATS_ERR, i.e. Internal, i.e. HTTP 500.
// `serverText`: the server's description when the caller has it (an
// asynchronous acknowledgement); nullptr = this thread's nats_GetLastError.
Status fromJetStream(natsStatus status, jsErrCode code, const std::string& what,
                     const char* serverText = nullptr);

// True when NATS KV can store the key as given: non-empty, only
// [-/_=.A-Za-z0-9], no leading or trailing dot and no empty token. Keys are
// never encoded (agents read and write the same keys), so anything else is
// NotFound on reads and InvalidArgument on writes.
bool isValidKey(const std::string& key);

// Bucket names allowed by NATS KV: [A-Za-z0-9_-]+.
bool isValidBucketName(const std::string& name);

// The end of one interface call: a call that needs several round trips
// gives each only what is left of kv.timeoutMs.
class Deadline {
 public:
  explicit Deadline(int64_t timeoutMs)
      : end_(std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs)) {}
  // Milliseconds left, at least 1 (nats.c rejects a zero wait) unless expired.
  int64_t leftMs() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    end_ - std::chrono::steady_clock::now())
                    .count();
    return std::max<int64_t>(left, 0);
  }
  bool expired() const { return leftMs() <= 0; }

 private:
  std::chrono::steady_clock::time_point end_;
};

inline bool hasPrefix(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The watch filter (relative to the bucket) that covers every key starting
// with `prefix`, or "" for the whole bucket. NATS filters on whole subject
// tokens only, so the filter stops at the last dot of the prefix and the
// caller still filters by string prefix.
std::string keyFilterForPrefix(const std::string& prefix);

}  // namespace weft::nats_plugin
