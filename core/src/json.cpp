#include "weft/json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

namespace weft {

Json::Json(double d) : type_(Type::Number), double_(d) {
  if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.2e18) {
    // Keep the double representation for output, but remember integrality
    // through isInteger(), so 5.0 validates as an integer like JSON clients
    // expect (Number.isInteger(5.0) is true).
    int_ = static_cast<int64_t>(d);
  }
}

bool Json::isInteger() const {
  if (type_ != Type::Number) return false;
  if (isInt_) return true;
  return std::isfinite(double_) && std::trunc(double_) == double_ && std::fabs(double_) < 9.2e18;
}

namespace {

const Json kNull;

class Parser {
 public:
  Parser(std::string_view text, int maxDepth, Json::KeepKey keep = nullptr,
         Json::Spans* spans = nullptr)
      : s_(text), maxDepth_(maxDepth), keep_(keep), spans_(spans) {}

  // Of a valid array: its element count, and the text of the last one.
  size_t arrayShape(std::string_view* last) {
    *last = std::string_view();
    size_t n = 0;
    skipWs();
    if (pos_ >= s_.size() || s_[pos_] != '[') return 0;
    ++pos_;
    skipWs();
    if (pos_ < s_.size() && s_[pos_] == ']') return 0;
    while (pos_ < s_.size()) {
      skipWs();
      const size_t from = pos_;
      if (!skipValue(0)) return n;
      *last = s_.substr(from, pos_ - from);
      ++n;
      skipWs();
      if (pos_ >= s_.size() || s_[pos_] != ',') break;
      ++pos_;
    }
    return n;
  }

  Result<Json> run() {
    Json value;
    skipWs();
    // keep_ applies to the members of a top-level object only.
    const bool ok = keep_ && pos_ < s_.size() && s_[pos_] == '{' ? parseObject(value, 1, keep_)
                                                                  : parseValue(value, 0);
    if (!ok) return Status::invalidArgument(error_);
    skipWs();
    if (pos_ != s_.size()) return Status::invalidArgument(at("unexpected trailing characters"));
    return value;
  }

 private:
  std::string at(const char* what) const {
    return std::string(what) + " at offset " + std::to_string(pos_);
  }
  bool fail(const char* what) {
    if (error_.empty()) error_ = at(what);
    return false;
  }
  void skipWs() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }
  bool literal(const char* word) {
    size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return fail("invalid literal");
    pos_ += n;
    return true;
  }

  bool parseValue(Json& out, int depth) {
    if (pos_ >= s_.size()) return fail("unexpected end of input");
    char c = s_[pos_];
    switch (c) {
      case '{': return parseObject(out, depth + 1);
      case '[': return parseArray(out, depth + 1);
      case '"': {
        std::string str;
        if (!parseString(str)) return false;
        out = Json(std::move(str));
        return true;
      }
      case 't': if (!literal("true")) return false; out = Json(true); return true;
      case 'f': if (!literal("false")) return false; out = Json(false); return true;
      case 'n': if (!literal("null")) return false; out = Json(); return true;
      default: return parseNumber(out);
    }
  }

