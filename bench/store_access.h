// Opening a backend through the production plugin loader, for the baseline
// and for reading back what the crash rounds stored.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "weft/kv.h"
#include "weft/status.h"

namespace weft::bench {

// Loads weft-kv-<backend>.so, creates a store from settings and waits (up to
// waitMs) until it answers a ping. Plugin log lines at Warn and above go to
// stderr. Never throws: a load failure is an Internal status with the
// loader's message.
Result<std::shared_ptr<KvStore>> openStore(const std::string& backend, const std::string& pluginDir,
                                           const std::map<std::string, std::string>& settings,
                                           int waitMs);

// Opens bucket, retrying while the backend is unavailable, up to waitMs.
Result<std::shared_ptr<KvBucket>> openBucketWithin(KvStore& store, const std::string& bucket,
                                                   int waitMs);

}  // namespace weft::bench
