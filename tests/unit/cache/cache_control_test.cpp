#include "cache/cache_control.h"

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

using cachalot::cache::kDeltaSecondsMax;
using cachalot::cache::kMaxStaleAny;
using cachalot::cache::parse_delta_seconds;
using cachalot::cache::parse_request_cache_control;
using cachalot::cache::parse_response_cache_control;
using cachalot::cache::RequestCacheControl;
using cachalot::cache::ResponseCacheControl;

namespace {

std::string opt(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : "-"; }

std::string list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (const auto& x : v) s += (s.size() > 1 ? "," : "") + x;
  return s + "]";
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<ResponseCacheControl> {
  static std::string convert(const ResponseCacheControl& c) {
    std::ostringstream o;
    o << "{no_store=" << c.no_store << " no_cache=" << c.no_cache << " private=" << c.private_
      << " public=" << c.public_ << " must_revalidate=" << c.must_revalidate
      << " proxy_revalidate=" << c.proxy_revalidate << " must_understand=" << c.must_understand
      << " no_transform=" << c.no_transform << " immutable=" << c.immutable << " max_age=" << opt(c.max_age)
      << " s_maxage=" << opt(c.s_maxage) << " swr=" << opt(c.stale_while_revalidate)
      << " sie=" << opt(c.stale_if_error) << " no_cache_fields=" << list(c.no_cache_fields)
      << " private_fields=" << list(c.private_fields) << "}";
    return o.str();
  }
};
template <>
struct StringMaker<RequestCacheControl> {
  static std::string convert(const RequestCacheControl& c) {
    std::ostringstream o;
    o << "{max_age=" << opt(c.max_age) << " max_stale=" << opt(c.max_stale) << " min_fresh=" << opt(c.min_fresh)
      << " sie=" << opt(c.stale_if_error) << " no_cache=" << c.no_cache << " no_store=" << c.no_store
      << " only_if_cached=" << c.only_if_cached << " no_transform=" << c.no_transform << "}";
    return o.str();
  }
};
}  // namespace Catch

TEST_CASE("parse_delta_seconds follows RFC 9111 §1.2.2", "[policy][cache-control]") {
  struct Row {
    const char* name;
    std::string_view text;
    std::optional<int64_t> want;
  };
  const std::vector<Row> rows = {
      {"§1.2.2 digits", "60", 60},
      {"§1.2.2 zero", "0", 0},
      {"§1.2.2 leading zeros", "007", 7},
      {"§1.2.2 2^31 - 1 is kept", "2147483647", 2147483647},
      {"§1.2.2 2^31 is kept", "2147483648", kDeltaSecondsMax},
      {"§1.2.2 larger values clamp to 2^31", "2147483649", kDeltaSecondsMax},
      {"§1.2.2 huge values clamp to 2^31", "99999999999999999999999999", kDeltaSecondsMax},
      {"§1.2.2 empty is invalid", "", std::nullopt},
      {"§1.2.2 a sign is invalid", "-1", std::nullopt},
      {"§1.2.2 a plus sign is invalid", "+1", std::nullopt},
      {"§1.2.2 a fraction is invalid", "1.5", std::nullopt},
      {"§1.2.2 junk after a huge value is invalid", "99999999999999999999x", std::nullopt},
      {"§1.2.2 whitespace is invalid", " 1", std::nullopt},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(parse_delta_seconds(r.text) == r.want); }
  }
}

