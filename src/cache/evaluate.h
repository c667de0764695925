// May a selected stored response answer this request now? RFC 9111 §4,
// §4.2.4, §5.2.1, RFC 5861.
//
// evaluate() returns a verdict and never acts. Its reasons are the shared
// vocabulary of the lookup path: the proxy uses the miss reasons (uri-miss,
// vary-miss, method, bypass, authorization) for cases decided before an entry
// is selected, so logs, metric labels and Cache-Status all use one set of
// names. fwd_value() maps a reason to the RFC 9211 `fwd` parameter, e.g.
//   Cache-Status: cachalot; fwd=stale; detail=must-revalidate
// Not handled here: only-if-cached (§5.2.1.7: when the decision is not Hit
// or HitStale the proxy answers 504 instead of forwarding) and §3.5
// Authorization checks (may_serve_to_authorized() in storable.h).
#pragma once

#include <cstdint>
#include <string_view>

#include "cache/cache_control.h"
#include "cache/freshness.h"
#include "core/clock.h"

namespace cachalot::cache {

enum class Decision : uint8_t {
  Hit,         // fresh enough: serve the stored response
  HitStale,    // serve the stale response now; refresh it in the background if the reason is stale-while-revalidate
  Revalidate,  // forward first (conditionally when the entry has validators); the entry may answer a 304 or an error
  Miss,        // forward; the entry is useless (past every window) and may be dropped
};
// "hit", "hit-stale", "revalidate", "miss".
std::string_view to_string(Decision d) noexcept;

enum class LookupReason : uint8_t {
  Fresh,                 // within its freshness lifetime (§4.2)
  StaleWhileRevalidate,  // stale, inside the stale-while-revalidate window (RFC 5861 §3)
  MaxStale,              // stale, but within the request's max-stale (§5.2.1.2); no refresh needed on its account
  Stale,                 // stale and nothing allows serving it (§4.2.4)
  MustRevalidate,        // stale and must-revalidate / proxy-revalidate / s-maxage forbids serving stale (§5.2.2.2)
  NoCache,               // the response's no-cache requires validation on every use (§5.2.2.4)
  RequestNoCache,        // fresh, but the request's no-cache (or Pragma) asks for validation (§5.2.1.4, §5.4)
  RequestMaxAge,         // fresh, but older than the request's max-age (§5.2.1.1)
  RequestMinFresh,       // fresh, but not for the request's min-fresh (§5.2.1.3)
  Authorization,         // (proxy) request has Authorization and the response does not allow that (§3.5)
  UriMiss,               // (proxy) no stored response for the URI
  VaryMiss,              // (proxy) stored responses for the URI, none for this request's Vary values
  Method,                // (proxy) the method cannot be answered from cache
  Bypass,                // (proxy) the route bypasses the cache
  Miss,                  // (proxy) no usable response, cause not more specific
};
// Kebab-case names as above: "fresh", "stale-while-revalidate", "max-stale",
// "stale", "must-revalidate", "no-cache", "request-no-cache",
// "request-max-age", "request-min-fresh", "authorization", "uri-miss",
// "vary-miss", "method", "bypass", "miss".
std::string_view to_string(LookupReason r) noexcept;
// RFC 9211 §2.2 fwd value: "" when the response is served from cache
// (fresh, stale-while-revalidate, max-stale); "stale" for stale / must-revalidate /
// no-cache; "request" for the request-* reasons and authorization; the miss
// reasons map to themselves.
std::string_view fwd_value(LookupReason r) noexcept;

struct Evaluation {
  Decision decision;
  LookupReason reason;
  bool operator==(const Evaluation&) const = default;
};

// Decides for a stored response selected for this request at `now`
// (staleness = current_age - lifetime; fresh means lifetime > current_age, §4.2):
//  - response no-cache: Revalidate (no-cache).
//  - fresh: Hit, unless the request's no-cache, max-age (age > max-age) or
//    min-fresh (lifetime - age < min-fresh) asks for validation: Revalidate.
//  - stale, must-revalidate family: Revalidate (must-revalidate).
//  - stale, request no-cache or min-fresh: Revalidate (stale).
//  - stale, request max-stale covers the staleness (and max-age, if also
//    given, covers the age): HitStale (max-stale).
//  - stale, request max-age without max-stale: Revalidate (stale); "the
//    client does not wish to receive a stale response" (§5.2.1.1).
//  - stale, inside stale-while-revalidate: HitStale.
//  - otherwise Revalidate (stale).
// Whenever the answer would be Revalidate and the entry is past every window
// (FreshnessState::Expired), it is Miss instead, with the same reason.
Evaluation evaluate(const Freshness& f, const RequestCacheControl& rcc, core::TimePoint now) noexcept;

// RFC 5861 §4: an error while forwarding (see is_stale_if_error_status()) may
// be answered with the stored response if it is still fresh, or stale by less
// than max(stale-if-error window, `grace`, the request's stale-if-error), or by
// no more than the request's max-stale. A stale response never when it has
// must-revalidate / proxy-revalidate / s-maxage (RFC 9111 §4.2.4, §5.2.2.2:
// "MUST generate an error response rather than reuse the stale response");
// not even a fresh one when the response has no-cache or the request has
// no-cache (both demand a successful validation). `grace` is the current
// cache.stale_if_error (the value at store time is already folded into
// f.stale_if_error, so a reload that lowers it still applies the old floor
// to entries stored before).
bool can_serve_stale_on_error(const Freshness& f, const RequestCacheControl& rcc, core::TimePoint now,
                              core::Seconds grace) noexcept;

// RFC 9111 §4.2.4: "A cache MUST NOT generate a stale response unless it is
// disconnected or doing so is explicitly permitted by the client or origin
// server". Disconnected means the origin could not be reached or closed the
// connection without answering (refused, connect timeout, reset or closed
// before a response head, write failed): never an HTTP status, however bad,
// nor a first-byte timeout (the origin is there, just slow). Then the stored
// response may be served if it is still fresh, or stale by less than
// max(f.stale_on_disconnect, `grace`), or by no more than the request's
// max-stale. Never when a directive forbids serving stale, which a
// disconnection does not lift (§4.2.4 "SHOULD NOT generate a stale response
// if it is prohibited by an explicit in-protocol directive"): must-revalidate,
// proxy-revalidate and s-maxage (f.must_revalidate) refuse a stale one,
// no-cache (response or request) refuses even a fresh one. `grace` is the
// current cache.stale_on_disconnect (the value at store time is
// f.stale_on_disconnect, and keeps the entry stored that long). Independent
// of stale-if-error: a caller checks can_serve_stale_on_error() first.
bool can_serve_stale_when_disconnected(const Freshness& f, const RequestCacheControl& rcc, core::TimePoint now,
                                       core::Seconds grace) noexcept;

// RFC 5861 §4: "an error is any situation that would result in a 500, 502,
// 503, or 504 HTTP response status code being returned". Failing to reach the
// origin at all counts too; that is the caller's to decide.
bool is_stale_if_error_status(int status) noexcept;

// Refresh-ahead (probabilistic early expiration): the probability that a hit
// at `now` on a fresh entry should start a background refresh. 0 outside the
// last 10% of the lifetime (at least the last second), rising linearly to 1
// at expiry; 0 for entries without a lifetime. In milliseconds, so that short
// lifetimes get a window at all.
double refresh_ahead_probability(const Freshness& f, core::TimePoint now) noexcept;

}  // namespace cachalot::cache
