// core/json.h: compact text in insertion order, escaping, invalid UTF-8, rounding.
#include "core/json.h"

#include <catch2/catch.hpp>

#include <string>

using namespace cachalot;

TEST_CASE("json_text is compact and keeps members in the order they were added", "[core][json]") {
  core::Json j = {{"zeta", 1}, {"alpha", "a"}, {"mid", {{"b", true}, {"a", nullptr}}}, {"list", {1, 2}}};
  CHECK(core::json_text(j) == R"({"zeta":1,"alpha":"a","mid":{"b":true,"a":null},"list":[1,2]})");
}

TEST_CASE("json_text escapes quotes, backslashes and control characters and reads back the same", "[core][json]") {
  const std::string s = std::string("q\"b\\n\nr\rt\tnul") + '\0' + "\x01\x1f" + "\x7f" + "caf\xc3\xa9";
  const std::string text = core::json_text({{"s", s}});
  CHECK(text == "{\"s\":\"q\\\"b\\\\n\\nr\\rt\\tnul\\u0000\\u0001\\u001f\x7f" "caf\xc3\xa9\"}");
  CHECK(core::Json::parse(text)["s"] == s);
}

TEST_CASE("json_text writes bytes that are not UTF-8 as U+FFFD instead of throwing", "[core][json]") {
  const std::string bad = "/caf\xe9?\xff\xfe&ok=\xc3";  // Latin-1 é, stray bytes, a truncated sequence
  std::string text;
  REQUIRE_NOTHROW(text = core::json_text({{"target", bad}}));
  CHECK(text == "{\"target\":\"/caf\xef\xbf\xbd?\xef\xbf\xbd\xef\xbf\xbd&ok=\xef\xbf\xbd\"}");
  CHECK_NOTHROW(core::Json::parse(text));  // valid JSON (and UTF-8) again
  // The default dump() would have thrown: the reason for json_text().
  CHECK_THROWS_AS(core::Json(bad).dump(), nlohmann::json::type_error);
}

TEST_CASE("round_to leaves at most that many decimals in the text", "[core][json]") {
  struct Row {
    double v;
    int places;
    const char* text;
  };
  for (const Row& r : {Row{1.5, 3, "1.5"}, Row{0.1234567, 3, "0.123"}, Row{2.0004, 3, "2.0"}, Row{0.0, 3, "0.0"},
                       Row{12.3456789, 6, "12.345679"}, Row{0.0000004, 6, "0.0"}, Row{1e-3, 3, "0.001"}}) {
    INFO(r.v << " to " << r.places);
    CHECK(core::json_text(core::round_to(r.v, r.places)) == r.text);
  }
}
