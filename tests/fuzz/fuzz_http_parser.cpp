// Fuzz target: the HTTP/1.1 request parser (server/http/request_parser.h).
// The first byte picks how the rest is cut into reads (1 to 256 bytes each,
// as a network would deliver it) and small limits, so every limit and every
// read boundary is reached. Invariants:
//  * the parser always consumes or asks for more (no event loop can spin);
//  * a body never exceeds maxBodyBytes; a request has a method and a target;
//  * a closing error is final; a non-closing one is only ever a 413;
//  * every error has a status and a message;
//  * the same bytes give the same requests whatever the read boundaries
//    (checked against one read of everything).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "http/request_parser.h"

namespace {

namespace http = weft::http;

struct Outcome {
  std::vector<std::string> requests;  // method, target and body, joined
  std::vector<int> errors;
};

Outcome run(const std::string& bytes, size_t step, const http::ParserLimits& limits) {
  http::RequestParser parser(limits);
  Outcome out;
  std::string in;
  bool closed = false;
  for (size_t pos = 0; pos < bytes.size() && !closed; pos += step) {
    in.append(bytes, pos, step);
    for (int guard = 0;; ++guard) {
      WEFT_FUZZ_CHECK(guard < 100000);
      const size_t before = in.size();
      const http::RequestParser::Event e = parser.advance(in);
      WEFT_FUZZ_CHECK(in.size() <= before);
      if (e == http::RequestParser::Event::NeedMore) break;
      if (e == http::RequestParser::Event::Request) {
        http::ParsedRequest r = parser.take();
        WEFT_FUZZ_CHECK(!r.method.empty());
        WEFT_FUZZ_CHECK(!r.target.empty());
        WEFT_FUZZ_CHECK(r.body.size() <= limits.maxBodyBytes);
        out.requests.push_back(r.method + " " + r.target + " " + r.body);
      } else if (e == http::RequestParser::Event::Error) {
        const http::ParseError& error = parser.error();
        out.errors.push_back(error.status);
        if (error.close) {
          closed = true;
          break;
        }
        WEFT_FUZZ_CHECK(error.status == 413);
        WEFT_FUZZ_CHECK(!error.message.empty());
      }
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0];
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  http::ParserLimits limits;
  limits.maxHeaderBytes = 512;
  limits.maxHeaders = 8;
  limits.maxBodyBytes = 64;
  limits.maxDiscardBytes = 256;
  const Outcome cut = run(bytes, step, limits);
  const Outcome whole = run(bytes, bytes.size() + 1, limits);
  WEFT_FUZZ_CHECK(cut.requests == whole.requests);
  WEFT_FUZZ_CHECK(cut.errors == whole.errors);
  return 0;
}
