#include "cache/freshness.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "http/date.h"

using namespace cachalot;
using cache::Freshness;
using cache::FreshnessOptions;
using cache::FreshnessState;

namespace {

constexpr int64_t kT = 1700000000;  // Tue, 14 Nov 2023 22:13:20 GMT: "now" when the response arrives
using Fields = std::vector<std::pair<std::string, std::string>>;

// An HTTP-date `offset` seconds from kT.
std::string D(int64_t offset) { return http::format_http_date(kT + offset); }
core::TimePoint at(int64_t offset) { return core::to_time_point(kT + offset); }
core::Seconds s(int64_t v) { return core::Seconds(v); }

}  // namespace

TEST_CASE("compute_freshness follows RFC 9111 §4.2 and RFC 5861, one change per row", "[policy][freshness]") {
  struct Want {
    int64_t lifetime;
    int64_t age = 0;
    bool heuristic = false;
    bool no_cache = false;
    bool must_revalidate = false;
    int64_t swr = 0;
    int64_t sie = 0;
    int64_t keep = 0;
    int64_t disconnect = 0;
  };
  struct Row {
    const char* name;
    int status;
    Fields fields;  // the response's fields; the baseline is Date: now, Cache-Control: max-age=100
    Want want;
    FreshnessOptions opts = {};
    int64_t request_sent = 0;  // offset of request_time; the response arrives at 0
  };
  // Rows with a CDN-Cache-Control field read it as the target list's only field (RFC 9213).
  const std::vector<std::string> targets = {"CDN-Cache-Control"};
  const std::string now = D(0);
  const std::vector<Row> rows = {
      {"§5.2.2.1 baseline: max-age gives the lifetime", 200, {{"Date", now}, {"Cache-Control", "max-age=100"}},
       {.lifetime = 100}},
      {"§4.2.1 s-maxage beats max-age and implies proxy-revalidate (§5.2.2.10)", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, s-maxage=50"}},
       {.lifetime = 50, .must_revalidate = true}},
      {"§4.2.1 max-age beats Expires", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}, {"Expires", D(500)}}, {.lifetime = 100}},
      {"§4.2.1 without max-age the lifetime is Expires minus Date", 200, {{"Date", now}, {"Expires", D(300)}},
       {.lifetime = 300}},
      {"§4.2.1 Expires is measured from Date, not from the receive time", 200,
       {{"Date", D(-50)}, {"Expires", D(100)}}, {.lifetime = 150, .age = 50}},
      {"§5.3 an invalid Expires (\"0\") means already expired, and blocks heuristics", 200,
       {{"Date", now}, {"Expires", "0"}, {"Last-Modified", D(-1000)}}, {.lifetime = 0}},
      {"§4.2.1 Expires before Date gives a zero lifetime", 200, {{"Date", now}, {"Expires", D(-10)}},
       {.lifetime = 0}},
      {"§4.2.1 with two Expires lines the first is used", 200,
       {{"Date", now}, {"Expires", D(100)}, {"Expires", D(500)}}, {.lifetime = 100}},
      {"RFC 9110 §6.6.1 without Date the receive time stands in", 200, {{"Expires", D(100)}}, {.lifetime = 100}},
      {"RFC 9110 §6.6.1 an invalid Date counts as absent", 200, {{"Date", "yesterday"}, {"Expires", D(100)}},
       {.lifetime = 100}},
      {"§4.2.2 heuristic: 10% of Date minus Last-Modified", 200, {{"Date", now}, {"Last-Modified", D(-1000)}},
       {.lifetime = 100, .heuristic = true}},
      {"§4.2.2 heuristic lifetime is capped by heuristic_max", 200,
       {{"Date", now}, {"Last-Modified", D(-10'000'000)}}, {.lifetime = 86400, .heuristic = true}},
      {"§4.2.2 heuristic uses heuristic_fraction", 200, {{"Date", now}, {"Last-Modified", D(-1000)}},
       {.lifetime = 500, .heuristic = true}, {.heuristic_fraction = 0.5}},
      {"§4.2.2 no heuristic for 302, which RFC 9110 §15.1 does not list", 302,
       {{"Date", now}, {"Last-Modified", D(-1000)}}, {.lifetime = 0}},
      {"§4.2.2 heuristic for 404, which RFC 9110 §15.1 lists", 404, {{"Date", now}, {"Last-Modified", D(-1000)}},
       {.lifetime = 100, .heuristic = true}},
      {"§4.2.2 public allows a heuristic for any status", 302,
       {{"Date", now}, {"Last-Modified", D(-1000)}, {"Cache-Control", "public"}},
       {.lifetime = 100, .heuristic = true}},
      {"§4.2.2 no Last-Modified: the heuristic gives nothing", 200, {{"Date", now}},
       {.lifetime = 0, .heuristic = true}},
      {"§4.2.2 Last-Modified after Date gives nothing", 200, {{"Date", now}, {"Last-Modified", D(10)}},
       {.lifetime = 0, .heuristic = true}},
      {"§4.2.2 never a heuristic when explicit freshness exists (max-age=0)", 200,
       {{"Date", now}, {"Cache-Control", "max-age=0"}, {"Last-Modified", D(-1000)}}, {.lifetime = 0}},
      {"route default_ttl replaces the §4.2.2 heuristic", 200, {{"Date", now}, {"Last-Modified", D(-1000)}},
       {.lifetime = 60, .heuristic = true}, {.default_ttl = s(60)}},
      {"route default_ttl applies to any status without explicit freshness", 302, {{"Date", now}},
       {.lifetime = 60, .heuristic = true}, {.default_ttl = s(60)}},
      {"route default_ttl does not override max-age", 200, {{"Date", now}, {"Cache-Control", "max-age=100"}},
       {.lifetime = 100}, {.default_ttl = s(60)}},
      {"route min_ttl raises an explicit lifetime", 200, {{"Date", now}, {"Cache-Control", "max-age=10"}},
       {.lifetime = 60}, {.min_ttl = s(60)}},
      {"route min_ttl leaves heuristic lifetimes alone", 200, {{"Date", now}, {"Last-Modified", D(-100)}},
       {.lifetime = 10, .heuristic = true}, {.min_ttl = s(60)}},
      {"route max_ttl caps an explicit lifetime", 200, {{"Date", now}, {"Cache-Control", "max-age=100"}},
       {.lifetime = 30}, {.max_ttl = s(30)}},
      {"route max_ttl caps a heuristic lifetime", 200, {{"Date", now}, {"Last-Modified", D(-1000)}},
       {.lifetime = 30, .heuristic = true}, {.max_ttl = s(30)}},
      {"§1.2.2 a huge max-age is clamped to 2^31", 200, {{"Date", now}, {"Cache-Control", "max-age=99999999999"}},
       {.lifetime = cache::kDeltaSecondsMax}},
      {"§1.2.2 a far-future Expires is clamped to 2^31", 200,
       {{"Date", now}, {"Expires", "Fri, 31 Dec 9999 23:59:59 GMT"}}, {.lifetime = cache::kDeltaSecondsMax}},
      {"§4.2.3 the Age field counts toward the initial age", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}, {"Age", "30"}}, {.lifetime = 100, .age = 30}},
      {"§4.2.3 response_delay is added to Age", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}, {"Age", "30"}}, {.lifetime = 100, .age = 35}, {}, -5},
      {"§4.2.3 response_delay counts even without Age", 200, {{"Date", now}, {"Cache-Control", "max-age=100"}},
       {.lifetime = 100, .age = 5}, {}, -5},
      {"§4.2.3 apparent age from Date beats a smaller corrected Age", 200,
       {{"Date", D(-40)}, {"Cache-Control", "max-age=100"}, {"Age", "10"}}, {.lifetime = 100, .age = 40}},
      {"§4.2.3 corrected Age beats a smaller apparent age", 200,
       {{"Date", D(-10)}, {"Cache-Control", "max-age=100"}, {"Age", "40"}}, {.lifetime = 100, .age = 40}},
      {"§4.2.3 a Date in the future gives no negative age", 200,
       {{"Date", D(30)}, {"Cache-Control", "max-age=100"}}, {.lifetime = 100}},
      {"§5.1 an invalid Age is ignored", 200, {{"Date", now}, {"Cache-Control", "max-age=100"}, {"Age", "old"}},
       {.lifetime = 100}},
      {"§5.1 only the first member of a listed Age counts", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}, {"Age", "7, 900"}}, {.lifetime = 100, .age = 7}},
      {"§5.2.2.4 no-cache is flagged and forbids stale windows", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, no-cache, stale-while-revalidate=30"}},
       {.lifetime = 100, .no_cache = true}},
      {"§5.2.2.2 must-revalidate forbids stale-while-revalidate and stale-if-error", 200,
       {{"Date", now},
        {"Cache-Control", "max-age=100, must-revalidate, stale-while-revalidate=30, stale-if-error=60"}},
       {.lifetime = 100, .must_revalidate = true}},
      {"§5.2.2.8 proxy-revalidate is must-revalidate for a shared cache", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, proxy-revalidate, stale-if-error=60"}},
       {.lifetime = 100, .must_revalidate = true}},
      {"§5.2.2.10 s-maxage forbids stale windows", 200,
       {{"Date", now}, {"Cache-Control", "s-maxage=100, stale-while-revalidate=30"}},
       {.lifetime = 100, .must_revalidate = true}},
      {"§4.2.4 must-revalidate also overrides the configured grace", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, must-revalidate"}},
       {.lifetime = 100, .must_revalidate = true}, {.grace_sie = s(300)}},
      {"RFC 5861 §3 stale-while-revalidate window from the directive", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, stale-while-revalidate=30"}}, {.lifetime = 100, .swr = 30}},
      {"RFC 5861 §4 stale-if-error window from the directive", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, stale-if-error=60"}}, {.lifetime = 100, .sie = 60}},
      {"route defaults give the windows when the origin sends none", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}}, {.lifetime = 100, .swr = 5, .sie = 7},
       {.default_swr = s(5), .default_sie = s(7)}},
      {"the origin's directives beat the route defaults", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, stale-while-revalidate=30, stale-if-error=2"}},
       {.lifetime = 100, .swr = 30, .sie = 2}, {.default_swr = s(5), .default_sie = s(7)}},
      {"cache.stale_if_error grace is a floor on the stale-if-error window", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, stale-if-error=10"}}, {.lifetime = 100, .sie = 60},
       {.grace_sie = s(60)}},
      {"cache.stale_if_error grace applies without the directive", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}}, {.lifetime = 100, .sie = 60}, {.grace_sie = s(60)}},
      {"keep applies to an entry with an ETag (it can be revalidated)", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}, {"ETag", "\"v1\""}}, {.lifetime = 100, .keep = 3600},
       {.keep = s(3600)}},
      {"keep applies to an entry with Last-Modified", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}, {"Last-Modified", D(-5)}},
       {.lifetime = 100, .keep = 3600}, {.keep = s(3600)}},
      {"no keep without a validator", 200, {{"Date", now}, {"Cache-Control", "max-age=100"}}, {.lifetime = 100},
       {.keep = s(3600)}},
      {"§4.2.4 cache.stale_on_disconnect keeps any entry past its lifetime", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}}, {.lifetime = 100, .disconnect = 10},
       {.stale_on_disconnect = s(10)}},
      {"§4.2.4 must-revalidate leaves no disconnect window", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100, must-revalidate"}},
       {.lifetime = 100, .must_revalidate = true}, {.stale_on_disconnect = s(10)}},
      {"§4.2.4 s-maxage leaves no disconnect window (§5.2.2.10)", 200,
       {{"Date", now}, {"Cache-Control", "s-maxage=100"}}, {.lifetime = 100, .must_revalidate = true},
       {.stale_on_disconnect = s(10)}},
      {"§5.2.2.4 no-cache leaves no disconnect window", 200, {{"Date", now}, {"Cache-Control", "no-cache"}},
       {.lifetime = 0, .heuristic = true, .no_cache = true}, {.stale_on_disconnect = s(10)}},
      {"RFC 9213 §2.2 a targeted max-age replaces Cache-Control's", 200,
       {{"Date", now}, {"Cache-Control", "max-age=100"}, {"CDN-Cache-Control", "max-age=30"}}, {.lifetime = 30}},
      {"RFC 9213 §2.2 a targeted field makes Expires ignored too: a heuristic instead", 200,
       {{"Date", now}, {"Expires", D(300)}, {"Last-Modified", D(-1000)}, {"CDN-Cache-Control", "must-revalidate"}},
       {.lifetime = 100, .heuristic = true, .must_revalidate = true}},
      {"RFC 9213 §2.1 an invalid targeted field is ignored: Expires counts again", 200,
       {{"Date", now}, {"Expires", D(300)}, {"CDN-Cache-Control", "max-age=1.5"}}, {.lifetime = 300}},
      {"RFC 9213 §2.2 targeted s-maxage is s-maxage for a shared cache", 200,
       {{"Date", now}, {"CDN-Cache-Control", "s-maxage=40, max-age=10"}},
       {.lifetime = 40, .must_revalidate = true}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::RequestHead req;
      http::ResponseHead resp;
      resp.status = r.status;
      for (const auto& [n, v] : r.fields) resp.headers.add(n, v);
      const auto cc = cache::select_response_cache_control(resp.headers, targets);
      const Freshness f = cache::compute_freshness(req, resp, cc, at(r.request_sent), at(0), r.opts);
      CHECK(f.lifetime.count() == r.want.lifetime);
      CHECK(f.corrected_initial_age.count() == r.want.age);
      CHECK(f.heuristic == r.want.heuristic);
      CHECK(f.no_cache == r.want.no_cache);
      CHECK(f.must_revalidate == r.want.must_revalidate);
      CHECK(f.stale_while_revalidate.count() == r.want.swr);
      CHECK(f.stale_if_error.count() == r.want.sie);
      CHECK(f.keep.count() == r.want.keep);
      CHECK(f.stale_on_disconnect.count() == r.want.disconnect);
      CHECK(f.request_time == at(r.request_sent));
      CHECK(f.response_time == at(0));
    }
  }
}

