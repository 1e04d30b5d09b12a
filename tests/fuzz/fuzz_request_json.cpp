// Fuzz target: request bodies. Bytes -> Json::parse(text, 32) (the request
// pipeline's depth limit), the dump()/parse() round trip, and, for an object,
// the domain paths a request body reaches: register, heartbeat, submit,
// claim, cancel-batch and shutdown-batch on the in-memory backend (agent
// bodies through their REST parsers, server/api/rest_agents.h).
//
// Invariants: no crash/UB/leak (sanitizers), and dump() of a parsed value
// parses back to an equal value. Domain errors are expected outcomes.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "api/rest_agents.h"
#include "api/rest_work.h"
#include "fuzz_check.h"
#include "weft/agent_registry.h"
#include "weft/clock.h"
#include "weft/dead_letters.h"
#include "weft/json.h"
#include "weft/log.h"
#include "weft/memory_kv.h"
#include "weft/service_context.h"
#include "weft/work_queue.h"

namespace {

using weft::Json;

// The services on one memory store, built like tests/service_fixture.h but
// without Catch2. No sweeper thread: the fuzzer drives everything itself.
struct Domain {
  weft::ManualClock clock;
  weft::ServiceContext ctx;
  std::unique_ptr<weft::AgentRegistry> agents;
  std::unique_ptr<weft::DeadLetters> dlq;
  std::unique_ptr<weft::WorkQueue> work;

  Domain() {
    ctx.store = weft::createMemoryStore();
    ctx.clock = &clock;
    agents = std::make_unique<weft::AgentRegistry>(ctx);
    dlq = std::make_unique<weft::DeadLetters>(ctx);
    work = std::make_unique<weft::WorkQueue>(ctx, *agents, *dlq);
    agents->start();
    dlq->start();
    work->start(0);
    // Bounded wait for the initial (empty) replay; the views are fed by watch.
    for (int i = 0; i < 2000; ++i) {
      if (agents->view().ready() && work->view().ready() && dlq->view().ready()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    WEFT_FUZZ_CHECK(!"services did not become ready");
  }
  ~Domain() {
    work->stop();
    dlq->stop();
    agents->stop();
  }
};

std::unique_ptr<Domain>& domain() {
  static std::unique_ptr<Domain> d;
  return d;
}

// Every input may add agents and work to the store; rebuilding the services
// now and then keeps a long run's memory (and per-input cost) bounded instead
// of growing until libFuzzer's RSS limit. Building per input would be too slow.
constexpr int kInputsPerDomain = 2000;
int inputsOnDomain = 0;

void exerciseDomain(Domain& d, const Json& body) {
  // Register first, so heartbeat/claim/shutdown have an agent to act on.
  std::string guid = body.getString("guid");
  if (auto request = weft::rest::parseRegisterRequest(body); request.isOk()) {
    if (auto reg = d.agents->registerAgent(*request); reg.isOk()) {
      guid = reg->agent->guid;
      WEFT_FUZZ_CHECK(weft::rest::toJson(*reg->agent, false).isObject());
    }
  }
  if (auto request = weft::rest::parseHeartbeatRequest(body); request.isOk()) {
    (void)d.agents->heartbeat(guid, *request);
  }
  // The work requests as the routes parse them (server/api/rest_work.h).
  if (auto submit = weft::rest::parseSubmitRequest(body)) (void)d.work->submit(*submit);
  // claim with the body as is, and with the registered guid filled in.
  if (auto claim = weft::rest::parseClaimRequest(body)) (void)d.work->claim(*claim);
  if (!guid.empty()) {
    Json claimBody = body;
    claimBody.set("agentGuid", guid);
    if (auto claim = weft::rest::parseClaimRequest(claimBody)) (void)d.work->claim(*claim);
  }
  if (auto cancel = weft::rest::parseCancelBatchRequest(body)) (void)d.work->cancelBatch(*cancel);
  if (auto request = weft::rest::parseShutdownBatchRequest(body); request.isOk()) {
    auto done = d.agents->shutdownBatch(
        *request, [&d](const std::string& g) { return d.work->hasActiveWork(g); },
        [](const weft::AgentRecord&) { return int64_t{0}; });
    if (done.isOk()) WEFT_FUZZ_CHECK(weft::rest::toJson(*done).isObject());
  }
  d.clock.advance(1000);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The services log every registration; at fuzzing speed that is noise.
  weft::log::setSink([](const std::string&) {});
  domain() = std::make_unique<Domain>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = Json::parse(text, 32);
  if (!parsed.isOk()) return 0;
  const Json& value = *parsed;

  // Round trip: what we write must read back as the same value.
  std::string dumped = value.dump();
  auto again = Json::parse(dumped, 64);
  if (!again.isOk()) {
    std::fprintf(stderr, "dump() not parseable: %s\n", dumped.c_str());
  }
  WEFT_FUZZ_CHECK(again.isOk());
  WEFT_FUZZ_CHECK(*again == value);
  // Not dump() == dumped: -0.0 is written "-0", which reads back as the
  // integer 0 (equal as a value, but written "0" the second time).

  if (!value.isObject()) return 0;
  if (!domain() || ++inputsOnDomain > kInputsPerDomain) {
    domain().reset();
    domain() = std::make_unique<Domain>();
    inputsOnDomain = 1;
  }
  exerciseDomain(*domain(), value);
  return 0;
}
