// May this response be stored? RFC 9111 §3, for a shared cache.
//
// storable() returns a verdict and never acts: the caller strips the fields
// the verdict names before building the Entry, and still has to drop what
// §3.1 says a cache never stores (hop-by-hop fields, Proxy-Authenticate,
// Proxy-Authentication-Info).
//
// Decisions worth knowing:
//  - Only GET responses are stored. A HEAD response has no body, so storing
//    it would need a "head-only" entry kind; instead HEAD requests are
//    answered from stored GET responses and a HEAD miss is forwarded as is.
//    (§4.3.5 freshening of a stored GET response by a HEAD response is not
//    done.) Other methods: RFC 9111 allows caching POST responses with
//    explicit freshness and Content-Location, which nobody relies on.
//  - 206 is not stored (we do not combine ranges, §3.3); 304 is never stored
//    itself, it updates an entry (validation.h); 1xx is not final.
//  - A status is stored only if we "understand" it: a final status defined
//    by RFC 9110 or RFC 6585 other than 206 and 304. §3 only demands that
//    for must-understand responses; applying it always keeps unknown
//    semantics out of a shared cache.
//  - Set-Cookie: not stored by default (shared caches must not hand one
//    user's cookie to another); the route option `set_cookie: strip` stores
//    the response without it. A Set-Cookie already named by no-cache="..." or
//    private="..." is simply stripped.
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
  Status,          // status not final, not understood, or neither heuristically cacheable nor explicitly fresh (§3)
  Partial,         // 206 Partial Content: we do not store or combine ranges (§3.3)
  VaryStar,        // Vary: * never matches a later request (§4.1)
  NoFreshness,     // no lifetime, no validators, no stale windows: nothing could ever reuse it
  TooLarge,        // (set by the caller) body above cache.max_object_size
  Incomplete,      // (set by the caller) body cut short
  Bypass,          // (set by the caller) the route bypasses the cache
  kCount
};
// "stored", "method", "request-no-store", "no-store", "private", "authorization",
// "set-cookie", "status", "partial", "vary-star", "no-freshness", "too-large",
// "incomplete", "bypass".
std::string_view to_string(StoreReason r) noexcept;

struct StorableOptions {
  bool allow_set_cookie_strip = false;  // route set_cookie: strip
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
  // "set-cookie" when strip_set_cookie is set.
  std::vector<std::string> strip_fields;
};

// RFC 9111 §3 for a shared cache; see the file comment for our choices.
StoreVerdict storable(const http::RequestHead& req, const RequestCacheControl& req_cc,
                      const http::ResponseHead& resp, const ResponseCacheControl& resp_cc,
                      const StorableOptions& opts);

// §3.5: may a stored response be used for a request carrying Authorization?
// Only if the response has public, s-maxage or must-revalidate.
bool may_serve_to_authorized(const ResponseCacheControl& cc) noexcept;

// The response says it may be cached whatever its status: max-age, s-maxage,
// Expires or public (the §3 list without the heuristic case).
bool explicitly_cacheable(const http::ResponseHead& resp, const ResponseCacheControl& cc) noexcept;

// A final status whose caching rules we implement (see the file comment).
bool is_understood_status(int status) noexcept;

}  // namespace cachalot::cache
