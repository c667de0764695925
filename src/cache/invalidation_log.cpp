#include "cache/invalidation_log.h"

#include <algorithm>

#include "cache/key.h"

namespace cachalot::cache {

bool InvalidationLog::may_match_key(const Rule& r, std::string_view key) noexcept {
  if (r.kind == Purge::Kind::Partition) return partition_claim(key_partition(key)) == r.path;
  if (r.kind != Purge::Kind::Url && r.kind != Purge::Kind::Prefix) return true;
  if (r.authority) {
    const bool https = key.substr(0, 8) == "https://";
    const std::string& want = https && r.authority_https ? *r.authority_https : *r.authority;
    if (key_authority(key) != want) return false;
  }
  std::string_view path = key_path(key);
  return r.kind == Purge::Kind::Url ? path == r.path : path.substr(0, r.path.size()) == r.path;
}

bool InvalidationLog::matches(const Rule& r, const Entry& e) noexcept {
  switch (r.kind) {
    case Purge::Kind::All: return true;
    case Purge::Kind::Route: return e.route() == r.path;
    case Purge::Kind::Partition: return partition_claim(key_partition(e.primary_key())) == r.path;
    case Purge::Kind::Tag: return e.has_tag(r.path);
    case Purge::Kind::Url:
    case Purge::Kind::Prefix: return may_match_key(r, e.primary_key());
  }
  return false;
}

InvalidationLog::Ticket& InvalidationLog::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    leave();
    log_ = o.log_;
    start_ = o.start_;
    o.log_ = nullptr;
  }
  return *this;
}

void InvalidationLog::Ticket::leave() noexcept {
  if (log_) log_->leave(start_);
  log_ = nullptr;
}

InvalidationLog::Ticket InvalidationLog::enter() {
  std::lock_guard lk(mu_);
  starts_.insert(seq_);
  return Ticket(this, seq_);
}

void InvalidationLog::leave(uint64_t start) noexcept {
  std::lock_guard lk(mu_);
  auto it = starts_.find(start);
  if (it != starts_.end()) starts_.erase(it);
  prune_locked();
}

void InvalidationLog::prune_locked() noexcept {
  // A rule matters only to fills that started before it (start < seq).
  if (starts_.empty()) {
    rules_.clear();
    return;
  }
  const uint64_t oldest = *starts_.begin();
  while (!rules_.empty() && rules_.front().seq <= oldest) rules_.pop_front();
}

uint64_t InvalidationLog::record(Rule rule) {
  std::lock_guard lk(mu_);
  const uint64_t seq = ++seq_;
  if (!starts_.empty()) rules_.push_back({seq, std::move(rule)});
  return seq;
}

InvalidationLog::Verdict InvalidationLog::check_locked(uint64_t start, const Entry& e) const noexcept {
  Verdict v = Verdict::Publish;
  // rules_ is ordered by seq: only the tail after `start` applies.
  for (auto it = rules_.rbegin(); it != rules_.rend() && it->seq > start; ++it) {
    if (!matches(it->rule, e)) continue;
    if (!it->rule.soft) return Verdict::Drop;
    v = Verdict::Stale;
  }
  return v;
}

InvalidationLog::Verdict InvalidationLog::check(const Ticket& ticket, const Entry& e) const {
  std::lock_guard lk(mu_);
  return check_locked(ticket.start_, e);
}

uint64_t InvalidationLog::last_sequence() const {
  std::lock_guard lk(mu_);
  return seq_;
}

std::size_t InvalidationLog::rules_kept() const {
  std::lock_guard lk(mu_);
  return rules_.size();
}

std::size_t InvalidationLog::fills_in_flight() const {
  std::lock_guard lk(mu_);
  return starts_.size();
}

}  // namespace cachalot::cache
