// Coalescer: one origin fetch per key, however many clients ask at once.
//
// join(key) makes the first request for a key with no usable entry the
// Leader of a Fill; later requests for the same key become Followers of that
// Fill and are answered from it as the leader's response arrives (head, then
// body chunks), on their own worker thread. When the response turns out not
// to be shareable, the Fill becomes Uncacheable and followers fetch for
// themselves; the key is then remembered as hit-for-miss for a while so new
// requests skip the queue. A leader that fails marks the Fill Failed and the
// followers retry (one of them leads next).
//
// Locking: Coalescer::mu_ guards the key maps; Fill::mu_ guards one fill's
// state, chunks and waiter list. Never hold both. Waiters are woken by posting
// to their own executor (never called re-entrantly).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "cache/entry.h"
#include "core/clock.h"

namespace cachalot::proxy {

class Fill {
 public:
  enum class State : uint8_t {
    Pending,      // leader is waiting for the response head
    Streaming,    // head is known and shareable; body chunks arriving
    Done,         // complete; `entry` is set when it was stored
    Uncacheable,  // the response may not be shared: followers fetch for themselves
    Failed,       // the leader failed: followers retry
  };

  // Set once when the head is shareable (before Streaming), then immutable.
  struct Head {
    std::string head_block;  // like Entry::head_block, but framing is chunked unless content_length >= 0
    int64_t content_length = -1;
    int status = 200;
    std::string variant_key;  // leader's variant key for the response's Vary
    std::vector<std::string> vary_names;
    std::string etag, last_modified;
    std::shared_ptr<const cache::Entry> proto;  // freshness and fields for Cache-Status / conditionals
  };

  // Leader side.
  void set_head(std::shared_ptr<const Head> head);
  void append(std::shared_ptr<const std::string> chunk);
  void finish(State final_state, std::shared_ptr<const cache::Entry> entry = nullptr);

  // Follower side: a snapshot of what is available.
  struct View {
    State state;
    std::shared_ptr<const Head> head;
    std::vector<std::shared_ptr<const std::string>> chunks;  // chunks [from, ...)
    std::shared_ptr<const cache::Entry> entry;
  };
  View view(std::size_t from_chunk) const;

  // Waits until the state or chunk count moves past what the caller saw, or the
  // deadline passes. Returns false on timeout.
  asio::awaitable<bool> wait_change(State seen_state, std::size_t seen_chunks,
                                    std::chrono::steady_clock::time_point deadline);

  std::size_t followers() const;
  void add_follower();

 private:
  void notify_locked(std::vector<std::shared_ptr<asio::steady_timer>>& out);
  mutable std::mutex mu_;
  State state_ = State::Pending;
  std::shared_ptr<const Head> head_;
  std::vector<std::shared_ptr<const std::string>> chunks_;
  std::shared_ptr<const cache::Entry> entry_;
  std::vector<std::weak_ptr<asio::steady_timer>> waiters_;
  std::size_t followers_ = 0;
};

class Coalescer {
 public:
  enum class Role : uint8_t {
    Leader,     // fetch from the origin and feed the fill
    Follower,   // wait for the leader's fill
    Alone,      // fetch without coalescing (hit-for-miss, too many waiters, disabled)
  };
  struct Ticket {
    Role role;
    std::shared_ptr<Fill> fill;  // null for Alone
  };

  Ticket join(const std::string& key, std::size_t max_waiters, core::TimePoint now);
  // The leader is done with the key (whatever the outcome): new requests no longer join this fill.
  void release(const std::string& key, const std::shared_ptr<Fill>& fill);
  void mark_hit_for_miss(const std::string& key, core::TimePoint until);
  void clear_hit_for_miss(const std::string& key);
  bool in_flight(const std::string& key) const;
  std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Fill>> fills_;
  std::unordered_map<std::string, core::TimePoint> hit_for_miss_;
};

}  // namespace cachalot::proxy
