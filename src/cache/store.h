// Store: the in-memory cache, a sharded map primary key -> variants.
//
// "Keep the store dumb": it knows keys, bytes and entries, not Cache-Control.
// It is synchronous, does no I/O and never reads a clock. Entries are
// immutable once published (EntryRef, entry.h); replacing one publishes
// a new object, and readers keep whatever they already hold.
//
// Layout. N shards (a power of two), picked by bits 32.. of XXH3_64(primary
// key); the in-shard table uses the low bits of the same hash, computed once
// per call. Each shard owns:
//   - keys: an open-addressing table of 8-byte slots {head variant's node,
//     variant count, 16 hash bits}; the key string is read from the head
//     variant's entry, so every key is stored once (in its entries);
//   - a pool of 24-byte nodes, one per stored entry: the eviction hook
//     (eviction.h), the link to the next variant of the same key, and the
//     store's reference to the entry;
//   - the eviction queue (SIEVE or LRU) over those nodes;
//   - tags: unordered_map tag -> set of node ids, for tag purges (tagged
//     entries only);
//   - byte accounting against budget = max_bytes / N.
// Prefix purges walk the key table (no ordered index: it would cost every
// entry 64 bytes and every new key an O(log n) insert, for an admin operation).
//
// Invariants (per shard, whenever its lock is free; check_invariants() verifies them):
//   - bytes == sum of charge() over stored entries <= budget;
//   - every key in `keys` has 1..max_variants variants, chained oldest-published
//     first, with pairwise distinct variant_key and identical vary_names;
//   - for every stored entry and each of its tags, tags[tag] contains its
//     node; no empty tag sets;
//   - the eviction queue holds exactly the stored nodes.
//
// Locking. One std::shared_mutex per shard; no operation holds two shard locks.
//   - find / find_variant / variants: shared lock. A hit only tells the policy
//     (SIEVE: a relaxed store to the node's visited bit, skipped when already
//     set; LRU: relinks under a per-shard list mutex, so its hits on one shard
//     serialize). find does not allocate. The match callback runs under the
//     shared lock and must not call the store.
//   - every mutation: exclusive lock on the one shard that owns the key;
//     purges and set_limits lock the shards one at a time (each for its own
//     matches only), so they are not atomic across shards: a concurrent
//     publish can land in a shard already purged; it is newer than the purge,
//     which is fine.
//   - removed entries are released after the lock is dropped, so freeing large
//     bodies never happens inside a critical section.
//   - rewrite_* snapshot the matching entries under the shared lock, call the
//     callback with no lock held (it may call back into the store), then swap
//     each result in only if the snapshot is still the stored entry.
//   - stats() reads relaxed atomics: each counter is exact, the set is not a
//     snapshot.
//   - allocation failure inside a critical section terminates (the mutating
//     helpers are noexcept): a half-updated index would be worse.
//
// Memory. Entry::charge() adds to the entry's own allocations the per-entry
// cost of all of the above (store_memory below). Other memory is per shard and
// fixed (empty tables, one partially used node chunk), except two high-water
// marks: the node pool and the hash table's buckets do not shrink after
// set_limits lowers the budget or after evictions; both are bounded by the
// largest object count ever stored, which charge() already covers. charge()
// matches what malloc reports in use to within ~1%; RSS is higher by the
// allocator's fragmentation under churn (~5% measured with glibc and mixed
// 0.2-20 KB bodies), and large bodies are exact only if the process pins
// M_MMAP_THRESHOLD (glibc otherwise raises it at run time and serves them
// from the fragmenting heap).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "cache/entry.h"
#include "cache/eviction.h"

