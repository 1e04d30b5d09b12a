#include "support/faulty_kv.h"

namespace weft::test {
namespace {

class FaultyBucket : public KvBucket {
 public:
  FaultyBucket(FaultyStore& store, std::shared_ptr<KvBucket> inner)
      : store_(store), inner_(std::move(inner)) {}

  const std::string& name() const override { return inner_->name(); }

  Result<KvEntry> get(const std::string& key) override {
    return run<KvEntry>(KvOp::Get, [&] { return inner_->get(key); });
  }
  Result<std::vector<std::optional<KvEntry>>> getMany(const std::vector<std::string>& keys) override {
    return run<std::vector<std::optional<KvEntry>>>(KvOp::Get, [&] { return inner_->getMany(keys); });
  }
  Result<uint64_t> put(const std::string& key, const std::string& value) override {
    return run<uint64_t>(KvOp::Put, [&] { return inner_->put(key, value); });
  }
  Result<uint64_t> create(const std::string& key, const std::string& value) override {
    return run<uint64_t>(KvOp::Create, [&] { return inner_->create(key, value); });
  }
  Result<uint64_t> update(const std::string& key, const std::string& value,
                          uint64_t revision) override {
    return run<uint64_t>(KvOp::Update, [&] { return inner_->update(key, value, revision); });
  }
  Status erase(const std::string& key, uint64_t revision) override {
    Fault f;
    if (store_.shouldFail(KvOp::Erase, name(), f)) {
      if (f.applyFirst) inner_->erase(key, revision);
      return Status(f.code, "injected fault");
    }
    return inner_->erase(key, revision);
  }
  Result<std::vector<std::string>> keys(const std::string& prefix) override {
    return run<std::vector<std::string>>(KvOp::Keys, [&] { return inner_->keys(prefix); });
  }
  Result<std::vector<KvEntry>> scan(const std::string& prefix) override {
    return run<std::vector<KvEntry>>(KvOp::Scan, [&] { return inner_->scan(prefix); });
  }
  Result<std::unique_ptr<KvWatch>> watch(const std::string& prefix,
                                         WatchCallback callback) override {
    return inner_->watch(prefix, std::move(callback));
  }

 private:
  template <typename T, typename F>
  Result<T> run(KvOp op, F&& call) {
    Fault f;
    if (store_.shouldFail(op, name(), f)) {
      if (f.applyFirst) call();
      return Status(f.code, "injected fault");
    }
    return call();
  }

  FaultyStore& store_;
  std::shared_ptr<KvBucket> inner_;
};

}  // namespace

Result<std::shared_ptr<KvBucket>> FaultyStore::openBucket(const std::string& name,
                                                          const BucketOptions& options) {
  auto inner = inner_->openBucket(name, options);
  if (!inner) return inner.status();
  return std::shared_ptr<KvBucket>(std::make_shared<FaultyBucket>(*this, *inner));
}

}  // namespace weft::test
