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
  // Appends element `index`, or nothing when that element has gone (it is
  // then left out, with its comma).
  std::function<void(size_t index, std::string& out)> element;
  std::string tail;  // e.g. ],"total":12}

  // The whole document at once (short lists, tests).
  std::string renderAll() const {
    std::string out = head;
    bool any = false;
    for (size_t i = 0; i < count; ++i) appendElement(i, out, any);
    out += tail;
    return out;
  }

  // Appends element `index` with the comma it needs; `any`: whether an
  // element was written before (updated).
  void appendElement(size_t index, std::string& out, bool& any) const {
    const size_t mark = out.size();
    if (any) out += ',';
    const size_t start = out.size();
    element(index, out);
    if (out.size() == start) {
      out.resize(mark);
    } else {
      any = true;
    }
  }
};

}  // namespace weft
