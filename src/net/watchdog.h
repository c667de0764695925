// Watchdog: one timer per connection enforcing per-phase deadlines.
//
// The owner calls arm(d) when it starts waiting on the peer and disarm() when
// it stops; the watchdog coroutine (run()) closes the socket when an armed
// deadline passes, so the pending operation completes with an error and the
// owner sees expired() == true. Moving a deadline later costs no syscall; the
// timer only wakes at the old deadline and sleeps again.
#pragma once

#include <chrono>
#include <functional>

#include <asio.hpp>

namespace cachalot::net {

class Watchdog {
 public:
  using clock = std::chrono::steady_clock;
  explicit Watchdog(const asio::any_io_executor& ex) : timer_(ex) {}

  void arm(clock::duration d) {
    deadline_ = clock::now() + d;
    armed_ = true;
    if (running_ && timer_.expiry() > deadline_) timer_.cancel();
  }
  void disarm() noexcept { armed_ = false; }
  bool expired() const noexcept { return expired_; }
  void reset_expired() noexcept { expired_ = false; }

  // Runs until stop(); calls on_expire() (once per expiry) when an armed deadline passes.
  asio::awaitable<void> run(std::function<void()> on_expire) {
    running_ = true;
    while (!stopped_) {
      timer_.expires_at(armed_ ? deadline_ : clock::time_point::max());
      asio::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopped_) break;
      if (armed_ && deadline_ <= clock::now()) {
        armed_ = false;
        expired_ = true;
        on_expire();
      }
    }
    running_ = false;
  }
  void stop() {
    stopped_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  clock::time_point deadline_{};
  bool armed_ = false;
  bool expired_ = false;
  bool stopped_ = false;
  bool running_ = false;
};

}  // namespace cachalot::net