  // keep: when set, a member whose key it refuses is checked (skipValue)
  // and left out.
  bool parseObject(Json& out, int depth, Json::KeepKey keep = nullptr) {
    if (depth > maxDepth_) return fail("nesting too deep");
    ++pos_;  // '{'
    Json::Object members;
    if (keep) members.reserve(16);  // the few members kept, without regrowing
    std::unordered_map<std::string, size_t> index;  // key -> member, once large
    skipWs();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      out = Json(std::move(members));
      return true;
    }
    for (;;) {
      skipWs();
      if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected object key");
      std::string key;
      if (!parseString(key)) return false;
      skipWs();
      if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      skipWs();
      if (keep && !keep(key)) {
        const size_t from = pos_;
        if (!skipValue(depth)) return false;
        if (spans_) spans_->emplace_back(std::move(key), s_.substr(from, pos_ - from));
      } else if (!addMember(members, index, std::move(key), depth)) {
        return false;
      }
      skipWs();
      if (pos_ >= s_.size()) return fail("unexpected end of input");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        out = Json(std::move(members));
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  // Parses a member's value and adds it to members.
  bool addMember(Json::Object& members, std::unordered_map<std::string, size_t>& index,
                 std::string key, int depth) {
    constexpr size_t kIndexFrom = 16;
    Json value;
    if (!parseValue(value, depth)) return false;
    // Duplicate keys: the last one wins, in place. Small objects scan their
    // members; past kIndexFrom members an index keeps this linear overall
    // (a body of n keys must not cost n^2 comparisons).
    size_t at = members.size();
    if (members.size() < kIndexFrom) {
      for (size_t i = 0; i < members.size(); ++i) {
        if (members[i].first == key) {
          at = i;
          break;
        }
      }
    } else {
      if (index.empty()) {
        index.reserve(members.size() * 2);
        for (size_t i = 0; i < members.size(); ++i) index.emplace(members[i].first, i);
      }
      auto [it, inserted] = index.emplace(key, members.size());
      if (!inserted) at = it->second;
    }
    if (at < members.size()) {
      members[at].second = std::move(value);
    } else {
      members.emplace_back(std::move(key), std::move(value));
    }
    return true;
  }

  // Checks a value exactly as parseValue does, without building it.
  bool skipValue(int depth) {
    if (pos_ >= s_.size()) return fail("unexpected end of input");
    switch (s_[pos_]) {
      case '{': return skipContainer(depth + 1, '}', true);
      case '[': return skipContainer(depth + 1, ']', false);
      case '"': {
        Discard discard;
        return parseString(discard);
      }
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: {
        Json number;
        return parseNumber(number);
      }
    }
  }

  // An object (keyed) or an array, as parseObject / parseArray check it.
  bool skipContainer(int depth, char close, bool keyed) {
    if (depth > maxDepth_) return fail("nesting too deep");
    ++pos_;  // '{' or '['
    skipWs();
    if (pos_ < s_.size() && s_[pos_] == close) {
      ++pos_;
      return true;
    }
    for (;;) {
      skipWs();
      if (keyed) {
        if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected object key");
        Discard discard;
        if (!parseString(discard)) return false;
        skipWs();
        if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
        ++pos_;
        skipWs();
      }
      if (!skipValue(depth)) return false;
      skipWs();
      if (pos_ >= s_.size()) return fail("unexpected end of input");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == close) {
        ++pos_;
        return true;
      }
      return fail(keyed ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }

  bool parseArray(Json& out, int depth) {
    if (depth > maxDepth_) return fail("nesting too deep");
    ++pos_;  // '['
    Json::Array items;
    skipWs();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      out = Json(std::move(items));
      return true;
    }
    for (;;) {
      skipWs();
      Json value;
      if (!parseValue(value, depth)) return false;
      items.push_back(std::move(value));
      skipWs();
      if (pos_ >= s_.size()) return fail("unexpected end of input");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        out = Json(std::move(items));
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  template <typename Out>
  static void appendUtf8(Out& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool hex4(uint32_t& cp) {
    if (pos_ + 4 > s_.size()) return fail("truncated \\u escape");
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') cp |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') cp |= static_cast<uint32_t>(c - 'A' + 10);
      else return fail("invalid \\u escape");
    }
    return true;
  }

  // What a string is checked into when it is dropped: nothing.
  struct Discard {
    void operator+=(char) {}
    void append(const char*, size_t) {}
  };

  // Validates one UTF-8 sequence starting at pos_ and copies it.
  template <typename Out>
  bool copyUtf8(Out& out) {
    auto b = static_cast<unsigned char>(s_[pos_]);
    int len;
    uint32_t cp;
    if (b < 0x80) { out += static_cast<char>(b); ++pos_; return true; }
    if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1F; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0F; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07; }
    else return fail("invalid UTF-8");
    if (pos_ + len > s_.size()) return fail("invalid UTF-8");
    for (int i = 1; i < len; ++i) {
      auto c = static_cast<unsigned char>(s_[pos_ + i]);
      if ((c & 0xC0) != 0x80) return fail("invalid UTF-8");
      cp = (cp << 6) | (c & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return fail("invalid UTF-8");
    }
    out.append(s_.data() + pos_, static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return true;
  }

  // Out: std::string, or Discard to check a string without keeping it.
  template <typename Out>
  bool parseString(Out& out) {
    ++pos_;  // opening quote
    for (;;) {
      // A run of plain ASCII in one go.
      size_t run = pos_;
      while (run < s_.size()) {
        const auto c = static_cast<unsigned char>(s_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++run;
      }
      if (run > pos_) {
        out.append(s_.data() + pos_, run - pos_);
        pos_ = run;
      }
      if (pos_ >= s_.size()) return fail("unterminated string");
      char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        if (!copyUtf8(out)) return false;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) return fail("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') {
              return fail("unpaired surrogate");
            }
            pos_ += 2;
            uint32_t lo;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("unpaired surrogate");
          }
          appendUtf8(out, cp);
          break;
        }
        default: return fail("invalid escape");
      }
    }
  }

  bool parseNumber(Json& out) {
    size_t start = pos_;
    bool integral = true;
    if (s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) {
      return fail("invalid value");
    }
    if (s_[pos_] == '0') {
      ++pos_;
    } else {
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) {
        return fail("invalid number");
      }
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) {
        return fail("invalid number");
      }
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (integral) {
      long long v = 0;
      auto r = std::from_chars(first, last, v);
      if (r.ec == std::errc() && r.ptr == last) {
        out = Json(v);
        return true;
      }
    }
    double d = 0;
    auto r = std::from_chars(first, last, d);
    if (r.ec != std::errc() || r.ptr != last || !std::isfinite(d)) return fail("invalid number");
    out = Json(d);
    return true;
  }

  std::string_view s_;
  int maxDepth_;
  Json::KeepKey keep_;
  Json::Spans* spans_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

