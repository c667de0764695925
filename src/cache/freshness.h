// Freshness: RFC 9111 §4.2 numbers computed once, when a response is stored.
//
// Everything here is in whole seconds (the resolution of HTTP dates and of
// delta-seconds) and saturates at kDeltaSecondsMax (§1.2.2) instead of
// overflowing. Nothing reads a clock: times come in as arguments.
#pragma once

#include <cstdint>

#include "cache/cache_control.h"
#include "core/clock.h"
#include "http/message.h"

namespace cachalot::cache {

// What an entry may be used for at a given moment.
enum class FreshnessState : uint8_t {
  Fresh,                // current age < lifetime: serve as a hit
  StaleWhileRevalidate, // stale, inside stale-while-revalidate: serve and refresh in the background
  StaleRevalidateOnly,  // stale: must be validated with the origin before use (stale-if-error may still apply)
  Expired,              // past every window (swr, sie, keep, stale_on_disconnect): useless
};
// "fresh", "stale-while-revalidate", "stale-revalidate-only", "expired".
std::string_view to_string(FreshnessState s) noexcept;

struct Freshness {
  core::TimePoint request_time{};      // when the request that fetched it was sent
  core::TimePoint response_time{};     // when the response head arrived
  core::Seconds corrected_initial_age{0};  // §4.2.3
  core::Seconds lifetime{0};           // freshness lifetime, §4.2.1 (0 when none)
  core::Seconds stale_while_revalidate{0};  // RFC 5861 §3 window (0 when none or forbidden)
  core::Seconds stale_if_error{0};     // RFC 5861 §4 window, config grace included (0 when forbidden)
  core::Seconds keep{0};               // how long a stale entry with validators is kept to revalidate (0 without)
  // cache.stale_on_disconnect at store time (0 when forbidden, as for
  // stale-if-error): the entry is kept this long past its lifetime so that it
  // can stand in when the origin cannot be reached (RFC 9111 §4.2.4;
  // can_serve_stale_when_disconnected()). Inside it the entry is
  // StaleRevalidateOnly: requests go to the origin first.
  core::Seconds stale_on_disconnect{0};
  bool heuristic = false;              // lifetime came from §4.2.2 heuristics or a route default
  bool no_cache = false;               // must be validated before every use (§5.2.2.4)
  bool must_revalidate = false;        // must-revalidate / proxy-revalidate / s-maxage: never serve stale (§4.2.4)

  // Age of the stored response at `now`, §4.2.3.
  core::Seconds current_age(core::TimePoint now) const noexcept;
  // The entry's state at `now` (ignoring request directives).
  FreshnessState state(core::TimePoint now) const noexcept;
  // Seconds of freshness left (negative when stale).
  int64_t ttl(core::TimePoint now) const noexcept;
};

// Past this point the entry is Expired (state() says so): every window is
// spent and the store may drop it. Equals response_time + lifetime
// + max(swr, sie, keep, stale_on_disconnect) - corrected_initial_age.
core::TimePoint drop_after(const Freshness& f) noexcept;

struct FreshnessOptions {
  double heuristic_fraction = 0.1;     // cache.heuristic_fraction (§4.2.2 suggests 10%)
  core::Seconds heuristic_max{86400};  // cache.heuristic_max
  core::Seconds default_ttl{0};        // route default_ttl: replaces heuristics when > 0
  core::Seconds min_ttl{0};            // route min_ttl: floor on explicit lifetimes
  core::Seconds max_ttl{0};            // route max_ttl: cap on any lifetime (0 = none)
  core::Seconds default_swr{0};        // route stale_while_revalidate: used when the origin sends none
  core::Seconds default_sie{0};        // route stale_if_error: used when the origin sends none
  core::Seconds grace_sie{0};          // cache.stale_if_error: floor on the stale-if-error window
  core::Seconds keep{0};               // cache.keep: stale entries with validators are kept this long
  core::Seconds stale_on_disconnect{0};  // cache.stale_on_disconnect: stale entries are kept this long
};

// RFC 9110 §15.1: statuses that may get a heuristic lifetime (200, 203, 204,
// 206, 300, 301, 308, 404, 405, 410, 414, 501).
bool is_heuristically_cacheable(int status) noexcept;

// Computes the numbers for a response about to be stored (RFC 9111 §4.2):
//  - lifetime: s-maxage, else max-age, else Expires - Date (an invalid
//    Expires such as "0" means already expired, §5.3; Expires is ignored
//    when `cc` came from a targeted field, RFC 9213 §2.2), else a heuristic:
//    the route default_ttl when set, otherwise heuristic_fraction x
//    (Date - Last-Modified) capped by heuristic_max, only for heuristically
//    cacheable statuses or `public` responses (§4.2.2). min_ttl raises
//    explicit lifetimes, max_ttl caps any.
//  - age: §4.2.3 with Date (response_time when absent or invalid, RFC 9110
//    §6.6.1) and Age (first value; absent or invalid counts as 0).
//  - windows: stale-while-revalidate / stale-if-error from the directives or
//    the route defaults, the stale-if-error window never below grace_sie;
//    both are zero when the response forbids serving stale (no-cache,
//    must-revalidate, proxy-revalidate, s-maxage: §4.2.4, §5.2.2.2, §5.2.2.10;
//    RFC 5861 does not override those). keep applies when the response has a
//    validator (ETag or Last-Modified), since only then is a stale copy cheap
//    to revalidate. stale_on_disconnect applies whenever serving stale is
//    not forbidden (the same rule as the stale-if-error window).
// `req` is unused today: RFC 9111 dropped RFC 2616's "no heuristics for URIs
// with a query" rule; the parameter keeps request-dependent rules local.
Freshness compute_freshness(const http::RequestHead& req, const http::ResponseHead& resp,
                            const ResponseCacheControl& cc, core::TimePoint request_time,
                            core::TimePoint response_time, const FreshnessOptions& opts);

}  // namespace cachalot::cache
