// Human-friendly sizes and durations as written in the config file.
//
//   size:     512 | 64KiB | 256MiB | 1GiB | 10KB | 10MB | 1GB   (KiB = 1024, KB = 1000)
//   duration: 500ms | 30s | 5m | 1h | 1d | 30                   (a bare number is seconds)
//
// Units are case-insensitive and may follow the number after one space. Only
// non-negative integers are accepted; anything else, including overflow, is
// nullopt so the caller can report the value with its position.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cachalot::config {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

std::optional<uint64_t> parse_size(std::string_view text);
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The shortest exact spelling for messages: 8388608 -> "8MiB", 1000 -> "1000".
std::string format_size(uint64_t bytes);
// 90000ms -> "90s", 1500ms -> "1500ms", 3600000ms -> "1h".
std::string format_duration(std::chrono::milliseconds d);

}  // namespace cachalot::config
