// An incremental HTTP/1.1 request parser (RFC 9112) for the event-loop front
// end (http_server.h). It owns no socket: the caller appends whatever bytes
// arrived and asks for the next event. It never blocks and never allocates
// beyond its limits, so a client can cost at most maxHeaderBytes plus
// maxBodyBytes of memory whatever it sends.
//
// What it enforces (each a clear 4xx/5xx with the error envelope, then the
// connection is closed unless noted):
//  * request line "METHOD SP target SP HTTP/1.x" (400; other versions 505);
//  * header lines "name: value", name a token, no space before the colon,
//    no obsolete line folding (400); request line plus headers at most
//    maxHeaderBytes and maxHeaders fields (431);
//  * framing: Transfer-Encoding together with Content-Length (400),
//    Content-Length values that differ or are not decimal digits (400), a
//    Transfer-Encoding other than "chunked" alone (501 for a coding we do not
//    implement, 400 when chunked is not the last one), malformed chunks (400);
//  * body size: over maxBodyBytes -> 413. A declared Content-Length over the
//    limit is answered at once; the body is then read and thrown away, up to
//    maxDiscardBytes, so the connection stays usable (beyond that it closes).
//    A chunked body is cut off the same way when it grows past the limit.
//
// A request with neither Content-Length nor Transfer-Encoding has no body
// (RFC 9112 §6.3). Identical repeated Content-Length values are accepted as
// one (§6.3 allows either).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft::http {

struct ParserLimits {
  size_t maxHeaderBytes = 32 * 1024;  // request line + header fields
  size_t maxHeaders = 100;
  size_t maxBodyBytes = 1048576;               // http.maxBodyBytes
  uint64_t maxDiscardBytes = 16 * 1024 * 1024;  // body thrown away after a 413
};

struct ParsedRequest {
  std::string method;
  std::string target;  // as sent
  int minorVersion = 1;  // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::string body;
  bool keepAlive = true;  // from the version and the Connection header
};

// A request the parser refuses. The caller answers with `status` and the
// error envelope {error: kind, message}; `close` says whether the connection
// must close after that response.
struct ParseError {
  int status = 400;
  std::string kind = "BadRequest";
  std::string message;
  bool close = true;
};

class RequestParser {
 public:
  enum class Event {
    NeedMore,        // every byte given so far is used; feed more
    Request,         // a whole request is ready: take()
    Error,           // error(): answer it; if !error().close, keep feeding
    ContinueWanted,  // headers ask "Expect: 100-continue" and the body is still due
  };

  explicit RequestParser(ParserLimits limits) : limits_(limits) {}

  // Consumes bytes from the front of `in` and returns the next event; `used`
  // is how many bytes it consumed (the caller drops them). After Request or
  // Error call it again for what follows (pipelined requests); after a
  // closing Error, stop. Linear in the bytes given.
  Event advance(std::string_view in, size_t& used);
  // The same on a buffer it erases the used bytes from (tests, fuzzing).
  Event advance(std::string& in);

  // The request completed by the last Request event (moved out).
  ParsedRequest take() { return std::move(request_); }
  const ParseError& error() const { return error_; }

  // Whether the parser holds part of a request: some of its header bytes
  // arrived but not yet all of them (headerStarted), or the headers are
  // complete and the body is still due (inBody). Both false between requests.
  bool headerStarted() const { return state_ == State::Head && headBytes_ > 0; }
  bool inBody() const { return state_ == State::Body || state_ == State::Chunks; }
  // After a 413 the rest of the body is read and dropped before the next request.
  bool discarding() const { return discard_; }

 private:
  enum class State { Head, Body, Chunks, Closed };

  Event fail(int status, std::string kind, std::string message, bool close = true);
  Event onHead(std::string_view head);
  Event finishRequest();
  Event step(std::string_view& in);
  Event advanceChunks(std::string_view& in);

  ParserLimits limits_;
  State state_ = State::Head;
  size_t headBytes_ = 0;  // bytes of the current head seen so far
  ParsedRequest request_;
  ParseError error_;
  uint64_t bodyLeft_ = 0;  // Content-Length body bytes still due
  bool discard_ = false;   // drop body bytes (after a 413)
  uint64_t discarded_ = 0;
  bool continueAsked_ = false;
  // Chunked-body state.
  enum class ChunkStep { Size, Data, DataEnd, Trailer };
  ChunkStep chunkStep_ = ChunkStep::Size;
  uint64_t chunkLeft_ = 0;
  size_t trailerBytes_ = 0;
};

}  // namespace weft::http
