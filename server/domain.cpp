// The domain wiring of weftd: the core services on the loaded store, and
// their routes.
#include "domain.h"

#include "api/routes.h"
#include "api/services.h"
#include "weft/config.h"
#include "weft/ids.h"
#include "weft/log.h"

namespace weft {
namespace {

class WeftDomain : public Domain {
 public:
  explicit WeftDomain(AppContext& ctx) : errors_(ctx.errors), services_(makeContext(ctx)) {
    registerApiRoutes(ctx.router, services_, errors_);
    services_.start();
  }

  void stop() override { services_.stop(); }

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
  Services services_;
};

}  // namespace

std::unique_ptr<Domain> installDomain(AppContext& ctx) {
  return std::make_unique<WeftDomain>(ctx);
}

}  // namespace weft
