// Time for the whole program. Policy code never reads a clock: it takes `now`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace cachalot::core {

// Wall-clock time (HTTP dates are wall-clock), millisecond resolution.
using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::time_point<std::chrono::system_clock, Duration>;
using Seconds = std::chrono::seconds;

inline TimePoint to_time_point(int64_t unix_seconds) { return TimePoint(std::chrono::seconds(unix_seconds)); }
inline int64_t to_unix_seconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The clock that proxy/, net/ and admin/ read. Test builds may add an offset
// (CACHALOT_TEST_CLOCK: the admin API's POST /test/clock calls advance()) so
// conversations can move time forward without sleeping. Only this clock moves:
// timeouts run on steady_clock and keep real time.
class Clock {
 public:
  static TimePoint now() noexcept {
    auto t = std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
    return t + Duration(offset_ms_.load(std::memory_order_relaxed));
  }
  static void advance(Duration d) noexcept { offset_ms_.fetch_add(d.count(), std::memory_order_relaxed); }
  // How far advance() has moved the clock in total.
  static Duration offset() noexcept { return Duration(offset_ms_.load(std::memory_order_relaxed)); }

 private:
  static inline std::atomic<int64_t> offset_ms_{0};
};

}  // namespace cachalot::core
