// A well-formed test plugin whose store answers Unavailable to everything.
// Built several times by tests/CMakeLists.txt:
//   WEFT_STUB_NAME          the descriptor's backend name
//   WEFT_STUB_CREATE_FAILS  create() refuses with a reason
//   WEFT_STUB_FINGERPRINT   a fingerprint other than this build's (stale headers)
// It exports weft_test_stub_destroy_count so the loader test can check that
// releasing the store goes through destroy().
#include <atomic>

#include "weft/plugin.h"

#ifndef WEFT_STUB_NAME
#error "WEFT_STUB_NAME must be defined"
#endif

namespace {

std::atomic<int> destroyCount{0};

class StubStore : public weft::KvStore {
 public:
  const std::string& name() const override { return name_; }
  weft::Result<std::shared_ptr<weft::KvBucket>> openBucket(const std::string&,
                                                           const weft::BucketOptions&) override {
    return weft::Status::unavailable("stub store");
  }
  weft::Status ping() override { return weft::Status::unavailable("stub store"); }
  weft::ConnectionState state() const override { return weft::ConnectionState::Disconnected; }

 private:
  const std::string name_ = WEFT_STUB_NAME;
};

weft::KvStore* createStub(const weft::PluginContext* context, std::string* error) {
#ifdef WEFT_STUB_CREATE_FAILS
  (void)context;
  *error = "stub plugin refuses: stub.setting is required";
  return nullptr;
#else
  // Proves the context reaches the plugin: the test passes stub.mustBe=yes.
  auto it = context->settings.find("stub.mustBe");
  if (it == context->settings.end() || it->second != "yes") {
    *error = "stub.mustBe is not 'yes'";
    return nullptr;
  }
  try {
    return new StubStore();
  } catch (...) {
    *error = "out of memory";
    return nullptr;
  }
#endif
}

void destroyStub(weft::KvStore* store) {
  delete store;
  ++destroyCount;
}

#ifdef WEFT_STUB_FINGERPRINT
constexpr const char* kFingerprint = WEFT_STUB_FINGERPRINT;  // a stale build
#else
constexpr const char* kFingerprint = WEFT_KV_ABI_FINGERPRINT;
#endif
const WeftKvPluginDescriptor kDescriptor = {WEFT_KV_ABI_VERSION, WEFT_STUB_NAME, &createStub,
                                            &destroyStub, kFingerprint};

}  // namespace

extern "C" __attribute__((visibility("default"))) const WeftKvPluginDescriptor*
weft_kv_plugin_entry(void) {
  return &kDescriptor;
}

extern "C" __attribute__((visibility("default"))) int weft_test_stub_destroy_count(void) {
  return destroyCount.load();
}
