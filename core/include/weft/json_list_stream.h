// A JSON document produced piece by piece: `head`, then `count` elements
// separated by commas, then `tail`. A long list (GET /api/work over 10,000
// items) is then never held in memory whole, neither as a JSON tree nor as
// one string: the HTTP layer renders it a few tens of KB at a time while the
// client reads (docs/http.md, "Long lists").
//
// `element` must be safe to call from another thread than the one that made
// the stream, after the call that made it returned: capture immutable
// snapshots (shared_ptr<const Record>), not references to changing state.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace weft {

struct JsonListStream {
  std::string head;  // e.g. {"workItems":[
  size_t count = 0;
  std::function<void(size_t index, std::string& out)> element;  // appends element `index`
  std::string tail;  // e.g. ],"total":12}

  // The whole document at once (short lists, tests).
  std::string renderAll() const {
    std::string out = head;
    for (size_t i = 0; i < count; ++i) {
      if (i > 0) out += ',';
      element(i, out);
    }
    out += tail;
    return out;
  }
};

}  // namespace weft
