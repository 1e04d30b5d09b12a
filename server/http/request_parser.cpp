#include "http/request_parser.h"

#include <algorithm>
#include <cctype>

#include "http/api_types.h"

namespace weft::http {

namespace {

// RFC 9110 §5.6.2 tchar.
bool isTokenChar(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return isTokenChar(static_cast<unsigned char>(c)); });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Calls f(element) for each non-empty element of a comma-separated list.
template <typename F>
void forEachListElement(std::string_view value, F f) {
  while (true) {
    const size_t comma = value.find(',');
    const std::string_view element = trimOws(value.substr(0, comma));
    if (!element.empty()) f(element);
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

// Decimal digits only, at most 18 of them (no sign, no overflow).
bool parseLength(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

// Splits off the next line (without its LF and an optional CR before it).
// False when no LF is in `rest`.
bool nextLine(std::string_view& rest, std::string_view& line) {
  const size_t lf = rest.find('\n');
  if (lf == std::string_view::npos) return false;
  line = rest.substr(0, lf);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  rest.remove_prefix(lf + 1);
  return true;
}

constexpr size_t kMaxChunkLine = 4096;  // chunk size plus extensions

}  // namespace

RequestParser::Event RequestParser::fail(int status, std::string kind, std::string message,
                                         bool close) {
  error_.status = status;
  error_.kind = std::move(kind);
  error_.message = std::move(message);
  error_.close = close;
  if (close) state_ = State::Closed;
  return Event::Error;
}

RequestParser::Event RequestParser::finishRequest() {
  state_ = State::Head;
  headBytes_ = 0;
  return Event::Request;
}

RequestParser::Event RequestParser::advance(std::string& in) {
  size_t used = 0;
  const Event e = advance(std::string_view(in), used);
  in.erase(0, used);
  return e;
}

RequestParser::Event RequestParser::advance(std::string_view input, size_t& used) {
  std::string_view in = input;
  const Event e = step(in);
  used = input.size() - in.size();
  return e;
}

RequestParser::Event RequestParser::step(std::string_view& in) {
  while (true) {
    switch (state_) {
      case State::Closed:
        in.remove_prefix(in.size());
        return Event::Error;

      case State::Head: {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        if (headBytes_ == 0) {
          size_t skip = 0;
          while (skip < in.size() && (in[skip] == '\r' || in[skip] == '\n')) ++skip;
          in.remove_prefix(skip);
          if (in.empty()) return Event::NeedMore;
        }
        // The head ends at the first empty line: CRLF CRLF, or LF LF.
        const size_t from = headBytes_ > 3 ? headBytes_ - 3 : 0;
        size_t end = std::string::npos;
        size_t endLen = 0;
        for (size_t i = in.find('\n', from); i != std::string_view::npos;
             i = in.find('\n', i + 1)) {
          if (i + 1 < in.size() && in[i + 1] == '\n') {
            end = i;
            endLen = 2;
            break;
          }
          if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') {
            end = i;
            endLen = 3;
            break;
          }
        }
        if (end == std::string::npos) {
          headBytes_ = in.size();
          if (headBytes_ > limits_.maxHeaderBytes) {
            return fail(431, "RequestHeaderFieldsTooLarge",
                        "Request line and headers exceed " +
                            std::to_string(limits_.maxHeaderBytes) + " bytes");
          }
          return Event::NeedMore;
        }
        if (end + endLen > limits_.maxHeaderBytes) {
          return fail(431, "RequestHeaderFieldsTooLarge",
                      "Request line and headers exceed " + std::to_string(limits_.maxHeaderBytes) +
                          " bytes");
        }
        const std::string head(in.substr(0, end + 1));
        in.remove_prefix(end + endLen);
        headBytes_ = 0;
        const Event e = onHead(head);
        if (e == Event::NeedMore) continue;  // a body follows
        if (e == Event::ContinueWanted && !in.empty()) continue;  // the body is already here
        return e;
      }

      case State::Body: {
        if (in.empty()) return Event::NeedMore;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(bodyLeft_, in.size()));
        if (!discard_) request_.body.append(in.data(), n);
        in.remove_prefix(n);
        bodyLeft_ -= n;
        if (bodyLeft_ > 0) return Event::NeedMore;
        if (discard_) {
          discard_ = false;
          state_ = State::Head;
          headBytes_ = 0;
          continue;
        }
        return finishRequest();
      }

      case State::Chunks: {
        const Event e = advanceChunks(in);
        if (e == Event::Request && discard_) {
          // The end of a body that was refused with 413: nothing to hand on.
          discard_ = false;
          continue;
        }
        return e;
      }
    }
  }
}

RequestParser::Event RequestParser::advanceChunks(std::string_view& in) {
  // A refused (413) chunked body is read and dropped only up to
  // maxDiscardBytes in all; beyond that the connection closes without
  // another answer. Checked before and after each piece, so the outcome does
  // not depend on how the bytes were cut into reads.
  auto discardOverflow = [this] { return discard_ && discarded_ > limits_.maxDiscardBytes; };
  if (discardOverflow()) return fail(0, "", "", true);
  while (true) {
    switch (chunkStep_) {
      case ChunkStep::Size: {
        const size_t lf = in.find('\n');
        if (lf == std::string_view::npos) {
          if (in.size() > kMaxChunkLine) return fail(400, "BadRequest", "Chunk size line too long");
          return Event::NeedMore;
        }
        if (lf > kMaxChunkLine) return fail(400, "BadRequest", "Chunk size line too long");
        std::string_view line(in.data(), lf);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const std::string_view size = trimOws(line.substr(0, line.find(';')));
        if (size.empty() || size.size() > 15) {
          return fail(400, "BadRequest", "Malformed chunk size");
        }
        uint64_t value = 0;
        for (char c : size) {
          const int d = std::isdigit(static_cast<unsigned char>(c))
                            ? c - '0'
                            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                            : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
          if (d < 0) return fail(400, "BadRequest", "Malformed chunk size");
          value = value * 16 + static_cast<uint64_t>(d);
        }
        in.remove_prefix(lf + 1);
        if (value == 0) {
          chunkStep_ = ChunkStep::Trailer;
          trailerBytes_ = 0;
          continue;
        }
        chunkLeft_ = value;
        chunkStep_ = ChunkStep::Data;
        continue;
      }
      case ChunkStep::Data: {
        if (in.empty()) return Event::NeedMore;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(chunkLeft_, in.size()));
        chunkLeft_ -= n;
        if (discard_) {
          discarded_ += n;
          in.remove_prefix(n);
          if (discardOverflow()) return fail(0, "", "", true);
        } else if (request_.body.size() + n > limits_.maxBodyBytes) {
          in.remove_prefix(n);
          discard_ = true;
          discarded_ = request_.body.size() + n;  // the whole body so far counts
          request_.body.clear();
          if (chunkLeft_ == 0) chunkStep_ = ChunkStep::DataEnd;
          return fail(413, "PayloadTooLarge",
                      "Request body exceeds " + std::to_string(limits_.maxBodyBytes) + " bytes",
                      /*close=*/continueAsked_);
        } else {
          request_.body.append(in.data(), n);
          in.remove_prefix(n);
        }
        if (chunkLeft_ == 0) chunkStep_ = ChunkStep::DataEnd;
        continue;
      }
      case ChunkStep::DataEnd: {
        if (in.empty()) return Event::NeedMore;
        if (in[0] == '\n') {
          in.remove_prefix(1);
        } else if (in[0] == '\r') {
          if (in.size() < 2) return Event::NeedMore;
          if (in[1] != '\n') return fail(400, "BadRequest", "Malformed chunk: CRLF expected");
          in.remove_prefix(2);
        } else {
          return fail(400, "BadRequest", "Malformed chunk: CRLF expected");
        }
        chunkStep_ = ChunkStep::Size;
        continue;
      }
      case ChunkStep::Trailer: {
        // Trailer fields are read and ignored, up to the header limit.
        std::string_view line;
        while (true) {
          std::string_view rest = in;
          if (!nextLine(rest, line)) break;
          trailerBytes_ += in.size() - rest.size();
          in = rest;
          if (trailerBytes_ > limits_.maxHeaderBytes) {
            return fail(431, "RequestHeaderFieldsTooLarge", "Chunked trailer section too large");
          }
          if (line.empty()) {
            chunkStep_ = ChunkStep::Size;
            return finishRequest();
          }
        }
        if (trailerBytes_ + in.size() > limits_.maxHeaderBytes) {
          return fail(431, "RequestHeaderFieldsTooLarge", "Chunked trailer section too large");
        }
        return Event::NeedMore;
      }
    }
  }
}

