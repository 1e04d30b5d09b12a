// Fuzz target: stored values. Anything may sit in a bucket (agents write the
// registry directly, and older or foreign writers may leave anything), so
// the decoders must reject garbage without crashing. Bytes ->
// AgentRegistry::decode, WorkQueue::decode, DeadLetter::decode,
// Targets::decode, and the REST rendering (rest::toJson) of every agent that
// decodes (it re-parses the cached prefix, so a decoder that accepts what it
// cannot render would crash here). WorkEntry::read, the replay's partial
// decode, must agree with the whole decode on every input.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api/rest_agents.h"
#include "fuzz_check.h"
#include "../support/work_entry_equal.h"
#include "weft/agent_registry.h"
#include "weft/clock.h"
#include "weft/dead_letters.h"
#include "weft/log.h"
#include "weft/memory_kv.h"
#include "weft/service_context.h"
#include "weft/targets.h"
#include "weft/work_queue.h"

namespace {

// Staleness needs the clock and stale threshold, so one registry is kept; it
// is never started: isStale reads no bucket.
struct Renderer {
  weft::ManualClock clock;
  weft::ServiceContext ctx;
  std::unique_ptr<weft::AgentRegistry> agents;
  Renderer() {
    ctx.store = weft::createMemoryStore();
    ctx.clock = &clock;
    agents = std::make_unique<weft::AgentRegistry>(ctx);
  }
};

Renderer& renderer() {
  static Renderer r;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  weft::log::setSink([](const std::string&) {});
  renderer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string value(reinterpret_cast<const char*>(data), size);

  if (auto agent = weft::AgentRegistry::decode(value, "default")) {
    weft::Json rendered = weft::rest::toJson(*agent, renderer().agents->isStale(*agent));
    WEFT_FUZZ_CHECK(rendered.isObject());
    // The rendered agent must itself survive a round trip (it is served).
    auto back = weft::Json::parse(rendered.dump(), 64);
    WEFT_FUZZ_CHECK(back.isOk() && *back == rendered);
  }
  if (auto item = weft::WorkQueue::decode(value)) {
    // The stored form is written back as it was read.
    const std::string encoded = item->encode();
    auto again = weft::WorkItem::decode(encoded);
    WEFT_FUZZ_CHECK(again && again->encode() == encoded);
  }
  WEFT_FUZZ_CHECK(weft::test::readAgreesWithDecode(value));
  (void)weft::DeadLetter::decode(value);
  (void)weft::Targets::decode(value, "default");
  return 0;
}
