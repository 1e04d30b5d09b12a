// Unit tests of the JSON type, the pagination cursor and the time helpers.
#include <catch2/catch.hpp>

#include "weft/clock.h"
#include "weft/ids.h"
#include "weft/json.h"
#include "weft/pagination.h"

using weft::Json;

TEST_CASE("json parses and serialises round trip with key order kept") {
  auto r = Json::parse(R"({"b":1,"a":[true,false,null],"c":{"x":"y\n\u00e9"},"d":-2.5})");
  REQUIRE(r.isOk());
  CHECK(r->dump() == "{\"b\":1,\"a\":[true,false,null],\"c\":{\"x\":\"y\\n\xc3\xa9\"},\"d\":-2.5}");
}

TEST_CASE("json duplicate keys: last one wins in place") {
  auto r = Json::parse(R"({"a":1,"b":2,"a":3})");
  REQUIRE(r.isOk());
  CHECK(r->dump() == R"({"a":3,"b":2})");

  // The same rule past the size where the parser indexes the keys: every
  // duplicate, early or late, replaces the first occurrence in place.
  std::string text = "{";
  std::string expected = "{";
  for (int i = 0; i < 40; ++i) {
    text += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":" + std::to_string(i);
    expected += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":" +
                std::to_string(i == 3 ? 300 : i == 30 ? 3000 : i);
  }
  text += R"(,"k3":300,"k30":3000})";
  expected += "}";
  auto big = Json::parse(text);
  REQUIRE(big.isOk());
  CHECK(big->dump() == expected);
  CHECK(big->asObject().size() == 40);
}

TEST_CASE("json rejects malformed input") {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "tru", "\"\\x\"", "01", "1.", "{\"a\" 1}",
                          "\"\xff\"", "\"\\ud800\"", "[1] 2", "\"a\nb\""}) {
    INFO(bad);
    CHECK_FALSE(Json::parse(bad).isOk());
  }
}

TEST_CASE("json depth limit is 32 levels") {
  std::string ok32 = std::string(32, '[') + std::string(32, ']');
  std::string bad33 = std::string(33, '[') + std::string(33, ']');
  CHECK(Json::parse(ok32).isOk());
  CHECK_FALSE(Json::parse(bad33).isOk());
}

TEST_CASE("json integers: 5 and 5.0 are integers, 5.5 is not") {
  CHECK(Json::parse("5")->isInteger());
  CHECK(Json::parse("5.0")->isInteger());
  CHECK_FALSE(Json::parse("5.5")->isInteger());
  CHECK(Json::parse("9007199254740993")->asInt() == 9007199254740993LL);
  CHECK(Json::parse("1e400").isOk() == false);
}

TEST_CASE("iso time formats with milliseconds and parses common forms") {
  CHECK(weft::formatIso(1765430580836) == "2025-12-11T05:23:00.836Z");
  CHECK(weft::parseIso("2025-12-11T05:23:00.836Z") == 1765430580836);
  CHECK(weft::parseIso("2025-12-11T05:23:00Z") == 1765430580000);
  CHECK(weft::parseIso("2025-12-11T06:23:00.836+01:00") == 1765430580836);
  CHECK_FALSE(weft::parseIso("yesterday").has_value());
  CHECK_FALSE(weft::parseIso("2025-13-11T05:23:00Z").has_value());
}

TEST_CASE("uuids and tokens") {
  std::string u = weft::newUuid();
  CHECK(weft::isUuid(u));
  CHECK_FALSE(weft::isUuid("claim"));
  CHECK_FALSE(weft::isUuid("3F2A9C0D-5E6B-47A8-B9C0-D1E2F3A4B5C6"));
  CHECK(weft::newToken().size() == 32);
  CHECK(weft::newToken() != weft::newToken());
}

TEST_CASE("pagination: no limit and no cursor returns everything") {
  auto p = weft::Pager::make("agents", Json::object(), {});
  REQUIRE(p.isOk());
  Json meta = Json::object();
  p->writeMetadata(meta, 7);
  CHECK(meta.dump() == R"({"count":7,"total":7,"hasMore":false,"nextCursor":null,"prevCursor":null})");
}

TEST_CASE("pagination: cursors walk the list and carry the filter fingerprint") {
  Json filters = Json::object();
  filters.set("status", Json("online"));
  auto first = weft::Pager::make("agents", filters, {std::string("2"), std::nullopt});
  REQUIRE(first.isOk());
  CHECK(first->begin(5) == 0);
  CHECK(first->end(5) == 2);
  Json meta = Json::object();
  first->writeMetadata(meta, 5);
  CHECK(meta.get("hasMore").asBool());
  REQUIRE(meta.get("nextCursor").isString());
  CHECK(meta.get("prevCursor").isNull());

  auto second = weft::Pager::make("agents", filters,
                                  {std::nullopt, meta.get("nextCursor").asString()});
  REQUIRE(second.isOk());
  CHECK(second->begin(5) == 2);
  CHECK(second->end(5) == 4);
  Json meta2 = Json::object();
  second->writeMetadata(meta2, 5);
  CHECK(meta2.get("prevCursor").isString());

  auto mismatch = weft::Pager::make("agents", Json::object(),
                                    {std::nullopt, meta.get("nextCursor").asString()});
  REQUIRE_FALSE(mismatch.isOk());
  CHECK(mismatch.status().message() ==
        "Cursor filter mismatch - filters changed between requests. Start a new query.");
  auto otherList = weft::Pager::make("work", filters,
                                     {std::nullopt, meta.get("nextCursor").asString()});
  CHECK_FALSE(otherList.isOk());
}

TEST_CASE("pagination: limit parsing and bad cursors") {
  CHECK(weft::parseLeadingInt("12abc") == 12);
  CHECK_FALSE(weft::parseLeadingInt("abc").has_value());
  auto big = weft::Pager::make("work", Json::object(), {std::string("500"), std::nullopt});
  REQUIRE(big.isOk());
  CHECK(big->end(1000) == 100);
  auto junk = weft::Pager::make("work", Json::object(), {std::nullopt, std::string("!!!")});
  REQUIRE_FALSE(junk.isOk());
  CHECK(junk.status().message().rfind("Invalid pagination cursor: ", 0) == 0);
  auto neg = weft::Pager::make(
      "work", Json::object(),
      {std::nullopt, weft::base64UrlEncode(R"({"offset":-1,"limit":5,"filterHash":"x"})")});
  CHECK_FALSE(neg.isOk());
}

TEST_CASE("json output is valid UTF-8: malformed bytes become U+FFFD") {
  const std::string replacement = "\xEF\xBF\xBD";
  Json j = Json::object();
  j.set("ok", Json(std::string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80")));
  j.set("bad", Json(std::string("a\xFF\xFE" "b")));
  j.set("overlong", Json(std::string("\xC0\xAF")));
  j.set("surrogate", Json(std::string("\xED\xA0\x80")));
  j.set("truncated", Json(std::string("x\xE2\x82")));
  const std::string out = j.dump();
  CHECK(out.find("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") != std::string::npos);
  CHECK(out.find("a" + replacement + replacement + "b") != std::string::npos);
  // What was written parses back: it is well-formed UTF-8 JSON.
  auto back = Json::parse(out);
  REQUIRE(back.isOk());
  CHECK(back->getString("bad") == "a" + replacement + replacement + "b");
  CHECK(back->getString("overlong") == replacement + replacement);
  CHECK(back->getString("surrogate") == replacement + replacement + replacement);
  CHECK(back->getString("truncated") == "x" + replacement + replacement);
}