namespace cachalot::cache {

// Per-entry memory spent by the Store outside the Entry, which Entry::charge()
// adds. Figures are for x86-64, libstdc++ and glibc malloc; store.cpp
// static_asserts the ones it can see.
namespace store_memory {

inline constexpr std::size_t kMmapThreshold = 128 * 1024;  // glibc's default M_MMAP_THRESHOLD

// Bytes glibc malloc really takes for malloc(n): an 8-byte header, rounded up
// to 16, at least 32; above the mmap threshold whole pages plus a 16-byte
// header. (The threshold adapts upwards at run time; the page-rounded figure is
// then a slight over-estimate.)
constexpr std::size_t malloc_chunk(std::size_t n) noexcept {
  if (n == 0) return 0;
  if (n >= kMmapThreshold) return (n + 16 + 4095) & ~std::size_t{4095};
  std::size_t c = (n + 8 + 15) & ~std::size_t{15};
  return c < 32 ? 32 : c;
}

// The store's node for the entry in a chunked pool (no growth slack): hook 12,
// next-variant link 4, the entry reference 8.
inline constexpr std::size_t kNodeBytes = 24;
// The key table's slot: 8 bytes at a load factor between 0.35 and 0.7
// (it doubles at 0.7), so 11 to 23 bytes per key; charged at 16, the middle.
inline constexpr std::size_t kKeySlotBytes = 16;
inline constexpr std::size_t kPerEntry = kNodeBytes + kKeySlotBytes;

// Per (entry, tag): the node id in the tag's unordered_set: a 16-byte node ->
// 32-byte chunk, plus < 2 bucket pointers.
inline constexpr std::size_t kTagMemberBytes = 32 + 16;
// Per distinct tag: the tag map's node (next 8 + string 32 + unordered_set 56
// + cached hash 8 = 104 -> 112), its bucket pointers (16) and the set's first
// bucket array (13 buckets = 104 -> 112); plus a heap copy of the tag string
// (added separately). charge() cannot know whether a tag is shared, so it
// charges this for every tag: at most 240 bytes per tag too much.
inline constexpr std::size_t kTagHeadBytes = 112 + 16 + 112;

}  // namespace store_memory

struct StoreOptions {
  uint64_t max_bytes = 256ull << 20;  // total budget; each shard gets max_bytes / shards
  unsigned shards = 16;               // power of two
  unsigned max_variants = 8;          // per primary key, >= 1
  EvictionPolicy policy = EvictionPolicy::Sieve;
};

enum class PublishStatus : uint8_t {
  Stored,    // stored as a new variant
  Replaced,  // replaced the stored variant with the same variant_key
  TooLarge,  // charge() exceeds one shard's budget; nothing changed
};
std::string_view to_string(PublishStatus s) noexcept;

// Entries removed for one reason by one call.
struct Removed {
  std::size_t count = 0;
  uint64_t bytes = 0;  // sum of their charge()
};

struct PublishResult {
  PublishStatus status = PublishStatus::Stored;
  Removed evicted;       // chosen by the eviction policy to stay within budget
  Removed variant_cap;   // least recently published variants beyond max_variants
  Removed vary_changed;  // every old variant, because the new entry's vary_names differ

  bool stored() const noexcept { return status != PublishStatus::TooLarge; }
};

// Counters summed over shards. Gauges first, then monotonic counters.
struct StoreStats {
  uint64_t objects = 0;    // stored entries (variants)
  uint64_t keys = 0;       // primary keys
  uint64_t bytes = 0;      // sum of charge()
  uint64_t max_bytes = 0;  // current budget
  uint64_t evictions = 0;  // removed by the eviction policy (budget)
  uint64_t evicted_bytes = 0;
  uint64_t variant_cap_drops = 0;   // removed by the max_variants cap (publish or set_limits)
  uint64_t vary_change_drops = 0;   // removed because the origin changed its Vary
  uint64_t rejected_too_large = 0;  // publishes refused: charge() > shard budget
  uint64_t purged = 0;     // removed by erase, erase_entry, purge_* or a null rewrite
  uint64_t rewritten = 0;  // replaced by rewrite_* (soft purges)
};

// Builds the replacement for a soft purge (typically a copy marked stale).
// Returning nullptr removes the entry instead.
using RewriteFn = std::function<EntryRef(const Entry&)>;

namespace detail {
// A non-owning, non-allocating reference to a `bool(const Entry&)` callable,
// so find() can be a template without exposing the shard internals.
class EntryPredicate {
 public:
  template <class F>
  explicit EntryPredicate(F& f) noexcept
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* obj, const Entry& e) -> bool { return (*static_cast<F*>(obj))(e); }) {}
  bool operator()(const Entry& e) const { return call_(obj_, e); }

 private:
  void* obj_;
  bool (*call_)(void*, const Entry&);
};
}  // namespace detail

