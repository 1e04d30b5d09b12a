// Helpers shared by the parts of the nats plugin: mapping nats.c status codes
// onto weft::Status, and the key / bucket / subject rules of NATS KV.
#pragma once

#include <nats/nats.h>

#include <string>

#include "weft/status.h"

namespace weft::nats_plugin {

// Maps a nats.c failure onto the storage error model. `what` says which
// operation failed ("get key x of bucket y"). The text of nats_GetLastError is
// deliberately not used to pick the code: it is thread-local and can be left
// over from an earlier failure.
Status fromNats(natsStatus status, const std::string& what);

// True when NATS KV can store the key as given: non-empty, only
// [-/_=.A-Za-z0-9], no leading or trailing dot and no empty token. Keys are
// never encoded (agents read and write the same keys), so anything else is
// NotFound on reads and InvalidArgument on writes.
bool isValidKey(const std::string& key);

// Bucket names allowed by NATS KV: [A-Za-z0-9_-]+.
bool isValidBucketName(const std::string& name);

inline bool hasPrefix(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The watch filter (relative to the bucket) that covers every key starting
// with `prefix`, or "" for the whole bucket. NATS filters on whole subject
// tokens only, so the filter stops at the last dot of the prefix and the
// caller still filters by string prefix.
std::string keyFilterForPrefix(const std::string& prefix);

}  // namespace weft::nats_plugin
