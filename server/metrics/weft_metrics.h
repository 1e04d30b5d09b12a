// weftd's metric catalogue (docs/api.md §2.1) and GET /metrics.
//
// Sources, and why none of them costs a backend round trip on a scrape:
//  * HTTP requests: the request pipeline reports every answered request
//    (AppContext::onRequest) with its route TEMPLATE, never the raw path; no
//    route -> "unmatched". Methods outside the standard set are counted as
//    "other", so a client cannot grow the label space.
//  * Backend operations: the store is wrapped in the measuring decorator
//    (instrumented_kv.h). Errors are counted by kind: timeout, unavailable, or
//    error (any other failure); NotFound, AlreadyExists and Conflict are
//    ordinary outcomes, not errors.
//  * weft_backend_up: the store's last known connection state (no I/O).
//    weft_backend_reconnects_total: a 1 s ticker watches that state and counts
//    each return to Connected after the connection was lost (an outage shorter
//    than a tick can go unnoticed; the first connect is not a reconnect).
//  * Work, agents, stale agents, DLQ: counted at scrape time from the
//    services' watch-fed views, so they keep their last values during an
//    outage. Agent statuses are the stored strings; beyond the usual three,
//    at most kMaxExtraAgentStatuses distinct values get their own label, the
//    rest are summed under "other", and an entry without a status counts as
//    "unknown".
//  * weft_claims_waiting: WorkQueue::parkedClaims() (long-poll claims).
//  * weft_websocket_connections: AppContext::websocketConnections.
//  * weft_spinup_operations_total: recordSpinUp(), called by the spin-up code.
//
// Thread-safety: every public method may be called from any thread, except
// that attachServices()/stop() must not race with the destruction of the
// services (call stop() before the services go away).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "http/request_handler.h"
#include "http/router.h"
#include "weft/instrumented_kv.h"
#include "weft/kv.h"
#include "weft/metrics.h"

namespace weft {

struct AppContext;
struct Services;

class WeftMetrics {
 public:
  static constexpr int kMaxExtraAgentStatuses = 16;

  // Declares every metric for the backend of that name. statePollInterval:
  // how often the backend's connection state is sampled for reconnects.
  explicit WeftMetrics(std::string backend,
                       std::chrono::milliseconds statePollInterval = std::chrono::seconds(1));
  ~WeftMetrics();
  WeftMetrics(const WeftMetrics&) = delete;
  WeftMetrics& operator=(const WeftMetrics&) = delete;

  // Returns store wrapped so that every operation is measured, and starts
  // watching store's connection state (weft_backend_up, reconnects). Call at
  // most once.
  std::shared_ptr<KvStore> instrument(std::shared_ptr<KvStore> store);

  // One answered HTTP request (the AppContext::onRequest hook).
  void observeRequest(const http::RequestRecord& record);
  // One backend operation (the decorator's observer).
  void observeKvOp(const KvOpRecord& record);
  // One finished spin-up operation. mechanism: ssh, github-actions, local,
  // webhook, kubernetes; outcome: success, failed, timeout. Anything else is
  // counted as "other" (a programming error, but never a label explosion).
  void recordSpinUp(const std::string& mechanism, const std::string& outcome);
  // recordSpinUp as a callable, for code that must not depend on this class.
  std::function<void(const std::string& mechanism, const std::string& outcome)> spinUpRecorder();

  // Gauge sources; nullptr detaches. The pointees must outlive the
  // attachment.
  void attachServices(const Services* services);
  void attachWebSocketConnections(const std::atomic<int64_t>* connections);

  // Stops the state ticker and detaches the services. Idempotent.
  void stop();

  // The exposition text (Prometheus text format 0.0.4).
  std::string render() const;

  // One sample of the backend's connection state (what the ticker does every
  // statePollInterval); public so tests can drive it without waiting.
  void pollBackendState();

  metrics::Registry& registry() { return registry_; }

 private:
  void watchState();

  const std::string backend_;
  metrics::Registry registry_;
  metrics::CounterFamily* httpRequests_;
  metrics::HistogramFamily* httpDuration_;
  metrics::HistogramFamily* backendDuration_;
  metrics::CounterFamily* backendErrors_;
  metrics::CounterFamily* backendReconnects_;
  metrics::CounterFamily* spinups_;
  // The children of every backend operation, resolved once: observeKvOp runs
  // on every storage call and should not build label vectors there.
  static constexpr size_t kOps = 7;  // KvOp values
  std::array<metrics::Histogram*, kOps> opDuration_{};
  std::array<std::array<metrics::Counter*, 3>, kOps> opErrors_{};  // timeout, unavailable, error

  // Guards the gauge sources against attach/detach during a scrape.
  mutable std::mutex sourcesMutex_;
  const Services* services_ = nullptr;
  const std::atomic<int64_t>* websocketConnections_ = nullptr;
  std::shared_ptr<KvStore> store_;  // the inner store, for its state()

  const std::chrono::milliseconds statePollInterval_;
  std::mutex tickerMutex_;
  std::condition_variable tickerCv_;
  bool stopping_ = false;
  std::thread ticker_;
  // The connection history seen by pollBackendState().
  std::mutex pollMutex_;
  bool everConnected_ = false;
  bool lost_ = false;
};

// Registers GET /metrics (public, or behind bearer auth when requireAuth).
// metrics must outlive the router's use of the route.
void addMetricsRoute(http::Router& router, WeftMetrics& metrics, bool requireAuth);

// The domain's hook, called once from installDomain before the services are
// built: creates the metrics, replaces ctx.store with the measuring decorator,
// chains ctx.onRequest, counts ctx.websocketConnections and registers
// GET /metrics (metrics.requireAuth). The caller then attaches the services
// with attachServices() and calls stop() before they are destroyed.
std::unique_ptr<WeftMetrics> installMetrics(AppContext& ctx);

}  // namespace weft
