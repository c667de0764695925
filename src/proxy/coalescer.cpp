#include "proxy/coalescer.h"

namespace cachalot::proxy {

void Fill::notify_locked(std::vector<std::shared_ptr<asio::steady_timer>>& out) {
  for (auto& w : waiters_)
    if (auto t = w.lock()) out.push_back(std::move(t));
  waiters_.clear();
}

static void wake(std::vector<std::shared_ptr<asio::steady_timer>>& timers) {
  for (auto& t : timers) asio::post(t->get_executor(), [t] { t->cancel(); });
}

void Fill::set_head(std::shared_ptr<const Head> head) {
  std::vector<std::shared_ptr<asio::steady_timer>> w;
  {
    std::lock_guard lk(mu_);
    head_ = std::move(head);
    state_ = State::Streaming;
    notify_locked(w);
  }
  wake(w);
}

void Fill::append(std::shared_ptr<const std::string> chunk) {
  std::vector<std::shared_ptr<asio::steady_timer>> w;
  {
    std::lock_guard lk(mu_);
    chunks_.push_back(std::move(chunk));
    notify_locked(w);
  }
  wake(w);
}

void Fill::finish(State final_state, std::shared_ptr<const cache::Entry> entry) {
  std::vector<std::shared_ptr<asio::steady_timer>> w;
  {
    std::lock_guard lk(mu_);
    // A fill that followers already stream from cannot become Uncacheable: it fails.
    if (final_state == State::Uncacheable && state_ == State::Streaming) final_state = State::Failed;
    state_ = final_state;
    entry_ = std::move(entry);
    notify_locked(w);
  }
  wake(w);
}

Fill::View Fill::view(std::size_t from) const {
  std::lock_guard lk(mu_);
  View v{state_, head_, {}, entry_};
  if (from < chunks_.size()) v.chunks.assign(chunks_.begin() + static_cast<std::ptrdiff_t>(from), chunks_.end());
  return v;
}

std::size_t Fill::followers() const {
  std::lock_guard lk(mu_);
  return followers_;
}

void Fill::add_follower() {
  std::lock_guard lk(mu_);
  ++followers_;
}

asio::awaitable<bool> Fill::wait_change(State seen_state, std::size_t seen_chunks,
                                        std::chrono::steady_clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex);
  timer->expires_at(deadline);
  {
    std::lock_guard lk(mu_);
    if (state_ != seen_state || chunks_.size() != seen_chunks) co_return true;
    waiters_.push_back(timer);
  }
  asio::error_code ec;
  co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  // Cancelled = woken by the leader; otherwise the deadline passed.
  co_return ec == asio::error::operation_aborted || std::chrono::steady_clock::now() < deadline;
}

Coalescer::Ticket Coalescer::join(const std::string& key, std::size_t max_waiters, core::TimePoint now) {
  std::lock_guard lk(mu_);
  if (auto h = hit_for_miss_.find(key); h != hit_for_miss_.end()) {
    if (now < h->second) return {Role::Alone, nullptr};
    hit_for_miss_.erase(h);
  }
  auto [it, inserted] = fills_.try_emplace(key);
  if (inserted) {
    it->second = std::make_shared<Fill>();
    return {Role::Leader, it->second};
  }
  if (it->second->followers() >= max_waiters) return {Role::Alone, nullptr};
  it->second->add_follower();
  return {Role::Follower, it->second};
}

void Coalescer::release(const std::string& key, const std::shared_ptr<Fill>& fill) {
  std::lock_guard lk(mu_);
  auto it = fills_.find(key);
  if (it != fills_.end() && it->second == fill) fills_.erase(it);
}

void Coalescer::mark_hit_for_miss(const std::string& key, core::TimePoint until) {
  std::lock_guard lk(mu_);
  // Bounded: an attacker requesting many uncacheable URLs cannot grow this forever.
  if (hit_for_miss_.size() > 100000) hit_for_miss_.clear();
  hit_for_miss_[key] = until;
}

void Coalescer::clear_hit_for_miss(const std::string& key) {
  std::lock_guard lk(mu_);
  hit_for_miss_.erase(key);
}

bool Coalescer::in_flight(const std::string& key) const {
  std::lock_guard lk(mu_);
  return fills_.count(key) != 0;
}

std::size_t Coalescer::size() const {
  std::lock_guard lk(mu_);
  return fills_.size();
}

}  // namespace cachalot::proxy
