// Conditional requests answered from a stored response (RFC 9110 §13,
// RFC 9111 §4.3.2).
//
// Only If-None-Match and If-Modified-Since are evaluated: §4.3.2 says
// If-Match and If-Unmodified-Since "are not applicable to a cache", and a
// cache must not evaluate preconditions meant for the origin. If-Range
// decides whether a Range is answered from the stored response
// (if_range_allows).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "http/header_map.h"
#include "http/message.h"

namespace cachalot::cache {

// Weak comparison (RFC 9110 §8.8.3.2): the opaque-tags match, whatever the
// "W/" prefixes. Empty tags never match. Unquoted tags (a common origin bug)
// are compared as they are.
bool etag_weak_match(std::string_view a, std::string_view b) noexcept;
// Strong comparison (§8.8.3.2): neither is weak and the opaque-tags match.
bool etag_strong_match(std::string_view a, std::string_view b) noexcept;

// Does an If-None-Match field value match `etag` (the stored ETag, "" if
// none)? "*" matches any stored response (§13.1.2); otherwise the value is a
// list of entity-tags compared weakly. Commas inside a quoted tag are part of
// it; list members that are not entity-tags are compared as raw text.
bool if_none_match_matches(std::string_view header_value, std::string_view etag) noexcept;

enum class ConditionalResult : uint8_t {
  None,         // no applicable precondition, or it did not match: send the stored response
  NotModified,  // answer 304 Not Modified (build it with copy_304_fields)
};
// "none", "not-modified".
std::string_view to_string(ConditionalResult r) noexcept;

// RFC 9110 §13.2.2 order, for a GET or HEAD answered from a stored response:
//  - any other method, or a stored status that is not 2xx: None (§13.2.2
//    ignores preconditions when the response would not be 2xx);
//  - If-None-Match present: it alone decides (§13.1.3: a recipient MUST
//    ignore If-Modified-Since then);
//  - If-Modified-Since: ignored unless a single valid HTTP-date; compared with
//    the stored Last-Modified or, without a valid one, with `stored_date`
//    (§4.3.2: "the stored response's Date field value (or, if no Date field
//    is present, the time that the stored response was received)"; the caller
//    passes that, nullopt if unknown). Not modified when the date is earlier
//    than or equal to the field's (§13.1.3).
// `etag` / `last_modified` are the stored field values, "" if absent.
ConditionalResult evaluate_conditional(const http::RequestHead& req, std::string_view etag,
                                       std::string_view last_modified, std::optional<int64_t> stored_date,
                                       int stored_status = 200) noexcept;

// RFC 9110 §13.1.5, for a GET with Range answered from a stored response:
// may the Range be honoured? True without If-Range. An entity-tag must match
// the stored ETag by strong comparison (a weak tag never does); an HTTP-date
// must equal the stored Last-Modified exactly, and that Last-Modified must be
// strong (§8.8.2.2: the stored Date at least one second after it). Anything
// else, an unparsable value included, means the Range is ignored and the
// whole response is sent.
bool if_range_allows(const http::RequestHead& req, std::string_view etag, std::string_view last_modified,
                     std::optional<int64_t> stored_date) noexcept;

// Copies from the stored fields those a 304 must carry (RFC 9110 §15.4.5):
// Cache-Control, Content-Location, Date, ETag, Expires, Vary; and
// Last-Modified only when there is no ETag (§15.4.5 advises against other
// metadata "unless said metadata exists for the purpose of guiding cache
// updates (e.g., Last-Modified might be useful if the response does not have
// an ETag field)"). Order is the stored order. The caller adds Age (§5.1) as
// for any response served from cache.
void copy_304_fields(const http::HeaderMap& stored, http::HeaderMap& out);

}  // namespace cachalot::cache
