#include "metrics/weft_metrics.h"

#include <array>
#include <map>
#include <string_view>

#include "weft/services.h"
#include "app_context.h"
#include "weft/config.h"
#include "weft/log.h"

namespace weft {
namespace {

constexpr std::array<const char*, 6> kWorkStatuses = {"pending",   "assigned", "in-progress",
                                                      "completed", "failed",   "cancelled"};
constexpr std::array<const char*, 3> kAgentStatuses = {"online", "busy", "offline"};
constexpr std::array<KvOp, 7> kKvOps = {KvOp::Get,    KvOp::Put,  KvOp::Create, KvOp::Update,
                                        KvOp::Delete, KvOp::List, KvOp::Ping};
constexpr std::array<const char*, 3> kErrorKinds = {"timeout", "unavailable", "error"};
constexpr std::array<const char*, 5> kMechanisms = {"ssh", "github-actions", "local", "webhook",
                                                    "kubernetes"};
constexpr std::array<const char*, 3> kSpinUpOutcomes = {"success", "failed", "timeout"};
constexpr std::array<const char*, 7> kMethods = {"GET",   "HEAD",   "POST",   "PUT",
                                                 "PATCH", "DELETE", "OPTIONS"};

template <size_t N>
bool contains(const std::array<const char*, N>& set, std::string_view value) {
  for (const char* s : set) {
    if (value == s) return true;
  }
  return false;
}

// The index in kErrorKinds, or -1 for the outcomes that are not backend
// faults.
int errorKind(Code code) {
  switch (code) {
    case Code::Ok:
    case Code::NotFound:
    case Code::AlreadyExists:
    case Code::Conflict:
      return -1;
    case Code::Timeout:
      return 0;
    case Code::Unavailable:
      return 1;
    default:
      return 2;
  }
}

}  // namespace

WeftMetrics::WeftMetrics(std::string backend, std::chrono::milliseconds statePollInterval)
    : backend_(std::move(backend)), statePollInterval_(statePollInterval) {
  httpRequests_ = &registry_.counter(
      "weft_http_requests_total", "HTTP requests answered, by method, route template and status.",
      {"method", "route", "status"});
  httpDuration_ =
      &registry_.histogram("weft_http_request_duration_seconds",
                           "Time from receiving an HTTP request to having sent its response.",
                           {"method", "route", "status"});
  backendDuration_ =
      &registry_.histogram("weft_backend_operation_duration_seconds",
                           "Duration of storage backend operations.", {"backend", "op"});
  backendErrors_ = &registry_.counter(
      "weft_backend_errors_total",
      "Storage backend operations that failed, by kind (timeout, unavailable, error).",
      {"backend", "op", "kind"});
  registry_.callback("weft_backend_up",
                     "1 when the storage backend connection is up (last known state), else 0.",
                     metrics::Type::Gauge, {"backend"}, [this] {
                       std::lock_guard<std::mutex> lock(sourcesMutex_);
                       const bool up = store_ && store_->state() == ConnectionState::Connected;
                       return std::vector<metrics::Sample>{{{backend_}, up ? 1.0 : 0.0}};
                     });
  backendReconnects_ = &registry_.counter(
      "weft_backend_reconnects_total",
      "Times the storage backend connection came back after it was lost.", {"backend"});

  registry_.callback("weft_work_items",
                     "Work items by status, from this instance's view of the store.",
                     metrics::Type::Gauge, {"status"}, [this] {
                       // From the list index's counts: a scrape costs the
                       // same with a million stored items as with ten.
                       std::lock_guard<std::mutex> lock(sourcesMutex_);
                       std::vector<metrics::Sample> out;
                       for (const char* s : kWorkStatuses) {
                         WorkFilter byStatus;
                         byStatus.status = s;
                         const size_t n = services_ ? services_->work.count(byStatus) : 0;
                         out.push_back({{s}, static_cast<double>(n)});
                       }
                       return out;
                     });
  registry_.callback(
      "weft_agents", "Valid agent registry entries by stored status.", metrics::Type::Gauge,
      {"status"}, [this] {
        std::map<std::string, double> counts;
        for (const char* s : kAgentStatuses) counts[s] = 0;
        int extra = 0;
        std::lock_guard<std::mutex> lock(sourcesMutex_);
        if (services_) {
          services_->agents.view().forEach([&](const std::string&, const auto& agent) {
            std::string status = agent->status.empty() ? "unknown" : agent->status;
            auto it = counts.find(status);
            if (it == counts.end()) {
              // Agents write their own status: bound the label space.
              if (extra >= kMaxExtraAgentStatuses) {
                status = "other";
              } else {
                ++extra;
              }
              it = counts.emplace(status, 0.0).first;
            }
            it->second += 1;
          });
        }
        std::vector<metrics::Sample> out;
        for (const auto& [status, n] : counts) out.push_back({{status}, n});
        return out;
      });
  registry_.callback(
      "weft_agents_stale", "Agents whose last heartbeat is older than agents.staleAfterMs.",
      metrics::Type::Gauge, {}, [this] {
        double stale = 0;
        std::lock_guard<std::mutex> lock(sourcesMutex_);
        if (services_) {
          const int64_t now = services_->context.now();
          const int64_t window = services_->context.options.staleAfterMs;
          services_->agents.view().forEach([&](const std::string&, const auto& agent) {
            if (agent->isStale(now, window)) stale += 1;
          });
        }
        return std::vector<metrics::Sample>{{{}, stale}};
      });
  registry_.callback(
      "weft_idempotent_replays_total",
      "POST /api/work requests answered with the outcome of an earlier request with the same "
      "Idempotency-Key (they created nothing).",
      metrics::Type::Counter, {}, [this] {
        std::lock_guard<std::mutex> lock(sourcesMutex_);
        const double n = services_ ? static_cast<double>(services_->work.idempotentReplays()) : 0.0;
        return std::vector<metrics::Sample>{{{}, n}};
      });
  registry_.callback("weft_claims_waiting",
                     "Long-poll claims (waitMs) parked on this instance, waiting for an item.",
                     metrics::Type::Gauge, {}, [this] {
                       std::lock_guard<std::mutex> lock(sourcesMutex_);
                       const double n =
                           services_ ? static_cast<double>(services_->work.parkedClaims()) : 0.0;
                       return std::vector<metrics::Sample>{{{}, n}};
                     });
  registry_.callback("weft_dlq_items", "Dead-letter entries.", metrics::Type::Gauge, {}, [this] {
    std::lock_guard<std::mutex> lock(sourcesMutex_);
    const double n = services_ ? static_cast<double>(services_->deadLetters.view().size()) : 0.0;
    return std::vector<metrics::Sample>{{{}, n}};
  });
  registry_.callback(
      "weft_stats_drift_total",
      "Projects whose incrementally kept stats differed from a periodic recount (and were "
      "corrected), by source (agents, work, deadLetters, targets).",
      metrics::Type::Counter, {"source"}, [this] {
        std::map<std::string, uint64_t> drift{
            {"agents", 0}, {"work", 0}, {"deadLetters", 0}, {"targets", 0}};
        std::lock_guard<std::mutex> lock(sourcesMutex_);
        if (services_) {
          for (const auto& [source, n] : services_->stats.drift()) drift[source] = n;
        }
        std::vector<metrics::Sample> out;
        for (const auto& [source, n] : drift) out.push_back({{source}, static_cast<double>(n)});
        return out;
      });
  registry_.callback("weft_websocket_connections", "Open WebSocket connections.",
                     metrics::Type::Gauge, {}, [this] {
                       std::lock_guard<std::mutex> lock(sourcesMutex_);
                       const double n = websocketConnections_
                                            ? static_cast<double>(websocketConnections_->load())
                                            : 0.0;
                       return std::vector<metrics::Sample>{{{}, n}};
                     });
  spinups_ = &registry_.counter("weft_spinup_operations_total",
                                "Finished spin-up operations, by mechanism and outcome.",
                                {"mechanism", "outcome"});

  // Known label combinations start at zero, so rate() and absent() work from
  // the first scrape.
  static_assert(kKvOps.size() == kOps, "one entry per KvOp");
  for (KvOp op : kKvOps) {
    const auto i = static_cast<size_t>(op);
    opDuration_.at(i) = &backendDuration_->with({backend_, kvOpName(op)});
    for (size_t k = 0; k < kErrorKinds.size(); ++k) {
      opErrors_.at(i).at(k) = &backendErrors_->with({backend_, kvOpName(op), kErrorKinds[k]});
    }
  }
  backendReconnects_->with({backend_});
  for (const char* mechanism : kMechanisms) {
    for (const char* outcome : kSpinUpOutcomes) spinups_->with({mechanism, outcome});
  }
}

WeftMetrics::~WeftMetrics() {
  stop();
}

std::shared_ptr<KvStore> WeftMetrics::instrument(std::shared_ptr<KvStore> store) {
  {
    std::lock_guard<std::mutex> lock(sourcesMutex_);
    store_ = store;
  }
  watchState();
  return instrumentKvStore(std::move(store),
                           [this](const KvOpRecord& record) { observeKvOp(record); });
}

void WeftMetrics::observeRequest(const http::RequestRecord& record) {
  const std::string method =
      contains(kMethods, record.method) ? std::string(record.method) : std::string("other");
  const metrics::LabelValues labels{method, std::string(record.route),
                                    std::to_string(record.status)};
  httpRequests_->with(labels).inc();
  httpDuration_->with(labels).observe(record.seconds);
}

void WeftMetrics::observeKvOp(const KvOpRecord& record) {
  const auto op = static_cast<size_t>(record.op);
  if (op >= kOps) return;
  opDuration_[op]->observe(record.seconds);
  const int kind = errorKind(record.code);
  if (kind >= 0) opErrors_[op][static_cast<size_t>(kind)]->inc();
}

void WeftMetrics::recordSpinUp(const std::string& mechanism, const std::string& outcome) {
  spinups_
      ->with({contains(kMechanisms, mechanism) ? mechanism : "other",
              contains(kSpinUpOutcomes, outcome) ? outcome : "other"})
      .inc();
}

std::function<void(const std::string&, const std::string&)> WeftMetrics::spinUpRecorder() {
  return [this](const std::string& mechanism, const std::string& outcome) {
    recordSpinUp(mechanism, outcome);
  };
}

void WeftMetrics::attachServices(const Services* services) {
  std::lock_guard<std::mutex> lock(sourcesMutex_);
  services_ = services;
}

void WeftMetrics::attachWebSocketConnections(const std::atomic<int64_t>* connections) {
  std::lock_guard<std::mutex> lock(sourcesMutex_);
  websocketConnections_ = connections;
}

void WeftMetrics::stop() {
  {
    std::lock_guard<std::mutex> lock(tickerMutex_);
    stopping_ = true;
  }
  tickerCv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  attachServices(nullptr);
}

std::string WeftMetrics::render() const {
  return registry_.render();
}

void WeftMetrics::watchState() {
  std::lock_guard<std::mutex> lock(tickerMutex_);
  if (ticker_.joinable() || stopping_) return;
  ticker_ = std::thread([this] {
    try {
      std::unique_lock<std::mutex> lock(tickerMutex_);
      while (!stopping_) {
        lock.unlock();
        pollBackendState();
        lock.lock();
        tickerCv_.wait_for(lock, statePollInterval_, [this] { return stopping_; });
      }
    } catch (const std::exception& e) {
      // state() never throws by contract; this only guards the process.
      log::error("metrics state ticker stopped", {{"error", e.what()}});
    }
  });
}

void WeftMetrics::pollBackendState() {
  std::shared_ptr<KvStore> store;
  {
    std::lock_guard<std::mutex> lock(sourcesMutex_);
    store = store_;
  }
  if (!store) return;
  std::lock_guard<std::mutex> lock(pollMutex_);
  if (store->state() == ConnectionState::Connected) {
    if (everConnected_ && lost_) backendReconnects_->with({backend_}).inc();
    everConnected_ = true;
    lost_ = false;
  } else if (everConnected_) {
    lost_ = true;
  }
}

void addMetricsRoute(http::Router& router, WeftMetrics& metrics, bool requireAuth) {
  http::RouteOptions options;
  options.auth = requireAuth ? http::AuthPolicy::Required : http::AuthPolicy::Default;
  router.add(
      "GET", "/metrics",
      [&metrics](const http::ApiRequest&) {
        return http::ApiResponse::rawBody(200, metrics.render(), metrics::Registry::kContentType);
      },
      options);
}

std::unique_ptr<WeftMetrics> installMetrics(AppContext& ctx) {
  auto metrics = std::make_unique<WeftMetrics>(ctx.store->name());
  ctx.store = metrics->instrument(ctx.store);
  metrics->attachWebSocketConnections(&ctx.websocketConnections);
  WeftMetrics* m = metrics.get();
  http::RequestObserver previous = std::move(ctx.onRequest);
  ctx.onRequest = [m, previous](const http::RequestRecord& record) {
    m->observeRequest(record);
    if (previous) previous(record);
  };
  addMetricsRoute(ctx.router, *metrics, ctx.config.getBool("metrics.requireAuth"));
  return metrics;
}

}  // namespace weft
