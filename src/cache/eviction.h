// Eviction policies for the Store: SIEVE (the default) and LRU (for comparison).
//
// Both are intrusive and index-based: the per-object state (two links and a
// visited bit) is an EvictionHook embedded in the store's own node, addressed
// by a 32-bit NodeId, so the policies allocate nothing, a SIEVE hit writes to
// the node the lookup already loaded, and every operation is O(1) (SIEVE's victim()
// is O(1) amortized: each hand step either evicts or clears a bit that a hit
// had to set). The policies pick victims; the store removes them (it calls
// erase() for the victim like for any other removal).
//
// The queue is a doubly linked list, head = most recently inserted, tail =
// oldest. `Nodes` is the store's node table: `EvictionHook& hook(NodeId)`,
// references stable while the node is queued.
//
// Locking contract (the store's shard lock is a std::shared_mutex):
//   insert, erase, victim, clear: exclusive lock held. No hit can run
//     concurrently, so these read and write links and bits freely.
//   touch (on a hit): shared lock held, so touches race with each other.
//     SIEVE: one relaxed atomic store to the visited bit, and only when it is
//       not already set (hot objects do not bounce their cache line).
//     LRU: moves the node to the head, which needs its own std::mutex; that
//       lock on every hit is exactly the cost SIEVE avoids.
//   The visited bit is atomic only because touches race with each other; the
//   exclusive lock orders them with everything else, so relaxed is enough.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <variant>

namespace cachalot::cache {

enum class EvictionPolicy : uint8_t {
  Sieve,  // SIEVE (Zhang et al., NSDI '24): FIFO + visited bit + a hand; a hit sets a bit, never relinks
  Lru,    // exact LRU: a hit moves the object to the head under a per-shard mutex
};
std::string_view to_string(EvictionPolicy p) noexcept;
// "sieve" / "lru" (as written in the config); nullopt for anything else.
std::optional<EvictionPolicy> parse_eviction_policy(std::string_view s) noexcept;

using NodeId = uint32_t;
inline constexpr NodeId kNoNode = ~NodeId{0};

// Policy state inside each of the store's nodes.
struct EvictionHook {
  NodeId older = kNoNode;              // towards the tail
  NodeId newer = kNoNode;              // towards the head
  std::atomic<bool> visited{false};    // SIEVE: hit since the hand last passed (unused by LRU)
};

namespace detail {

// The intrusive list both policies share.
template <class Nodes>
class HookList {
 public:
  explicit HookList(Nodes& nodes) noexcept : nodes_(&nodes) {}

  NodeId head() const noexcept { return head_; }
  NodeId tail() const noexcept { return tail_; }
  std::size_t size() const noexcept { return size_; }
  EvictionHook& hook(NodeId id) const noexcept { return nodes_->hook(id); }

  void push_head(NodeId id) noexcept {
    EvictionHook& h = hook(id);
    h.older = head_;
    h.newer = kNoNode;
    if (head_ != kNoNode)
      hook(head_).newer = id;
    else
      tail_ = id;
    head_ = id;
    ++size_;
  }

  void unlink(NodeId id) noexcept {
    EvictionHook& h = hook(id);
    if (h.older != kNoNode)
      hook(h.older).newer = h.newer;
    else
      tail_ = h.newer;
    if (h.newer != kNoNode)
      hook(h.newer).older = h.older;
    else
      head_ = h.older;
    h.older = h.newer = kNoNode;
    --size_;
  }

  // Forgets every node (the caller is dropping the node table too).
  void reset() noexcept {
    head_ = tail_ = kNoNode;
    size_ = 0;
  }

 private:
  Nodes* nodes_;
  NodeId head_ = kNoNode;
  NodeId tail_ = kNoNode;
  std::size_t size_ = 0;
};

}  // namespace detail

// SIEVE: new objects enter at the head unvisited; a hit sets the visited bit.
// To evict, the hand walks from where it stopped towards the head (wrapping to
// the tail), clearing visited bits, and stops at the first unvisited object.
// Survivors keep their place, so one-hit wonders leave within one lap while
// objects hit once per lap stay, whatever else streams through.
template <class Nodes>
class SieveQueue {
 public:
  explicit SieveQueue(Nodes& nodes) noexcept : list_(nodes) {}

