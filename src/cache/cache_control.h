// Cache-Control (RFC 9111 §5.2) parsed into plain structs, once per message.
//
// Parsing rules, shared by requests and responses:
//   - Directive names are case-insensitive tokens; arguments may be a token
//     or a quoted-string, and both forms are accepted for every directive
//     (§5.2: "recipients ought to accept both forms").
//   - Unknown directives are ignored (§5.2.3).
//   - A directive given twice: the first occurrence wins (§4.2.1: "either the
//     first occurrence should be used or the response should be considered
//     stale"). Across multiple Cache-Control field lines, "first" is in field
//     order, exactly as if the lines were combined (RFC 9110 §5.3).
//   - Conflicting directives are all recorded; the policy functions honour
//     the most restrictive one (§4.2.1), e.g. no-cache beats max-age.
//   - delta-seconds (§1.2.2) is 1*DIGIT. Values above 2^31 are clamped to
//     2^31 (§1.2.2). An invalid argument (missing, "abc", "-1", "1.5",
//     trailing junk) is read in the way that reuses stored responses least,
//     as §4.2.1 encourages ("consider responses that have invalid freshness
//     information ... to be stale"): see each field for what that means.
//   - Any byte sequence is accepted without reading out of bounds; the parser
//     is fuzzed (tests/fuzz/fuzz_cache_control.cpp).
// No allocation unless a response carries qualified no-cache / private.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/header_map.h"
#include "http/message.h"

namespace cachalot::cache {

// The largest delta-seconds a cache must represent; larger values clamp to it (RFC 9111 §1.2.2).
inline constexpr int64_t kDeltaSecondsMax = int64_t{1} << 31;
// max-stale without an argument: the client accepts a response stale by any amount (§5.2.1.2).
inline constexpr int64_t kMaxStaleAny = std::numeric_limits<int64_t>::max();

// delta-seconds = 1*DIGIT (§1.2.2), clamped to kDeltaSecondsMax; nullopt if not all digits or empty.
std::optional<int64_t> parse_delta_seconds(std::string_view s) noexcept;

struct ResponseCacheControl {
  bool no_store = false;          // §5.2.2.5
  bool no_cache = false;          // §5.2.2.4, unqualified form: validate before every reuse
  bool private_ = false;          // §5.2.2.7, unqualified form: a shared cache must not store it
  bool public_ = false;           // §5.2.2.9
  bool must_revalidate = false;   // §5.2.2.2
  bool proxy_revalidate = false;  // §5.2.2.8
  bool must_understand = false;   // §5.2.2.3
  bool no_transform = false;      // §5.2.2.6
  bool immutable = false;         // RFC 8246
  // Invalid max-age / s-maxage read as 0: stored but immediately stale.
  std::optional<int64_t> max_age{};   // §5.2.2.1
  std::optional<int64_t> s_maxage{};  // §5.2.2.10
  // Invalid stale-while-revalidate / stale-if-error are ignored (no window).
  std::optional<int64_t> stale_while_revalidate{};  // RFC 5861 §3
  std::optional<int64_t> stale_if_error{};          // RFC 5861 §4
  // Qualified forms: lower-cased field names, first-seen order, no duplicates.
  // A qualified form whose list is empty or unparsable (no-cache="") is read
  // as the unqualified form, the conservative choice.
  std::vector<std::string> no_cache_fields{};  // §5.2.2.4: strip these before reuse
  std::vector<std::string> private_fields{};   // §5.2.2.7: a shared cache must not store these
  // Read from a targeted field (RFC 9213 §2.2) instead of Cache-Control: the
  // response's Expires is ignored too, by freshness and storability alike.
  bool targeted = false;

