// One connection of the HTTP front end: arming and timers, reading and
// parsing, dispatching to the workers (or answering inline), a worker's
// finish, writing, hand-over of upgrades, and closing.
#include "http/http_server_impl.h"

namespace weft::http {

void HttpServer::Impl::arm(Conn& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events | EPOLLONESHOT;
  ev.data.u64 = c.key;
  ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
}

void HttpServer::Impl::setTimer(Conn& c, Timer timer, int64_t ms) {
  c.timer = timer;
  c.deadline = SteadyClock::now() + std::chrono::milliseconds(ms);
}

void HttpServer::Impl::onEvent(Conn& c) {
  switch (c.phase) {
    case Phase::Writing:
      flush(c);
      return;
    case Phase::Lingering: {
      char buf[kReadChunk];
      while (true) {
        const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
        if (got > 0) continue;
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          arm(c, EPOLLIN);
          return;
        }
        closeNow(c);  // EOF or error: the client has everything it will read
        return;
      }
    }
    case Phase::Reading:
      readFrom(c);
      return;
    case Phase::Busy:
      return;  // not armed while a worker has it
  }
}

void HttpServer::Impl::readFrom(Conn& c) {
  char buf[kReadChunk];
  size_t total = 0;
  while (total < kReadPerEvent) {
    const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
    if (got > 0) {
      c.in.append(buf, static_cast<size_t>(got));
      total += static_cast<size_t>(got);
      continue;
    }
    if (got == 0) {
      c.peerEof = true;
      break;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    closeNow(c);  // reset by the peer
    return;
  }
  parse(c);
}

void HttpServer::Impl::parse(Conn& c) {
  while (c.phase == Phase::Reading && !c.closed) {
    size_t used = 0;
    const RequestParser::Event event =
        c.parser.advance(std::string_view(c.in).substr(c.inPos), used);
    // Parsed bytes are dropped in one go, not per request, so many small
    // pipelined requests in one read cost linear time.
    c.inPos += used;
    if (c.inPos == c.in.size()) {
      c.in.clear();
      c.inPos = 0;
    } else if (c.inPos >= kReadChunk) {
      c.in.erase(0, c.inPos);
      c.inPos = 0;
    }
    switch (event) {
      case RequestParser::Event::NeedMore: {
        if (c.peerEof) {
          closeNow(c);
          return;
        }
        if (c.probe) {
          // The deadline set at accept stands, whatever arrives.
        } else if (c.parser.inBody()) {
          if (c.timer != Timer::Body) setTimer(c, Timer::Body, options_.bodyTimeoutMs);
        } else if (c.parser.headerStarted()) {
          if (c.timer != Timer::Header) setTimer(c, Timer::Header, options_.headerTimeoutMs);
        } else if (c.timer != Timer::Idle) {
          if (draining_) {
            closeNow(c);
            return;
          }
          setTimer(c, Timer::Idle, options_.idleTimeoutMs);
        }
        arm(c, EPOLLIN);
        return;
      }
      case RequestParser::Event::ContinueWanted: {
        const ssize_t sent = ::send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL);
        if (sent != static_cast<ssize_t>(sizeof kContinue - 1)) {
          closeNow(c);  // 25 bytes that do not fit: the client is gone
          return;
        }
        continue;
      }
      case RequestParser::Event::Error: {
        const ParseError& error = c.parser.error();
        if (error.status == 0) {
          closeNow(c);
          return;
        }
        startWrite(c, pipeline_.refuse(error.status, error.kind, error.message,
                                       error.close || draining_));
        break;
      }
      case RequestParser::Event::Request:
        dispatch(c, c.parser.take());
        break;
    }
  }
}