  void insert(NodeId id) noexcept {
    list_.hook(id).visited.store(false, std::memory_order_relaxed);
    list_.push_head(id);
  }
  void erase(NodeId id) noexcept {
    // The hand never points at a removed node: it moves on to the next newer
    // one, or back to "start at the tail" when the node was the head.
    if (hand_ == id) hand_ = list_.hook(id).newer;
    list_.unlink(id);
  }
  void touch(NodeId id) const noexcept {
    std::atomic<bool>& v = list_.hook(id).visited;
    if (!v.load(std::memory_order_relaxed)) v.store(true, std::memory_order_relaxed);
  }
  // The next object to evict (kNoNode when empty). Moves the hand and clears
  // the bits it passes; the object stays queued until erase().
  NodeId victim() noexcept {
    if (list_.size() == 0) return kNoNode;
    NodeId at = hand_ != kNoNode ? hand_ : list_.tail();
    for (;;) {
      EvictionHook& h = list_.hook(at);
      if (!h.visited.load(std::memory_order_relaxed)) break;
      h.visited.store(false, std::memory_order_relaxed);
      at = h.newer != kNoNode ? h.newer : list_.tail();
    }
    hand_ = at;
    return at;
  }
  void clear() noexcept {
    list_.reset();
    hand_ = kNoNode;
  }
  std::size_t size() const noexcept { return list_.size(); }
  NodeId oldest() const noexcept { return list_.tail(); }

 private:
  detail::HookList<Nodes> list_;
  NodeId hand_ = kNoNode;  // kNoNode: start at the tail
};

// Exact LRU. touch() relinks under mutex_ (hits hold only the shared shard
// lock and race with each other); the other operations run under the
// exclusive shard lock, which already excludes every touch(), so they skip it.
template <class Nodes>
class LruQueue {
 public:
  explicit LruQueue(Nodes& nodes) noexcept : list_(nodes) {}

  void insert(NodeId id) noexcept { list_.push_head(id); }
  void erase(NodeId id) noexcept { list_.unlink(id); }
  void touch(NodeId id) noexcept {
    std::lock_guard lock(mutex_);
    if (list_.head() == id) return;
    list_.unlink(id);
    list_.push_head(id);
  }
  NodeId victim() noexcept { return list_.tail(); }
  void clear() noexcept { list_.reset(); }
  std::size_t size() const noexcept { return list_.size(); }
  NodeId oldest() const noexcept { return list_.tail(); }

 private:
  detail::HookList<Nodes> list_;
  std::mutex mutex_;
};

// The policy chosen at construction, behind one interface (a branch, not a
// virtual call, on the hit path).
template <class Nodes>
class EvictionQueue {
 public:
  explicit EvictionQueue(Nodes& nodes, EvictionPolicy policy = EvictionPolicy::Sieve)
      : nodes_(&nodes), queue_(make(policy, nodes)) {}

  // Switches the policy; only while the queue is empty.
  void reset(EvictionPolicy policy) noexcept {
    if (policy == EvictionPolicy::Lru)
      queue_.template emplace<1>(*nodes_);
    else
      queue_.template emplace<0>(*nodes_);
  }

  EvictionPolicy policy() const noexcept {
    return queue_.index() == 0 ? EvictionPolicy::Sieve : EvictionPolicy::Lru;
  }
  void insert(NodeId id) noexcept {
    std::visit([id](auto& q) { q.insert(id); }, queue_);
  }
  void erase(NodeId id) noexcept {
    std::visit([id](auto& q) { q.erase(id); }, queue_);
  }
  void touch(NodeId id) noexcept {
    if (auto* sieve = std::get_if<0>(&queue_))
      sieve->touch(id);
    else
      std::get_if<1>(&queue_)->touch(id);
  }
  NodeId victim() noexcept {
    return std::visit([](auto& q) { return q.victim(); }, queue_);
  }
  void clear() noexcept {
    std::visit([](auto& q) { q.clear(); }, queue_);
  }
  std::size_t size() const noexcept {
    return std::visit([](const auto& q) { return q.size(); }, queue_);
  }
  // The tail; follow EvictionHook::newer to walk the queue (audits, tests).
  NodeId oldest() const noexcept {
    return std::visit([](const auto& q) { return q.oldest(); }, queue_);
  }

 private:
  using Variant = std::variant<SieveQueue<Nodes>, LruQueue<Nodes>>;
  // LruQueue holds a mutex, so the variant is built in place, never moved.
  static Variant make(EvictionPolicy policy, Nodes& nodes) {
    if (policy == EvictionPolicy::Lru) return Variant(std::in_place_index<1>, nodes);
    return Variant(std::in_place_index<0>, nodes);
  }
  Nodes* nodes_;
  Variant queue_;
};

}  // namespace cachalot::cache
