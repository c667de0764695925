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
using cachalot::cache::parse_targeted_cache_control;
using cachalot::cache::select_response_cache_control;
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
      << " private_fields=" << list(c.private_fields) << " targeted=" << c.targeted << "}";
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

TEST_CASE("parse_targeted_cache_control reads an RFC 9213 targeted field strictly", "[policy][cache-control]") {
  using R = ResponseCacheControl;
  struct Row {
    const char* name;
    std::string_view value;
    std::optional<R> want;  // nullopt: the field is ignored, as if absent
  };
  const std::vector<Row> rows = {
      {"§2.1 max-age is an Integer", "max-age=60", R{.max_age = 60, .targeted = true}},
      {"§2.1 several directives", "max-age=60, must-revalidate, stale-if-error=30",
       R{.must_revalidate = true, .max_age = 60, .stale_if_error = 30, .targeted = true}},
      {"§2.1 s-maxage, stale-while-revalidate", "s-maxage=10, stale-while-revalidate=5",
       R{.s_maxage = 10, .stale_while_revalidate = 5, .targeted = true}},
      {"§2.1 no-store is Boolean true", "no-store", R{.no_store = true, .targeted = true}},
      {"§2.1 ?1 is the same Boolean true", "no-store=?1", R{.no_store = true, .targeted = true}},
      {"§2.1 public, must-understand, immutable, no-transform, proxy-revalidate",
       "public, must-understand, immutable, no-transform, proxy-revalidate",
       R{.public_ = true, .proxy_revalidate = true, .must_understand = true, .no_transform = true, .immutable = true,
         .targeted = true}},
      {"§2.1 unqualified no-cache and private", "no-cache, private",
       R{.no_cache = true, .private_ = true, .targeted = true}},
      {"§2.1 no-cache with a String of field names", "no-cache=\"Set-Cookie, X-A\"",
       R{.no_cache_fields = {"set-cookie", "x-a"}, .targeted = true}},
      {"§2.1 private with a Token (a Cache-Control token argument maps to a Token)", "private=x-user",
       R{.private_fields = {"x-user"}, .targeted = true}},
      {"§2.1 parameters are ignored", "max-age=60;foo=bar, no-store;x", R{.no_store = true, .max_age = 60,
                                                                            .targeted = true}},
      {"§2.2 unknown directives are ignored, whatever their type", "foo=(1 2), bar=\"x\", max-age=5",
       R{.max_age = 5, .targeted = true}},
      {"§2.2 only unknown directives: valid, non-empty, no directives (RFC 9213 §3 'none' example)", "none",
       R{.targeted = true}},
      {"RFC 8941 §4.2.2 a repeated key: the last value wins", "max-age=5, max-age=60",
       R{.max_age = 60, .targeted = true}},
      {"RFC 9111 §1.2.2 a large Integer clamps to 2^31", "max-age=99999999999",
       R{.max_age = kDeltaSecondsMax, .targeted = true}},
      {"RFC 8941 §4.2 OWS around commas is allowed", "max-age=60 ,\tno-cache",
       R{.no_cache = true, .max_age = 60, .targeted = true}},
      {"§2.1 an empty field is ignored", "", std::nullopt},
      {"§2.1 a field of spaces is empty", "   ", std::nullopt},
      {"§2.1 not a Dictionary (unknown type) is ignored", "max-age=10000, &&&&&", std::nullopt},
      {"§2.1 max-age as a String violates its type: ignored", "max-age=\"60\"", std::nullopt},
      {"§2.1 max-age as a Decimal is not coerced: ignored", "max-age=1.5", std::nullopt},
      {"§2.1 a negative max-age is no delta-seconds: ignored", "max-age=-1", std::nullopt},
      {"§2.1 a bare max-age (Boolean) violates its type: ignored", "max-age", std::nullopt},
      {"§2.1 no-store=?0 is not Boolean true: ignored", "no-store=?0", std::nullopt},
      {"§2.1 no-store with an Integer: ignored", "no-store=1", std::nullopt},
      {"§2.1 no-cache with an Inner List is not one of its types: ignored", "no-cache=(set-cookie)", std::nullopt},
      {"§2.1 no-cache with an empty String: ignored", "no-cache=\"\"", std::nullopt},
      {"§2.1 private with a String that is not field names: ignored", "private=\"a b\"", std::nullopt},
      {"RFC 8941 §3.1.2 keys are lower-case: MaX-aGe fails the field", "MaX-aGe=60", std::nullopt},
      {"RFC 8941 §4.2.2 space before '=' fails the field", "max-age =100", std::nullopt},
      {"RFC 8941 §4.2.2 space after '=' fails the field", "max-age= 100", std::nullopt},
      {"RFC 8941 §4.2.2 a trailing comma fails the field", "max-age=60,", std::nullopt},
      {"RFC 8941 §4.2.4 a 16-digit Integer fails the field", "max-age=1234567890123456", std::nullopt},
      {"RFC 8941: Cache-Control's quoted field list with a bad escape fails", "no-cache=\"a\\b\"", std::nullopt},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK(parse_targeted_cache_control(r.value) == r.want);
    }
  }
}

