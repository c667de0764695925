#include "cache/evaluate.h"

#include <catch2/catch.hpp>

#include <functional>
#include <set>
#include <string>
#include <vector>

using namespace cachalot;
using cache::Decision;
using cache::Evaluation;
using cache::Freshness;
using cache::LookupReason;
using cache::RequestCacheControl;

namespace {

constexpr int64_t kT = 1700000000;
core::TimePoint at(int64_t offset) { return core::to_time_point(kT + offset); }
core::Seconds s(int64_t v) { return core::Seconds(v); }

// Stored at kT, 0 s old, lifetime 100, kept an hour for revalidation (it has validators).
Freshness baseline() {
  Freshness f;
  f.request_time = at(0);
  f.response_time = at(0);
  f.lifetime = s(100);
  f.keep = s(3600);
  return f;
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<Evaluation> {
  static std::string convert(const Evaluation& e) {
    return "{" + std::string(cache::to_string(e.decision)) + ", " + std::string(cache::to_string(e.reason)) + "}";
  }
};
}  // namespace Catch

TEST_CASE("evaluate decides hit, stale hit, revalidation or miss (RFC 9111 §4.2.4, §5.2.1, RFC 5861)",
          "[policy][evaluate]") {
  struct Row {
    const char* name;
    std::function<void(Freshness&)> change;
    RequestCacheControl rcc;
    int64_t now;
    Evaluation want;
  };
  auto none = [](Freshness&) {};
  auto swr30 = [](Freshness& f) { f.stale_while_revalidate = s(30); };
  auto must_revalidate = [](Freshness& f) { f.must_revalidate = true; };
  auto no_cache = [](Freshness& f) { f.no_cache = true; };
  auto no_keep = [](Freshness& f) { f.keep = s(0); };
  const std::vector<Row> rows = {
      {"§4.2 a fresh response is a hit", none, {}, 10, {Decision::Hit, LookupReason::Fresh}},
      {"§4.2 one second before the lifetime it is still fresh", none, {}, 99, {Decision::Hit, LookupReason::Fresh}},
      {"§4.2 at age == lifetime it is stale and must be revalidated", none, {}, 100,
       {Decision::Revalidate, LookupReason::Stale}},
      {"§4.2.3 the initial age counts", [](Freshness& f) { f.corrected_initial_age = s(95); }, {}, 10,
       {Decision::Revalidate, LookupReason::Stale}},
      {"§5.2.2.4 response no-cache: validate even when fresh", no_cache, {}, 10,
       {Decision::Revalidate, LookupReason::NoCache}},
      {"§5.2.1.4 request no-cache: validate a fresh response", none, {.no_cache = true}, 10,
       {Decision::Revalidate, LookupReason::RequestNoCache}},
      {"§5.2.1.1 request max-age below the age", none, {.max_age = 5}, 10,
       {Decision::Revalidate, LookupReason::RequestMaxAge}},
      {"§5.2.1.1 request max-age equal to the age is acceptable", none, {.max_age = 10}, 10,
       {Decision::Hit, LookupReason::Fresh}},
      {"§5.2.1.1 request max-age=0 on a fresh response", none, {.max_age = 0}, 1,
       {Decision::Revalidate, LookupReason::RequestMaxAge}},
      {"§5.2.1.3 request min-fresh not met", none, {.min_fresh = 95}, 10,
       {Decision::Revalidate, LookupReason::RequestMinFresh}},
      {"§5.2.1.3 request min-fresh met exactly", none, {.min_fresh = 90}, 10, {Decision::Hit, LookupReason::Fresh}},
      {"RFC 5861 §3 inside stale-while-revalidate: serve stale, refresh", swr30, {}, 110,
       {Decision::HitStale, LookupReason::StaleWhileRevalidate}},
      {"RFC 5861 §3 past stale-while-revalidate: revalidate", swr30, {}, 130,
       {Decision::Revalidate, LookupReason::Stale}},
      {"§4.2.4 must-revalidate: never served stale", must_revalidate, {}, 100,
       {Decision::Revalidate, LookupReason::MustRevalidate}},
      {"§4.2.4 must-revalidate: a fresh response is still a hit", must_revalidate, {}, 10,
       {Decision::Hit, LookupReason::Fresh}},
      {"§5.2.1.2 max-stale accepts a stale response", none, {.max_stale = 20}, 110,
       {Decision::HitStale, LookupReason::MaxStale}},
      {"§5.2.1.2 max-stale accepts exactly its limit", none, {.max_stale = 20}, 120,
       {Decision::HitStale, LookupReason::MaxStale}},
      {"§5.2.1.2 max-stale below the staleness", none, {.max_stale = 20}, 130,
       {Decision::Revalidate, LookupReason::Stale}},
      {"§5.2.1.2 bare max-stale accepts even an expired entry", no_keep, {.max_stale = cache::kMaxStaleAny}, 5000,
       {Decision::HitStale, LookupReason::MaxStale}},
      {"§4.2.4 max-stale does not override must-revalidate", must_revalidate, {.max_stale = cache::kMaxStaleAny},
       110, {Decision::Revalidate, LookupReason::MustRevalidate}},
      {"§5.2.2.4 max-stale does not override response no-cache", no_cache, {.max_stale = cache::kMaxStaleAny}, 110,
       {Decision::Revalidate, LookupReason::NoCache}},
      {"§5.2.1.1 request max-age refuses stale responses, even inside stale-while-revalidate", swr30,
       {.max_age = 1000}, 110, {Decision::Revalidate, LookupReason::Stale}},
      {"§5.2.1.1 max-age with max-stale: both limits hold", none, {.max_age = 105, .max_stale = 20}, 110,
       {Decision::Revalidate, LookupReason::Stale}},
      {"§5.2.1.2 max-age with max-stale: both satisfied", none, {.max_age = 200, .max_stale = 20}, 110,
       {Decision::HitStale, LookupReason::MaxStale}},
      {"§5.2.1.3 min-fresh rules out a stale response, even inside stale-while-revalidate", swr30,
       {.min_fresh = 1}, 110, {Decision::Revalidate, LookupReason::Stale}},
      {"§5.2.1.4 request no-cache rules out stale-while-revalidate", swr30, {.no_cache = true}, 110,
       {Decision::Revalidate, LookupReason::Stale}},
      {"past every window the entry is a miss", no_keep, {}, 200, {Decision::Miss, LookupReason::Stale}},
      {"§4.2.4 past every window with must-revalidate: a miss",
       [](Freshness& f) {
         f.must_revalidate = true;
         f.keep = s(0);
       },
       {}, 200, {Decision::Miss, LookupReason::MustRevalidate}},
      {"§5.2.2.4 a no-cache entry without keep is a miss once past its lifetime",
       [](Freshness& f) {
         f.no_cache = true;
         f.keep = s(0);
       },
       {}, 200, {Decision::Miss, LookupReason::NoCache}},
      {"keep: a stale entry with validators is revalidated until keep runs out", none, {}, 3699,
       {Decision::Revalidate, LookupReason::Stale}},
      {"keep: once keep runs out it is a miss", none, {}, 3700, {Decision::Miss, LookupReason::Stale}},
      {"§4.2.4 inside the disconnect window an entry is forwarded, kept as a fallback",
       [](Freshness& f) {
         f.keep = s(0);
         f.stale_on_disconnect = s(10);
       },
       {}, 109, {Decision::Revalidate, LookupReason::Stale}},
      {"§4.2.4 past the disconnect window it is a miss",
       [](Freshness& f) {
         f.keep = s(0);
         f.stale_on_disconnect = s(10);
       },
       {}, 110, {Decision::Miss, LookupReason::Stale}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Freshness f = baseline();
      r.change(f);
      CHECK(cache::evaluate(f, r.rcc, at(r.now)) == r.want);
    }
  }
}

TEST_CASE("can_serve_stale_on_error follows RFC 5861 §4 within RFC 9111 §4.2.4", "[policy][evaluate]") {
  // Baseline: lifetime 100, stale-if-error 60, no grace.
  struct Row {
    const char* name;
    std::function<void(Freshness&)> change;
    RequestCacheControl rcc;
    int64_t now;
    int64_t grace;
    bool want;
  };
  auto none = [](Freshness&) {};
  const std::vector<Row> rows = {
      {"RFC 5861 §4 a fresh response may answer an error", none, {}, 10, 0, true},
      {"RFC 5861 §4 inside stale-if-error", none, {}, 150, 0, true},
      {"RFC 5861 §4 at the end of stale-if-error", none, {}, 160, 0, false},
      {"cache.stale_if_error grace extends the window", none, {}, 200, 120, true},
      {"RFC 5861 §4 request stale-if-error extends the window", none, {.stale_if_error = 120}, 200, 0, true},
      {"§5.2.1.2 request max-stale accepts the staleness", none, {.max_stale = 100}, 200, 0, true},
      {"§5.2.2.2 must-revalidate: an error response instead of stale",
       [](Freshness& f) { f.must_revalidate = true; }, {}, 150, 600, false},
      {"§5.2.2.2 must-revalidate does not stop a fresh response", [](Freshness& f) { f.must_revalidate = true; }, {},
       10, 0, true},
      {"§5.2.2.4 response no-cache: never without successful validation", [](Freshness& f) { f.no_cache = true; },
       {}, 10, 600, false},
      {"§5.2.1.4 request no-cache: the client wants a validated response", none, {.no_cache = true}, 150, 600,
       false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Freshness f = baseline();
      f.stale_if_error = s(60);
      r.change(f);
      CHECK(cache::can_serve_stale_on_error(f, r.rcc, at(r.now), s(r.grace)) == r.want);
    }
  }
}

TEST_CASE("can_serve_stale_when_disconnected follows RFC 9111 §4.2.4", "[policy][evaluate]") {
  // Baseline: lifetime 100 (stale from 100 on), stored without a disconnect window.
  struct Row {
    const char* name;
    std::function<void(Freshness&)> change;
    RequestCacheControl rcc;
    int64_t now;
    int64_t grace;  // cache.stale_on_disconnect now
    bool want;
  };
  auto none = [](Freshness&) {};
  auto stored_with_10 = [](Freshness& f) { f.stale_on_disconnect = s(10); };
  const std::vector<Row> rows = {
      {"§4.2.4 a fresh response may stand in for an unreachable origin", none, {}, 10, 0, true},
      {"§4.2.4 disconnected: stale inside the grace is served", none, {}, 105, 10, true},
      {"§4.2.4 at the end of the grace it is not", none, {}, 110, 10, false},
      {"§4.2.4 without a grace a stale response is not served", none, {}, 100, 0, false},
      {"§4.2.4 the window stored with the entry counts after a reload lowered the grace", stored_with_10, {}, 105,
       0, true},
      {"§4.2.4 a reload that raised the grace applies to stored entries", stored_with_10, {}, 150, 60, true},
      {"§5.2.1.2 the request's max-stale permits more", none, {.max_stale = 100}, 200, 10, true},
      {"§5.2.1.2 but not beyond it", none, {.max_stale = 100}, 201, 10, false},
      {"§5.2.2.2 must-revalidate forbids a stale response even when disconnected",
       [](Freshness& f) { f.must_revalidate = true; }, {}, 105, 10, false},
      {"§5.2.2.2 must-revalidate beats the request's max-stale too", [](Freshness& f) { f.must_revalidate = true; },
       {.max_stale = cache::kMaxStaleAny}, 105, 10, false},
      {"§5.2.2.2 must-revalidate does not stop a fresh response", [](Freshness& f) { f.must_revalidate = true; }, {},
       10, 10, true},
      {"§5.2.2.4 response no-cache: never without a successful validation", [](Freshness& f) { f.no_cache = true; },
       {}, 10, 10, false},
      {"§5.2.1.4 request no-cache: the client wants a validated response", none, {.no_cache = true}, 105, 10, false},
      {"RFC 5861 stale-if-error is not a disconnect window (the caller checks it first)",
       [](Freshness& f) { f.stale_if_error = s(60); }, {}, 150, 10, false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Freshness f = baseline();
      r.change(f);
      CHECK(cache::can_serve_stale_when_disconnected(f, r.rcc, at(r.now), s(r.grace)) == r.want);
    }
  }
}

TEST_CASE("stale-if-error applies to 500, 502, 503 and 504 (RFC 5861 §4)", "[policy][evaluate]") {
  for (int status = 100; status < 600; ++status) {
    INFO("status " << status);
    CHECK(cache::is_stale_if_error_status(status) ==
          (status == 500 || status == 502 || status == 503 || status == 504));
  }
}

TEST_CASE("lookup reasons have unique kebab-case names and RFC 9211 fwd values", "[policy][evaluate]") {
  struct Row {
    LookupReason reason;
    std::string_view name, fwd;
  };
  const std::vector<Row> rows = {
      {LookupReason::Fresh, "fresh", ""},
      {LookupReason::StaleWhileRevalidate, "stale-while-revalidate", ""},
      {LookupReason::MaxStale, "max-stale", ""},
      {LookupReason::Stale, "stale", "stale"},
      {LookupReason::MustRevalidate, "must-revalidate", "stale"},
      {LookupReason::NoCache, "no-cache", "stale"},
      {LookupReason::RequestNoCache, "request-no-cache", "request"},
      {LookupReason::RequestMaxAge, "request-max-age", "request"},
      {LookupReason::RequestMinFresh, "request-min-fresh", "request"},
      {LookupReason::Authorization, "authorization", "request"},
      {LookupReason::UriMiss, "uri-miss", "uri-miss"},
      {LookupReason::VaryMiss, "vary-miss", "vary-miss"},
      {LookupReason::Method, "method", "method"},
      {LookupReason::Bypass, "bypass", "bypass"},
      {LookupReason::Miss, "miss", "miss"},
  };
  std::set<std::string_view> names;
  for (const Row& r : rows) {
    CHECK(cache::to_string(r.reason) == r.name);
    CHECK(cache::fwd_value(r.reason) == r.fwd);
    CHECK(names.insert(r.name).second);
  }
  CHECK(cache::to_string(Decision::Hit) == "hit");
  CHECK(cache::to_string(Decision::HitStale) == "hit-stale");
  CHECK(cache::to_string(Decision::Revalidate) == "revalidate");
  CHECK(cache::to_string(Decision::Miss) == "miss");
}

TEST_CASE("refresh_ahead_probability rises from 0 to 1 over the last 10% of the lifetime", "[policy][evaluate]") {
  using std::chrono::milliseconds;
  struct Row {
    const char* name;
    std::function<void(Freshness&)> change;
    core::TimePoint now;
    double want;
  };
  auto none = [](Freshness&) {};
  const std::vector<Row> rows = {
      // Baseline: lifetime 100 s from kT, so it expires at +100 s and the window is the last 10 s.
      {"just stored", none, at(0), 0.0},
      {"before the window", none, at(89), 0.0},
      {"at the start of the window", none, at(90), 0.0},
      {"halfway through the window", none, at(95), 0.5},
      {"near the end", none, at(99), 0.9},
      {"in milliseconds", none, at(99) + milliseconds(500), 0.95},
      {"at expiry", none, at(100), 1.0},
      {"past expiry", none, at(150), 1.0},
      {"no lifetime: never", [](Freshness& f) { f.lifetime = s(0); }, at(0), 0.0},
      {"a short lifetime still gets the last second", [](Freshness& f) { f.lifetime = s(5); },
       at(4) + milliseconds(500), 0.5},
      {"a short lifetime: before its last second", [](Freshness& f) { f.lifetime = s(5); }, at(3), 0.0},
      {"§4.2.3 the initial age counts: it expires earlier",
       [](Freshness& f) { f.corrected_initial_age = s(20); }, at(75), 0.5},
      {"a long lifetime has a long window", [](Freshness& f) { f.lifetime = s(1000); }, at(950), 0.5},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Freshness f = baseline();
      r.change(f);
      const double p = cache::refresh_ahead_probability(f, r.now);
      CHECK(p == Approx(r.want).margin(1e-9));
      CHECK(p >= 0.0);
      CHECK(p <= 1.0);
    }
  }
}
