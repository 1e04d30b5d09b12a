#include "support/inprocess_weftd.h"

#include <chrono>

#include "http/health.h"
#include "weft/log.h"

namespace weft::testing {

Config InProcessWeftd::load(const std::vector<std::string>& settings) {
  // Its store lives in memory: nothing to save views for (and the default
  // directory would be shared by every test process).
  std::vector<std::string> args = {"weftd", "--set", "http.host=127.0.0.1", "--set",
                                   "views.saveDir="};
  for (const std::string& s : settings) {
    args.push_back("--set");
    args.push_back(s);
  }
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  return Config::load(static_cast<int>(argv.size()), argv.data(), {});
}

InProcessWeftd::InProcessWeftd(const std::vector<std::string>& settings)
    : config_(load(settings)),
      memory_(createMemoryStore()),
      context_{
          config_,
          memory_,
          router_,
          http::ErrorMapping{"memory", static_cast<int>(config_.getInt("http.retryAfterSeconds"))},
          websocketConnections_,
          {},
          // Called on background threads: a test sees it in the log.
          [](const std::string& reason) {
            log::error("weftd domain reported a fatal error", {{"reason", reason}});
          }} {
  // The order of server/app.cpp: the domain first (it may wrap the store),
  // then /health and /ready on the final store, then serve.
  domain_ = installDomain(context_);
  http::addHealthRoutes(router_, {context_.store, &websocketConnections_,
                                  static_cast<int>(config_.getInt("http.retryAfterSeconds")),
                                  [d = domain_.get()] { return d->loading(); }});
  http::HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 8;
  options.settings.maxBodyBytes = static_cast<size_t>(config_.getInt("http.maxBodyBytes"));
  options.settings.corsOrigin = config_.getString("http.corsOrigin");
  options.settings.tokens = config_.getList("http.tokens");
  server_ = std::make_unique<http::HttpServer>(router_, options, context_.onRequest);
  server_->start();
}

InProcessWeftd::~InProcessWeftd() {
  domain_->beginShutdown();
  server_->shutdown(std::chrono::seconds(2));
  domain_->stop();
}

}  // namespace weft::testing
