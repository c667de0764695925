#include "cache/coalescer.h"

namespace cachalot::cache {

namespace {
void call_all(std::vector<Fill::Waker>& wakers) {
  for (auto& w : wakers)
    if (w) w();
}
}  // namespace

// ---------------------------------------------------------------- Fill

void Fill::take_wakers(std::vector<Waker>& out) {
  out.swap(wakers_);
  wakers_.clear();
}

Fill::View Fill::view(std::size_t from) const {
  std::lock_guard lk(mu_);
  View v{state_, head_, {}, entry_};
  if (from < chunks_.size()) v.chunks.assign(chunks_.begin() + static_cast<std::ptrdiff_t>(from), chunks_.end());
  return v;
}

Fill::State Fill::state() const {
  std::lock_guard lk(mu_);
  return state_;
}

bool Fill::subscribe(State seen_state, std::size_t seen_chunks, Waker wake) {
  std::lock_guard lk(mu_);
  if (state_ != seen_state || chunks_.size() != seen_chunks) return false;
  wakers_.push_back(std::move(wake));
  return true;
}

std::size_t Fill::followers() const {
  std::lock_guard lk(mu_);
  return followers_;
}

bool Fill::add_follower(std::size_t max) {
  std::lock_guard lk(mu_);
  if (followers_ >= max) return false;
  ++followers_;
  return true;
}

void Fill::set_head(std::shared_ptr<const Head> head) {
  std::vector<Waker> w;
  {
    std::lock_guard lk(mu_);
    if (state_ != State::Pending) return;
    head_ = std::move(head);
    state_ = State::Streaming;
    take_wakers(w);
  }
  call_all(w);
}

void Fill::append(std::shared_ptr<const std::string> chunk) {
  std::vector<Waker> w;
  {
    std::lock_guard lk(mu_);
    if (state_ != State::Streaming) return;
    chunks_.push_back(std::move(chunk));
    take_wakers(w);
  }
  call_all(w);
}

bool Fill::finish(State final_state, EntryRef entry) {
  std::vector<Waker> w;
  {
    std::lock_guard lk(mu_);
    if (terminal(state_)) return false;
    if (final_state == State::Uncacheable && state_ == State::Streaming) final_state = State::Failed;
    if (!terminal(final_state)) final_state = State::Failed;
    state_ = final_state;
    entry_ = final_state == State::Done ? std::move(entry) : nullptr;
    take_wakers(w);
  }
  call_all(w);
  return true;
}

// ---------------------------------------------------------------- FetchPermit

FetchPermit::FetchPermit(FetchPermit&& o) noexcept
    : coalescer_(o.coalescer_), fill_(std::move(o.fill_)), finished_(o.finished_) {
  o.coalescer_ = nullptr;
  o.finished_ = true;
}

FetchPermit& FetchPermit::operator=(FetchPermit&& o) noexcept {
  if (this != &o) {
    finish(Fill::State::Failed);
    coalescer_ = o.coalescer_;
    fill_ = std::move(o.fill_);
    finished_ = o.finished_;
    o.coalescer_ = nullptr;
    o.finished_ = true;
  }
  return *this;
}

FetchPermit::~FetchPermit() { finish(Fill::State::Failed); }

void FetchPermit::set_head(std::shared_ptr<const Fill::Head> head) {
  if (fill_ && !finished_) fill_->set_head(std::move(head));
}

void FetchPermit::append(std::shared_ptr<const std::string> chunk) {
  if (fill_ && !finished_) fill_->append(std::move(chunk));
}

void FetchPermit::finish(Fill::State state, EntryRef entry) {
  if (!fill_ || finished_) return;
  finished_ = true;
  if (coalescer_) coalescer_->release(*fill_);
  fill_->finish(state, std::move(entry));
}

// ---------------------------------------------------------------- Coalescer

Coalescer::Ticket Coalescer::join(const std::string& key, std::size_t max_waiters, core::TimePoint now) {
  std::lock_guard lk(mu_);
  if (auto h = hit_for_miss_.find(key); h != hit_for_miss_.end()) {
    if (now < h->second) return {};
    hit_for_miss_.erase(h);
  }
  auto [it, inserted] = fills_.try_emplace(key);
  if (inserted) {
    it->second = std::make_shared<Fill>(key);
    Ticket t;
    t.role = Role::Leader;
    t.fill = it->second;
    t.permit = FetchPermit(this, it->second);
    return t;
  }
  if (!it->second->add_follower(max_waiters)) return {};
  Ticket t;
  t.role = Role::Follower;
  t.fill = it->second;
  return t;
}

void Coalescer::release(const Fill& fill) {
  std::lock_guard lk(mu_);
  auto it = fills_.find(fill.key());
  if (it != fills_.end() && it->second.get() == &fill) fills_.erase(it);
}

std::size_t Coalescer::detach_if(const std::function<bool(const Fill&)>& match) {
  std::lock_guard lk(mu_);
  std::size_t n = 0;
  for (auto it = fills_.begin(); it != fills_.end();) {
    if (match(*it->second)) {
      it = fills_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
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

}  // namespace cachalot::cache
