// Positional pagination shared by the list endpoints (docs/api.md §1.8).
#pragma once

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
  std::string cursorFor(size_t offset) const;
};

// Parses the leading decimal integer of s (optional sign), as JavaScript's
// parseInt does; nullopt when none.
std::optional<long long> parseLeadingInt(const std::string& s);

}  // namespace weft