TEST_CASE("is_heuristically_cacheable lists exactly RFC 9110 §15.1's statuses", "[policy][freshness]") {
  const std::vector<int> listed = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};
  for (int status = 100; status < 600; ++status) {
    const bool want = std::find(listed.begin(), listed.end(), status) != listed.end();
    INFO("status " << status);
    CHECK(cache::is_heuristically_cacheable(status) == want);
  }
}

TEST_CASE("Freshness::state walks fresh, swr, revalidate-only and expired (RFC 9111 §4.2, RFC 5861)",
          "[policy][freshness]") {
  // Baseline: 10 s old on arrival, lifetime 100, swr 30, sie 60: fresh until +90,
  // serveable stale until +120, kept for stale-if-error until +150.
  auto baseline = [] {
    Freshness f;
    f.response_time = at(0);
    f.request_time = at(0);
    f.corrected_initial_age = s(10);
    f.lifetime = s(100);
    f.stale_while_revalidate = s(30);
    f.stale_if_error = s(60);
    return f;
  };
  struct Row {
    const char* name;
    std::function<void(Freshness&)> change;
    int64_t now;
    FreshnessState want;
    int64_t ttl;
  };
  auto none = [](Freshness&) {};
  const std::vector<Row> rows = {
      {"§4.2 fresh on arrival", none, 0, FreshnessState::Fresh, 90},
      {"§4.2 fresh one second before the lifetime is reached", none, 89, FreshnessState::Fresh, 1},
      {"§4.2 stale when age equals the lifetime", none, 90, FreshnessState::StaleWhileRevalidate, 0},
      {"RFC 5861 §3 still inside stale-while-revalidate", none, 119, FreshnessState::StaleWhileRevalidate, -29},
      {"RFC 5861 §3 past stale-while-revalidate, inside stale-if-error", none, 120,
       FreshnessState::StaleRevalidateOnly, -30},
      {"past every window", none, 150, FreshnessState::Expired, -60},
      {"keep extends the revalidate-only period", [](Freshness& f) { f.keep = s(3600); }, 150,
       FreshnessState::StaleRevalidateOnly, -60},
      {"§4.2.4 the disconnect window extends the revalidate-only period",
       [](Freshness& f) { f.stale_on_disconnect = s(61); }, 150, FreshnessState::StaleRevalidateOnly, -60},
      {"§4.2.4 past the disconnect window the entry is expired", [](Freshness& f) { f.stale_on_disconnect = s(61); },
       151, FreshnessState::Expired, -61},
      {"§5.2.2.4 a no-cache entry is never fresh", [](Freshness& f) { f.no_cache = true; }, 0,
       FreshnessState::StaleRevalidateOnly, 90},
      {"§4.2.4 must-revalidate: no stale-while-revalidate", [](Freshness& f) { f.must_revalidate = true; }, 90,
       FreshnessState::StaleRevalidateOnly, 0},
      {"§4.2.3 resident time is counted from the response time", none, -100, FreshnessState::Fresh, 90},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Freshness f = baseline();
      r.change(f);
      CHECK(f.state(at(r.now)) == r.want);
      CHECK(f.ttl(at(r.now)) == r.ttl);
    }
  }
}