class Store {
 public:
  // Throws std::invalid_argument when shards is not a power of two or
  // max_variants is 0 (config validation should have caught both).
  explicit Store(StoreOptions options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // ---- Lookup (shared lock, no allocation) ----

  // The first variant of `primary_key`, oldest published first, for which
  // match(const Entry&) returns true; marks it used for the eviction policy.
  // `match` runs under the shard's shared lock: it must not call the store.
  template <class Match>
  EntryRef find(std::string_view primary_key, Match&& match) const {
    return find_impl(primary_key, detail::EntryPredicate(match));
  }
  // The variant whose variant_key equals `variant_key`.
  EntryRef find_variant(std::string_view primary_key, std::string_view variant_key) const;
  // All variants of `primary_key`, oldest published first (allocates; does
  // not count as a use).
  std::vector<EntryRef> variants(std::string_view primary_key) const;

  // ---- Mutation (exclusive lock on one shard) ----

  // Stores `e` (non-null) under e->primary_key: replaces the variant with the
  // same variant_key; drops every old variant if their vary_names differ from
  // e's; drops the least recently published variants to stay within
  // max_variants; then evicts until the shard fits, before inserting, so the
  // new entry is never its own victim.
  PublishResult publish(EntryRef e);
  // For 304 merges: swaps `fresh` in only if `old` is still the stored entry.
  // `fresh` must have the same primary_key, variant_key and vary_names (false
  // otherwise). It takes old's place among the key's variants and in the
  // eviction queue (if it is larger, it re-enters the queue at the head, so
  // the room it needs is never made by evicting it), and counts as a hit.
  // False, and nothing changes, when `old` is gone or `fresh` is too large.
  bool replace_if_same(const EntryRef& old, EntryRef fresh);
  // Removes every variant of `primary_key`; returns how many.
  std::size_t erase(std::string_view primary_key);
  // Removes `e` if it is still stored (compared by identity).
  bool erase_entry(const EntryRef& e);

  // ---- Purges (admin). Each returns the number of entries (variants) affected. ----

  // Hard purge of every key starting with `key_prefix`, a plain string prefix
  // of the full key ("http://host:port/path"): the caller decides whether
  // "/img" should also match "/img2" (pass "/img/" if not).
  std::size_t purge_prefix(std::string_view key_prefix);
  // Hard purge of the variants carrying `tag`.
  std::size_t purge_tag(std::string_view tag);
  // Empties the store; the entries are released outside the locks.
  std::size_t purge_all();

  // Soft purges: for each matching entry, `rewrite` builds the replacement
  // (the caller marks it stale). The replacement takes the entry's place as
  // replace_if_same does, but does not count as a use. nullptr, or a
  // replacement that cannot take the
  // place (too large, or a different primary_key / variant_key / vary_names),
  // removes the entry. `rewrite` runs with no lock held, so it may call the
  // store; an entry replaced or removed meanwhile is skipped (the newer state
  // wins). Returns how many entries were rewritten or removed.
  std::size_t rewrite_key(std::string_view primary_key, const RewriteFn& rewrite);
  std::size_t rewrite_prefix(std::string_view key_prefix, const RewriteFn& rewrite);
  std::size_t rewrite_tag(std::string_view tag, const RewriteFn& rewrite);
  std::size_t rewrite_all(const RewriteFn& rewrite);
  // Calls f for every stored entry, one shard's snapshot at a time, with no
  // lock held while f runs (snapshots, inspection).
  void for_each(const std::function<void(const Entry&)>& f) const;
  // The stored entries carrying `tag`, one shard's snapshot at a time
  // (shared locks, through the tag index: O(shards + matches)). The
  // per-partition budget sums a partition's entries with it.
  std::vector<EntryRef> tagged(std::string_view tag) const;
  // Every stored entry, one shard's snapshot at a time (the snapshot writer
  // sorts them). The references keep them alive until dropped, evicted or not.
  std::vector<EntryRef> entries() const;

  // ---- Limits and introspection ----

  // Hot reload. A smaller budget evicts at once, shard by shard; a smaller
  // max_variants trims every key (O(keys), on reload only). An entry larger
  // than the new shard budget is evicted like any other. Throws
  // std::invalid_argument when max_variants is 0.
  void set_limits(uint64_t max_bytes, unsigned max_variants);

  StoreStats stats() const noexcept;
  unsigned shard_count() const noexcept { return shard_count_; }
  // The largest charge() that can be stored (max_bytes / shards).
  uint64_t shard_budget() const noexcept;
  // The shard (0..shard_count()-1) that holds `primary_key`, so a bulk loader
  // can keep within each shard's budget instead of evicting what it loaded.
  unsigned shard_index(std::string_view primary_key) const noexcept;
  EvictionPolicy policy() const noexcept { return policy_; }

  // Verifies every invariant listed at the top of this file, one shard at a
  // time under its shared lock. Returns "" when they hold, otherwise the
  // first violation. O(n): for tests and debugging.
  std::string check_invariants() const;

 private:
  struct Shard;

  EntryRef find_impl(std::string_view primary_key, detail::EntryPredicate match) const;
  Shard& shard_for(uint64_t hash) const noexcept;
  std::size_t rewrite_snapshot(Shard& s, const std::vector<EntryRef>& snapshot,
                               const RewriteFn& rewrite);

  const unsigned shard_count_;
  const EvictionPolicy policy_;
  std::atomic<uint64_t> max_bytes_;
  std::atomic<unsigned> max_variants_;
  std::mutex limits_mutex_;  // serializes set_limits
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace cachalot::cache
