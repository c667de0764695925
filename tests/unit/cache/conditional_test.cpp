#include "cache/conditional.h"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/date.h"

using namespace cachalot;
using cache::ConditionalResult;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;
constexpr int64_t kT = 1700000000;
std::string D(int64_t offset) { return http::format_http_date(kT + offset); }

Fields fields_of(const http::HeaderMap& h) {
  Fields out;
  for (auto f : h) out.emplace_back(f.name, f.value);
  return out;
}

}  // namespace

TEST_CASE("entity-tag comparison follows RFC 9110 §8.8.3.2", "[policy][conditional]") {
  struct Row {
    const char* name;
    std::string_view a, b;
    bool weak, strong;
  };
  const std::vector<Row> rows = {
      {"§8.8.3.2 identical strong tags", "\"1\"", "\"1\"", true, true},
      {"§8.8.3.2 weak and strong with the same opaque-tag", "W/\"1\"", "\"1\"", true, false},
      {"§8.8.3.2 two weak tags", "W/\"1\"", "W/\"1\"", true, false},
      {"§8.8.3.2 different opaque-tags", "\"1\"", "\"2\"", false, false},
      {"§8.8.3.2 opaque-tags are case-sensitive", "\"a\"", "\"A\"", false, false},
      {"§8.8.3.2 the weak prefix is case-sensitive", "w/\"1\"", "\"1\"", false, false},
      {"empty tags never match", "", "", false, false},
      {"unquoted tags (an origin bug) compare as text", "abc", "abc", true, true},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK(cache::etag_weak_match(r.a, r.b) == r.weak);
      CHECK(cache::etag_strong_match(r.a, r.b) == r.strong);
    }
  }
}

TEST_CASE("If-None-Match lists are matched weakly (RFC 9110 §13.1.2)", "[policy][conditional]") {
  struct Row {
    const char* name;
    std::string_view header;
    std::string_view etag;
    bool want;
  };
  const std::vector<Row> rows = {
      {"§13.1.2 the stored tag", "\"a\"", "\"a\"", true},
      {"§13.1.2 another tag", "\"b\"", "\"a\"", false},
      {"§13.1.2 a list containing the stored tag", "\"x\", \"a\"", "\"a\"", true},
      {"§13.1.2 a list without it", "\"x\",\"y\"", "\"a\"", false},
      {"§13.1.2 weak comparison: weak request tag, strong stored tag", "W/\"a\"", "\"a\"", true},
      {"§13.1.2 weak comparison: strong request tag, weak stored tag", "\"a\"", "W/\"a\"", true},
      {"§13.1.2 '*' matches any stored response", "*", "\"a\"", true},
      {"§13.1.2 '*' matches a stored response without an ETag", " * ", "", true},
      {"§13.1.2 a tag never matches a response without an ETag", "\"a\"", "", false},
      {"§8.8.3 a comma inside a tag is part of it", "\"a,b\"", "\"a,b\"", true},
      {"§8.8.3 a comma inside a tag does not split it", "\"a,b\"", "\"a\"", false},
      {"junk members are skipped", "garbage, \"a\"", "\"a\"", true},
      {"junk after a tag is skipped", "\"x\"junk, \"a\"", "\"a\"", true},
      {"an unterminated tag does not match", "\"a", "\"a\"", false},
      {"an empty value matches nothing", "", "\"a\"", false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(cache::if_none_match_matches(r.header, r.etag) == r.want); }
  }
}

