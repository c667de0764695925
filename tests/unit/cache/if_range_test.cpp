#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cache/conditional.h"
#include "http/date.h"

using namespace cachalot;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;
constexpr int64_t kT = 1700000000;
std::string D(int64_t offset) { return http::format_http_date(kT + offset); }

}  // namespace

TEST_CASE("if_range_allows evaluates If-Range against a stored response (RFC 9110 §13.1.5)",
          "[policy][conditional][range]") {
  struct Row {
    const char* name;
    Fields request = {};
    // The stored response: ETag "e1", Last-Modified D(-100), Date D(0).
    std::string etag = "\"e1\"";
    std::string last_modified = D(-100);
    std::optional<int64_t> stored_date = kT;
    bool want = false;
  };
  const std::vector<Row> rows = {
      {.name = "§13.1.5 without If-Range the Range is honoured", .want = true},
      {.name = "§13.1.5 without If-Range, even without validators", .etag = "", .last_modified = "",
       .stored_date = std::nullopt, .want = true},
      // entity-tags: strong comparison (§8.8.3.2)
      {.name = "§13.1.5 the stored strong ETag", .request = {{"If-Range", "\"e1\""}}, .want = true},
      {.name = "§13.1.5 the stored ETag with surrounding OWS", .request = {{"If-Range", " \"e1\"\t"}}, .want = true},
      {.name = "§13.1.5 another ETag", .request = {{"If-Range", "\"e2\""}}},
      {.name = "§13.1.5 a weak tag never matches (strong comparison)", .request = {{"If-Range", "W/\"e1\""}}},
      {.name = "§13.1.5 a strong tag against a weak stored ETag", .request = {{"If-Range", "\"e1\""}},
       .etag = "W/\"e1\""},
      {.name = "§13.1.5 a weak tag against the same weak stored ETag", .request = {{"If-Range", "W/\"e1\""}},
       .etag = "W/\"e1\""},
      {.name = "§13.1.5 an ETag against a response without one", .request = {{"If-Range", "\"e1\""}}, .etag = ""},
      {.name = "§8.8.3 opaque-tags are case-sensitive", .request = {{"If-Range", "\"E1\""}}},
      {.name = "§13.1.5 If-Range holds one entity-tag, not a list", .request = {{"If-Range", "\"e1\", \"e2\""}}},
      // dates: exact match with a strong Last-Modified (§8.8.2.2)
      {.name = "§13.1.5 the Last-Modified date, Date 100 s later (strong)", .request = {{"If-Range", D(-100)}},
       .want = true},
      {.name = "§8.8.2.2 Date exactly one second after Last-Modified is strong",
       .request = {{"If-Range", D(-100)}}, .stored_date = kT - 99, .want = true},
      {.name = "§8.8.2.2 Date equal to Last-Modified: weak, the Range is ignored",
       .request = {{"If-Range", D(-100)}}, .stored_date = kT - 100},
      {.name = "§8.8.2.2 Date before Last-Modified: weak", .request = {{"If-Range", D(-100)}},
       .stored_date = kT - 200},
      {.name = "§8.8.2.2 no stored Date: Last-Modified cannot be shown strong", .request = {{"If-Range", D(-100)}},
       .stored_date = std::nullopt},
      {.name = "§13.1.5 a date before Last-Modified", .request = {{"If-Range", D(-101)}}},
      {.name = "§13.1.5 a date after Last-Modified (not an exact match)", .request = {{"If-Range", D(-99)}}},
      {.name = "§13.1.5 a date equal to the stored Date, not Last-Modified", .request = {{"If-Range", D(0)}}},
      {.name = "§13.1.5 a date without a stored Last-Modified", .request = {{"If-Range", D(-100)}},
       .last_modified = ""},
      {.name = "§13.1.5 a date against an unparsable Last-Modified", .request = {{"If-Range", D(-100)}},
       .last_modified = "garbage"},
      {.name = "§13.1.5 a date does not match an ETag-only response", .request = {{"If-Range", D(-100)}},
       .last_modified = ""},
      // anything else: the Range is ignored
      {.name = "§13.1.5 garbage", .request = {{"If-Range", "yesterday"}}},
      {.name = "§13.1.5 an unquoted tag is no entity-tag", .request = {{"If-Range", "e1"}}},
      {.name = "§13.1.5 an empty value", .request = {{"If-Range", ""}}},
      {.name = "§13.1.5 two If-Range fields, both matching", .request = {{"If-Range", "\"e1\""}, {"If-Range", "\"e1\""}}},
      {.name = "§13.1.5 two If-Range fields, a date and a tag",
       .request = {{"If-Range", D(-100)}, {"If-Range", "\"e1\""}}},
      {.name = "§13.1.5 other preconditions do not make If-Range",
       .request = {{"If-Match", "\"zz\""}, {"If-Unmodified-Since", D(-1000)}}, .want = true},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::RequestHead req;
      req.method = http::Method::Get;
      for (const auto& [n, v] : r.request) req.headers.add(n, v);
      CHECK(cache::if_range_allows(req, r.etag, r.last_modified, r.stored_date) == r.want);
    }
  }
}
