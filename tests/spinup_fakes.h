// Fake ProcessRunner and HttpCaller for the spin-up unit tests: they record
// every call and answer through a replaceable handler, so mechanism logic is
// tested without processes or sockets.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "weft/events.h"
#include "weft/spin_up_io.h"

namespace weft::test {

class FakeRunner : public ProcessRunner {
 public:
  using Handler = std::function<Result<ProcessOutcome>(const ProcessRequest&, const CancelToken&)>;

  // Default: a detached child that keeps running, or a waited one that
  // exits 0 with stdout "ok\n".
  Result<ProcessOutcome> run(const ProcessRequest& request, const CancelToken& cancel) override {
    Handler h;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      calls_.push_back(request);
      h = handler_;
    }
    if (h) return h(request, cancel);
    ProcessOutcome out;
    out.pid = 4242;
    if (request.detached) {
      out.running = true;
    } else {
      out.exited = true;
      out.exitCode = 0;
      out.stdoutData = "ok\n";
    }
    return out;
  }

  Status checkExecutable(const std::string& command, const std::string&) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return executables_.count(command) ? Status::ok()
                                       : Status::notFound("command not found: " + command);
  }
  bool isDirectory(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return directories_.count(path) > 0;
  }

  void setHandler(Handler h) {
    std::lock_guard<std::mutex> lock(mutex_);
    handler_ = std::move(h);
  }
  void addExecutable(const std::string& c) {
    std::lock_guard<std::mutex> lock(mutex_);
    executables_.insert(c);
  }
  void addDirectory(const std::string& d) {
    std::lock_guard<std::mutex> lock(mutex_);
    directories_.insert(d);
  }
  std::vector<ProcessRequest> calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  Handler handler_;
  std::vector<ProcessRequest> calls_;
  std::set<std::string> executables_, directories_;
};

class FakeHttp : public HttpCaller {
 public:
  using Handler = std::function<Result<HttpReply>(const HttpCall&, const CancelToken&)>;

  Result<HttpReply> call(const HttpCall& call, const CancelToken& cancel) override {
    Handler h;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      calls_.push_back(call);
      h = handler_;
    }
    if (h) return h(call, cancel);
    HttpReply reply;
    reply.status = 200;
    return reply;
  }
  void setHandler(Handler h) {
    std::lock_guard<std::mutex> lock(mutex_);
    handler_ = std::move(h);
  }
  std::vector<HttpCall> calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  Handler handler_;
  std::vector<HttpCall> calls_;
};

// Blocks until the token fires (or 10 s pass): a mechanism that never
// answers on its own.
inline void waitForCancel(const CancelToken& cancel) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cancel.cancelled() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Collects events from any thread.
class EventLog {
 public:
  void add(const Event& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(e);
  }
  std::vector<Event> all() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  std::vector<Event> named(const std::string& name) const {
    std::vector<Event> out;
    for (const auto& e : all()) {
      if (e.name == name) out.push_back(e);
    }
    return out;
  }
  size_t count(const std::string& name) const { return named(name).size(); }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

}  // namespace weft::test
