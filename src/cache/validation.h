// Validating a stored response with the origin (RFC 9111 §4.3.1, §4.3.3,
// §4.3.4) and updating it from a 304 (§3.2).
//
// Flow for the proxy: add_validators() on the upstream request; on a 304,
// response_304_matches() decides whether it is about our entry; if so,
// merge_304() gives the new stored fields, from which the caller re-parses
// Cache-Control, re-runs storable() and compute_freshness() (with the new
// request/response times) and publishes a new Entry (§4.3.4: the 304's
// directives now govern, e.g. a 304 with no-store removes the entry). A 304
// that does not match means the stored response cannot be used: fetch again
// without validators. A 5xx while validating: see can_serve_stale_on_error().
#pragma once

#include <string_view>

#include "http/header_map.h"

namespace cachalot::cache {

// Makes `upstream_req` validate the stored response (§4.3.1): If-None-Match
// with the stored ETag (a cache MUST send it when it has one) and
// If-Modified-Since with the stored Last-Modified (SHOULD, for a single
// stored response). The client's own If-None-Match / If-Modified-Since are
// removed first: the origin validates our copy, and the client's validators
// are then evaluated against it by the cache (§4.3.2). With neither
// validator the request goes out unconditional.
void add_validators(http::HeaderMap& upstream_req, std::string_view etag, std::string_view last_modified);

// §4.3.4 selection, for a cache that validates exactly one stored response:
//  - the 304 has an ETag: strong ETag -> the stored ETag must be the same
//    strong tag; weak ETag -> weak match with the stored ETag;
//  - else it has Last-Modified: must equal the stored Last-Modified;
//  - else (no validator at all): it can only be about the one response we
//    asked about, so it matches. (§4.3.4 asks for that only when the stored
//    response also lacks validators; an origin that drops ETag from its 304s
//    breaks §15.4.5 of RFC 9110, and refusing its 304s would refetch forever.)
bool response_304_matches(const http::HeaderMap& stored, const http::HeaderMap& resp304) noexcept;

// §3.2: the stored fields updated by a 304. Each field present in the 304
// replaces every stored line of that name, at the position of the first one
// (fields new to the entry are appended in the 304's order), except:
//   - Content-Length (§3.2: the 304 describes no body);
//   - hop-by-hop fields and the fields its Connection names (RFC 9110 §7.6.1)
//     and Proxy-Authenticate / Proxy-Authentication-Info (§3.1: never stored).
// Two fields describe the 304 message itself rather than the representation
// and are not carried over from the old response when the 304 lacks them:
//   - Age: the old one would be counted twice against the new response time;
//   - Date: the old one would make the refreshed entry look as old as the
//     first response (apparent age, §4.2.3). Without it compute_freshness()
//     dates the response at receipt, as RFC 9110 §6.6.1 allows; the caller
//     should add a Date before storing, as it does for any response lacking one.
http::HeaderMap merge_304(const http::HeaderMap& stored, const http::HeaderMap& resp304);

}  // namespace cachalot::cache
