// Fuzz target: pagination input (docs/api.md §1.8). The first line of the input
// is the `limit` query value, the rest the `cursor`; a leading '-' / '~'
// byte drops the limit / cursor instead, so absent parameters are covered
// too. Bytes -> Pager::make("work", filters, {limit, cursor}) and, when it
// accepts, begin/end/writeMetadata on a few list sizes; plus
// parseLeadingInt and base64UrlDecode on the raw strings.
//
// Invariants: begin <= end <= total for any accepted page; base64url
// decode -> encode -> decode is stable.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_check.h"
#include "weft/ids.h"
#include "weft/json.h"
#include "weft/pagination.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  bool dropLimit = false, dropCursor = false;
  while (!input.empty() && (input[0] == '-' || input[0] == '~')) {
    (input[0] == '-' ? dropLimit : dropCursor) = true;
    input.erase(0, 1);
  }
  const size_t nl = input.find('\n');
  const std::string limit = input.substr(0, nl);
  const std::string cursor = nl == std::string::npos ? std::string() : input.substr(nl + 1);

  weft::PageRequest request;
  if (!dropLimit) request.limit = limit;
  if (!dropCursor) request.cursor = cursor;

  // Filters as the work list passes them: active filters as strings.
  weft::Json filters = weft::Json::object();
  filters.set("status", "pending");
  if (limit.size() % 2 == 0) filters.set("projectId", "default");

  if (auto pager = weft::Pager::make("work", filters, request); pager.isOk()) {
    for (size_t total : {size_t{0}, size_t{1}, size_t{49}, size_t{50}, size_t{51}, size_t{1000}}) {
      const size_t b = pager->begin(total), e = pager->end(total);
      WEFT_FUZZ_CHECK(b <= e);
      WEFT_FUZZ_CHECK(e <= total);
      weft::Json body = weft::Json::object();
      pager->writeMetadata(body, total);
      WEFT_FUZZ_CHECK(body.isObject());
    }
  }

  (void)weft::parseLeadingInt(limit);
  (void)weft::parseLeadingInt(cursor);

  std::string decoded;
  if (weft::base64UrlDecode(cursor, decoded)) {
    const std::string encoded = weft::base64UrlEncode(decoded);
    std::string again;
    WEFT_FUZZ_CHECK(weft::base64UrlDecode(encoded, again));
    WEFT_FUZZ_CHECK(again == decoded);
  }
  return 0;
}
