// Watchdog: per-phase deadlines for a connection, checked by its worker's
// ticker instead of one kernel timer per operation.
//
// The owner calls arm(d) when it starts waiting on the peer and disarm() when
// it stops. Arming is two stores: no timer is created, moved or cancelled, so
// the hit path makes no timer syscalls. Each worker's WatchdogSet wakes every
// tick (100 ms), and for every armed watchdog whose deadline has passed it
// calls on_expire (which closes or cancels the socket, so the pending
// operation completes with an error) and sets expired(). Timeouts are thus
// precise to one tick, which is plenty for timeouts measured in seconds.
//
// Threading: a WatchdogSet and its watchdogs belong to one io_context thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <vector>

#include <asio.hpp>

namespace cachalot::net {

class WatchdogSet;

class Watchdog {
 public:
  using clock = std::chrono::steady_clock;
  Watchdog(WatchdogSet& set, std::function<void()> on_expire);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(clock::duration d) noexcept {
    deadline_ = clock::now() + d;
    armed_ = true;
    expired_ = false;  // an expiry that found no pending operation must not leak into this one
  }
  void disarm() noexcept { armed_ = false; }
  bool expired() const noexcept { return expired_; }
  void reset_expired() noexcept { expired_ = false; }

 private:
  friend class WatchdogSet;
  WatchdogSet& set_;
  std::function<void()> on_expire_;
  clock::time_point deadline_{};
  bool armed_ = false;
  bool expired_ = false;
  std::size_t index_ = 0;  // position in set_.all_
};

class WatchdogSet {
 public:
  static constexpr std::chrono::milliseconds kTick{100};
  // Lifetime: the set must outlive every Watchdog in it, and its timer must
  // not outlive the io_context: call shutdown() before the io_context is destroyed.
  WatchdogSet() = default;
  // Starts ticking on `ioc` (before it runs, or on its thread).
  void start(asio::io_context& ioc) {
    timer_.emplace(ioc);
    schedule();
  }
  void shutdown() { timer_.reset(); }
  std::size_t size() const noexcept { return all_.size(); }

 private:
  friend class Watchdog;
  void schedule();
  void tick();
  std::optional<asio::steady_timer> timer_;
  std::vector<Watchdog*> all_;
};

inline Watchdog::Watchdog(WatchdogSet& set, std::function<void()> on_expire)
    : set_(set), on_expire_(std::move(on_expire)) {
  index_ = set_.all_.size();
  set_.all_.push_back(this);
}

inline Watchdog::~Watchdog() {
  auto& v = set_.all_;
  v[index_] = v.back();
  v[index_]->index_ = index_;
  v.pop_back();
}

inline void WatchdogSet::schedule() {
  timer_->expires_after(kTick);
  timer_->async_wait([this](const asio::error_code& ec) {
    if (ec || !timer_) return;
    tick();
    schedule();
  });
}

inline void WatchdogSet::tick() {
  auto now = Watchdog::clock::now();
  // on_expire may destroy other watchdogs? No: it only closes sockets; the
  // owners run later, when their operations complete. Index loop stays valid.
  for (std::size_t i = 0; i < all_.size(); ++i) {
    Watchdog* w = all_[i];
    if (w->armed_ && w->deadline_ <= now) {
      w->armed_ = false;
      w->expired_ = true;
      if (w->on_expire_) w->on_expire_();
    }
  }
}

}  // namespace cachalot::net
