// weftd's process lifecycle (docs/api.md §7.3).
//
// Start-up: load the configuration (ConfigError -> exit 2; --help prints the
// usage and exits 0), set up logging, load the backend plugin (PluginLoadError
// -> exit 2), register /health, /ready and the domain routes, then listen on
// http.host:http.port - also when the backend is unreachable (the store
// reconnects in the background; /ready reports 503 meanwhile).
//
// Shutdown on SIGINT/SIGTERM: Domain::beginShutdown() (WebSockets), stop
// accepting, finish in-flight requests for up to http.drainMs, abort the rest,
// Domain::stop(), release the store, exit 0. A fatal internal error (an
// exception during start-up, or AppContext::fatal) exits 1.
#pragma once

namespace weft {

// Runs weftd and returns the process exit code. Must be called from main()
// before any other thread exists: it blocks SIGINT and SIGTERM for the whole
// process so that only its own signal thread receives them.
int runWeftd(int argc, char** argv);

}  // namespace weft
