// InvalidationLog: the rule "an invalidation voids every response whose
// origin request was sent before it", for fills still in flight.
//
// Purging the store only removes what is already there. A fill whose origin
// request went out before a purge publishes after it, and would bring the
// purged content back. So every invalidation (admin purges of every kind, the
// PURGE method, unsafe methods, remote nodes) takes a sequence number and is
// remembered while any fill that started before it is in flight. A fill
// records the last sequence number issued when its origin request is sent
// (enter()); at publish, an entry that a later rule matches is dropped, or,
// for a soft purge, published already stale.
//
// Ordering. record() and publish() take the same mutex: a publish either
// happens before the rule is recorded, and the invalidation's store purge
// (which the caller runs after record()) removes it, or after, and sees the
// rule. That mutex is taken once per publish (a miss), never on a hit.
//
// Memory: a rule is kept only while a fill with an earlier start is in
// flight; with no fill in flight record() keeps nothing.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "cache/entry.h"
#include "cache/purge.h"

namespace cachalot::cache {

class InvalidationLog {
 public:
  // What an invalidation matches, normalised by the caller (the Purger):
  //   Url:    key_path(primary key) == path, on `authority` or any host
  //   Prefix: key_path(primary key) starts with path, on `authority` or any host
  //   Tag:    the entry carries tag `path`
  //   All:    every entry
  //   Route:  the entry was stored under the route named `path`
  //   Partition: the entry's key carries the partition whose claim is `path` (key_partition())
  struct Rule {
    Purge::Kind kind = Purge::Kind::All;
    // The host as normalised for each scheme (the default port differs):
    // "example.com:443" is "example.com:443" in http:// keys, "example.com" in https:// ones.
    std::optional<std::string> authority;        // for http:// keys
    std::optional<std::string> authority_https;  // for https:// keys
    std::string path;                      // see above
    bool soft = false;
  };
  static bool matches(const Rule& r, const Entry& e) noexcept;
  // Could an entry stored under `primary_key` match? (Tag and Route rules
  // cannot tell from the key: true.)
  static bool may_match_key(const Rule& r, std::string_view primary_key) noexcept;

  enum class Verdict : uint8_t {
    Publish,  // no later invalidation matches
    Stale,    // a later soft purge matches: publish a copy marked stale
    Drop,     // a later hard invalidation matches: do not publish
  };

  // A fill in flight, from the moment its origin request is sent. Move-only;
  // leaving (destruction) lets the log forget rules no fill needs any more.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& o) noexcept : log_(o.log_), start_(o.start_) { o.log_ = nullptr; }
    Ticket& operator=(Ticket&& o) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { leave(); }
    explicit operator bool() const noexcept { return log_ != nullptr; }
    uint64_t start() const noexcept { return start_; }
    void leave() noexcept;

   private:
    friend class InvalidationLog;
    Ticket(InvalidationLog* log, uint64_t start) : log_(log), start_(start) {}
    InvalidationLog* log_ = nullptr;
    uint64_t start_ = 0;
  };

  // Call right before the origin request is written.
  Ticket enter();
  // Records an invalidation; returns its sequence number. The caller purges
  // the store afterwards.
  uint64_t record(Rule rule);
  // The verdict for an entry filled by `ticket`'s fetch.
  Verdict check(const Ticket& ticket, const Entry& e) const;
  // Decides and, unless the verdict is Drop, runs publish(verdict) under the
  // log's lock (see Ordering above). Returns the verdict.
  template <class F>
  Verdict publish(const Ticket& ticket, const Entry& e, F&& publish) {
    std::lock_guard lk(mu_);
    Verdict v = check_locked(ticket.start_, e);
    if (v != Verdict::Drop) publish(v);
    return v;
  }

  uint64_t last_sequence() const;
  std::size_t rules_kept() const;  // for tests
  std::size_t fills_in_flight() const;

 private:
  struct Recorded {
    uint64_t seq;
    Rule rule;
  };
  Verdict check_locked(uint64_t start, const Entry& e) const noexcept;
  void leave(uint64_t start) noexcept;
  void prune_locked() noexcept;

  mutable std::mutex mu_;
  uint64_t seq_ = 0;
  std::multiset<uint64_t> starts_;  // start of every fill in flight
  std::deque<Recorded> rules_;      // increasing seq
};

}  // namespace cachalot::cache
