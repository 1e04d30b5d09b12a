// The domain wiring of weftd: the core services on the loaded store, and
// their routes.
#include "domain.h"

#include "api/routes.h"
#include "docs/docs_routes.h"
#include "metrics/weft_metrics.h"
#include "spinup/poco_http_caller.h"
#include "ui/ui_routes.h"
#include "spinup/posix_process_runner.h"
#include "weft/config.h"
#include "weft/ids.h"
#include "weft/log.h"
#include "weft/services.h"
#include "ws/ws_module.h"

namespace weft {
namespace {

// The spin-up settings with the real outbound implementations.
SpinUpSetup realSpinUp(const Config& config) {
  SpinUpSetup setup = spinUpSetupFrom(config);
  setup.runner = std::make_shared<PosixProcessRunner>();
  setup.http = std::make_shared<PocoHttpCaller>();
  return setup;
}

class WeftDomain : public Domain {
 public:
  // metrics_ is built first: it replaces ctx.store with the measuring
  // decorator that the services (and /ready) then use, and adds /metrics.
  explicit WeftDomain(AppContext& ctx)
      : errors_(ctx.errors),
        metrics_(installMetrics(ctx)),
        services_(makeContext(ctx), realSpinUp(ctx.config)) {
    registerApiRoutes(ctx.router, services_, errors_);
    metrics_->attachServices(&services_);  // gauges read the services' views
    docs::addDocsRoutes(ctx.router);
    ui::addDashboardRoutes(ctx.router);  // GET /, /ui and its assets
    // Live events + GET /api/ws: adds view listeners, so before start().
    ws_ = std::make_unique<ws::WebSocketModule>(ctx, services_);
    // Spin-up: target:* and spin-up:* events into the hub.
    services_.targets.setEventSink([this](Event e) { ws_->events().emit(std::move(e)); });
    // weft_spinup_operations_total{mechanism, outcome}: success, failed or timeout.
    services_.targets.spinUp().setOutcomeObserver(
        [record = metrics_->spinUpRecorder()](const SpinUpOperation& op) {
          record(op.mechanism, op.status == "success" ? "success"
                               : op.status == "timeout" ? "timeout"
                                                        : "failed");
        });
    services_.start();
  }

  std::string loading() const override { return services_.loading(); }

  void beginShutdown() override {
    ws_->beginShutdown();           // WebSockets: close 1001
    services_.work.endClaimWaits();  // waiting claims: 204 now, none wait from here on
  }

  void stop() override {
    ws_->stop();  // waits up to 5 s after beginShutdown() for the closes
    metrics_->stop();  // detaches the services before they go away
    services_.stop();
  }

 private:
  static ServiceContext makeContext(const AppContext& ctx) {
    ServiceContext context;
    context.store = ctx.store;
    context.options = coreOptionsFrom(ctx.config);
    context.instanceId = newUuid();
    log::info("domain ready", {{"instanceId", context.instanceId},
                               {"defaultProject", context.options.defaultProject}});
    return context;
  }

  http::ErrorMapping errors_;
  std::unique_ptr<WeftMetrics> metrics_;  // declared before services_ (see above)
  // Before services_, so it outlives the views whose listeners call into it.
  std::unique_ptr<ws::WebSocketModule> ws_;
  Services services_;
};

}  // namespace

std::unique_ptr<Domain> installDomain(AppContext& ctx) {
  return std::make_unique<WeftDomain>(ctx);
}

}  // namespace weft
