#include "cache/storable.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace cachalot;
using cache::StoreReason;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

}  // namespace

TEST_CASE("storable applies RFC 9111 §3 for a shared cache, one change per row", "[policy][storable]") {
  struct Row {
    const char* name;
    // Changes to the baseline: GET, no request fields; 200 with
    // "Cache-Control: max-age=60" and "ETag: \"v1\"".
    http::Method method = http::Method::Get;
    Fields request = {};
    int status = 200;
    std::string cache_control = "max-age=60";
    Fields response = {{"ETag", "\"v1\""}};
    cache::StorableOptions opts = {};
    std::string cdn_cache_control = "";  // RFC 9213 rows: a CDN-Cache-Control field (the target list's only one)
    // Expected.
    bool store = true;
    StoreReason reason = StoreReason::Stored;
    bool strip_set_cookie = false;
    std::vector<std::string> strip = {};
  };
  const Fields no_validators = {};
  const std::vector<Row> rows = {
      {.name = "§3 baseline: a fresh 200 to a GET is stored"},
      {.name = "§3 HEAD responses are not stored (we store GET only)", .method = http::Method::Head,
       .store = false, .reason = StoreReason::Method},
      {.name = "§3 POST responses are not stored", .method = http::Method::Post, .store = false,
       .reason = StoreReason::Method},
      {.name = "§5.2.1.5 request no-store", .request = {{"Cache-Control", "no-store"}}, .store = false,
       .reason = StoreReason::RequestNoStore},
      {.name = "§5.2.2.5 response no-store", .cache_control = "no-store, max-age=60", .store = false,
       .reason = StoreReason::NoStore},
      {.name = "§5.2.2.3 must-understand lifts no-store for an understood status",
       .cache_control = "no-store, must-understand, max-age=60"},
      {.name = "§5.2.2.3 must-understand with an unknown status is not stored", .status = 299,
       .cache_control = "no-store, must-understand, max-age=60", .store = false,
       .reason = StoreReason::MustUnderstand},
      {.name = "§5.2.2.3 must-understand without no-store, unknown status: still not stored", .status = 599,
       .cache_control = "must-understand, max-age=60", .store = false, .reason = StoreReason::MustUnderstand},
      {.name = "§5.2.2.3 must-understand without no-store, understood status: stored",
       .cache_control = "must-understand, max-age=60"},
      {.name = "§5.2.2.3 must-understand lifts no-store for an understood 404", .status = 404,
       .cache_control = "no-store, must-understand, max-age=60"},
      {.name = "§5.2.2.5 no-store on an unknown status without must-understand is not stored", .status = 299,
       .cache_control = "no-store, max-age=60", .store = false, .reason = StoreReason::NoStore},
      {.name = "§3 an unknown 2xx (299) with max-age is stored: its status is final", .status = 299},
      {.name = "§3 an unknown 4xx (499) with s-maxage is stored", .status = 499, .cache_control = "s-maxage=60"},
      {.name = "§3 an unknown 5xx (599) with Expires is stored", .status = 599, .cache_control = "",
       .response = {{"ETag", "\"v1\""}, {"Expires", "Tue, 14 Nov 2023 22:13:20 GMT"}}},
      {.name = "§3 an unknown status marked public is stored (heuristics allowed, §4.2.2)", .status = 299,
       .cache_control = "public"},
      {.name = "§3 an unknown status without explicit freshness is not stored", .status = 299, .cache_control = "",
       .response = {{"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}}, .store = false,
       .reason = StoreReason::Status},
      {.name = "§3 a known but not heuristically cacheable 201 without explicit freshness is not stored",
       .status = 201, .cache_control = "", .store = false, .reason = StoreReason::Status},
      {.name = "§3 a 201 with max-age is stored", .status = 201},
      {.name = "§3 a 1xx status is not final", .status = 103, .store = false, .reason = StoreReason::Status},
      {.name = "RFC 9110 §15 600 is no HTTP status, so not a final one", .status = 600, .store = false,
       .reason = StoreReason::Status},
      {.name = "§3.3 206 stays excluded even with must-understand", .status = 206,
       .cache_control = "no-store, must-understand, max-age=60", .store = false, .reason = StoreReason::Partial},
      {.name = "§3 a 304 is not stored (it updates entries, §4.3.4)", .status = 304, .store = false,
       .reason = StoreReason::Status},
      {.name = "§3.3 206 Partial Content is not stored", .status = 206, .store = false,
       .reason = StoreReason::Partial},
      {.name = "§5.2.2.7 unqualified private is not stored", .cache_control = "private, max-age=60",
       .store = false, .reason = StoreReason::Private},
      {.name = "§5.2.2.7 qualified private is stored without the named fields",
       .cache_control = "private=\"X-User\", max-age=60", .strip = {"x-user"}},
      {.name = "§5.2.2.4 qualified no-cache is stored without the named fields",
       .cache_control = "no-cache=\"X-A\", max-age=60", .strip = {"x-a"}},
      {.name = "§3.5 Authorization without a permitting directive is not stored",
       .request = {{"Authorization", "Bearer x"}}, .store = false, .reason = StoreReason::Authorization},
      {.name = "§3.5 Authorization with public is stored", .request = {{"Authorization", "Bearer x"}},
       .cache_control = "public, max-age=60"},
      {.name = "§3.5 Authorization with s-maxage is stored", .request = {{"Authorization", "Bearer x"}},
       .cache_control = "s-maxage=60"},
      {.name = "§3.5 Authorization with must-revalidate is stored", .request = {{"Authorization", "Bearer x"}},
       .cache_control = "max-age=60, must-revalidate"},
      {.name = "§3.5 proxy-revalidate does not permit storing an Authorization response",
       .request = {{"Authorization", "Bearer x"}}, .cache_control = "max-age=60, proxy-revalidate", .store = false,
       .reason = StoreReason::Authorization},
      {.name = "Set-Cookie is not stored by default (our policy; RFC 9111 §3 leaves it open)",
       .response = {{"ETag", "\"v1\""}, {"Set-Cookie", "a=1"}},
       .store = false, .reason = StoreReason::SetCookie},
      {.name = "§3.1 Set-Cookie is stripped before storing when the route says strip",
       .response = {{"ETag", "\"v1\""}, {"Set-Cookie", "a=1"}}, .opts = {.allow_set_cookie_strip = true},
       .strip_set_cookie = true, .strip = {"set-cookie"}},
      {.name = "Set-Cookie2 (RFC 2965) is not stored by default either",
       .response = {{"ETag", "\"v1\""}, {"Set-Cookie2", "a=1"}}, .store = false, .reason = StoreReason::SetCookie},
      {.name = "§3.1 Set-Cookie and Set-Cookie2 are both stripped under store_without",
       .response = {{"ETag", "\"v1\""}, {"Set-Cookie2", "b=2"}, {"Set-Cookie", "a=1"}},
       .opts = {.allow_set_cookie_strip = true}, .strip_set_cookie = true, .strip = {"set-cookie", "set-cookie2"}},
      {.name = "§5.2.2.4 Set-Cookie named by no-cache=\"set-cookie\" is stripped without the route option",
       .cache_control = "max-age=60, no-cache=\"Set-Cookie\"", .response = {{"ETag", "\"v1\""}, {"Set-Cookie", "a=1"}},
       .strip = {"set-cookie"}},
      {.name = "§4.1 Vary: * is not stored", .response = {{"ETag", "\"v1\""}, {"Vary", "*"}}, .store = false,
       .reason = StoreReason::VaryStar},
      {.name = "§4.1 Vary with a '*' member is not stored", .response = {{"ETag", "\"v1\""}, {"Vary", "Accept, *"}},
       .store = false, .reason = StoreReason::VaryStar},
      {.name = "§4.1 an ordinary Vary is stored", .response = {{"ETag", "\"v1\""}, {"Vary", "Accept-Encoding"}}},
      {.name = "§3 a 302 without explicit freshness is not stored (not heuristically cacheable)", .status = 302,
       .cache_control = "", .response = {{"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}}, .store = false,
       .reason = StoreReason::Status},
      {.name = "§3 a 302 with max-age is stored", .status = 302},
      {.name = "§3 a 302 with Expires is stored", .status = 302, .cache_control = "",
       .response = {{"Expires", "Tue, 14 Nov 2023 22:13:20 GMT"}}},
      {.name = "§3 a 302 marked public is stored", .status = 302, .cache_control = "public"},
      {.name = "§3 a 404 without directives is stored (heuristically cacheable)", .status = 404,
       .cache_control = ""},
      {.name = "§3 a 500 without explicit freshness is not stored", .status = 500, .cache_control = "",
       .store = false, .reason = StoreReason::Status},
      {.name = "§4.2.2 a 200 with no lifetime, no validators and no stale window is not worth storing",
       .cache_control = "",
       .response = no_validators, .store = false, .reason = StoreReason::NoFreshness},
      {.name = "a route default_ttl gives such a response a lifetime", .cache_control = "",
       .response = no_validators, .opts = {.has_default_ttl = true}},
      {.name = "§4.2.2 Last-Modified gives such a response a heuristic lifetime and a validator",
       .cache_control = "", .response = {{"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}}},
      {.name = "max-age=0 without validators is useless", .cache_control = "max-age=0", .response = no_validators,
       .store = false, .reason = StoreReason::NoFreshness},
      {.name = "RFC 5861 max-age=0 with stale-while-revalidate is useful",
       .cache_control = "max-age=0, stale-while-revalidate=30", .response = no_validators},
      {.name = "§4.2.4 a stale window forbidden by must-revalidate does not count",
       .cache_control = "max-age=0, must-revalidate, stale-while-revalidate=30", .response = no_validators,
       .store = false, .reason = StoreReason::NoFreshness},
      {.name = "route stale defaults make max-age=0 useful", .cache_control = "max-age=0",
       .response = no_validators, .opts = {.has_stale_defaults = true}},
      {.name = "§5.2.2.10 s-maxage=0 wins over max-age for usefulness", .cache_control = "max-age=60, s-maxage=0",
       .response = no_validators, .store = false, .reason = StoreReason::NoFreshness},
      {.name = "§5.2.2.4 unqualified no-cache with a validator is stored", .cache_control = "no-cache"},
      {.name = "§5.2.2.4 unqualified no-cache without a validator is useless",
       .cache_control = "no-cache, max-age=60", .response = no_validators, .store = false,
       .reason = StoreReason::NoFreshness},
      {.name = "§5.3 Expires alone is a lifetime", .cache_control = "",
       .response = {{"Expires", "Tue, 14 Nov 2023 22:13:20 GMT"}}},
      {.name = "RFC 9213 §2.2 a targeted max-age stores a response Cache-Control forbids",
       .cache_control = "no-store", .cdn_cache_control = "max-age=60"},
      {.name = "RFC 9213 §2.2 a targeted no-store wins over Cache-Control: max-age", .cdn_cache_control = "no-store",
       .store = false, .reason = StoreReason::NoStore},
      {.name = "RFC 9213 §2.2 a targeted private is not stored", .cdn_cache_control = "private", .store = false,
       .reason = StoreReason::Private},
      {.name = "RFC 9213 §2.2 a targeted private=\"x-user\" strips the field", .cache_control = "private",
       .cdn_cache_control = "max-age=60, private=\"X-User\"", .strip = {"x-user"}},
      {.name = "RFC 9213 §2.1 an invalid targeted field is ignored: Cache-Control's no-store decides",
       .cache_control = "no-store", .cdn_cache_control = "max-age=\"60\"", .store = false,
       .reason = StoreReason::NoStore},
      {.name = "RFC 9213 §2.2 with a targeted field Expires does not make a 302 cacheable", .status = 302,
       .cache_control = "", .response = {{"ETag", "\"v1\""}, {"Expires", "Tue, 14 Nov 2023 22:13:20 GMT"}},
       .cdn_cache_control = "none", .store = false, .reason = StoreReason::Status},
      {.name = "RFC 9213 §2.2 with a targeted field Expires is no lifetime", .cache_control = "",
       .response = {{"Expires", "Tue, 14 Nov 2023 22:13:20 GMT"}}, .cdn_cache_control = "none", .store = false,
       .reason = StoreReason::NoFreshness},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::RequestHead req;
      req.method = r.method;
      for (const auto& [n, v] : r.request) req.headers.add(n, v);
      http::ResponseHead resp;
      resp.status = r.status;
      if (!r.cache_control.empty()) resp.headers.add("Cache-Control", r.cache_control);
      for (const auto& [n, v] : r.response) resp.headers.add(n, v);
      if (!r.cdn_cache_control.empty()) resp.headers.add("CDN-Cache-Control", r.cdn_cache_control);

      const auto v = cache::storable(req, cache::parse_request_cache_control(req), resp,
                                     cache::select_response_cache_control(resp.headers, {"CDN-Cache-Control"}), r.opts);
      INFO("reason: " << cache::to_string(v.reason));
      CHECK(v.store == r.store);
      CHECK(v.reason == r.reason);
      CHECK(v.strip_set_cookie == r.strip_set_cookie);
      CHECK(v.strip_fields == r.strip);
    }
  }
}

TEST_CASE("may_serve_to_authorized allows public, s-maxage and must-revalidate only (RFC 9111 §3.5)",
          "[policy][storable]") {
  struct Row {
    const char* name;
    const char* cache_control;
    bool want;
  };
  const std::vector<Row> rows = {
      {"§3.5 max-age alone does not allow it", "max-age=60", false},
      {"§3.5 public allows it", "public", true},
      {"§3.5 s-maxage allows it", "s-maxage=10", true},
      {"§3.5 must-revalidate allows it", "must-revalidate", true},
      {"§3.5 proxy-revalidate is not in the list", "proxy-revalidate", false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK(cache::may_serve_to_authorized(cache::parse_response_cache_control(r.cache_control)) == r.want);
    }
  }
}

TEST_CASE("is_final_status: 200..599 (RFC 9110 §15)", "[policy][storable]") {
  for (int status = 0; status < 1000; ++status) {
    INFO("status " << status);
    CHECK(cache::is_final_status(status) == (status >= 200 && status <= 599));
  }
}

TEST_CASE("StoreReason names are unique kebab-case words", "[policy][storable]") {
  const std::vector<std::pair<StoreReason, std::string_view>> names = {
      {StoreReason::Stored, "stored"},
      {StoreReason::Method, "method"},
      {StoreReason::RequestNoStore, "request-no-store"},
      {StoreReason::NoStore, "no-store"},
      {StoreReason::Private, "private"},
      {StoreReason::Authorization, "authorization"},
      {StoreReason::SetCookie, "set-cookie"},
      {StoreReason::Status, "status"},
      {StoreReason::MustUnderstand, "must-understand"},
      {StoreReason::Partial, "partial"},
      {StoreReason::VaryStar, "vary-star"},
      {StoreReason::NoFreshness, "no-freshness"},
      {StoreReason::TooLarge, "too-large"},
      {StoreReason::Incomplete, "incomplete"},
      {StoreReason::Bypass, "bypass"},
  };
  std::set<std::string_view> seen;
  for (const auto& [reason, name] : names) {
    CHECK(cache::to_string(reason) == name);
    CHECK(seen.insert(name).second);
  }
}
