// The HttpCaller of weftd (weft/spin_up_io.h): Poco HTTPClientSession, or
// HTTPSClientSession with certificate and host name verification against the
// system CAs. Redirects are never followed.
//
// Deadline: Poco's timeouts apply per socket operation, so a server that
// drips bytes could hold a call far past its timeout. Each call therefore
// connects its socket itself and registers the descriptor with a watchdog
// thread, which shuts it down (shutdown(2), never close) at the call's
// deadline or when its CancelToken fires; a blocked read or write then ends
// at once. Name resolution (getaddrinfo) is not covered by the deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "weft/spin_up_io.h"

namespace weft {

class PocoHttpCaller : public HttpCaller {
 public:
  PocoHttpCaller();
  ~PocoHttpCaller() override;
  PocoHttpCaller(const PocoHttpCaller&) = delete;
  PocoHttpCaller& operator=(const PocoHttpCaller&) = delete;

  Result<HttpReply> call(const HttpCall& call, const CancelToken& cancel) override;

 private:
  uint64_t watch(std::chrono::steady_clock::time_point deadline, std::function<void()> onExpiry);
  void unwatch(uint64_t id);
  void watchdogLoop();

  struct Watched {
    std::chrono::steady_clock::time_point deadline;
    std::function<void()> onExpiry;
  };
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<uint64_t, Watched> watched_;
  uint64_t nextId_ = 0;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace weft