TEST_CASE("drop_after is the first moment the entry is expired", "[policy][freshness]") {
  Freshness f;
  f.response_time = at(0);
  f.corrected_initial_age = s(10);
  f.lifetime = s(100);
  f.stale_while_revalidate = s(30);
  f.stale_if_error = s(60);
  CHECK(cache::drop_after(f) == at(150));
  CHECK(f.state(cache::drop_after(f) - core::Seconds(1)) != FreshnessState::Expired);
  CHECK(f.state(cache::drop_after(f)) == FreshnessState::Expired);
  f.keep = s(3600);
  CHECK(cache::drop_after(f) == at(3690));
  f.stale_on_disconnect = s(7200);
  CHECK(cache::drop_after(f) == at(7290));
  CHECK(f.state(cache::drop_after(f) - core::Seconds(1)) == FreshnessState::StaleRevalidateOnly);
  CHECK(f.state(cache::drop_after(f)) == FreshnessState::Expired);
}

TEST_CASE("FreshnessState names are kebab-case", "[policy][freshness]") {
  CHECK(cache::to_string(FreshnessState::Fresh) == "fresh");
  CHECK(cache::to_string(FreshnessState::StaleWhileRevalidate) == "stale-while-revalidate");
  CHECK(cache::to_string(FreshnessState::StaleRevalidateOnly) == "stale-revalidate-only");
  CHECK(cache::to_string(FreshnessState::Expired) == "expired");
}
