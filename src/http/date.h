// HTTP-date (RFC 9110 §5.6.7): parse all three forms, format IMF-fixdate.
//
// Hand-written because these run on every response (Date, Expires,
// Last-Modified) and every conditional request: no locale, no strptime, no
// timegm, no allocation. Values are unix seconds (int64, so dates before 1970
// and after 2038 are fine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cachalot::http {

// Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
inline constexpr std::size_t kHttpDateLength = 29;

// Parses an HTTP-date in any of the three forms RFC 9110 §5.6.7 requires a
// recipient to accept:
//   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
//   rfc850-date  "Sunday, 06-Nov-94 08:49:37 GMT"   (obsolete)
//   asctime-date "Sun Nov  6 08:49:37 1994"         (obsolete)
// Returns unix seconds, or nullopt if the text is not a valid date (bad
// field, day 31 of a 30-day month, "0", "-1", ...). Surrounding whitespace is
// ignored and day/month names are matched case-insensitively (§5.6.7 asks
// recipients to be robust); everything else is exact. The weekday must be a
// valid name but is not checked against the date (it carries no information).
// A leap second (":60") is accepted and lands on the next minute.
//
// Two-digit rfc850 years: §5.6.7 resolves them against the current year (more
// than 50 years ahead means the previous century). This function reads no
// clock, so it pivots on a fixed year instead: 00-69 -> 20xx, 70-99 -> 19xx.
// The two rules differ only for the years 70-75 read today, where this one
// picks the past, i.e. the conservative "already expired".
std::optional<int64_t> parse_http_date(std::string_view text) noexcept;

// Writes the IMF-fixdate for `unix_seconds` into out[0..28] (no terminating
// NUL). Times outside years 0000-9999 are clamped to that range so the output
// is always exactly 29 characters.
void format_http_date(int64_t unix_seconds, char out[kHttpDateLength]) noexcept;
std::string format_http_date(int64_t unix_seconds);

}  // namespace cachalot::http