void HttpServer::Impl::dispatch(Conn& c, ParsedRequest request) {
  if (c.probe) {
    if (pipeline_.runsInline(request)) {
      startWrite(c, pipeline_.handle(std::move(request), true));
    } else {
      startWrite(c, refuseOverLimit(request.method));
    }
    return;
  }
  if (pipeline_.runsInline(request)) {
    startWrite(c, pipeline_.handle(std::move(request), draining_));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(jobsMutex_);
    if (jobs_.size() < static_cast<size_t>(std::max(1, options_.maxQueued))) {
      c.phase = Phase::Busy;
      c.timer = Timer::None;
      jobs_.push_back(Job{conns_.at(c.key), std::move(request), draining_.load()});
      jobsCv_.notify_one();
      return;
    }
  }
  startWrite(c, pipeline_.refuse(503, "ServiceUnavailable",
                                 "Too many requests waiting for a worker; retry later",
                                 draining_, request.method, {{"Retry-After", "1"}}));
}

void HttpServer::Impl::work() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(jobsMutex_);
      jobsCv_.wait(lock, [this] { return stopWorkers_ || !jobs_.empty(); });
      if (stopWorkers_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++busy_;
    }
    // busy_ counts requests being handled, including responses a handler
    // completes later (ApiResponse::later): stop() waits for those too.
    std::shared_ptr<PendingResponse> deferred;
    std::optional<EncodedReply> reply = pipeline_.handleOrDefer(
        std::move(job.request), job.closing,
        [&] {
          return RequestPipeline::ReplySink([this, conn = job.conn](EncodedReply later) {
            finish(conn, std::move(later));
            --busy_;
          });
        },
        &deferred);
    if (reply) {
      finish(job.conn, std::move(*reply));
      --busy_;
    } else if (deferred) {
      // The response comes later (a long-poll claim may wait 30 s): watch
      // the connection for the client going away meanwhile. Only hang-up is
      // armed, so pipelined input waits; finish() re-arms for reading.
      std::lock_guard<std::mutex> lock(job.conn->mu);
      Conn& c = *job.conn;
      if (!c.closed && c.phase == Phase::Busy) {
        c.deferred = deferred;
        arm(c, EPOLLRDHUP);
      }
    }
  }
}

void HttpServer::Impl::finish(const ConnPtr& conn, EncodedReply reply) {
  Handback handback;
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    Conn& c = *conn;
    if (c.closed) {
      // Closed under the handler (aborted shutdown): nobody to answer.
      if (reply.upgrade) reply.upgrade->abandon();
      return;
    }
    c.deferred.reset();
    const bool simple = !reply.close && !reply.upgrade && !reply.stream && !draining_ &&
                        !c.hasInput() && !c.peerEof && !c.parser.discarding();
    if (simple) {
      // The common case, done here: write, and arm the connection for the
      // next request.
      size_t sent = 0;
      bool broken = false;
      while (sent < reply.bytes.size()) {
        const ssize_t n = ::send(c.fd, reply.bytes.data() + sent, reply.bytes.size() - sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          broken = !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
          break;
        }
      }
      if (sent == reply.bytes.size()) {
        c.phase = Phase::Reading;
        setTimer(c, Timer::Idle, options_.idleTimeoutMs);
        arm(c, EPOLLIN);
        return;
      }
      reply.bytes.erase(0, sent);
      handback.broken = broken;
    }
    handback.conn = conn;
    handback.reply = std::move(reply);
  }
  {
    std::lock_guard<std::mutex> lock(handbacksMutex_);
    handbacks_.push_back(std::move(handback));
  }
  wake();
}

void HttpServer::Impl::collectHandbacks() {
  std::vector<Handback> ready;
  {
    std::lock_guard<std::mutex> lock(handbacksMutex_);
    ready.swap(handbacks_);
  }
  for (Handback& h : ready) {
    std::lock_guard<std::mutex> lock(h.conn->mu);
    if (h.conn->closed) {
      if (h.reply.upgrade) h.reply.upgrade->abandon();
      continue;
    }
    if (h.broken) {
      closeNow(*h.conn);
      continue;
    }
    startWrite(*h.conn, std::move(h.reply));
  }
}

void HttpServer::Impl::startWrite(Conn& c, EncodedReply reply) {
  c.out = std::move(reply.bytes);
  c.outPos = 0;
  c.closeAfterWrite = reply.close || draining_;
  c.upgrade = std::move(reply.upgrade);
  c.stream = std::move(reply.stream);
  c.chunked = reply.chunked;
  c.phase = Phase::Writing;
  setTimer(c, Timer::Write, options_.bodyTimeoutMs);
  flush(c);
}