TEST_CASE("select_response_cache_control takes the first valid targeted field, else Cache-Control (RFC 9213 §2.2)",
          "[policy][cache-control]") {
  using R = ResponseCacheControl;
  using Fields = std::vector<std::pair<std::string, std::string>>;
  const std::vector<std::string> targets = {"Cachalot-Cache-Control", "CDN-Cache-Control"};
  struct Row {
    const char* name;
    Fields fields;
    R want;
    std::vector<std::string> list = {"Cachalot-Cache-Control", "CDN-Cache-Control"};
  };
  const std::vector<Row> rows = {
      {"§2.2 no targeted field: Cache-Control", {{"Cache-Control", "max-age=10"}}, R{.max_age = 10}},
      {"§2.2 the targeted field replaces Cache-Control entirely",
       {{"Cache-Control", "no-store, max-age=10"}, {"CDN-Cache-Control", "max-age=600"}},
       R{.max_age = 600, .targeted = true}},
      {"§2.2 the first of the target list wins, whatever the field order",
       {{"CDN-Cache-Control", "max-age=600"}, {"Cachalot-Cache-Control", "max-age=5"}},
       R{.max_age = 5, .targeted = true}},
      {"§2.2 an invalid first target falls through to the next",
       {{"Cachalot-Cache-Control", "max-age=\"5\""}, {"CDN-Cache-Control", "max-age=600"}},
       R{.max_age = 600, .targeted = true}},
      {"§2.2 an empty first target falls through to the next",
       {{"Cachalot-Cache-Control", ""}, {"CDN-Cache-Control", "max-age=600"}}, R{.max_age = 600, .targeted = true}},
      {"§2.2 every target invalid: Cache-Control",
       {{"Cache-Control", "max-age=10"}, {"CDN-Cache-Control", "max-age=1.5"}}, R{.max_age = 10}},
      {"§2.2 field names match case-insensitively", {{"cdn-cache-control", "no-store"}},
       R{.no_store = true, .targeted = true}},
      {"RFC 8941 §4.2 field lines are combined before parsing",
       {{"CDN-Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "must-revalidate"}},
       R{.must_revalidate = true, .max_age = 60, .targeted = true}},
      {"RFC 8941 §4.2 one bad line fails the combined field",
       {{"Cache-Control", "max-age=10"}, {"CDN-Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "Bad"}},
       R{.max_age = 10}},
      {"§2.2 a field not on the target list changes nothing",
       {{"Cache-Control", "max-age=10"}, {"Other-Cache-Control", "no-store"}}, R{.max_age = 10}},
      {"an empty target list: Cache-Control only", {{"Cache-Control", "max-age=10"}, {"CDN-Cache-Control", "no-store"}},
       R{.max_age = 10}, {}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      cachalot::http::HeaderMap h;
      for (const auto& [n, v] : r.fields) h.add(n, v);
      CHECK(select_response_cache_control(h, r.list) == r.want);
    }
  }
}

TEST_CASE("forward_targeted_field drops only the fields the operator lists (RFC 9213 §2.2, §3)",
          "[policy][cache-control]") {
  using cachalot::cache::forward_targeted_field;
  const std::vector<std::string> drop = {"Cachalot-Cache-Control"};
  CHECK(forward_targeted_field("CDN-Cache-Control", {}));             // §3: typically forwarded
  CHECK(forward_targeted_field("CDN-Cache-Control", drop));           // §3: kept unless configured
  CHECK_FALSE(forward_targeted_field("cachalot-cache-control", drop));  // §3: MAY remove when configured
  CHECK(forward_targeted_field("Other-Cache-Control", drop));         // §2.2: MUST be passed through
}