RequestParser::Event RequestParser::onHead(std::string_view head) {
  request_ = ParsedRequest{};
  discard_ = false;
  continueAsked_ = false;
  std::string_view rest = head;
  std::string_view line;
  nextLine(rest, line);

  // Request line: method SP request-target SP HTTP-version.
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return fail(400, "BadRequest", "Malformed request line");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!isToken(method)) return fail(400, "BadRequest", "Malformed request method");
  if (target.empty()) return fail(400, "BadRequest", "Empty request target");
  for (char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return fail(400, "BadRequest", "Malformed request target");
  }
  if (version.size() != 8 || version.compare(0, 5, "HTTP/") != 0 || version[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(version[5])) ||
      !std::isdigit(static_cast<unsigned char>(version[7]))) {
    return fail(400, "BadRequest", "Malformed HTTP version");
  }
  if (version[5] != '1') {
    return fail(505, "HTTPVersionNotSupported", "Only HTTP/1.0 and HTTP/1.1 are supported");
  }
  request_.method.assign(method);
  request_.target.assign(target);
  request_.minorVersion = version[7] - '0';

  // Header fields.
  bool haveLength = false;
  uint64_t length = 0;
  std::vector<std::string> codings;
  bool connectionClose = false;
  bool connectionKeepAlive = false;
  bool expectContinue = false;
  while (nextLine(rest, line)) {
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') {
      return fail(400, "BadRequest", "Obsolete header line folding is not accepted");
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "BadRequest", "Malformed header line");
    const std::string_view name = line.substr(0, colon);
    if (!isToken(name)) {
      return fail(400, "BadRequest", "Malformed header name '" + std::string(name.substr(0, 64)) + "'");
    }
    const std::string_view value = trimOws(line.substr(colon + 1));
    for (char c : value) {
      if (c == '\0' || c == '\r' || c == '\n') {
        return fail(400, "BadRequest", "Invalid character in header " + std::string(name));
      }
    }
    if (request_.headers.size() >= limits_.maxHeaders) {
      return fail(431, "RequestHeaderFieldsTooLarge",
                  "More than " + std::to_string(limits_.maxHeaders) + " header fields");
    }
    if (equalsIgnoreCase(name, "Content-Length")) {
      bool bad = false;
      bool any = false;
      forEachListElement(value, [&](std::string_view element) {
        any = true;
        uint64_t v = 0;
        if (!parseLength(element, v)) {
          bad = true;
        } else if (haveLength && v != length) {
          bad = true;
        } else {
          haveLength = true;
          length = v;
        }
      });
      if (bad || !any) {
        return fail(400, "BadRequest",
                    "Content-Length must be one non-negative decimal number; got '" +
                        std::string(value.substr(0, 64)) + "'");
      }
    } else if (equalsIgnoreCase(name, "Transfer-Encoding")) {
      forEachListElement(value, [&](std::string_view e) { codings.push_back(lower(e)); });
      if (codings.empty()) return fail(400, "BadRequest", "Empty Transfer-Encoding");
    } else if (equalsIgnoreCase(name, "Connection")) {
      forEachListElement(value, [&](std::string_view e) {
        if (equalsIgnoreCase(e, "close")) connectionClose = true;
        if (equalsIgnoreCase(e, "keep-alive")) connectionKeepAlive = true;
      });
    } else if (equalsIgnoreCase(name, "Expect")) {
      if (!equalsIgnoreCase(value, "100-continue")) {
        return fail(417, "ExpectationFailed", "Only 'Expect: 100-continue' is supported");
      }
      expectContinue = true;
    }
    request_.headers.emplace_back(std::string(name), std::string(value));
  }

  request_.keepAlive = request_.minorVersion >= 1 ? !connectionClose
                                                  : connectionKeepAlive && !connectionClose;

  // Framing (RFC 9112 §6.1, §6.3).
  if (!codings.empty()) {
    if (haveLength) {
      return fail(400, "BadRequest",
                  "A request must not carry both Content-Length and Transfer-Encoding");
    }
    if (request_.minorVersion == 0) {
      return fail(400, "BadRequest", "Transfer-Encoding is not allowed in HTTP/1.0");
    }
    if (codings.back() != "chunked") {
      return fail(400, "BadRequest", "Transfer-Encoding must end with chunked");
    }
    if (codings.size() > 1) {
      return fail(501, "NotImplemented", "Only Transfer-Encoding: chunked is supported");
    }
    continueAsked_ = expectContinue;
    state_ = State::Chunks;
    chunkStep_ = ChunkStep::Size;
    chunkLeft_ = 0;
    discarded_ = 0;
    return expectContinue ? Event::ContinueWanted : Event::NeedMore;
  }
  if (!haveLength || length == 0) return finishRequest();
  if (length > limits_.maxBodyBytes) {
    // With 100-continue the client may never send the body; and a body over
    // maxDiscardBytes is not worth reading. Both close after the answer.
    const bool close = expectContinue || length > limits_.maxDiscardBytes;
    if (!close) {
      discard_ = true;
      bodyLeft_ = length;
      state_ = State::Body;
    }
    return fail(413, "PayloadTooLarge",
                "Request body exceeds " + std::to_string(limits_.maxBodyBytes) + " bytes", close);
  }
  request_.body.reserve(static_cast<size_t>(length));
  bodyLeft_ = length;
  state_ = State::Body;
  return expectContinue ? Event::ContinueWanted : Event::NeedMore;
}

}  // namespace weft::http
