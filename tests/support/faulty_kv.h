// A KvStore decorator that injects faults: the Nth call of an operation
// fails with a chosen code, either before reaching the backend or after it
// (a lost acknowledgement: the write happened, the caller sees a Timeout).
// Used to prove that no failed write leaves a work item half-moved.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "weft/kv.h"

namespace weft::test {

enum class KvOp { Get, Put, Create, Update, Erase, Keys, Scan };

struct Fault {
  KvOp op;
  std::string bucket;      // "" = any bucket
  int nth = 1;             // the nth matching call from now (1 = the next one)
  Code code = Code::Unavailable;
  bool applyFirst = false; // perform the operation, then report the failure
};

class FaultyStore : public KvStore {
 public:
  explicit FaultyStore(std::shared_ptr<KvStore> inner) : inner_(std::move(inner)) {}

  void inject(Fault fault) {
    std::lock_guard<std::mutex> lock(mutex_);
    faults_.push_back(Pending{fault, fault.nth});
  }
  int triggered() const { return triggered_.load(); }

  // Called by the buckets: whether this call fails, and how.
  bool shouldFail(KvOp op, const std::string& bucket, Fault& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (it->fault.op != op || (!it->fault.bucket.empty() && it->fault.bucket != bucket)) continue;
      if (--it->remaining == 0) {
        out = it->fault;
        faults_.erase(it);
        ++triggered_;
        return true;
      }
    }
    return false;
  }

  const std::string& name() const override { return inner_->name(); }
  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& name,
                                               const BucketOptions& options) override;
  Status ping() override { return inner_->ping(); }
  ConnectionState state() const override { return inner_->state(); }

 private:
  struct Pending {
    Fault fault;
    int remaining;
  };
  std::shared_ptr<KvStore> inner_;
  std::mutex mutex_;
  std::vector<Pending> faults_;
  std::atomic<int> triggered_{0};
};

}  // namespace weft::test
