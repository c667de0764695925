// Coalescer: one origin fetch per key, however many clients ask at once.
//
// join(key) makes the first request for a key with no usable entry the
// Leader: it gets a FetchPermit, the only handle that can feed and finish the
// key's Fill. Later requests for the same key become Followers of that Fill
// and are answered from it as the leader's response arrives (head, then body
// chunks). When the response turns out not to be shareable, the Fill ends
// Uncacheable and followers fetch for themselves; the key is then remembered
// as hit-for-miss for a while so new requests skip the queue. A leader that
// fails ends the Fill Failed and the followers retry (one of them leads next).
//
// Permits, not flags (Pingora's WritePermit, Varnish's busy objects): a Fill
// reaches a terminal state exactly once. FetchPermit::finish() releases the
// key (new requests stop joining) and then ends the Fill; a permit destroyed
// unfinished ends it Failed. Fill::finish() keeps the first terminal state it
// is given, so a second finish can never turn a cut-short fill into a
// "complete" one; a follower that already sent its head and finds the fill
// ended without Done must close its connection (its body is incomplete).
//
// No Asio here: a follower waits by subscribing a wake callback, which the
// Fill calls (outside its lock, on the leader's thread) when something
// changes; the proxy's callback posts to the follower's own executor. Tests
// capture the callbacks and fire them by hand.
//
// Locking: Coalescer::mu_ guards the key maps; Fill::mu_ guards one fill.
// The coalescer never calls into a fill while holding mu_ except for the
// follower count (a leaf lock), and a fill never calls the coalescer.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/entry.h"
#include "core/clock.h"

namespace cachalot::cache {

class Coalescer;

class Fill {
 public:
  enum class State : uint8_t {
    Pending,      // the leader is waiting for the response head
    Streaming,    // the head is known and shareable; body chunks arriving
    Done,         // complete; `entry` is set when it was stored
    Uncacheable,  // the response may not be shared: followers fetch for themselves
    Failed,       // the leader failed or the body was cut short: followers retry (or close, if streaming)
  };
  static constexpr bool terminal(State s) noexcept { return s >= State::Done; }

  // Set once when the head is known to be shareable (before Streaming), then immutable.
  struct Head {
    std::string head_block;   // status line and fields for a follower, framing chunked unless content_length >= 0
    int64_t content_length = -1;
    EntryRef proto;  // status, fields, freshness, vary and validators; empty body
  };

  struct View {
    State state;
    std::shared_ptr<const Head> head;
    std::vector<std::shared_ptr<const std::string>> chunks;  // chunks [from, ...)
    EntryRef entry;
  };

  explicit Fill(std::string key) : key_(std::move(key)) {}
  const std::string& key() const noexcept { return key_; }

  // A snapshot of what is available from chunk `from_chunk` on.
  View view(std::size_t from_chunk) const;
  State state() const;

  // Registers `wake` to be called once when the state or the chunk count moves
  // past (seen_state, seen_chunks). Returns false, and registers nothing, when
  // it already has (the caller looks again instead of waiting).
  using Waker = std::function<void()>;
  bool subscribe(State seen_state, std::size_t seen_chunks, Waker wake);

  std::size_t followers() const;

 private:
  friend class FetchPermit;
  friend class Coalescer;
  void set_head(std::shared_ptr<const Head> head);
  void append(std::shared_ptr<const std::string> chunk);
  // Keeps the first terminal state; Uncacheable after Streaming becomes Failed
  // (followers already streaming cannot fetch for themselves). False if the
  // fill had already ended.
  bool finish(State final_state, EntryRef entry);
  bool add_follower(std::size_t max);
  void take_wakers(std::vector<Waker>& out);

  const std::string key_;
  mutable std::mutex mu_;
  State state_ = State::Pending;
  std::shared_ptr<const Head> head_;
  std::vector<std::shared_ptr<const std::string>> chunks_;
  EntryRef entry_;
  std::vector<Waker> wakers_;
  std::size_t followers_ = 0;
};

// The leader's exclusive right to feed and finish one Fill. Move-only.
class FetchPermit {
 public:
  FetchPermit() = default;
  FetchPermit(FetchPermit&& o) noexcept;
  FetchPermit& operator=(FetchPermit&& o) noexcept;
  FetchPermit(const FetchPermit&) = delete;
  FetchPermit& operator=(const FetchPermit&) = delete;
  // Unfinished: the fill ends Failed and the key is released.
  ~FetchPermit();

  explicit operator bool() const noexcept { return fill_ != nullptr; }
  const std::shared_ptr<Fill>& fill() const noexcept { return fill_; }
  bool finished() const noexcept { return finished_; }

  void set_head(std::shared_ptr<const Fill::Head> head);
  void append(std::shared_ptr<const std::string> chunk);
  // Releases the key first (new requests stop joining), then ends the fill and
  // wakes its followers. Only the first call has an effect.
  void finish(Fill::State state, EntryRef entry = nullptr);

 private:
  friend class Coalescer;
  FetchPermit(Coalescer* c, std::shared_ptr<Fill> f) : coalescer_(c), fill_(std::move(f)) {}
  Coalescer* coalescer_ = nullptr;
  std::shared_ptr<Fill> fill_;
  bool finished_ = false;
};

class Coalescer {
 public:
  enum class Role : uint8_t {
    Leader,    // fetch from the origin and feed the fill (holds the permit)
    Follower,  // wait for the leader's fill
    Alone,     // fetch without coalescing (hit-for-miss, too many waiters)
  };
  struct Ticket {
    Role role = Role::Alone;
    FetchPermit permit;           // Leader only
    std::shared_ptr<Fill> fill;   // Leader and Follower
  };

  // `max_waiters` 0 means "lead or nothing" (a background refresh).
  Ticket join(const std::string& key, std::size_t max_waiters, core::TimePoint now);
  void mark_hit_for_miss(const std::string& key, core::TimePoint until);
  void clear_hit_for_miss(const std::string& key);
  // Stops new requests from joining the fills `match` selects (an
  // invalidation voids responses whose origin request was sent before it; a
  // request that arrives after it must not be answered from such a fill).
  // Followers already attached keep following. Returns how many were detached.
  std::size_t detach_if(const std::function<bool(const Fill&)>& match);
  bool in_flight(const std::string& key) const;
  std::size_t size() const;

 private:
  friend class FetchPermit;
  void release(const Fill& fill);
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Fill>> fills_;
  std::unordered_map<std::string, core::TimePoint> hit_for_miss_;
};

}  // namespace cachalot::cache
