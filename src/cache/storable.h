// May this response be stored? RFC 9111 §3, for a shared cache.
//
// storable() returns a verdict and never acts: the caller strips the fields
// the verdict names before building the Entry, and still has to drop what
// §3.1 says a cache never stores (hop-by-hop fields and the proxy's own
// fields, proxy_specific_field()).
//
// Decisions worth knowing:
//  - Only GET responses are stored. A HEAD response has no body, so storing
//    it would need a "head-only" entry kind; instead HEAD requests are
//    answered from stored GET responses and a HEAD miss is forwarded as is.
//    (§4.3.5: a HEAD response that reached the origin updates or marks stale
//    the stored GET response, validation.h merge_head(), judged as that GET
//    by the admission gate.) Other methods: RFC 9111 allows caching POST responses with
//    explicit freshness and Content-Location, which nobody relies on.
//  - Status (§3: "the response status code is final"): any final status
//    (200..599) may be stored, understood or not, when the response is
//    explicitly cacheable (max-age, s-maxage, Expires or public); without
//    that, only the heuristically cacheable statuses (RFC 9110 §15.1). So an
//    unknown 299, 499 or 599 with max-age is stored, and without explicit
//    freshness it is not. 1xx is not final; 100..599 is all HTTP defines
//    (RFC 9110 §15), so 600..999 is refused too.
//  - must-understand (§5.2.2.3, §3): a response carrying it is stored only
//    if we understand its status (is_understood_status()); then, and only
//    then, it lifts no-store. An unknown status with must-understand is
//    refused whether or not no-store is present.
//  - 206 is not stored (we do not combine ranges, §3.3); 304 is never stored
//    itself, it updates an entry (validation.h).
//  - Set-Cookie: not stored by default (shared caches must not hand one
//    user's cookie to another); the route option `set_cookie: store_without`
//    (alias: `strip`) stores the response without it. A Set-Cookie already
//    named by no-cache="..." or private="..." is simply stripped. Set-Cookie2
//    (RFC 2965, obsolete) is treated the same way.
//  - The caller chooses which directives count: select_response_cache_control()
//    (cache_control.h) gives a targeted field's (RFC 9213) when one applies;
//    then Expires is ignored here too (cc.targeted).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_control.h"
#include "http/message.h"

namespace cachalot::cache {

enum class StoreReason : uint8_t {
  Stored,          // the response may be stored
  Method,          // request method other than GET
  RequestNoStore,  // request Cache-Control: no-store (§5.2.1.5)
  NoStore,         // response Cache-Control: no-store (§5.2.2.5), not lifted by must-understand
  Private,         // unqualified private: a shared cache must not store it (§5.2.2.7)
  Authorization,   // request had Authorization; response lacks public/s-maxage/must-revalidate (§3.5)
  SetCookie,       // response sets a cookie and the route does not strip it
  Status,          // status not final (or a 304), or neither heuristically cacheable nor explicitly cacheable (§3)
  MustUnderstand,  // must-understand on a status whose requirements we do not implement (§5.2.2.3)
  Partial,         // 206 Partial Content: we do not store or combine ranges (§3.3)
  VaryStar,        // Vary: * never matches a later request (§4.1)
  NoFreshness,     // no lifetime, no validators, no stale windows: nothing could ever reuse it
  TooLarge,        // (set by the caller) body above cache.max_object_size
  Incomplete,      // (set by the caller) body cut short
  Bypass,          // (set by the caller) the route bypasses the cache
  kCount
};
// "stored", "method", "request-no-store", "no-store", "private", "authorization",
// "set-cookie", "status", "must-understand", "partial", "vary-star", "no-freshness", "too-large",
// "incomplete", "bypass".
std::string_view to_string(StoreReason r) noexcept;

struct StorableOptions {
  bool allow_set_cookie_strip = false;  // route set_cookie: store_without (or its alias strip)
  bool has_default_ttl = false;         // route default_ttl > 0: a lifetime exists without directives
  bool has_stale_defaults = false;      // route swr/sie or cache.stale_if_error > 0: a stale copy is useful
};

struct StoreVerdict {
  bool store = false;
  StoreReason reason = StoreReason::Stored;
  bool strip_set_cookie = false;  // Set-Cookie is removed because of allow_set_cookie_strip
  // Every field the caller must remove before storing (lower-case): the
  // no-cache="..." and private="..." fields (§5.2.2.4, §5.2.2.7; stripping
  // no-cache fields is the simple way to never reuse them unvalidated) and
  // "set-cookie" / "set-cookie2" (those present) when strip_set_cookie is set.
  std::vector<std::string> strip_fields;
};

// RFC 9111 §3 for a shared cache; see the file comment for our choices.
// `partitioned`: the entry would be keyed by the request's verified claim
// (route partition:, admission.h) and served only to requests with the same
// claim, which makes Cachalot that user's private cache for it: unqualified
// private (§5.2.2.7) and the Authorization rule (§3.5) do not refuse it.
// Everything else applies as usual (no-store, Set-Cookie, Vary: *, status).
StoreVerdict storable(const http::RequestHead& req, const RequestCacheControl& req_cc,
                      const http::ResponseHead& resp, const ResponseCacheControl& resp_cc,
                      const StorableOptions& opts, bool partitioned = false);

// §3.5: may a stored response be used for a request carrying Authorization?
// Only if the response has public, s-maxage or must-revalidate.
bool may_serve_to_authorized(const ResponseCacheControl& cc) noexcept;

// The response says it may be cached whatever its status: max-age, s-maxage,
// Expires (not when cc.targeted, RFC 9213 §2.2) or public (the §3 list without
// the heuristic case).
bool explicitly_cacheable(const http::ResponseHead& resp, const ResponseCacheControl& cc) noexcept;

// A final status whose requirements we implement, as must-understand asks
// (§5.2.2.3): those defined by RFC 9110 and RFC 6585, except 206 (no range
// support) and 304 (it updates entries), and the obsolete 305 and 306.
bool is_understood_status(int status) noexcept;

// RFC 9110 §15: a final status is 200..599 (1xx are interim; the rest is not HTTP).
bool is_final_status(int status) noexcept;

// §3.1: "header fields that are specific to the proxy that a cache uses when
// forwarding a request MUST NOT be stored, unless the cache incorporates the
// identity of the proxy into the cache key": Proxy-Authenticate,
// Proxy-Authentication-Info and Proxy-Authorization (any case). Cachalot's
// keys never name a proxy, so these are never stored nor merged from a 304.
bool proxy_specific_field(std::string_view name) noexcept;

}  // namespace cachalot::cache
