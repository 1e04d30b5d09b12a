// A small JSON value type for Weft: request bodies, stored records and
// responses. Chosen over Poco::JSON because Weft needs exact control over
// what it accepts from untrusted input (depth limit, UTF-8, integer vs.
// fraction), key order preserved on output, and cheap serialisation on the
// hot paths.
//
// Objects keep insertion order; a duplicate key on parse replaces the earlier
// value in place (last one wins). Numbers remember whether they were written
// as integers that fit in int64.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weft/status.h"

namespace weft {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), bool_(b) {}
  Json(int i) : Json(static_cast<long long>(i)) {}
  Json(unsigned i) : Json(static_cast<long long>(i)) {}
  Json(long i) : Json(static_cast<long long>(i)) {}
  Json(long long i) : type_(Type::Number), isInt_(true), int_(i), double_(static_cast<double>(i)) {}
  Json(unsigned long i) : Json(static_cast<long long>(i)) {}
  Json(unsigned long long i) : Json(static_cast<long long>(i)) {}
  Json(double d);
  Json(const char* s) : type_(Type::String), string_(s) {}
  Json(std::string s) : type_(Type::String), string_(std::move(s)) {}
  Json(std::string_view s) : type_(Type::String), string_(s) {}
  Json(Array a) : type_(Type::Array) { containers().array = std::move(a); }
  Json(Object o) : type_(Type::Object) { containers().object = std::move(o); }
  Json(const Json& o)
      : type_(o.type_),
        bool_(o.bool_),
        isInt_(o.isInt_),
        int_(o.int_),
        double_(o.double_),
        string_(o.string_),
        containers_(o.containers_ ? std::make_unique<Containers>(*o.containers_) : nullptr) {}
  Json(Json&&) noexcept = default;
  Json& operator=(const Json& o) {
    if (this != &o) *this = Json(o);
    return *this;
  }
  Json& operator=(Json&&) noexcept = default;
  ~Json() = default;

  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }
  // An array of the strings, in order.
  static Json stringArray(const std::vector<std::string>& values) {
    Json out = array();
    for (const auto& v : values) out.asArray().emplace_back(v);
    return out;
  }

  // Parses text. InvalidArgument with a short reason when it is not valid
  // JSON, is nested deeper than maxDepth, or contains invalid UTF-8.
  static Result<Json> parse(std::string_view text, int maxDepth = 32);

  // Like parse(), but of a top-level object only the members whose key
  // `keep` accepts are built; the others are checked as parse() checks them
  // (the text is rejected exactly when parse() rejects it) and left out. For
  // reading a few members of a large stored value.
  // spans, when given, receives the text of each member left out, with its
  // key, in order (a key may come twice; the last one is the member).
  using KeepKey = bool (*)(std::string_view key);
  using Spans = std::vector<std::pair<std::string, std::string_view>>;
  static Result<Json> parseMembers(std::string_view text, KeepKey keep, int maxDepth = 32,
                                   Spans* spans = nullptr);

  // Of the text of a valid JSON array (as parse() accepts it): how many
  // elements it has, and the text of the last one in *last (empty when
  // none). For an array that is not worth building.
  static size_t arrayShape(std::string_view validArray, std::string_view* last);

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::Null; }
  bool isBool() const { return type_ == Type::Bool; }
  bool isNumber() const { return type_ == Type::Number; }
  bool isString() const { return type_ == Type::String; }
  bool isArray() const { return type_ == Type::Array; }
  bool isObject() const { return type_ == Type::Object; }
  // A number with an integral value that fits in int64 (5 and 5.0 both are).
  bool isInteger() const;

  bool asBool() const { return bool_; }
  int64_t asInt() const { return isInt_ ? int_ : static_cast<int64_t>(double_); }
  double asDouble() const { return double_; }
  const std::string& asString() const { return string_; }
  std::string& asString() { return string_; }
  // The containers of a value of another type are empty (the mutable forms
  // give it one, without changing its type).
  const Array& asArray() const { return containers_ ? containers_->array : emptyArray(); }
  Array& asArray() { return containers().array; }
  const Object& asObject() const { return containers_ ? containers_->object : emptyObject(); }
  Object& asObject() { return containers().object; }

  // Object access. find() returns nullptr when absent or when this is not an
  // object. get() returns a shared null value instead.
  const Json* find(std::string_view key) const;
  Json* find(std::string_view key);
  const Json& get(std::string_view key) const;
  // Sets key (replacing in place, or appending). Turns a null into an object.
  Json& set(std::string_view key, Json value);
  bool erase(std::string_view key);
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  // Typed convenience reads for objects: the member when present and of the
  // type, else the fallback.
  std::string getString(std::string_view key, const std::string& fallback = "") const;
  int64_t getInt(std::string_view key, int64_t fallback = 0) const;
  bool getBool(std::string_view key, bool fallback = false) const;

  // Array append. Turns a null into an array.
  void push(Json value);
  size_t size() const;

  std::string dump() const;
  void dumpTo(std::string& out) const;

  bool operator==(const Json& other) const;
  bool operator!=(const Json& other) const { return !(*this == other); }

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  bool isInt_ = false;
  int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  // Arrays and objects are rarer than scalars: their containers live on the
  // heap, allocated on first use, so a scalar costs 64 bytes, not 104.
  struct Containers {
    Array array;
    Object object;
  };
  std::unique_ptr<Containers> containers_;
  Containers& containers() {
    if (!containers_) containers_ = std::make_unique<Containers>();
    return *containers_;
  }
  static const Array& emptyArray();
  static const Object& emptyObject();
};

// Appends s to out as a JSON string literal (with quotes). Bytes that are not
// well-formed UTF-8 are written as U+FFFD, so the output is always valid JSON
// text whatever s holds.
void appendJsonString(std::string& out, std::string_view s);

}  // namespace weft