const Json::Array& Json::emptyArray() {
  static const Array empty;
  return empty;
}

const Json::Object& Json::emptyObject() {
  static const Object empty;
  return empty;
}

Result<Json> Json::parse(std::string_view text, int maxDepth) {
  return Parser(text, maxDepth).run();
}

Result<Json> Json::parseMembers(std::string_view text, KeepKey keep, int maxDepth, Spans* spans) {
  if (spans) spans->clear();
  return Parser(text, maxDepth, keep, spans).run();
}

size_t Json::arrayShape(std::string_view validArray, std::string_view* last) {
  // Nesting was checked when the text was parsed: no depth limit here.
  return Parser(validArray, std::numeric_limits<int>::max()).arrayShape(last);
}

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& m : asObject()) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

Json* Json::find(std::string_view key) {
  return const_cast<Json*>(static_cast<const Json*>(this)->find(key));
}

const Json& Json::get(std::string_view key) const {
  const Json* v = find(key);
  return v ? *v : kNull;
}

Json& Json::set(std::string_view key, Json value) {
  if (type_ == Type::Null) type_ = Type::Object;
  Object& members = asObject();
  for (auto& m : members) {
    if (m.first == key) {
      m.second = std::move(value);
      return m.second;
    }
  }
  members.emplace_back(std::string(key), std::move(value));
  return members.back().second;
}

bool Json::erase(std::string_view key) {
  if (!containers_) return false;
  Object& members = containers_->object;
  for (auto it = members.begin(); it != members.end(); ++it) {
    if (it->first == key) {
      members.erase(it);
      return true;
    }
  }
  return false;
}

std::string Json::getString(std::string_view key, const std::string& fallback) const {
  const Json* v = find(key);
  return v && v->isString() ? v->string_ : fallback;
}

int64_t Json::getInt(std::string_view key, int64_t fallback) const {
  const Json* v = find(key);
  return v && v->isInteger() ? v->asInt() : fallback;
}

bool Json::getBool(std::string_view key, bool fallback) const {
  const Json* v = find(key);
  return v && v->isBool() ? v->bool_ : fallback;
}

void Json::push(Json value) {
  if (type_ == Type::Null) type_ = Type::Array;
  asArray().push_back(std::move(value));
}

size_t Json::size() const {
  if (type_ == Type::Array) return asArray().size();
  if (type_ == Type::Object) return asObject().size();
  return 0;
}

namespace {

// The length of the well-formed UTF-8 sequence that starts at s[i] (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or 0 when the
// bytes there are not one.
size_t utf8SequenceAt(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return len;
}

}  // namespace

void appendJsonString(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out += '"';
  size_t runStart = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // JSON text is UTF-8: a byte that does not start a well-formed
      // sequence (from a URL or a header, never from parsed JSON) becomes
      // U+FFFD, so every body Weft writes is valid.
      const size_t len = utf8SequenceAt(s, i);
      if (len > 0) {
        i += len - 1;
        continue;
      }
      out.append(s.data() + runStart, i - runStart);
      runStart = i + 1;
      out += "\xEF\xBF\xBD";
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + runStart, i - runStart);
    runStart = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(s.data() + runStart, s.size() - runStart);
  out += '"';
}

void Json::dumpTo(std::string& out) const {
  switch (type_) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += bool_ ? "true" : "false"; break;
    case Type::Number: {
      char buf[32];
      std::to_chars_result r;
      if (isInt_) {
        r = std::to_chars(buf, buf + sizeof buf, int_);
      } else {
        r = std::to_chars(buf, buf + sizeof buf, double_);
      }
      out.append(buf, r.ptr);
      break;
    }
    case Type::String: appendJsonString(out, string_); break;
    case Type::Array: {
      out += '[';
      bool first = true;
      for (const auto& v : asArray()) {
        if (!first) out += ',';
        first = false;
        v.dumpTo(out);
      }
      out += ']';
      break;
    }
    case Type::Object: {
      out += '{';
      bool first = true;
      for (const auto& m : asObject()) {
        if (!first) out += ',';
        first = false;
        appendJsonString(out, m.first);
        out += ':';
        m.second.dumpTo(out);
      }
      out += '}';
      break;
    }
  }
}

std::string Json::dump() const {
  std::string out;
  dumpTo(out);
  return out;
}

bool Json::operator==(const Json& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::Null: return true;
    case Type::Bool: return bool_ == o.bool_;
    case Type::Number:
      if (isInt_ && o.isInt_) return int_ == o.int_;
      return double_ == o.double_;
    case Type::String: return string_ == o.string_;
    case Type::Array: return asArray() == o.asArray();
    case Type::Object: return asObject() == o.asObject();
  }
  return false;
}

}  // namespace weft