TEST_CASE("evaluate_conditional answers GET/HEAD from a stored response (RFC 9110 §13.2.2, RFC 9111 §4.3.2)",
          "[policy][conditional]") {
  struct Row {
    const char* name;
    Fields request = {};
    // The stored response: ETag "e1", Last-Modified D(-100), Date D(0), 200.
    std::string etag = "\"e1\"";
    std::string last_modified = D(-100);
    std::optional<int64_t> stored_date = kT;
    http::Method method = http::Method::Get;
    int stored_status = 200;
    ConditionalResult want = ConditionalResult::None;
  };
  const ConditionalResult NM = ConditionalResult::NotModified;
  const std::vector<Row> rows = {
      {.name = "§13.2.2 no precondition"},
      {.name = "§13.1.2 If-None-Match with the stored tag", .request = {{"If-None-Match", "\"e1\""}}, .want = NM},
      {.name = "§13.1.2 If-None-Match with another tag", .request = {{"If-None-Match", "\"e0\""}}},
      {.name = "§13.1.2 If-None-Match over two field lines", .request = {{"If-None-Match", "\"x\""},
                                                                          {"If-None-Match", "\"e1\""}},
       .want = NM},
      {.name = "§13.1.2 If-None-Match: *", .request = {{"If-None-Match", "*"}}, .want = NM},
      {.name = "§13.1.3 If-None-Match takes precedence: a non-matching tag ignores a matching date",
       .request = {{"If-None-Match", "\"e0\""}, {"If-Modified-Since", D(0)}}},
      {.name = "§13.1.3 If-Modified-Since equal to Last-Modified", .request = {{"If-Modified-Since", D(-100)}},
       .want = NM},
      {.name = "§13.1.3 If-Modified-Since after Last-Modified", .request = {{"If-Modified-Since", D(-50)}},
       .want = NM},
      {.name = "§13.1.3 If-Modified-Since before Last-Modified", .request = {{"If-Modified-Since", D(-150)}}},
      {.name = "§13.1.3 an invalid If-Modified-Since is ignored", .request = {{"If-Modified-Since", "yesterday"}}},
      {.name = "§13.1.3 If-Modified-Since with more than one member is ignored",
       .request = {{"If-Modified-Since", D(0)}, {"If-Modified-Since", D(0)}}},
      {.name = "§4.3.2 without Last-Modified the stored Date is compared", .request = {{"If-Modified-Since", D(0)}},
       .last_modified = "", .want = NM},
      {.name = "§4.3.2 without Last-Modified, a date before the stored Date",
       .request = {{"If-Modified-Since", D(-1)}}, .last_modified = ""},
      {.name = "§4.3.2 an invalid Last-Modified falls back to the stored Date",
       .request = {{"If-Modified-Since", D(0)}}, .last_modified = "garbage", .want = NM},
      {.name = "§4.3.2 neither Last-Modified nor a date: no comparison", .request = {{"If-Modified-Since", D(0)}},
       .last_modified = "", .stored_date = std::nullopt},
      {.name = "§13.1.2 HEAD is evaluated like GET", .request = {{"If-None-Match", "\"e1\""}},
       .method = http::Method::Head, .want = NM},
      {.name = "§13.1.3 other methods are not evaluated", .request = {{"If-None-Match", "\"e1\""}},
       .method = http::Method::Post},
      {.name = "§13.2.2 preconditions are ignored for a non-2xx stored response",
       .request = {{"If-None-Match", "\"e1\""}}, .stored_status = 404},
      {.name = "§4.3.2 If-Match is not evaluated by a cache", .request = {{"If-Match", "\"zz\""}}},
      {.name = "§4.3.2 If-Unmodified-Since is not evaluated by a cache",
       .request = {{"If-Unmodified-Since", D(-1000)}}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::RequestHead req;
      req.method = r.method;
      for (const auto& [n, v] : r.request) req.headers.add(n, v);
      const auto got = cache::evaluate_conditional(req, r.etag, r.last_modified, r.stored_date, r.stored_status);
      INFO("got " << cache::to_string(got));
      CHECK(got == r.want);
    }
  }
}

TEST_CASE("copy_304_fields copies what RFC 9110 §15.4.5 requires of a 304", "[policy][conditional]") {
  struct Row {
    const char* name;
    Fields stored;
    Fields want;
  };
  const Fields full = {{"Content-Type", "text/html"}, {"Content-Length", "10"}, {"ETag", "\"e1\""},
                       {"Cache-Control", "max-age=60"}, {"Date", D(0)},          {"Expires", D(60)},
                       {"Vary", "Accept-Encoding"},     {"Content-Location", "/a.html"},
                       {"Last-Modified", D(-100)},      {"Set-Cookie", "a=1"}};
  const std::vector<Row> rows = {
      {"§15.4.5 the listed fields, in stored order; Last-Modified left out next to an ETag", full,
       {{"ETag", "\"e1\""},
        {"Cache-Control", "max-age=60"},
        {"Date", D(0)},
        {"Expires", D(60)},
        {"Vary", "Accept-Encoding"},
        {"Content-Location", "/a.html"}}},
      {"§15.4.5 Last-Modified is sent when there is no ETag",
       {{"Content-Type", "text/html"}, {"Last-Modified", D(-100)}, {"Date", D(0)}},
       {{"Last-Modified", D(-100)}, {"Date", D(0)}}},
      {"§15.4.5 repeated fields are all copied", {{"Vary", "Accept"}, {"Vary", "Origin"}},
       {{"Vary", "Accept"}, {"Vary", "Origin"}}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::HeaderMap stored, out;
      for (const auto& [n, v] : r.stored) stored.add(n, v);
      cache::copy_304_fields(stored, out);
      CHECK(fields_of(out) == r.want);
    }
  }
}
