#include "weft/instrumented_kv.h"

#include <chrono>
#include <utility>

namespace weft {
namespace {

using Clock = std::chrono::steady_clock;

// Shared by the store and its buckets, which may outlive the store object
// (a bucket is valid for the life of the store, and callers hold both).
struct Probe {
  KvOpObserver observer;

  template <typename F>
  auto measure(KvOp op, F&& call) const {
    const auto start = Clock::now();
    auto result = call();
    record(op, start, codeOf(result));
    return result;
  }

  void record(KvOp op, Clock::time_point start, Code code) const {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    try {
      observer(KvOpRecord{op, seconds, code});
    } catch (...) {
      // Measuring must never turn a storage result into a failure.
    }
  }

 private:
  static Code codeOf(const Status& s) { return s.code(); }
  template <typename T>
  static Code codeOf(const Result<T>& r) {
    return r.isOk() ? Code::Ok : r.code();
  }
};

class InstrumentedBucket : public KvBucket {
 public:
  InstrumentedBucket(std::shared_ptr<KvBucket> inner, std::shared_ptr<const Probe> probe)
      : inner_(std::move(inner)), probe_(std::move(probe)) {}

  const std::string& name() const override { return inner_->name(); }

  Result<KvEntry> get(const std::string& key) override {
    return probe_->measure(KvOp::Get, [&] { return inner_->get(key); });
  }
  // A batch counts as one get (its latency is the batch's).
  Result<std::vector<std::optional<KvEntry>>> getMany(const std::vector<std::string>& keys) override {
    return probe_->measure(KvOp::Get, [&] { return inner_->getMany(keys); });
  }
  Result<uint64_t> put(const std::string& key, const std::string& value) override {
    return probe_->measure(KvOp::Put, [&] { return inner_->put(key, value); });
  }
  Result<uint64_t> create(const std::string& key, const std::string& value) override {
    return probe_->measure(KvOp::Create, [&] { return inner_->create(key, value); });
  }
  void createAsync(const std::string& key, const std::string& value, CreateDone done) override {
    inner_->createAsync(key, value,
                        [probe = probe_, start = Clock::now(),
                         done = std::move(done)](Result<uint64_t> written) {
                          probe->record(KvOp::Create, start,
                                        written.isOk() ? Code::Ok : written.code());
                          done(std::move(written));
                        });
  }
  Result<uint64_t> update(const std::string& key, const std::string& value,
                          uint64_t expectedRevision) override {
    return probe_->measure(KvOp::Update,
                           [&] { return inner_->update(key, value, expectedRevision); });
  }
  Status erase(const std::string& key, uint64_t expectedRevision) override {
    return probe_->measure(KvOp::Delete, [&] { return inner_->erase(key, expectedRevision); });
  }
  Result<std::vector<std::string>> keys(const std::string& prefix) override {
    return probe_->measure(KvOp::List, [&] { return inner_->keys(prefix); });
  }
  Result<std::vector<KvEntry>> scan(const std::string& prefix) override {
    return probe_->measure(KvOp::List, [&] { return inner_->scan(prefix); });
  }
  Result<std::unique_ptr<KvWatch>> watch(const std::string& prefix,
                                         WatchCallback callback) override {
    return inner_->watch(prefix, std::move(callback));
  }
  Result<std::string> resumeToken() override { return inner_->resumeToken(); }
  Result<std::unique_ptr<KvWatch>> watchFrom(const std::string& prefix, const std::string& token,
                                             uint64_t after, WatchCallback callback) override {
    return inner_->watchFrom(prefix, token, after, std::move(callback));
  }

 private:
  const std::shared_ptr<KvBucket> inner_;
  const std::shared_ptr<const Probe> probe_;
};

class InstrumentedStore : public KvStore {
 public:
  InstrumentedStore(std::shared_ptr<KvStore> inner, KvOpObserver observer)
      : inner_(std::move(inner)), probe_(std::make_shared<Probe>(Probe{std::move(observer)})) {}

  const std::string& name() const override { return inner_->name(); }

  Result<std::shared_ptr<KvBucket>> openBucket(const std::string& name,
                                               const BucketOptions& options) override {
    auto opened = inner_->openBucket(name, options);
    if (!opened) return opened.status();
    return std::shared_ptr<KvBucket>(
        std::make_shared<InstrumentedBucket>(std::move(opened.value()), probe_));
  }

  Status ping() override {
    return probe_->measure(KvOp::Ping, [&] { return inner_->ping(); });
  }

  ConnectionState state() const override { return inner_->state(); }

  KvMessaging* messaging() override { return inner_->messaging(); }

 private:
  const std::shared_ptr<KvStore> inner_;
  const std::shared_ptr<const Probe> probe_;
};

}  // namespace

const char* kvOpName(KvOp op) {
  switch (op) {
    case KvOp::Get:
      return "get";
    case KvOp::Put:
      return "put";
    case KvOp::Create:
      return "create";
    case KvOp::Update:
      return "update";
    case KvOp::Delete:
      return "delete";
    case KvOp::List:
      return "list";
    case KvOp::Ping:
      return "ping";
  }
  return "unknown";
}

std::shared_ptr<KvStore> instrumentKvStore(std::shared_ptr<KvStore> inner, KvOpObserver observer) {
  if (!observer) return inner;
  return std::make_shared<InstrumentedStore>(std::move(inner), std::move(observer));
}

}  // namespace weft