  bool operator==(const ResponseCacheControl&) const = default;
};

// `value` is the field value; several field lines may be passed combined with ",".
ResponseCacheControl parse_response_cache_control(std::string_view value);
// Every Cache-Control field line of `headers`, in order (no combined copy made).
ResponseCacheControl parse_response_cache_control(const http::HeaderMap& headers);

// Targeted cache-control fields (RFC 9213), e.g. CDN-Cache-Control.
//
// A targeted field is an RFC 8941 Dictionary (structured_fields.h) whose
// members are cache response directives with Cache-Control's semantics
// (RFC 9213 §2.1); parameters are ignored. Read strictly:
//   - a field that is not a valid Dictionary, or an empty one, is ignored as
//     if absent (§2.1);
//   - the directives we implement must have the type RFC 9213 §2.1 infers
//     for them, or the whole field is ignored ("SHOULD NOT consume values
//     that violate these inferred constraints": we do not coerce):
//       max-age, s-maxage, stale-while-revalidate, stale-if-error:
//         an Integer >= 0 (clamped to kDeltaSecondsMax, §1.2.2);
//       no-store, must-revalidate, proxy-revalidate, public, must-understand,
//       no-transform, immutable: Boolean true (written bare);
//       no-cache, private: Boolean true (unqualified), or a String or Token
//         holding a non-empty comma-separated list of field names (an Inner
//         List is not one of the inferred types and invalidates the field);
//   - unknown directives are ignored whatever their value (§2.2);
//   - a key given twice: the last one wins (RFC 8941 §4.2.2).
// The result has `targeted` set.
std::optional<ResponseCacheControl> parse_targeted_cache_control(std::string_view value);
// Every field line called `field`, combined (RFC 8941 §4.2); nullopt when absent or ignored.
std::optional<ResponseCacheControl> parse_targeted_cache_control(const http::HeaderMap& headers,
                                                                 std::string_view field);

// RFC 9213 §2.2: the directives that decide storing and freshness for a
// response. `targets` is the target list (cache.targeted_cache_control), most
// applicable first: the first of them present with a valid, non-empty value
// wins and Cache-Control and Expires are ignored; when none qualifies, the
// response's Cache-Control (parse_response_cache_control). With an empty list
// this is parse_response_cache_control(headers).
ResponseCacheControl select_response_cache_control(const http::HeaderMap& headers,
                                                   const std::vector<std::string>& targets);

// RFC 9213 §2.2, §3: does a response field go downstream? Every field does
// (targeted fields not on the target list "MUST be passed through"; CDN
// caches "typically forward" the ones they use, for caches further down)
// except those the operator lists in `drop` (cache.drop_targeted_cache_control,
// validated to be on the target list): §3 "MAY remove it ... when configured
// to do so because it is known not to be used downstream". Case-insensitive.
bool forward_targeted_field(std::string_view name, const std::vector<std::string>& drop) noexcept;

struct RequestCacheControl {
  // Invalid max-age reads as 0 (the client wants a response validated now).
  std::optional<int64_t> max_age{};  // §5.2.1.1
  // Bare "max-stale" is kMaxStaleAny; an invalid argument is ignored (no stale accepted).
  std::optional<int64_t> max_stale{};  // §5.2.1.2
  // Invalid min-fresh reads as kDeltaSecondsMax (nothing stored is fresh enough).
  std::optional<int64_t> min_fresh{};  // §5.2.1.3
  // RFC 5861 §4: the client accepts a stale response on origin errors; invalid is ignored.
  std::optional<int64_t> stale_if_error{};
  bool no_cache = false;        // §5.2.1.4 (also from "Pragma: no-cache", §5.4)
  bool no_store = false;        // §5.2.1.5
  bool only_if_cached = false;  // §5.2.1.7
  bool no_transform = false;    // §5.2.1.6

  bool operator==(const RequestCacheControl&) const = default;
};

// Cache-Control only (no Pragma); `value` may be several lines combined with ",".
RequestCacheControl parse_request_cache_control(std::string_view value) noexcept;
// Every Cache-Control line of the request; when there is none, "Pragma: no-cache"
// counts as "Cache-Control: no-cache" (§5.4). Pragma is ignored whenever a
// Cache-Control field is present, even an empty one. Allocation-free.
RequestCacheControl parse_request_cache_control(const http::RequestHead& req) noexcept;

}  // namespace cachalot::cache
