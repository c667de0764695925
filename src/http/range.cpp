#include "http/range.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "http/header_map.h"

namespace cachalot::http {

namespace {

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// 1*DIGIT, no sign, no overflow.
std::optional<uint64_t> digits(std::string_view s) noexcept {
  if (s.empty() || s.size() > 19) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// One range-spec: int-range "first-[last]" or suffix-range "-length".
struct Spec {
  bool suffix = false;
  uint64_t first = 0;
  std::optional<uint64_t> last;  // int-range; suffix: the suffix length
};

std::optional<Spec> parse_spec(std::string_view s) noexcept {
  const std::size_t dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view a = s.substr(0, dash), b = s.substr(dash + 1);
  Spec spec;
  if (a.empty()) {
    auto n = digits(b);
    if (!n) return std::nullopt;
    spec.suffix = true;
    spec.last = n;
    return spec;
  }
  auto f = digits(a);
  if (!f) return std::nullopt;
  spec.first = *f;
  if (!b.empty()) {
    auto l = digits(b);
    if (!l || *l < *f) return std::nullopt;  // §14.1.1: last-pos before first-pos is invalid
    spec.last = l;
  }
  return spec;
}

}  // namespace

bool is_bytes_range(std::string_view value) noexcept {
  value = trim(value);
  return value.size() >= 6 && iequals(value.substr(0, 6), "bytes=");
}

ResolvedRanges resolve_ranges(std::string_view value, uint64_t length) {
  ResolvedRanges out;
  value = trim(value);
  if (!is_bytes_range(value)) return out;
  value.remove_prefix(6);
  std::vector<ByteRange> ranges;
  std::size_t specs = 0;
  bool any_spec = false;
  while (true) {
    const std::size_t comma = value.find(',');
    const std::string_view item = trim(value.substr(0, comma));
    if (!item.empty()) {  // §5.6.1: empty list elements are ignored
      any_spec = true;
      if (++specs > kMaxRanges) return out;
      auto spec = parse_spec(item);
      if (!spec) return out;
      if (spec->suffix) {
        // §14.1.3: the last suffix-length bytes (all of them when shorter).
        if (*spec->last > 0 && length > 0)
          ranges.push_back({length - std::min(*spec->last, length), length - 1});
      } else if (spec->first < length) {
        ranges.push_back({spec->first, std::min(spec->last.value_or(length - 1), length - 1)});
      }
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  if (!any_spec || length == 0) return out;
  if (ranges.empty()) {
    out.verdict = RangeVerdict::Unsatisfiable;
    return out;
  }
  // §14.2: overlapping ranges MAY be ignored; we answer the whole representation.
  std::vector<ByteRange> sorted = ranges;
  std::sort(sorted.begin(), sorted.end(), [](const ByteRange& x, const ByteRange& y) { return x.first < y.first; });
  for (std::size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].first <= sorted[i - 1].last) return out;
  out.verdict = RangeVerdict::Satisfiable;
  out.ranges = std::move(ranges);
  return out;
}

}  // namespace cachalot::http
