#include "cache/evaluate.h"

#include <algorithm>

namespace cachalot::cache {

std::string_view to_string(Decision d) noexcept {
  switch (d) {
    case Decision::Hit: return "hit";
    case Decision::HitStale: return "hit-stale";
    case Decision::Revalidate: return "revalidate";
    case Decision::Miss: return "miss";
  }
  return "unknown";
}

std::string_view to_string(LookupReason r) noexcept {
  switch (r) {
    case LookupReason::Fresh: return "fresh";
    case LookupReason::StaleWhileRevalidate: return "stale-while-revalidate";
    case LookupReason::MaxStale: return "max-stale";
    case LookupReason::Stale: return "stale";
    case LookupReason::MustRevalidate: return "must-revalidate";
    case LookupReason::NoCache: return "no-cache";
    case LookupReason::RequestNoCache: return "request-no-cache";
    case LookupReason::RequestMaxAge: return "request-max-age";
    case LookupReason::RequestMinFresh: return "request-min-fresh";
    case LookupReason::Authorization: return "authorization";
    case LookupReason::UriMiss: return "uri-miss";
    case LookupReason::VaryMiss: return "vary-miss";
    case LookupReason::Method: return "method";
    case LookupReason::Bypass: return "bypass";
    case LookupReason::Miss: return "miss";
  }
  return "unknown";
}

std::string_view fwd_value(LookupReason r) noexcept {
  switch (r) {
    case LookupReason::Fresh:
    case LookupReason::StaleWhileRevalidate:
    case LookupReason::MaxStale:
      return "";
    case LookupReason::Stale:
    case LookupReason::MustRevalidate:
    case LookupReason::NoCache:
      return "stale";
    case LookupReason::RequestNoCache:
    case LookupReason::RequestMaxAge:
    case LookupReason::RequestMinFresh:
    case LookupReason::Authorization:
      return "request";
    case LookupReason::UriMiss: return "uri-miss";
    case LookupReason::VaryMiss: return "vary-miss";
    case LookupReason::Method: return "method";
    case LookupReason::Bypass: return "bypass";
    case LookupReason::Miss: return "miss";
  }
  return "miss";
}

Evaluation evaluate(const Freshness& f, const RequestCacheControl& rcc, core::TimePoint now) noexcept {
  const int64_t age = f.current_age(now).count();
  const int64_t staleness = age - f.lifetime.count();
  const FreshnessState state = f.state(now);
  // A useless entry is not worth a conditional request: its caller drops it.
  const Decision forward = state == FreshnessState::Expired ? Decision::Miss : Decision::Revalidate;

  if (f.no_cache) return {forward, LookupReason::NoCache};

  if (staleness < 0) {  // fresh
    if (rcc.no_cache) return {Decision::Revalidate, LookupReason::RequestNoCache};
    if (rcc.max_age && age > *rcc.max_age) return {Decision::Revalidate, LookupReason::RequestMaxAge};
    if (rcc.min_fresh && -staleness < *rcc.min_fresh) return {Decision::Revalidate, LookupReason::RequestMinFresh};
    return {Decision::Hit, LookupReason::Fresh};
  }

  // Stale. §4.2.4: never served stale against must-revalidate & co., even
  // when the client would accept it.
  if (f.must_revalidate) return {forward, LookupReason::MustRevalidate};
  // A stale response can never satisfy min-fresh, and no-cache wants validation.
  if (rcc.no_cache || rcc.min_fresh) return {forward, LookupReason::Stale};
  const bool age_ok = !rcc.max_age || age <= *rcc.max_age;
  if (rcc.max_stale && staleness <= *rcc.max_stale && age_ok) return {Decision::HitStale, LookupReason::MaxStale};
  if (rcc.max_age) return {forward, LookupReason::Stale};
  if (state == FreshnessState::StaleWhileRevalidate) return {Decision::HitStale, LookupReason::StaleWhileRevalidate};
  return {forward, LookupReason::Stale};
}

bool can_serve_stale_on_error(const Freshness& f, const RequestCacheControl& rcc, core::TimePoint now,
                              core::Seconds grace) noexcept {
  // No reuse at all without successful validation (§5.2.2.4, §5.2.1.4).
  if (f.no_cache || rcc.no_cache) return false;
  const int64_t staleness = -f.ttl(now);
  if (staleness < 0) return true;  // still fresh: it was forwarded only because the request asked
  if (f.must_revalidate) return false;  // §5.2.2.2: "MUST generate an error response"
  const int64_t window = std::max({f.stale_if_error.count(), grace.count(), rcc.stale_if_error.value_or(0)});
  if (staleness < window) return true;
  return rcc.max_stale && staleness <= *rcc.max_stale;
}

bool can_serve_stale_when_disconnected(const Freshness& f, const RequestCacheControl& rcc, core::TimePoint now,
                                       core::Seconds grace) noexcept {
  if (f.no_cache || rcc.no_cache) return false;  // §5.2.2.4, §5.2.1.4: only after a successful validation
  const int64_t staleness = -f.ttl(now);
  if (staleness < 0) return true;
  if (f.must_revalidate) return false;  // §5.2.2.2, §5.2.2.8, §5.2.2.10
  if (staleness < std::max(f.stale_on_disconnect, grace).count()) return true;
  return rcc.max_stale && staleness <= *rcc.max_stale;  // §4.2.4: the client permits it
}

bool is_stale_if_error_status(int status) noexcept {
  return status == 500 || status == 502 || status == 503 || status == 504;
}

double refresh_ahead_probability(const Freshness& f, core::TimePoint now) noexcept {
  if (f.lifetime.count() <= 0) return 0.0;
  const auto expires = f.response_time + std::chrono::duration_cast<core::Duration>(f.lifetime - f.corrected_initial_age);
  const double left_ms = static_cast<double>((expires - now).count());
  const double window_ms = std::max(1000.0, static_cast<double>(f.lifetime.count()) * 100.0);  // 10% of lifetime
  if (left_ms >= window_ms) return 0.0;
  return 1.0 - std::max(0.0, left_ms) / window_ms;
}

}  // namespace cachalot::cache
