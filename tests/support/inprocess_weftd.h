// weftd's real route table and request pipeline inside the test process, on
// the in-memory backend: the same installDomain() and /health + /ready wiring
// as server/app.cpp, behind an HttpServer on an ephemeral loopback port.
//
// For tests that must see the router itself (the OpenAPI cross-check walks
// Router::routes()) or capture the log with log::setSink (the sink is
// per-process, so a child weftd cannot be observed that way).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "domain.h"
#include "http/http_server.h"
#include "http/router.h"
#include "weft/config.h"
#include "weft/memory_kv.h"

namespace weft::testing {

class InProcessWeftd {
 public:
  // settings: "key=value" strings, passed to Config::load as --set options
  // (http.host is always 127.0.0.1).
  explicit InProcessWeftd(const std::vector<std::string>& settings = {});
  // Drains the server, stops the domain.
  ~InProcessWeftd();
  InProcessWeftd(const InProcessWeftd&) = delete;
  InProcessWeftd& operator=(const InProcessWeftd&) = delete;

  int port() const { return server_->port(); }
  const http::Router& router() const { return router_; }
  // The backend behind the (possibly wrapped) store.
  MemoryStore& memory() { return *memory_; }
  const Config& config() const { return config_; }

 private:
  static Config load(const std::vector<std::string>& settings);

  Config config_;
  std::shared_ptr<MemoryStore> memory_;
  std::atomic<int64_t> websocketConnections_{0};
  http::Router router_;
  AppContext context_;
  std::unique_ptr<Domain> domain_;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace weft::testing
