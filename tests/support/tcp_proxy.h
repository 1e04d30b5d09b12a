// A tiny TCP proxy for connection-level fault tests: it listens on a free
// 127.0.0.1 port and forwards every accepted connection to 127.0.0.1:<target>,
// so a test can put it between weftd and a backend server and break the
// network in ways a killed or stopped server cannot:
//
//  * blackhole(true): nothing is read from any socket any more, in either
//    direction. Bytes pile up in the kernel buffers and the sockets stay
//    open, as when a network drops packets and TCP keeps retransmitting: the
//    peers see silence, not an error. New connections are still accepted (the
//    kernel completes the handshake) but not connected onwards until the
//    blackhole ends. blackhole(false) resumes forwarding where it stopped.
//  * resetAll(): every current connection pair is closed with an RST
//    (SO_LINGER 0), both towards the client and towards the server.
//  * refuse(true): every new connection is reset as soon as it is accepted.
//
// One poll(2) thread does all socket work; it is started by the constructor
// and joined by the destructor. The controls may be called from any thread
// and return once the proxy thread has applied them, so a test can rely on
// "after blackhole(true) returns, nothing more is forwarded".
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace weft::testing {

class TcpProxy {
 public:
  // Listens on a free loopback port at once (throws std::runtime_error when
  // it cannot). The target need not be up: a connection that cannot be
  // forwarded is reset.
  explicit TcpProxy(int targetPort);
  // Stops the thread and closes every socket (without RST).
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  int targetPort() const { return targetPort_; }

  void blackhole(bool on);
  void resetAll();
  void refuse(bool on);

  // Connections accepted so far, and pairs reset by resetAll() or refuse().
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t resets() const { return resets_.load(); }

 private:
  struct Loop;  // the proxy thread's state (tcp_proxy.cpp)

  // Bumps the control epoch, wakes the thread and waits until it has run a
  // loop iteration that saw the new epoch.
  void applyControls();
  void run();

  const int targetPort_;
  int port_ = 0;
  int listenFd_ = -1;
  int wakeRead_ = -1;
  int wakeWrite_ = -1;

  std::atomic<bool> blackhole_{false};
  std::atomic<bool> refuse_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> resets_{0};

  std::mutex mutex_;  // guards the epochs below
  std::condition_variable served_;
  uint64_t epoch_ = 0;        // bumped by every control call
  uint64_t servedEpoch_ = 0;  // the last epoch the thread has acted on
  uint64_t resetEpoch_ = 0;   // the epoch of the last resetAll() request

  std::thread thread_;
};

}  // namespace weft::testing