TEST_CASE("response Cache-Control is parsed per RFC 9111 §5.2, §4.2.1 and RFC 5861", "[policy][cache-control]") {
  using R = ResponseCacheControl;
  struct Row {
    const char* name;
    std::string value;
    R want;
  };
  const std::vector<Row> rows = {
      {"§5.2 no directives", "", R{}},
      {"§5.2.2.1 max-age", "max-age=60", R{.max_age = 60}},
      {"§5.2 directive names are case-insensitive", "Max-Age=60, NO-STORE", R{.no_store = true, .max_age = 60}},
      {"§5.2 a quoted-string argument is accepted for max-age", "max-age=\"60\"", R{.max_age = 60}},
      {"§5.2 whitespace around '=' is tolerated", "max-age = 60", R{.max_age = 60}},
      {"§4.2.1 duplicated max-age: the first occurrence wins", "max-age=60, max-age=10", R{.max_age = 60}},
      {"§4.2.1 duplicated max-age: the first wins even when it is invalid", "max-age=abc, max-age=60",
       R{.max_age = 0}},
      {"§4.2.1 invalid max-age=abc reads as stale (0)", "max-age=abc", R{.max_age = 0}},
      {"§4.2.1 negative max-age reads as stale (0)", "max-age=-1", R{.max_age = 0}},
      {"§4.2.1 max-age without argument reads as stale (0)", "max-age", R{.max_age = 0}},
      {"§4.2.1 max-age with an empty argument reads as stale (0)", "max-age=", R{.max_age = 0}},
      {"§4.2.1 max-age with trailing junk reads as stale (0)", "max-age=60 s", R{.max_age = 0}},
      {"§4.2.1 max-age with junk after the quote reads as stale (0)", "max-age=\"60\"s", R{.max_age = 0}},
      {"§1.2.2 overflowing max-age clamps to 2^31", "max-age=99999999999999999999", R{.max_age = kDeltaSecondsMax}},
      {"§5.2.2.10 s-maxage", "s-maxage=30", R{.s_maxage = 30}},
      {"§4.2.1 invalid s-maxage reads as stale (0)", "s-maxage=x", R{.s_maxage = 0}},
      {"§5.2.2.5 no-store", "no-store", R{.no_store = true}},
      {"§5.2.2.5 no-store with junk is still honoured (restrictive)", "no-store x", R{.no_store = true}},
      {"§5.2.2.4 unqualified no-cache", "no-cache", R{.no_cache = true}},
      {"§5.2.2.4 qualified no-cache lists lower-cased field names", "no-cache=\"Set-Cookie, X-Foo\"",
       R{.no_cache_fields = {"set-cookie", "x-foo"}}},
      {"§5.2 qualified no-cache in token form", "no-cache=Set-Cookie", R{.no_cache_fields = {"set-cookie"}}},
      {"§5.2.2.4 duplicate names in the list are kept once", "no-cache=\"a, A\", no-cache=a",
       R{.no_cache_fields = {"a"}}},
      {"§5.2.2.4 an empty qualified list reads as unqualified", "no-cache=\"\"", R{.no_cache = true}},
      {"§5.2.2.4 an unterminated list reads as unqualified", "no-cache=\"set-cookie", R{.no_cache = true}},
      {"§4.2.1 qualified and unqualified no-cache: both kept, unqualified governs", "no-cache=\"a\", no-cache",
       R{.no_cache = true, .no_cache_fields = {"a"}}},
      {"§5.2.2.7 unqualified private", "private", R{.private_ = true}},
      {"§5.2.2.7 qualified private lists field names", "private=\"X-User\"", R{.private_fields = {"x-user"}}},
      {"§5.2.2.7 a list with a non-token reads as unqualified", "private=\"a b\"", R{.private_ = true}},
      {"§5.2.2.9 public", "public", R{.public_ = true}},
      {"§5.2.2.9 public with an argument is ignored (loosening needs a well-formed directive)", "public=yes",
       R{}},
      {"§5.2.2.2 must-revalidate", "must-revalidate", R{.must_revalidate = true}},
      {"§5.2.2.8 proxy-revalidate", "proxy-revalidate", R{.proxy_revalidate = true}},
      {"§5.2.2.3 must-understand", "must-understand", R{.must_understand = true}},
      {"§5.2.2.6 no-transform", "no-transform", R{.no_transform = true}},
      {"RFC 8246 immutable", "immutable", R{.immutable = true}},
      {"RFC 5861 §3 stale-while-revalidate", "stale-while-revalidate=30", R{.stale_while_revalidate = 30}},
      {"RFC 5861 §4 stale-if-error", "stale-if-error=60", R{.stale_if_error = 60}},
      {"RFC 5861 invalid stale-while-revalidate gives no window", "stale-while-revalidate=abc", R{}},
      {"§4.2.1 duplicated stale-while-revalidate: the first wins even when invalid",
       "stale-while-revalidate=x, stale-while-revalidate=30", R{}},
      {"§5.2.3 unknown extensions are ignored", "community=\"UCI\", foo, max-age=5", R{.max_age = 5}},
      {"§5.2 a comma inside a quoted argument does not split directives", "foo=\"a,max-age=1\", max-age=5",
       R{.max_age = 5}},
      {"§5.2 an escaped quote does not end a quoted argument", "foo=\"x\\\",max-age=1\", max-age=5",
       R{.max_age = 5}},
      {"RFC 9110 §5.6.1 empty list elements are ignored", " , ,max-age=5,, ", R{.max_age = 5}},
      {"arbitrary bytes parse to nothing", std::string("\x00\xff==,\"\\", 7), R{}},
      {"a directive after junk is still read", "%%%, max-age=5", R{.max_age = 5}},
      {"§4.2.1 conflicting directives are all recorded", "max-age=60, no-cache, public",
       R{.no_cache = true, .public_ = true, .max_age = 60}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      INFO("Cache-Control: " << r.value);
      CHECK(parse_response_cache_control(r.value) == r.want);
    }
  }
}

