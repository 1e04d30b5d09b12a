#include "support/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/net.h"

namespace weft::testing {
namespace {

void setNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Closes with an RST instead of a FIN: the peer's next read or write fails
// with ECONNRESET, as when a middlebox or a crashed host drops the flow.
void closeWithReset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

// A blocking connect is fine on loopback: it either completes through the
// target's accept backlog or is refused at once (even a SIGSTOPped server's
// kernel completes the handshake).
int connectTo(int port) {
  int fd = connectLoopback(port);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setNonBlocking(fd);
  return fd;
}

// One direction of a pair: bytes read from `from` and not yet written to `to`.
struct Direction {
  std::string pending;
  bool eof = false;       // `from` sent FIN; `to` gets a shutdown once pending is flushed
  bool shutDown = false;  // that shutdown was done
};

struct Pair {
  int client = -1;
  int server = -1;      // -1 until connected (deferred while blackholed)
  Direction up;         // client -> server
  Direction down;       // server -> client
  bool failed = false;  // an error on either side: reset both
  bool done() const { return failed || (up.shutDown && down.shutDown); }
};

}  // namespace

struct TcpProxy::Loop {
  std::vector<std::unique_ptr<Pair>> pairs;
};

TcpProxy::TcpProxy(int targetPort) : targetPort_(targetPort) {
  listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listenFd_ < 0) throw std::runtime_error(std::string("TcpProxy socket: ") + strerror(errno));
  sockaddr_in addr = loopbackAddress(0);
  socklen_t len = sizeof addr;
  if (::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listenFd_, 128) != 0 ||
      ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string error = strerror(errno);
    ::close(listenFd_);
    throw std::runtime_error("TcpProxy cannot listen on 127.0.0.1: " + error);
  }
  port_ = ntohs(addr.sin_port);
  setNonBlocking(listenFd_);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(listenFd_);
    throw std::runtime_error(std::string("TcpProxy pipe: ") + strerror(errno));
  }
  wakeRead_ = fds[0];
  wakeWrite_ = fds[1];
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stopping_ = true;
  char byte = 0;
  (void)!::write(wakeWrite_, &byte, 1);
  thread_.join();
  ::close(listenFd_);
  ::close(wakeRead_);
  ::close(wakeWrite_);
}

void TcpProxy::blackhole(bool on) {
  blackhole_ = on;
  applyControls();
}

void TcpProxy::refuse(bool on) {
  refuse_ = on;
  applyControls();
}

void TcpProxy::resetAll() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    resetEpoch_ = epoch_ + 1;  // the epoch applyControls() is about to create
  }
  applyControls();
}

void TcpProxy::applyControls() {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t mine = ++epoch_;
  char byte = 0;
  (void)!::write(wakeWrite_, &byte, 1);  // a full pipe already means "wake up"
  served_.wait(lock, [&] { return servedEpoch_ >= mine; });
}

void TcpProxy::run() {
  Loop loop;
  std::vector<pollfd> fds;
  std::vector<std::pair<Pair*, bool>> owners;  // fds[i + 2] -> (pair, is client side)
  char buffer[64 * 1024];

  auto resetPair = [&](Pair& p) {
    closeWithReset(p.client);
    closeWithReset(p.server);
    p.client = p.server = -1;
    p.failed = true;
    ++resets_;
  };
  // Moves what is readable from `from` into d.pending (only when it is
  // empty: that is the back-pressure), then flushes d.pending into `to`.
  auto pump = [&](Pair& p, int from, int to, Direction& d, short fromEvents, short toEvents) {
    if ((fromEvents & (POLLIN | POLLHUP | POLLERR)) && d.pending.empty() && !d.eof) {
      ssize_t n = ::read(from, buffer, sizeof buffer);
      if (n > 0) {
        d.pending.assign(buffer, static_cast<size_t>(n));
      } else if (n == 0) {
        d.eof = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        p.failed = true;
        return;
      }
    }
    if (!d.pending.empty() && (toEvents & POLLOUT || fromEvents)) {
      ssize_t n = ::send(to, d.pending.data(), d.pending.size(), MSG_NOSIGNAL);
      if (n > 0) {
        d.pending.erase(0, static_cast<size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        p.failed = true;
        return;
      }
    }
    if (d.eof && d.pending.empty() && !d.shutDown) {
      ::shutdown(to, SHUT_WR);
      d.shutDown = true;
    }
  };

  while (!stopping_) {
    // Controls first: everything below acts on flags at least as new as
    // `epoch`, which is what servedEpoch_ promises to the callers.
    uint64_t epoch;
    bool resetRequested;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      epoch = epoch_;
      resetRequested = resetEpoch_ > servedEpoch_;
    }
    const bool holed = blackhole_.load();
    if (resetRequested) {
      for (auto& p : loop.pairs) resetPair(*p);
    }
    // Connections accepted during a blackhole are connected onwards now.
    if (!holed) {
      for (auto& p : loop.pairs) {
        if (p->failed || p->server >= 0) continue;
        p->server = connectTo(targetPort_);
        if (p->server < 0) resetPair(*p);
      }
    }
    for (auto it = loop.pairs.begin(); it != loop.pairs.end();) {
      Pair& p = **it;
      if (p.done()) {
        if (p.failed) {
          closeWithReset(p.client);
          closeWithReset(p.server);
        } else {
          ::close(p.client);
          ::close(p.server);
        }
        it = loop.pairs.erase(it);
      } else {
        ++it;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      servedEpoch_ = epoch;
    }
    served_.notify_all();

    fds.clear();
    owners.clear();
    fds.push_back({wakeRead_, POLLIN, 0});
    fds.push_back({listenFd_, POLLIN, 0});
    // While blackholed no pair socket is polled at all: not reading is the
    // point, and polling would spin on POLLHUP from a peer that went away.
    if (!holed) {
      for (auto& p : loop.pairs) {
        auto events = [](const Direction& out, const Direction& in) {
          short e = 0;
          if (out.pending.empty() && !out.eof) e |= POLLIN;  // may read more
          if (!in.pending.empty()) e |= POLLOUT;             // has bytes to write
          return e;
        };
        fds.push_back({p->client, events(p->up, p->down), 0});
        owners.emplace_back(p.get(), true);
        fds.push_back({p->server, events(p->down, p->up), 0});
        owners.emplace_back(p.get(), false);
      }
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0) continue;  // EINTR

    if (fds[0].revents) {
      while (::read(wakeRead_, buffer, sizeof buffer) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        ++accepted_;
        if (refuse_.load()) {
          closeWithReset(fd);
          ++resets_;
          continue;
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto p = std::make_unique<Pair>();
        p->client = fd;
        loop.pairs.push_back(std::move(p));  // connected onwards at the top of the loop
      }
    }
    // The two entries of a pair are adjacent: client at even, server at odd.
    for (size_t i = 2; i + 1 < fds.size(); i += 2) {
      Pair& p = *owners[i - 2].first;
      const short c = fds[i].revents;
      const short s = fds[i + 1].revents;
      if (!c && !s) continue;
      pump(p, p.client, p.server, p.up, c, s);
      if (!p.failed) pump(p, p.server, p.client, p.down, s, c);
    }
  }
  for (auto& p : loop.pairs) {
    if (p->client >= 0) ::close(p->client);
    if (p->server >= 0) ::close(p->server);
  }
  // Wake any control caller still waiting (the destructor races nothing else,
  // but a caller must never hang on a stopped proxy).
  {
    std::lock_guard<std::mutex> lock(mutex_);
    servedEpoch_ = epoch_;
  }
  served_.notify_all();
}

}  // namespace weft::testing
