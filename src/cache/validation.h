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

#include <cstdint>
#include <string_view>

#include "http/header_map.h"
#include "http/message.h"

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
//     and the proxy's own fields (§3.1: never stored; proxy_specific_field()).
// Two fields describe the 304 message itself rather than the representation
// and are not carried over from the old response when the 304 lacks them:
//   - Age: the old one would be counted twice against the new response time;
//   - Date: the old one would make the refreshed entry look as old as the
//     first response (apparent age, §4.2.3). Without it compute_freshness()
//     dates the response at receipt, as RFC 9110 §6.6.1 allows; the caller
//     should add a Date before storing, as it does for any response lacking one.
http::HeaderMap merge_304(const http::HeaderMap& stored, const http::HeaderMap& resp304);

// §4.3.5: what a response to a HEAD request that reached the origin does to
// the stored GET response that request selected (§4.1).
enum class HeadUpdate : uint8_t {
  Update,     // 200 whose validators (and Content-Length) match: the stored response takes its fields
  MarkStale,  // 200 that differs (a validator, Content-Length): "consider the stored response to be stale"
  Ignore,     // not a 200: §4.3.5 says nothing about it; the stored response is left as it is
};
// "update", "mark-stale", "ignore".
std::string_view to_string(HeadUpdate u) noexcept;

struct HeadMerge {
  HeadUpdate verdict = HeadUpdate::Ignore;
  http::HeaderMap fields;  // verdict Update: the stored fields updated as merge_304() does (§3.2); else empty
};

// §4.3.5: "if the stored response and HEAD response have matching values for
// any received validator fields (ETag and Last-Modified) and, if the HEAD
// response has a Content-Length header field, the value of Content-Length
// matches that of the stored response, the cache SHOULD update the stored
// response ...; otherwise, the cache SHOULD consider the stored response to
// be stale." Read as:
//   - only a 200 counts (else Ignore);
//   - every validator the HEAD response carries must match the stored one:
//     ETag as response_304_matches() compares it (a strong tag matches only
//     the same strong tag, a weak one weakly), Last-Modified as the same date;
//     a validator the stored response lacks does not match;
//   - a HEAD response without validators updates only a stored response
//     without them (both then describe "the" representation; if the stored
//     one has validators the HEAD cannot confirm it, so it is stale);
//   - a Content-Length must equal `stored_body_size` (the stored fields have
//     no Content-Length: the entry frames its own body); unparsable differs.
// The merged fields follow §3.2 exactly as for a 304 (merge_304: no
// Content-Length, hop-by-hop or Proxy-Authenticate fields; the old Age and
// Date go). Set-Cookie is merged like any field: the caller separates it,
// as freshen() (admission.h) does for a 304, so it reaches only the client
// that sent the HEAD.
HeadMerge merge_head(const http::HeaderMap& stored, uint64_t stored_body_size, const http::ResponseHead& head);

}  // namespace cachalot::cache
