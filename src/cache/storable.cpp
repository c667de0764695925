#include "cache/storable.h"

#include <algorithm>

#include "cache/freshness.h"
#include "cache/vary.h"

namespace cachalot::cache {

namespace {

StoreVerdict refuse(StoreReason r) { return StoreVerdict{false, r, false, {}}; }

bool names(const std::vector<std::string>& fields, std::string_view lower_name) {
  return std::find(fields.begin(), fields.end(), lower_name) != fields.end();
}

void add_unique(std::vector<std::string>& out, std::string_view name) {
  if (!names(out, name)) out.emplace_back(name);
}

// Could any later request ever be answered from this response? It needs a
// lifetime, a validator to revalidate with, or a window in which serving it
// stale is allowed. Decided from the directives alone: an Expires in the
// past is not detected here (the entry's drop_after is already due then).
bool reusable(const http::ResponseHead& resp, const ResponseCacheControl& cc, const StorableOptions& opts) {
  const http::HeaderMap& h = resp.headers;
  if (h.has("etag") || h.has("last-modified")) return true;  // validators; Last-Modified also feeds heuristics
  if (cc.no_cache) return false;  // every reuse needs validation, and there is nothing to validate with
  bool lifetime;
  if (cc.s_maxage)
    lifetime = *cc.s_maxage > 0;
  else if (cc.max_age)
    lifetime = *cc.max_age > 0;
  else
    lifetime = (!cc.targeted && h.has("expires")) || opts.has_default_ttl;  // RFC 9213 §2.2
  if (lifetime) return true;
  const bool may_serve_stale = !cc.must_revalidate && !cc.proxy_revalidate && !cc.s_maxage;
  return may_serve_stale && (cc.stale_while_revalidate.value_or(0) > 0 || cc.stale_if_error.value_or(0) > 0 ||
                             opts.has_stale_defaults);
}

}  // namespace

std::string_view to_string(StoreReason r) noexcept {
  switch (r) {
    case StoreReason::Stored: return "stored";
    case StoreReason::Method: return "method";
    case StoreReason::RequestNoStore: return "request-no-store";
    case StoreReason::NoStore: return "no-store";
    case StoreReason::Private: return "private";
    case StoreReason::Authorization: return "authorization";
    case StoreReason::SetCookie: return "set-cookie";
    case StoreReason::Status: return "status";
    case StoreReason::MustUnderstand: return "must-understand";
    case StoreReason::Partial: return "partial";
    case StoreReason::VaryStar: return "vary-star";
    case StoreReason::NoFreshness: return "no-freshness";
    case StoreReason::TooLarge: return "too-large";
    case StoreReason::Incomplete: return "incomplete";
    case StoreReason::Bypass: return "bypass";
    case StoreReason::kCount: break;
  }
  return "unknown";
}

bool is_understood_status(int status) noexcept {
  switch (status) {
    // RFC 9110 §15.3 (206 excluded: no range support)
    case 200: case 201: case 202: case 203: case 204: case 205:
    // §15.4 (304 updates entries instead; 305/306 are obsolete)
    case 300: case 301: case 302: case 303: case 307: case 308:
    // §15.5, plus RFC 6585's 428, 429, 431
    case 400: case 401: case 402: case 403: case 404: case 405: case 406: case 407: case 408: case 409:
    case 410: case 411: case 412: case 413: case 414: case 415: case 416: case 417: case 421: case 422:
    case 426: case 428: case 429: case 431:
    // §15.6, plus RFC 6585's 511
    case 500: case 501: case 502: case 503: case 504: case 505: case 511:
      return true;
    default:
      return false;
  }
}

bool is_final_status(int status) noexcept { return status >= 200 && status <= 599; }

bool proxy_specific_field(std::string_view name) noexcept {
  return http::iequals(name, "proxy-authenticate") || http::iequals(name, "proxy-authentication-info") ||
         http::iequals(name, "proxy-authorization");
}

bool may_serve_to_authorized(const ResponseCacheControl& cc) noexcept {
  return cc.public_ || cc.s_maxage.has_value() || cc.must_revalidate;
}

bool explicitly_cacheable(const http::ResponseHead& resp, const ResponseCacheControl& cc) noexcept {
  return cc.max_age || cc.s_maxage || cc.public_ || (!cc.targeted && resp.headers.has("expires"));
}

StoreVerdict storable(const http::RequestHead& req, const RequestCacheControl& req_cc,
                      const http::ResponseHead& resp, const ResponseCacheControl& cc,
                      const StorableOptions& opts, bool partitioned) {
  // §3: "the request method is understood by the cache" (and we choose GET only).
  if (req.method != http::Method::Get) return refuse(StoreReason::Method);
  // §5.2.1.5: nothing of a no-store request or its response may be stored.
  if (req_cc.no_store) return refuse(StoreReason::RequestNoStore);
  // §3: "the response status code is final"; §3.3 / file comment: no partial
  // content; a 304 updates a stored response instead (§4.3.4).
  if (!is_final_status(resp.status) || resp.status == 304) return refuse(StoreReason::Status);
  if (resp.status == 206) return refuse(StoreReason::Partial);
  // §3, §5.2.2.3: with must-understand, only a cache that understands the
  // status may store it; for that cache it lifts no-store.
  if (cc.must_understand && !is_understood_status(resp.status)) return refuse(StoreReason::MustUnderstand);
  if (cc.no_store && !cc.must_understand) return refuse(StoreReason::NoStore);
  // §5.2.2.7: unqualified private is for the user's own cache only.
  // A partition is one user's own cache (see storable.h).
  if (cc.private_ && !partitioned) return refuse(StoreReason::Private);
  // §3.5: a shared cache stores answers to authenticated requests only when
  // the response says that is fine.
  if (!partitioned && req.headers.has("authorization") && !may_serve_to_authorized(cc))
    return refuse(StoreReason::Authorization);
  // §4.1: "A stored response with a Vary header field value containing a
  // member '*' always fails to match."
  if (parse_vary(resp.headers).star) return refuse(StoreReason::VaryStar);
  // §3: explicit freshness / public, or a heuristically cacheable status.
  if (!explicitly_cacheable(resp, cc) && !is_heuristically_cacheable(resp.status))
    return refuse(StoreReason::Status);

  StoreVerdict v{true, StoreReason::Stored, false, {}};
  // §5.2.2.7 / §5.2.2.4: qualified forms store the rest of the response.
  for (const auto& f : cc.private_fields) add_unique(v.strip_fields, f);
  for (const auto& f : cc.no_cache_fields) add_unique(v.strip_fields, f);
  // Set-Cookie2 (RFC 2965, obsolete) sets cookies too; it gets the same treatment.
  for (std::string_view cookie : {std::string_view("set-cookie"), std::string_view("set-cookie2")}) {
    if (!resp.headers.has(cookie) || names(v.strip_fields, cookie)) continue;
    if (!opts.allow_set_cookie_strip) return refuse(StoreReason::SetCookie);
    v.strip_set_cookie = true;
    v.strip_fields.emplace_back(cookie);
  }
  if (!reusable(resp, cc, opts)) return refuse(StoreReason::NoFreshness);
  return v;
}

}  // namespace cachalot::cache
