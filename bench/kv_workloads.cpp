#include "kv_workloads.h"

#include <memory>
#include <vector>

#include "load_driver.h"
#include "store_access.h"

namespace weft::bench {
namespace {

constexpr int kKeysPerThread = 1000;
constexpr uint64_t kKeys = 1000;  // read by get, written once before the runs

OpResult fromStatus(const Status& s) {
  OpResult op;
  op.ok = s.isOk();
  op.outcome = s.isOk() ? "ok" : codeName(s.code());
  return op;
}

std::string keyOf(const std::string& prefix, int t, uint64_t i) {
  return prefix + "." + std::to_string(t) + "." + std::to_string(i);
}

}  // namespace

Json runKvWorkloads(const KvOptions& o) {
  Json out = Json::object();
  out.set("backend", Json(o.backend));
  out.set("valueBytes", Json(o.valueBytes));
  auto store = openStore(o.backend, o.pluginDir, o.settings, 15000);
  if (!store.isOk()) {
    out.set("error", Json(store.status().toString()));
    return out;
  }
  auto bucketResult = openBucketWithin(**store, o.bucket, 15000);
  if (!bucketResult.isOk()) {
    out.set("error", Json("open bucket " + o.bucket + ": " + bucketResult.status().toString()));
    return out;
  }
  KvBucket& bucket = **bucketResult;
  const std::string value(static_cast<size_t>(o.valueBytes), 'v');
  const std::string prefix = "b" + o.runId;

  for (uint64_t i = 0; i < kKeys; ++i) {
    Status s = bucket.put(keyOf(prefix + "g", 0, i), value).status();
    if (!s.isOk()) {
      out.set("error", Json("prefill for get: " + s.toString()));
      return out;
    }
  }

  Json ops = Json::array();
  for (int threads : o.threadCounts) {
    LoadOptions lo;
    lo.threads = threads;
    lo.warmupMs = o.warmupMs;
    lo.durationMs = o.durationMs;
    auto run = [&](const char* name, const Operation& op) {
      Json j = Json::object();
      j.set("name", Json(name));
      Json measured = runLoad(lo, op).toJson();  // named: a temporary's member would dangle
      for (auto& member : measured.asObject()) {
        j.set(member.first, std::move(member.second));
      }
      ops.push(std::move(j));
    };
    const std::string p = prefix + "t" + std::to_string(threads);

    run("put", [&](int t, uint64_t seq) {
      return fromStatus(bucket.put(keyOf(p + "p", t, seq % kKeysPerThread), value).status());
    });
    run("get", [&](int, uint64_t seq) {
      return fromStatus(bucket.get(keyOf(prefix + "g", 0, (seq * 7919) % kKeys)).status());
    });
    run("create", [&](int t, uint64_t seq) {
      return fromStatus(bucket.create(keyOf(p + "c", t, seq), value).status());
    });
    // Each thread's CAS chain starts from a fresh create.
    std::vector<uint64_t> revisions(threads, 0);
    bool seeded = true;
    for (int t = 0; t < threads; ++t) {
      auto r = bucket.put(keyOf(p + "u", t, 0), value);
      if (!r.isOk()) {
        seeded = false;
        break;
      }
      revisions[t] = *r;
    }
    if (seeded) {
      run("update", [&](int t, uint64_t) {
        auto r = bucket.update(keyOf(p + "u", t, 0), value, revisions[t]);
        if (r.isOk()) revisions[t] = *r;
        return fromStatus(r.status());
      });
    }
  }
  out.set("ops", std::move(ops));
  return out;
}

}  // namespace weft::bench
