// Positional pagination shared by the list endpoints (docs/api.md §1.8).
#pragma once

#include <algorithm>
#include <optional>
#include <string>

#include "weft/json.h"
#include "weft/status.h"

namespace weft {

struct PageRequest {
  std::optional<std::string> limit;   // raw query value
  std::optional<std::string> cursor;  // raw query value
};

class Pager {
 public:
  // listName is "agents", "work", "targets" or "dlq"; filters holds the
  // active filters as string members. InvalidArgument with the spec's
  // messages for an undecodable cursor or a filter mismatch.
  static Result<Pager> make(const std::string& listName, const Json& filters,
                            const PageRequest& request);

  // The slice [begin, end) of a list of `total` items.
  size_t begin(size_t total) const;
  size_t end(size_t total) const;

  // Keyed positions, for a list kept in an ordered index. Such a list tells
  // the pager the sort keys of the first and last item of the page it served
  // (setPageKeys, with how many items it has and whether more follow); its
  // cursors then also carry the key next to the page they
  // point at, so the following request seeks to it instead of counting
  // `offset` items. The key is any JSON value the list chooses; a cursor
  // without one (the first page, or a cursor written by an older server)
  // still works by position.
  bool all() const { return all_; }
  size_t offset() const { return offset_; }
  size_t limit() const { return limit_; }
  // The page starts just after this key (from a nextCursor); null if none.
  const Json& after() const { return after_; }
  // The page ends just before this key (from a prevCursor); null if none.
  const Json& before() const { return before_; }
  void setPageKeys(size_t count, Json first, Json last, bool hasMore);
  // After setPageKeys: n items of the page were left out (deleted between
  // the index and the read), so `count` says what the page holds.
  void leaveOut(size_t n) { keyedCount_ -= std::min(n, keyedCount_); }
  // Writes count, total, hasMore, nextCursor, prevCursor into body.
  void writeMetadata(Json& body, size_t total) const;
  // The end of a streamed list document (json_list_stream.h): "]" and the
  // metadata members, e.g. `],"count":2,"total":2,...}`.
  std::string listTail(size_t total) const;

 private:
  bool all_ = true;
  size_t offset_ = 0;
  size_t limit_ = 50;
  std::string filterHash_;
  Json after_, before_;
  // Set by setPageKeys.
  bool keyed_ = false, keyedHasMore_ = false;
  size_t keyedCount_ = 0;
  Json firstKey_, lastKey_;
  std::string cursorFor(size_t offset, const char* anchorName = nullptr,
                        const Json& anchor = Json()) const;
};

// Parses the leading decimal integer of s (optional sign), as JavaScript's
// parseInt does; nullopt when none.
std::optional<long long> parseLeadingInt(const std::string& s);

}  // namespace weft