TEST_CASE("response Cache-Control across field lines reads like the combined value (RFC 9110 §5.3)",
          "[policy][cache-control]") {
  cachalot::http::HeaderMap h;
  h.add("Content-Type", "text/plain");
  h.add("Cache-Control", "max-age=60");
  h.add("cache-control", "max-age=10, no-cache=\"x-a\"");
  const ResponseCacheControl want{.max_age = 60, .no_cache_fields = {"x-a"}};
  CHECK(parse_response_cache_control(h) == want);
  CHECK(parse_response_cache_control(h.get_combined("cache-control")) == want);
}

TEST_CASE("request Cache-Control is parsed per RFC 9111 §5.2.1 and RFC 5861 §4", "[policy][cache-control]") {
  using Q = RequestCacheControl;
  struct Row {
    const char* name;
    std::string_view value;
    Q want;
  };
  const std::vector<Row> rows = {
      {"§5.2.1 no directives", "", Q{}},
      {"§5.2.1.1 max-age", "max-age=5", Q{.max_age = 5}},
      {"§5.2.1.1 invalid max-age reads as 0 (validate now)", "max-age=soon", Q{.max_age = 0}},
      {"§5.2.1.2 bare max-stale accepts any staleness", "max-stale", Q{.max_stale = kMaxStaleAny}},
      {"§5.2.1.2 max-stale with a limit", "max-stale=30", Q{.max_stale = 30}},
      {"§5.2.1.2 invalid max-stale accepts no staleness", "max-stale=lots", Q{}},
      {"§5.2.1.3 min-fresh", "min-fresh=10", Q{.min_fresh = 10}},
      {"§5.2.1.3 invalid min-fresh reads as 2^31 (nothing is fresh enough)", "min-fresh=x",
       Q{.min_fresh = kDeltaSecondsMax}},
      {"§5.2.1.4 no-cache", "no-cache", Q{.no_cache = true}},
      {"§5.2 request directive names are case-insensitive", "NO-CACHE", Q{.no_cache = true}},
      {"§5.2.1.5 no-store", "no-store", Q{.no_store = true}},
      {"§5.2.1.6 no-transform", "no-transform", Q{.no_transform = true}},
      {"§5.2.1.7 only-if-cached", "only-if-cached", Q{.only_if_cached = true}},
      {"RFC 5861 §4 stale-if-error in a request", "stale-if-error=60", Q{.stale_if_error = 60}},
      {"§4.2.1 duplicated max-age in a request: the first wins", "max-age=5, max-age=0", Q{.max_age = 5}},
      {"§1.2.2 overflowing max-stale clamps to 2^31", "max-stale=99999999999", Q{.max_stale = kDeltaSecondsMax}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      INFO("Cache-Control: " << r.value);
      CHECK(parse_request_cache_control(r.value) == r.want);
    }
  }
}

TEST_CASE("Pragma: no-cache counts only when the request has no Cache-Control (RFC 9111 §5.4)",
          "[policy][cache-control]") {
  using Q = RequestCacheControl;
  struct Row {
    const char* name;
    std::vector<std::pair<std::string, std::string>> fields;
    Q want;
  };
  const std::vector<Row> rows = {
      {"§5.4 no fields", {}, Q{}},
      {"§5.4 Pragma: no-cache without Cache-Control means no-cache", {{"Pragma", "no-cache"}}, Q{.no_cache = true}},
      {"§5.4 Pragma directive names are case-insensitive", {{"pragma", "No-Cache"}}, Q{.no_cache = true}},
      {"§5.4 Pragma: no-cache among extension pragmas", {{"Pragma", "x=1, no-cache"}}, Q{.no_cache = true}},
      {"§5.4 other Pragma directives mean nothing", {{"Pragma", "x-no-cache"}}, Q{}},
      {"§5.4 Pragma is ignored when Cache-Control is present",
       {{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}},
       Q{.max_age = 5}},
      {"§5.4 Pragma is ignored even when Cache-Control is empty", {{"Cache-Control", ""}, {"Pragma", "no-cache"}},
       Q{}},
      {"RFC 9110 §5.3 Cache-Control field lines are read in order",
       {{"Cache-Control", "max-age=5"}, {"Cache-Control", "max-age=9, no-cache"}},
       Q{.max_age = 5, .no_cache = true}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      cachalot::http::RequestHead req;
      for (const auto& [n, v] : r.fields) req.headers.add(n, v);
      CHECK(parse_request_cache_control(req) == r.want);
    }
  }
}