void HttpServer::Impl::flush(Conn& c) {
  while (true) {
    while (c.outPos < c.out.size()) {
      const ssize_t sent =
          ::send(c.fd, c.out.data() + c.outPos, c.out.size() - c.outPos, MSG_NOSIGNAL);
      if (sent > 0) {
        c.outPos += static_cast<size_t>(sent);
        // The write deadline bounds a stall, not a long body read steadily.
        if (c.stream) setTimer(c, Timer::Write, options_.bodyTimeoutMs);
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        arm(c, EPOLLOUT);
        return;
      }
      closeNow(c);  // the peer went away
      return;
    }
    if (!c.stream) break;
    // The socket took everything: render the next piece of a streamed body.
    std::string piece;
    bool done = false;
    try {
      done = c.stream(piece);
    } catch (const std::exception& e) {
      log::error("rendering a streamed response failed", {{"error", e.what()}});
      closeNow(c);  // the client sees a truncated body, not a wrong one
      return;
    }
    c.out.clear();
    c.outPos = 0;
    if (!c.chunked) {
      c.out = std::move(piece);
    } else {
      if (!piece.empty()) {
        char size[24];
        std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
        c.out.reserve(piece.size() + 32);
        c.out += size;
        c.out += piece;
        c.out += "\r\n";
      }
      if (done) c.out += "0\r\n\r\n";
    }
    if (done) c.stream = nullptr;
  }
  afterWrite(c);
}

void HttpServer::Impl::afterWrite(Conn& c) {
  c.out.clear();
  c.out.shrink_to_fit();  // an idle connection keeps no response buffer
  c.outPos = 0;
  if (c.upgrade) {
    handOver(c);
    return;
  }
  if (c.closeAfterWrite) {
    closeGracefully(c);
    return;
  }
  c.phase = Phase::Reading;
  setTimer(c, Timer::Idle, options_.idleTimeoutMs);
  if (c.hasInput() || c.parser.discarding() || c.peerEof) {
    // Parsed by the loop, not here: parse() may be what called us, and
    // pipelined requests must not recurse.
    toParse_.push_back(c.key);
  } else if (draining_) {
    closeNow(c);
  } else {
    arm(c, EPOLLIN);
  }
}

void HttpServer::Impl::handOver(Conn& c) {
  std::shared_ptr<Upgrade> upgrade = std::move(c.upgrade);
  const int fd = c.fd;
  std::string buffered = c.in.substr(c.inPos);
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  c.closed = true;  // for this loop; the descriptor lives on in the socket
  conns_.erase(c.key);
  --open_;
  try {
    // The SocketImpl takes ownership of the descriptor.
    upgrade->adopt(Poco::Net::StreamSocket(new Poco::Net::StreamSocketImpl(fd)),
                   std::move(buffered));
  } catch (const std::exception& e) {
    log::warn("connection hand-over failed", {{"error", e.what()}});
  }
}

void HttpServer::Impl::closeGracefully(Conn& c) {
  // Closing a socket that still has unread input makes the kernel send a
  // reset, which can destroy the response before the client read it. So:
  // send FIN, read and drop what the client still sends until it closes or
  // kLingerTime passes, then close.
  ::shutdown(c.fd, SHUT_WR);
  c.phase = Phase::Lingering;
  ++lingering_;
  c.upgrade.reset();
  c.in.clear();
  c.inPos = 0;
  c.timer = Timer::Linger;
  c.deadline = SteadyClock::now() + kLingerTime;
  arm(c, EPOLLIN);
}

void HttpServer::Impl::closeNow(Conn& c) {
  if (c.closed) return;
  if (c.upgrade) c.upgrade->abandon();
  c.upgrade.reset();
  c.stream = nullptr;
  if (c.phase == Phase::Lingering) --lingering_;
  if (c.probe) --probes_;
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.closed = true;
  --open_;
  conns_.erase(c.key);  // the caller's reference keeps c alive
}


}  // namespace weft::http
