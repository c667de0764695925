#include "config/units.h"

#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace cachalot::config {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Splits "64 KiB" into 64 and "KiB". The number must be plain decimal digits.
std::optional<std::pair<uint64_t, std::string_view>> split_number(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return std::nullopt;  // no digits, '-', '+', overflow
  std::string_view unit = text.substr(size_t(end - text.data()));
  if (unit.starts_with(' ')) {
    unit.remove_prefix(1);
    if (unit.empty()) return std::nullopt;  // "64 " is a typo, not bytes
  }
  return std::pair{n, unit};
}

std::optional<uint64_t> scale(uint64_t n, uint64_t unit) {
  if (n > std::numeric_limits<uint64_t>::max() / unit) return std::nullopt;
  return n * unit;
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

constexpr std::array kSizeUnits = {
    Unit{"", 1},           Unit{"b", 1},
    Unit{"kib", kKiB},     Unit{"mib", kMiB},          Unit{"gib", kGiB},          Unit{"tib", 1024 * kGiB},
    Unit{"kb", 1000},      Unit{"mb", 1000'000},       Unit{"gb", 1000'000'000},   Unit{"tb", 1000'000'000'000},
};

constexpr std::array kDurationUnits = {  // factor in milliseconds; "" (bare number) means seconds
    Unit{"", 1000}, Unit{"ms", 1}, Unit{"s", 1000}, Unit{"m", 60'000}, Unit{"h", 3'600'000}, Unit{"d", 86'400'000},
};

template <size_t N>
std::optional<uint64_t> parse_with(std::string_view text, const std::array<Unit, N>& units) {
  auto parts = split_number(text);
  if (!parts) return std::nullopt;
  for (const Unit& u : units)
    if (iequals(parts->second, u.name)) return scale(parts->first, u.factor);
  return std::nullopt;
}

// The largest unit that divides `n` exactly, so formatting never rounds.
template <size_t N>
std::string format_with(uint64_t n, const std::array<Unit, N>& units_largest_first) {
  for (const Unit& u : units_largest_first)
    if (n != 0 && n % u.factor == 0) return std::to_string(n / u.factor) + std::string(u.name);
  return std::to_string(n);
}

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) { return parse_with(text, kSizeUnits); }

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto ms = parse_with(text, kDurationUnits);
  if (!ms || *ms > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return std::chrono::milliseconds(int64_t(*ms));
}

std::string format_size(uint64_t bytes) {
  static constexpr std::array kUnits = {Unit{"TiB", 1024 * kGiB}, Unit{"GiB", kGiB}, Unit{"MiB", kMiB},
                                        Unit{"KiB", kKiB}};
  return format_with(bytes, kUnits);
}

std::string format_duration(std::chrono::milliseconds d) {
  static constexpr std::array kUnits = {Unit{"d", 86'400'000}, Unit{"h", 3'600'000}, Unit{"m", 60'000},
                                        Unit{"s", 1000}, Unit{"ms", 1}};
  return d.count() == 0 ? "0s" : format_with(uint64_t(d.count()), kUnits);
}

}  // namespace cachalot::config
