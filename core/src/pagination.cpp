#include "weft/pagination.h"

#include <algorithm>
#include <map>

#include "weft/ids.h"

namespace weft {

std::optional<long long> parseLeadingInt(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  size_t start = i;
  long long v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (v < 1000000000000LL) v = v * 10 + (s[i] - '0');
    ++i;
  }
  if (i == start) return std::nullopt;
  return neg ? -v : v;
}

namespace {

std::string filterHashOf(const std::string& listName, const Json& filters) {
  // Sorted keys, so the hash does not depend on the order of query parameters.
  std::map<std::string, Json> sorted;
  sorted.emplace("list", Json(listName));
  if (filters.isObject()) {
    for (const auto& m : filters.asObject()) sorted.emplace(m.first, m.second);
  }
  Json canonical = Json::object();
  for (auto& kv : sorted) canonical.set(kv.first, kv.second);
  return sha256Hex(canonical.dump()).substr(0, 16);
}

Status badCursor(const std::string& reason) {
  return Status::invalidArgument("Invalid pagination cursor: " + reason);
}

}  // namespace

Result<Pager> Pager::make(const std::string& listName, const Json& filters,
                          const PageRequest& request) {
  Pager p;
  p.filterHash_ = filterHashOf(listName, filters);
  if (!request.limit && !request.cursor) return p;
  p.all_ = false;
  if (request.cursor) {
    std::string raw;
    if (!base64UrlDecode(*request.cursor, raw)) return badCursor("not base64url");
    auto parsed = Json::parse(raw, 4);
    if (!parsed || !parsed->isObject()) return badCursor("not a JSON object");
    const Json& offset = parsed->get("offset");
    const Json& limit = parsed->get("limit");
    const Json& hash = parsed->get("filterHash");
    if (!offset.isInteger() || offset.asInt() < 0) {
      return badCursor("offset must be a non-negative integer");
    }
    if (!limit.isInteger() || limit.asInt() < 1 || limit.asInt() > 100) {
      return badCursor("limit must be an integer between 1 and 100");
    }
    if (!hash.isString()) return badCursor("filterHash missing");
    if (hash.asString() != p.filterHash_) {
      return Status::invalidArgument(
          "Cursor filter mismatch - filters changed between requests. Start a new query.");
    }
    p.offset_ = static_cast<size_t>(offset.asInt());
    p.limit_ = static_cast<size_t>(limit.asInt());
    p.after_ = parsed->get("after");
    p.before_ = parsed->get("before");
    if (!p.after_.isNull() && !p.before_.isNull()) {
      return badCursor("after and before cannot both be given");
    }
  }
  if (request.limit) {
    long long v = parseLeadingInt(*request.limit).value_or(50);
    p.limit_ = static_cast<size_t>(std::clamp<long long>(v, 1, 100));
  }
  return p;
}

size_t Pager::begin(size_t total) const { return all_ ? 0 : std::min(offset_, total); }

size_t Pager::end(size_t total) const {
  return all_ ? total : std::min(total, begin(total) + limit_);
}

void Pager::setPageKeys(size_t count, Json first, Json last, bool hasMore) {
  keyed_ = true;
  keyedCount_ = count;
  firstKey_ = std::move(first);
  lastKey_ = std::move(last);
  keyedHasMore_ = hasMore;
}

std::string Pager::cursorFor(size_t offset, const char* anchorName, const Json& anchor) const {
  Json c = Json::object();
  c.set("offset", Json(static_cast<int64_t>(offset)));
  c.set("limit", Json(static_cast<int64_t>(limit_)));
  c.set("filterHash", Json(filterHash_));
  if (anchorName && !anchor.isNull()) c.set(anchorName, anchor);
  return base64UrlEncode(c.dump());
}

void Pager::writeMetadata(Json& body, size_t total) const {
  size_t b = begin(total), e = end(total);
  size_t count = e - b;
  bool hasMore = !all_ && b + count < total;
  if (keyed_ && !all_) {
    // The list served the page by key: it knows what the page holds and
    // whether anything follows; the offset is the position the client had.
    count = keyedCount_;
    hasMore = keyedHasMore_;
  }
  body.set("count", Json(static_cast<int64_t>(count)));
  body.set("total", Json(static_cast<int64_t>(total)));
  body.set("hasMore", Json(hasMore));
  if (keyed_ && !all_) {
    body.set("nextCursor", hasMore ? Json(cursorFor(offset_ + count, "after", lastKey_)) : Json());
    // A previous page that starts at 0 is cheap by position; a deeper one
    // ends just before this page's first item.
    body.set("prevCursor", offset_ == 0   ? Json()
                           : offset_ <= limit_ || firstKey_.isNull()
                               ? Json(cursorFor(0))
                               : Json(cursorFor(offset_ - limit_, "before", firstKey_)));
    return;
  }
  body.set("nextCursor", hasMore ? Json(cursorFor(b + count)) : Json());
  body.set("prevCursor",
           !all_ && offset_ > 0 ? Json(cursorFor(offset_ > limit_ ? offset_ - limit_ : 0)) : Json());
}

std::string Pager::listTail(size_t total) const {
  Json meta = Json::object();
  writeMetadata(meta, total);
  const std::string text = meta.dump();
  return text.size() > 2 ? "]," + text.substr(1) : "]}";
}

}  // namespace weft
