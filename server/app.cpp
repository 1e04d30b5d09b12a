#include "app.h"

#include <Poco/Exception.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "domain.h"
#include "http/health.h"
#include "http/http_server.h"
#include "weft/config.h"
#include "weft/log.h"
#include "weft/plugin_loader.h"

namespace weft {
namespace {

// Collects the one reason the process stops: a signal (exit 0) or a fatal
// error (exit 1). The first request wins.
class ShutdownLatch {
 public:
  void request(int exitCode, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (requested_) return;
    requested_ = true;
    exitCode_ = exitCode;
    reason_ = reason;
    cv_.notify_all();
  }
  // Blocks until request(); returns the exit code.
  int wait(std::string& reason) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return requested_; });
    reason = reason_;
    return exitCode_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool requested_ = false;
  int exitCode_ = 0;
  std::string reason_;
};

sigset_t terminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

bool isLoopbackHost(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1" || host == "[::1]" ||
         host == "0:0:0:0:0:0:0:1";
}

// The effective configuration for the start-up log, without secrets.
// The storage plugin weftd runs on: its descriptor and the settings it
// declares (plugin_loader.h).
struct Backend {
  const WeftKvPluginDescriptor* plugin = nullptr;
  std::vector<PluginSetting> settings;

  bool isSecret(const std::string& key) const {
    for (const PluginSetting& s : settings) {
      if (s.key == key) return s.secret;
    }
    return false;
  }
};

std::vector<Config::BackendKey> backendKeys(const Backend& backend) {
  std::vector<Config::BackendKey> keys;
  for (const PluginSetting& s : backend.settings) {
    keys.push_back(Config::BackendKey{s.key, s.defaultValue, s.envAlias});
  }
  return keys;
}

// The --help section on backend keys: what each shipped plugin declares.
std::string backendHelp(const std::string& pluginDir) {
  std::string out = "\nBackend keys (declared by each storage plugin, read only when kv.backend names it):\n";
  for (const char* name : {"nats", "redis", "sqlite"}) {
    try {
      for (const PluginSetting& s : pluginSettings(openKvPlugin(name, pluginDir))) {
        out += "  " + s.key + " (default \"" + s.defaultValue + "\"" +
               (s.envAlias.empty() ? "" : ", also $" + s.envAlias) + ")\n      " + s.help + "\n";
      }
    } catch (const PluginLoadError& e) {
      out += "  " + std::string(name) + ".*: the plugin cannot be loaded here (" + e.what() + ")\n";
    }
  }
  return out;
}

log::Fields configSummary(const Config& config, const Backend& backend) {
  log::Fields fields;
  for (const auto& [key, value] : config.all()) {
    const bool secret = backend.isSecret(key) || key.find("token") != std::string::npos ||
                        key.find("pass") != std::string::npos ||
                        key.find("secret") != std::string::npos;
    if (secret) {
      fields.emplace_back(key, value.empty() ? "" : "***");
    } else if (key.find("url") != std::string::npos || key.find("Url") != std::string::npos) {
      fields.emplace_back(key, log::redactUrl(value));
    } else {
      fields.emplace_back(key, value);
    }
  }
  if (!config.sourceFile().empty()) fields.emplace_back("configFile", config.sourceFile());
  return fields;
}

http::HttpServerOptions serverOptions(const Config& config) {
  http::HttpServerOptions o;
  o.host = config.getString("http.host");
  o.port = static_cast<uint16_t>(config.getInt("http.port"));
  o.threads = static_cast<int>(config.getInt("http.threads"));
  o.maxConnections = config.getInt("http.maxConnections");
  o.idleTimeoutMs = config.getInt("http.idleTimeoutMs");
  o.headerTimeoutMs = config.getInt("http.headerTimeoutMs");
  o.bodyTimeoutMs = config.getInt("http.bodyTimeoutMs");
  o.settings.maxBodyBytes = static_cast<size_t>(config.getInt("http.maxBodyBytes"));
  o.settings.corsOrigin = config.getString("http.corsOrigin");
  o.settings.tokens = config.getList("http.tokens");
  return o;
}

