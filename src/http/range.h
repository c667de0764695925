// Byte ranges (RFC 9110 §14): the Range request field, resolved against a
// representation of known length. Pure; the responder slices the body.
//
// What a Range field value comes to:
//   Ignore         not "bytes=", a syntax error, a range whose last-pos is
//                  before its first-pos, more than kMaxRanges ranges, ranges
//                  that overlap, or an empty representation. §14.2: a server
//                  MAY ignore Range; the client gets the full 200.
//   Satisfiable    at least one range overlaps the representation: 206 with
//                  those ranges (clipped to the length, unsatisfiable ones
//                  dropped, order kept).
//   Unsatisfiable  none does: 416 with "Content-Range: bytes */length" (§15.5.17).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace cachalot::http {

struct ByteRange {
  uint64_t first = 0, last = 0;  // inclusive, within the representation
  uint64_t size() const noexcept { return last - first + 1; }
  bool operator==(const ByteRange&) const = default;
};

enum class RangeVerdict : uint8_t { Ignore, Satisfiable, Unsatisfiable };

struct ResolvedRanges {
  RangeVerdict verdict = RangeVerdict::Ignore;
  std::vector<ByteRange> ranges;  // Satisfiable: one or more
};

// More ranges than this in one request are ignored (a many-small-ranges
// request costs far more to answer than the representation it asks for).
inline constexpr std::size_t kMaxRanges = 16;

// Is `value` a "bytes=" ranges-specifier at all (the unit, case-insensitive)?
// Other units are not ours to answer: the request goes to the origin as sent.
bool is_bytes_range(std::string_view value) noexcept;

// §14.1.1-14.1.2: resolves a Range field value against `length` bytes.
ResolvedRanges resolve_ranges(std::string_view value, uint64_t length);

}  // namespace cachalot::http
