#include "cache/freshness.h"

#include <algorithm>

#include "http/date.h"

namespace cachalot::cache {

namespace {

int64_t clamp_delta(int64_t v) noexcept { return std::clamp<int64_t>(v, 0, kDeltaSecondsMax); }

// Whole seconds from `from` to `to`, never negative (clocks step backwards).
int64_t seconds_between(core::TimePoint from, core::TimePoint to) noexcept {
  return std::max<int64_t>(0, std::chrono::duration_cast<core::Seconds>(to - from).count());
}

// The first Age value (§5.1: Age = delta-seconds; a list means a broken
// intermediary, so only the first member counts). Invalid reads as absent.
int64_t age_value(const http::HeaderMap& h) noexcept {
  auto v = h.get("age");
  if (!v) return 0;
  std::string_view s = *v;
  s = http::trim_ows(s.substr(0, s.find(',')));
  return parse_delta_seconds(s).value_or(0);
}

}  // namespace

std::string_view to_string(FreshnessState s) noexcept {
  switch (s) {
    case FreshnessState::Fresh: return "fresh";
    case FreshnessState::StaleWhileRevalidate: return "stale-while-revalidate";
    case FreshnessState::StaleRevalidateOnly: return "stale-revalidate-only";
    case FreshnessState::Expired: return "expired";
  }
  return "unknown";
}

core::Seconds Freshness::current_age(core::TimePoint now) const noexcept {
  // §4.2.3: current_age = corrected_initial_age + resident_time
  return corrected_initial_age + core::Seconds(seconds_between(response_time, now));
}

int64_t Freshness::ttl(core::TimePoint now) const noexcept {
  return lifetime.count() - current_age(now).count();
}

FreshnessState Freshness::state(core::TimePoint now) const noexcept {
  const int64_t age = current_age(now).count();
  // §4.2: fresh while freshness_lifetime > current_age. A no-cache entry is
  // never fresh: it is validated before every use (§5.2.2.4).
  if (!no_cache && age < lifetime.count()) return FreshnessState::Fresh;
  const int64_t stale_for = age - lifetime.count();  // negative only for no-cache entries
  if (!no_cache && !must_revalidate && stale_for < stale_while_revalidate.count())
    return FreshnessState::StaleWhileRevalidate;
  const int64_t last_window = std::max({stale_while_revalidate, stale_if_error, keep, stale_on_disconnect}).count();
  if (stale_for < last_window) return FreshnessState::StaleRevalidateOnly;
  return FreshnessState::Expired;
}

core::TimePoint drop_after(const Freshness& f) noexcept {
  const core::Seconds last_window =
      std::max({f.stale_while_revalidate, f.stale_if_error, f.keep, f.stale_on_disconnect});
  return f.response_time + f.lifetime + last_window - f.corrected_initial_age;
}

bool is_heuristically_cacheable(int status) noexcept {
  switch (status) {
    case 200: case 203: case 204: case 206: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
      return true;
    default:
      return false;
  }
}

Freshness compute_freshness([[maybe_unused]] const http::RequestHead& req, const http::ResponseHead& resp,
                            const ResponseCacheControl& cc, core::TimePoint request_time,
                            core::TimePoint response_time, const FreshnessOptions& opts) {
  const http::HeaderMap& h = resp.headers;
  Freshness f;
  f.request_time = request_time;
  f.response_time = response_time;

  // RFC 9110 §6.6.1: a response without a (valid) Date is dated when received.
  const int64_t response_s = core::to_unix_seconds(response_time);
  std::optional<int64_t> date;
  if (auto d = h.get("date")) date = http::parse_http_date(*d);
  const int64_t date_value = date.value_or(response_s);

  // §4.2.3: how old the response already was when it arrived.
  const int64_t apparent_age = std::max<int64_t>(0, response_s - date_value);
  const int64_t response_delay = seconds_between(request_time, response_time);
  const int64_t corrected_age_value = age_value(h) + response_delay;
  f.corrected_initial_age = core::Seconds(clamp_delta(std::max(apparent_age, corrected_age_value)));

  // §4.2.1: the first of s-maxage (a shared cache), max-age, Expires - Date.
  std::optional<int64_t> lifetime;
  if (cc.s_maxage) {
    lifetime = *cc.s_maxage;
  } else if (cc.max_age) {
    lifetime = *cc.max_age;
  } else if (auto expires = cc.targeted ? std::nullopt : h.get("expires")) {
    // §5.3: an invalid Expires (e.g. "0") means "already expired". get() gives
    // the first field line: with duplicates, the first occurrence (§4.2.1).
    // RFC 9213 §2.2: a cache using a targeted field ignores Expires.
    auto e = http::parse_http_date(*expires);
    lifetime = e ? *e - date_value : 0;
  }

  if (lifetime) {
    f.lifetime = core::Seconds(clamp_delta(std::max(*lifetime, opts.min_ttl.count())));
  } else if (opts.default_ttl.count() > 0) {
    // A route default stands in for §4.2.2 heuristics.
    f.lifetime = core::Seconds(clamp_delta(opts.default_ttl.count()));
    f.heuristic = true;
  } else if (is_heuristically_cacheable(resp.status) || cc.public_) {
    // §4.2.2: heuristics only without explicit freshness, for heuristically
    // cacheable statuses or responses marked public; "some fraction of the
    // interval since [Last-Modified]" is the suggested heuristic.
    f.heuristic = true;
    std::optional<int64_t> last_modified;
    if (auto lm = h.get("last-modified")) last_modified = http::parse_http_date(*lm);
    if (last_modified && *last_modified < date_value && opts.heuristic_fraction > 0) {
      const double interval = static_cast<double>(date_value - *last_modified);
      const double cap = static_cast<double>(opts.heuristic_max.count());
      f.lifetime = core::Seconds(clamp_delta(static_cast<int64_t>(std::min(opts.heuristic_fraction * interval, cap))));
    }
  }
  if (opts.max_ttl.count() > 0) f.lifetime = std::min(f.lifetime, opts.max_ttl);

  f.no_cache = cc.no_cache;
  // §5.2.2.10: s-maxage implies proxy-revalidate for a shared cache, and
  // proxy-revalidate is must-revalidate for a shared cache (§5.2.2.8).
  f.must_revalidate = cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.has_value();

  // §4.2.4: a cache must not serve stale when a directive forbids it;
  // RFC 5861's windows do not override that (and route defaults may not either).
  if (!f.no_cache && !f.must_revalidate) {
    f.stale_while_revalidate =
        core::Seconds(clamp_delta(cc.stale_while_revalidate.value_or(opts.default_swr.count())));
    const int64_t sie = cc.stale_if_error.value_or(opts.default_sie.count());
    f.stale_if_error = core::Seconds(clamp_delta(std::max(sie, opts.grace_sie.count())));
    f.stale_on_disconnect = core::Seconds(clamp_delta(opts.stale_on_disconnect.count()));
  }
  if (h.has("etag") || h.has("last-modified")) f.keep = core::Seconds(clamp_delta(opts.keep.count()));
  return f;
}

}  // namespace cachalot::cache