// Everything after the configuration is loaded; returns the exit code.
int serve(const Config& config, const Backend& backendPlugin, ShutdownLatch& latch) {
  log::info("weftd starting", configSummary(config, backendPlugin));
  for (const std::string& warning : config.warnings()) log::warn(warning);

  const std::string host = config.getString("http.host");
  if (config.getList("http.tokens").empty() && !isLoopbackHost(host)) {
    log::warn(
        "THE API IS OPEN TO THE NETWORK WITHOUT AUTHENTICATION: no http.tokens are configured and "
        "http.host is not a loopback address. Set http.tokens (API_TOKENS) or bind to 127.0.0.1.",
        {{"host", host}});
  }

  // The backend. An unreachable server is not an error here: the store starts
  // disconnected and reconnects in the background.
  const std::string backend = config.getString("kv.backend");
  PluginContext pluginContext;
  pluginContext.settings = config.pluginSettings();  // kv.* and the plugin's own keys
  pluginContext.log = [backend](LogLevel level, const std::string& message) {
    log::write(level, message, {{"backend", backend}});
  };
  std::shared_ptr<KvStore> store;
  try {
    store = createKvStore(backendPlugin.plugin, pluginContext);
  } catch (const PluginLoadError& e) {
    std::fprintf(stderr, "weftd: %s\n", e.what());
    return 2;
  }
  log::info("backend loaded", {{"backend", store->name()}});

  const int retryAfter = static_cast<int>(config.getInt("http.retryAfterSeconds"));
  std::atomic<int64_t> websocketConnections{0};
  // Heap-held so the teardown below can release it before the store: its
  // handlers hold references to the store.
  auto routerOwner = std::make_unique<http::Router>();
  http::Router& router = *routerOwner;

  // Every HTTP and WebSocket connection is a file descriptor; the default
  // soft limit (often 1024) would refuse clients long before the configured
  // maximums.
  http::raiseOpenFileLimit(static_cast<uint64_t>(config.getInt("http.maxConnections") +
                                                 config.getInt("ws.maxConnections") + 1024));

  // Bind before the domain starts its background work, so a port in use
  // fails start-up at once; connections wait in the backlog until start().
  const http::HttpServerOptions options = serverOptions(config);
  std::unique_ptr<http::HttpServer> serverOwner;
  try {
    serverOwner = std::make_unique<http::HttpServer>(router, options);
    serverOwner->listen();
  } catch (const Poco::Exception& e) {
    // what() of a Poco exception is only its class name.
    log::error("cannot listen",
               {{"host", options.host}, {"port", options.port}, {"error", e.displayText()}});
    return 1;
  }
  http::HttpServer& server = *serverOwner;

  AppContext context{config,
                     store,
                     router,
                     http::ErrorMapping{store->name(), retryAfter},
                     websocketConnections,
                     {},
                     [&latch](const std::string& reason) {
                       log::error("fatal error, shutting down", {{"reason", reason}});
                       latch.request(1, reason);
                     }};
  std::unique_ptr<Domain> domain;
  try {
    domain = installDomain(context);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "weftd: %s\n", e.what());
    return 2;
  }
  if (!domain) throw std::logic_error("installDomain returned no domain");
  // After installDomain: it may have wrapped the store (metrics), and /ready's
  // ping should go through that wrapper like every other backend call.
  http::addHealthRoutes(router, {context.store, &websocketConnections, retryAfter,
                                 [d = domain.get()] { return d->loading(); }});
  server.setRequestObserver(context.onRequest);
  server.start();

  log::info("listening on " + options.host + ":" + std::to_string(server.port()),
            {{"host", options.host}, {"port", server.port()}, {"threads", options.threads}});

  std::string reason;
  const int exitCode = latch.wait(reason);
  log::info("shutting down", {{"reason", reason}});

  const auto drain = std::chrono::milliseconds(config.getInt("http.drainMs"));
  domain->beginShutdown();
  const bool drained = server.shutdown(drain);
  domain->stop();
  if (server.currentConnections() > 0) {
    // A handler is still inside the server after the abort; tearing the domain
    // and the store down under it could crash. Leave instead.
    log::error("requests still running after shutdown; exiting without cleanup");
    std::fflush(stderr);
    std::_Exit(exitCode);
  }
  // Release in dependency order; the last reference to the store goes last,
  // which calls the plugin's destroy() and closes the backend connection.
  serverOwner.reset();
  domain.reset();
  routerOwner.reset();
  context.store.reset();
  store.reset();
  log::info("stopped", {{"drained", drained}});
  return exitCode;
}

}  // namespace

int runWeftd(int argc, char** argv) {
  // Block the termination signals before any thread exists, so every thread
  // inherits the mask and only sigwait() below ever receives them (a handler
  // could do nothing useful in signal context anyway).
  const sigset_t signals = terminationSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client that disconnects mid-response must cost an error code, not the
  // process.
  signal(SIGPIPE, SIG_IGN);

  std::optional<Config> config;
  try {
    config = Config::load(argc, argv, Config::processEnvironment());
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "weftd: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weftd: cannot load the configuration: %s\n", e.what());
    return 2;
  }
  if (config->helpRequested()) {
    std::cout << Config::usage() << backendHelp("");
    std::cout.flush();
    return 0;
  }

  // The storage plugin, then the configuration again with its keys: their
  // defaults, environment names and file entries (docs/architecture.md).
  Backend backend;
  try {
    backend.plugin =
        openKvPlugin(config->getString("kv.backend"), config->getString("kv.plugin.dir"));
    backend.settings = pluginSettings(backend.plugin);
    config = Config::load(argc, argv, Config::processEnvironment(), backendKeys(backend));
  } catch (const PluginLoadError& e) {
    std::fprintf(stderr, "weftd: %s\n", e.what());
    return 2;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "weftd: %s\n", e.what());
    return 2;
  }

  // Both values were validated by Config::load.
  log::setLevel(log::parseLevel(config->getString("log.level")).value_or(LogLevel::Info));
  log::setFormat(log::parseFormat(config->getString("log.format")).value_or(log::Format::Json));

  ShutdownLatch latch;
  std::thread signalThread([&latch, signals] {
    int sig = 0;
    if (sigwait(&signals, &sig) == 0) {
      latch.request(0, sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
  });

  int exitCode = 1;
  try {
    exitCode = serve(*config, backend, latch);
  } catch (const Poco::Exception& e) {
    log::error("fatal error", {{"error", e.displayText()}});
    exitCode = 1;
  } catch (const std::exception& e) {
    log::error("fatal error", {{"error", e.what()}});
    exitCode = 1;
  } catch (...) {
    log::error("fatal error", {{"error", "unknown exception"}});
    exitCode = 1;
  }

  // Wake the signal thread if no signal came (start-up error, fatal error):
  // the signal is blocked, so it is delivered to sigwait, not to a handler.
  latch.request(exitCode, "exit");
  pthread_kill(signalThread.native_handle(), SIGTERM);
  signalThread.join();
  return exitCode;
}

}  // namespace weft
