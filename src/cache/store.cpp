// Store implementation. Read the invariants and locking rules in store.h first.
//
// Naming inside this file: a Shard's member functions whose comment says
// "exclusive" must be called with shard.mutex held exclusively; they are
// noexcept because an allocation failure half-way through would leave the
// indexes inconsistent (see store.h). Removed entries are moved into a
// Graveyard owned by the caller and declared before the lock, so they are
// released after it.
#include "cache/store.h"

// Inlined: keys are short, and a call into the shared library costs as much as hashing them.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace cachalot::cache {

namespace {

// A key with its XXH3 hash, computed once and used both to pick the shard and
// to probe the shard's hash table.
struct HashedKey {
  std::string_view text;
  std::size_t hash;
};

std::size_t xxh3(std::string_view s) noexcept { return XXH3_64bits(s.data(), s.size()); }
HashedKey hash_key(std::string_view s) noexcept { return {s, xxh3(s)}; }

// Transparent hash for the key map and the tag index. Deliberately not
// noexcept: libstdc++ stores the hash code in each node only for hashers that
// may throw (or that it deems slow). With the cached code a probe compares
// hashes before strings and a rehash never re-hashes a key; the 8 bytes are
// counted in store_memory::kKeyMapNodeBytes.
struct KeyHash {
  using is_transparent = void;
  std::size_t operator()(const std::string& s) const { return xxh3(s); }
  std::size_t operator()(std::string_view s) const { return xxh3(s); }
  std::size_t operator()(const HashedKey& k) const { return k.hash; }
};

struct KeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
  bool operator()(const HashedKey& a, std::string_view b) const noexcept { return a.text == b; }
  bool operator()(std::string_view a, const HashedKey& b) const noexcept { return a == b.text; }
};

// The prefix index: views of the strings owned by the key map.
using OrderedKeys = std::set<std::string_view, std::less<>>;

// Map value for one primary key: its variants are chained through
// Node::next_variant, oldest published first. `ordered` is the key's element
// in the prefix index, so that removing a key costs no second O(log n) descent.
struct KeyNode {
  NodeId head = kNoNode;
  uint32_t count = 0;
  OrderedKeys::iterator ordered;
};

struct Node {
  EvictionHook hook;
  NodeId next_variant = kNoNode;        // next newer variant of the same key; free-list link when free
  uint64_t charge = 0;                  // entry->charge(), computed once at publish
  std::shared_ptr<const Entry> entry;   // null when free
};
// The figures Entry::charge() uses (store_memory in store.h) must cover the
// real sizes: libstdc++'s hash node is {next, value, cached hash}, its
// red-black tree node is {color, parent, left, right, value}.
static_assert(sizeof(Node) <= store_memory::kNodeBytes);
static_assert(store_memory::malloc_chunk(sizeof(void*) + sizeof(std::pair<const std::string, KeyNode>) +
                                         sizeof(std::size_t)) <= store_memory::kKeyMapNodeBytes);
static_assert(store_memory::malloc_chunk(4 * sizeof(void*) + sizeof(std::string_view)) <=
              store_memory::kOrderedKeyBytes);
static_assert(store_memory::malloc_chunk(sizeof(void*) + sizeof(NodeId)) + 2 * sizeof(void*) <=
              store_memory::kTagMemberBytes);

// Nodes in fixed-size chunks: ids are dense, addresses never move (so the
// hooks' atomics never need copying), and growth costs one chunk, not a 2x
// reallocation. Free ids are reused LIFO (the hottest memory first).
class NodePool {
 public:
  static constexpr unsigned kChunkShift = 8;  // 256 nodes, 10 KiB per chunk
  static constexpr NodeId kChunkMask = (NodeId{1} << kChunkShift) - 1;

  Node& operator[](NodeId id) noexcept { return chunks_[id >> kChunkShift][id & kChunkMask]; }
  const Node& operator[](NodeId id) const noexcept { return chunks_[id >> kChunkShift][id & kChunkMask]; }
  EvictionHook& hook(NodeId id) noexcept { return (*this)[id].hook; }

  NodeId acquire() {
    if (free_ != kNoNode) {
      NodeId id = free_;
      free_ = (*this)[id].next_variant;
      return id;
    }
    if ((static_cast<std::size_t>(used_) >> kChunkShift) == chunks_.size())
      chunks_.push_back(std::make_unique<Node[]>(std::size_t{1} << kChunkShift));
    assert(used_ < kNoNode - 1);
    return used_++;
  }
  // The caller has already moved the entry out.
  void release(NodeId id) noexcept {
    Node& n = (*this)[id];
    assert(!n.entry);
    n.charge = 0;
    n.next_variant = free_;
    free_ = id;
  }
  void swap(NodePool& other) noexcept {
    chunks_.swap(other.chunks_);
    std::swap(used_, other.used_);
    std::swap(free_, other.free_);
  }

 private:
  std::vector<std::unique_ptr<Node[]>> chunks_;
  NodeId used_ = 0;        // ids below this have been handed out at least once
  NodeId free_ = kNoNode;  // head of the free list
};

// Why an entry left the store; decides which counter it feeds.
enum class Why : uint8_t {
  Evicted,      // the eviction policy chose it
  VariantCap,   // beyond max_variants
  VaryChanged,  // the key's Vary names changed
  Replaced,     // a newer copy of the same variant took its place (not counted)
  Purged,       // erase, erase_entry, purge_*, or removed by a rewrite
};

using Graveyard = std::vector<std::shared_ptr<const Entry>>;

// Counters are written only under the shard's exclusive lock, so a relaxed
// load + store (no locked RMW) is exact; stats() reads them without the lock.
void add(std::atomic<uint64_t>& c, uint64_t d) noexcept {
  c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}
void sub(std::atomic<uint64_t>& c, uint64_t d) noexcept {
  c.store(c.load(std::memory_order_relaxed) - d, std::memory_order_relaxed);
}
uint64_t get(const std::atomic<uint64_t>& c) noexcept { return c.load(std::memory_order_relaxed); }

bool same_slot(const Entry& a, const Entry& b) noexcept {
  return a.primary_key == b.primary_key && a.variant_key == b.variant_key && a.vary_names == b.vary_names;
}

}  // namespace

std::string_view to_string(PublishStatus s) noexcept {
  switch (s) {
    case PublishStatus::Stored: return "stored";
    case PublishStatus::Replaced: return "replaced";
    case PublishStatus::TooLarge: return "too_large";
  }
  return "unknown";
}

struct alignas(64) Store::Shard {
  using KeyMap = std::unordered_map<std::string, KeyNode, KeyHash, KeyEq>;
  using OrderedKeys = cache::OrderedKeys;
  using TagIndex = std::unordered_map<std::string, std::unordered_set<NodeId>, KeyHash, KeyEq>;

  mutable std::shared_mutex mutex;
  KeyMap keys;
  OrderedKeys ordered_keys;  // views of the strings owned by `keys`
  TagIndex tags;
  NodePool nodes;
  EvictionQueue<NodePool> queue{nodes};
  uint64_t budget = 0;  // max_bytes / shards; guarded by mutex

  // Guarded by mutex for writing; atomics so that stats() needs no lock.
  std::atomic<uint64_t> bytes{0}, objects{0}, key_count{0};
  std::atomic<uint64_t> evictions{0}, evicted_bytes{0}, variant_cap_drops{0}, vary_change_drops{0};
  std::atomic<uint64_t> rejected_too_large{0}, purged{0}, rewritten{0};

  // Shared or exclusive. The variant of `kn` whose entry is `e`, or kNoNode.
  NodeId node_of(const KeyNode& kn, const Entry* e) const noexcept {
    for (NodeId id = kn.head; id != kNoNode; id = nodes[id].next_variant)
      if (nodes[id].entry.get() == e) return id;
    return kNoNode;
  }
  NodeId node_with_variant(const KeyNode& kn, std::string_view variant_key) const noexcept {
    for (NodeId id = kn.head; id != kNoNode; id = nodes[id].next_variant)
      if (nodes[id].entry->variant_key == variant_key) return id;
    return kNoNode;
  }
  void collect(const KeyNode& kn, Graveyard& out) const {
    for (NodeId id = kn.head; id != kNoNode; id = nodes[id].next_variant) out.push_back(nodes[id].entry);
  }

  // Exclusive.
  void index_tags(const Entry& e, NodeId id) noexcept {
    for (const std::string& tag : e.tags) {
      auto it = tags.find(std::string_view(tag));
      if (it == tags.end()) it = tags.emplace(tag, std::unordered_set<NodeId>{}).first;
      it->second.insert(id);
    }
  }
  // Exclusive.
  void unindex_tags(const Entry& e, NodeId id) noexcept {
    for (const std::string& tag : e.tags) {
      auto it = tags.find(std::string_view(tag));
      if (it == tags.end()) continue;  // a tag listed twice in the entry
      it->second.erase(id);
      if (it->second.empty()) tags.erase(it);
    }
  }

  // Exclusive. Removes variant `id` of the key at `kit`. Returns true when it
  // was the last variant: the key is erased and `kit` is invalid.
  bool remove(KeyMap::iterator kit, NodeId id, Why why, Graveyard& graveyard, Removed* out) noexcept {
    KeyNode& kn = kit->second;
    NodeId* link = &kn.head;
    while (*link != id) {
      assert(*link != kNoNode && "node is not a variant of this key");
      link = &nodes[*link].next_variant;
    }
    Node& n = nodes[id];
    *link = n.next_variant;
    --kn.count;
    queue.erase(id);
    unindex_tags(*n.entry, id);
    account_removal(why, n.charge, out);
    graveyard.push_back(std::move(n.entry));
    nodes.release(id);
    if (kn.count != 0) return false;
    ordered_keys.erase(kn.ordered);
    keys.erase(kit);
    sub(key_count, 1);
    return true;
  }

  // Exclusive. Removes every variant of the key at `kit` (then invalid).
  std::size_t remove_all(KeyMap::iterator kit, Why why, Graveyard& graveyard, Removed* out) noexcept {
    std::size_t n = 0;
    for (bool key_gone = false; !key_gone; ++n) key_gone = remove(kit, kit->second.head, why, graveyard, out);
    return n;
  }

  // Exclusive. Removes a node found through the queue or the tag index.
  void remove_node(NodeId id, Why why, Graveyard& graveyard, Removed* out) noexcept {
    auto kit = keys.find(hash_key(nodes[id].entry->primary_key));
    assert(kit != keys.end());
    remove(kit, id, why, graveyard, out);
  }

  void account_removal(Why why, uint64_t charge, Removed* out) noexcept {
    sub(bytes, charge);
    sub(objects, 1);
    switch (why) {
      case Why::Evicted:
        add(evictions, 1);
        add(evicted_bytes, charge);
        break;
      case Why::VariantCap: add(variant_cap_drops, 1); break;
      case Why::VaryChanged: add(vary_change_drops, 1); break;
      case Why::Purged: add(purged, 1); break;
      case Why::Replaced: break;
    }
    if (out != nullptr) {
      ++out->count;
      out->bytes += charge;
    }
  }

  // Exclusive. Evicts until `incoming` more bytes fit in the budget.
  void evict_until_fits(uint64_t incoming, Graveyard& graveyard, Removed* out) noexcept {
    while (get(bytes) + incoming > budget) {
      NodeId victim = queue.victim();
      assert(victim != kNoNode && "over budget with an empty queue");
      if (victim == kNoNode) return;
      remove_node(victim, Why::Evicted, graveyard, out);
    }
  }

  // Exclusive. Makes room, then appends `e` as the newest variant of its key.
  // charge <= budget.
  void insert(const HashedKey& k, std::shared_ptr<const Entry> e, uint64_t charge, Graveyard& graveyard,
              Removed* evicted) noexcept {
    evict_until_fits(charge, graveyard, evicted);
    auto kit = keys.find(k);
    if (kit == keys.end()) {
      kit = keys.emplace(std::string(k.text), KeyNode{}).first;
      kit->second.ordered = ordered_keys.insert(std::string_view(kit->first)).first;
      add(key_count, 1);
    }
    const NodeId id = nodes.acquire();
    Node& n = nodes[id];
    n.entry = std::move(e);
    n.charge = charge;
    n.next_variant = kNoNode;
    NodeId* link = &kit->second.head;
    while (*link != kNoNode) link = &nodes[*link].next_variant;
    *link = id;
    ++kit->second.count;
    queue.insert(id);
    index_tags(*n.entry, id);
    add(bytes, charge);
    add(objects, 1);
  }

  // Exclusive. Puts `fresh` (same key, variant and Vary names) in place of
  // node `id`: same position in the key's chain and, unless it grew, in the
  // eviction queue. A grown entry needs room, and the policy could pick the
  // node itself (SIEVE does when every object is visited), so the node leaves
  // the queue while room is made and comes back at the head, as a newly
  // published entry would. `touch` counts the swap as a hit (a 304 merge).
  // The byte count never exceeds the budget, even transiently.
  void replace(NodeId id, std::shared_ptr<const Entry> fresh, uint64_t charge, bool touch,
               Graveyard& graveyard) noexcept {
    Node& n = nodes[id];
    if (charge > n.charge) {
      queue.erase(id);
      evict_until_fits(charge - n.charge, graveyard, nullptr);  // stops by the time only `id` is left
      queue.insert(id);
    }
    if (touch) queue.touch(id);
    unindex_tags(*n.entry, id);
    graveyard.push_back(std::move(n.entry));
    bytes.store(get(bytes) - n.charge + charge, std::memory_order_relaxed);
    n.entry = std::move(fresh);
    n.charge = charge;
    index_tags(*n.entry, id);
  }

  // Exclusive. Drops the oldest variants of every key holding more than `max`.
  void trim_variants(unsigned max, Graveyard& graveyard) noexcept {
    for (auto kit = keys.begin(); kit != keys.end();) {
      auto next = std::next(kit);
      while (kit->second.count > max && !remove(kit, kit->second.head, Why::VariantCap, graveyard, nullptr)) {
      }
      kit = next;
    }
  }

  // Exclusive (the LRU list moves under hits). "" or the first violation.
  std::string check(unsigned index, unsigned shard_mask, unsigned max_variants) const;
};

std::string Store::Shard::check(unsigned index, unsigned shard_mask, unsigned max_variants) const {
  auto fail = [&](std::string_view what, std::string_view key = {}) {
    std::string s = "shard " + std::to_string(index) + ": ";
    s.append(what);
    if (!key.empty()) s.append(" (key ").append(key).append(")");
    return s;
  };
  uint64_t sum_bytes = 0, sum_objects = 0, memberships = 0;
  std::unordered_set<NodeId> live;
  for (const auto& [key, kn] : keys) {
    if (((xxh3(key) >> 32) & shard_mask) != index) return fail("key in the wrong shard", key);
    if (kn.count == 0 || kn.count > max_variants) return fail("variant count out of range", key);
    uint32_t chain = 0;
    const Entry* first = nodes[kn.head].entry.get();
    for (NodeId id = kn.head; id != kNoNode; id = nodes[id].next_variant) {
      if (++chain > kn.count) return fail("variant chain longer than its count", key);
      const Node& n = nodes[id];
      if (!n.entry) return fail("chained node without an entry", key);
      if (n.entry->primary_key != key) return fail("entry filed under another key", key);
      if (n.entry->vary_names != first->vary_names) return fail("variants with different Vary names", key);
      if (n.charge != n.entry->charge()) return fail("cached charge differs from charge()", key);
      for (NodeId o = kn.head; o != id; o = nodes[o].next_variant)
        if (nodes[o].entry->variant_key == n.entry->variant_key) return fail("duplicate variant_key", key);
      std::set<std::string_view> distinct(n.entry->tags.begin(), n.entry->tags.end());
      for (std::string_view tag : distinct) {
        auto t = tags.find(tag);
        if (t == tags.end() || t->second.count(id) == 0) return fail("tag missing from the index", key);
      }
      memberships += distinct.size();
      live.insert(id);
      sum_bytes += n.charge;
      ++sum_objects;
    }
    if (chain != kn.count) return fail("variant chain shorter than its count", key);
    if (kn.ordered == ordered_keys.end() || kn.ordered->data() != key.data())
      return fail("key's prefix index position is wrong", key);
  }
  if (sum_bytes != get(bytes)) return fail("bytes " + std::to_string(get(bytes)) + " != sum of charges " +
                                           std::to_string(sum_bytes));
  if (sum_bytes > budget) return fail("over budget");
  if (sum_objects != get(objects)) return fail("object count differs");
  if (keys.size() != get(key_count)) return fail("key count differs");
  if (ordered_keys.size() != keys.size()) return fail("prefix index size differs from the key map");
  for (std::string_view view : ordered_keys) {
    auto kit = keys.find(view);
    if (kit == keys.end() || kit->first.data() != view.data()) return fail("prefix index entry not a map key", view);
  }
  uint64_t indexed = 0;
  for (const auto& [tag, ids] : tags) {
    if (ids.empty()) return fail("empty tag set: " + tag);
    for (NodeId id : ids) {
      if (live.count(id) == 0) return fail("tag index points at a dead node: " + tag);
      const auto& t = nodes[id].entry->tags;
      if (std::find(t.begin(), t.end(), tag) == t.end()) return fail("tag index points at an untagged entry: " + tag);
    }
    indexed += ids.size();
  }
  if (indexed != memberships) return fail("tag index has extra memberships");
  if (queue.size() != sum_objects) return fail("eviction queue size differs");
  std::size_t walked = 0;
  for (NodeId id = queue.oldest(); id != kNoNode; id = nodes[id].hook.newer) {
    if (live.count(id) == 0) return fail("eviction queue holds a dead node");
    if (++walked > sum_objects) return fail("eviction queue has a cycle");
  }
  if (walked != sum_objects) return fail("eviction queue walk differs from its size");
  return {};
}

// ---------------------------------------------------------------------------

Store::Store(StoreOptions options)
    : shard_count_(options.shards),
      policy_(options.policy),
      max_bytes_(options.max_bytes),
      max_variants_(options.max_variants) {
  if (options.shards == 0 || (options.shards & (options.shards - 1)) != 0 || options.shards > (1u << 16))
    throw std::invalid_argument("store: shards must be a power of two between 1 and 65536");
  if (options.max_variants == 0) throw std::invalid_argument("store: max_variants must be at least 1");
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (unsigned i = 0; i < shard_count_; ++i) {
    shards_[i].budget = options.max_bytes / shard_count_;
    shards_[i].queue.reset(options.policy);
  }
}

Store::~Store() = default;

Store::Shard& Store::shard_for(uint64_t hash) const noexcept {
  // Bits 32.. pick the shard; the shard's table reduces the full hash modulo
  // a prime, so the two choices stay independent.
  return shards_[(hash >> 32) & (shard_count_ - 1)];
}

uint64_t Store::shard_budget() const noexcept { return max_bytes_.load(std::memory_order_relaxed) / shard_count_; }

std::shared_ptr<const Entry> Store::find_impl(std::string_view primary_key, detail::EntryPredicate match) const {
  const HashedKey k = hash_key(primary_key);
  Shard& s = shard_for(k.hash);
  std::shared_lock lock(s.mutex);
  auto kit = s.keys.find(k);
  if (kit == s.keys.end()) return nullptr;
  for (NodeId id = kit->second.head; id != kNoNode;) {
    const Node& n = s.nodes[id];
    if (match(*n.entry)) {
      s.queue.touch(id);
      return n.entry;  // copied before the lock is released
    }
    id = n.next_variant;
  }
  return nullptr;
}

std::shared_ptr<const Entry> Store::find_variant(std::string_view primary_key, std::string_view variant_key) const {
  return find(primary_key, [variant_key](const Entry& e) { return e.variant_key == variant_key; });
}

std::vector<std::shared_ptr<const Entry>> Store::variants(std::string_view primary_key) const {
  const HashedKey k = hash_key(primary_key);
  const Shard& s = shard_for(k.hash);
  Graveyard out;
  std::shared_lock lock(s.mutex);
  if (auto kit = s.keys.find(k); kit != s.keys.end()) s.collect(kit->second, out);
  return out;
}

PublishResult Store::publish(std::shared_ptr<const Entry> e) {
  assert(e != nullptr);
  const uint64_t charge = e->charge();
  const HashedKey k = hash_key(e->primary_key);
  Shard& s = shard_for(k.hash);
  PublishResult result;
  Graveyard graveyard;  // destroyed after the lock
  std::unique_lock lock(s.mutex);
  if (charge > s.budget) {
    add(s.rejected_too_large, 1);
    result.status = PublishStatus::TooLarge;
    return result;
  }
  if (auto kit = s.keys.find(k); kit != s.keys.end()) {
    if (s.nodes[kit->second.head].entry->vary_names != e->vary_names) {
      s.remove_all(kit, Why::VaryChanged, graveyard, &result.vary_changed);
    } else {
      bool key_gone = false;
      if (NodeId same = s.node_with_variant(kit->second, e->variant_key); same != kNoNode) {
        result.status = PublishStatus::Replaced;
        key_gone = s.remove(kit, same, Why::Replaced, graveyard, nullptr);
      }
      const unsigned max_variants = max_variants_.load(std::memory_order_relaxed);
      while (!key_gone && kit->second.count >= max_variants)
        key_gone = s.remove(kit, kit->second.head, Why::VariantCap, graveyard, &result.variant_cap);
    }
  }
  s.insert(k, std::move(e), charge, graveyard, &result.evicted);
  return result;
}

bool Store::replace_if_same(const std::shared_ptr<const Entry>& old, std::shared_ptr<const Entry> fresh) {
  if (!old || !fresh || !same_slot(*old, *fresh)) return false;
  const uint64_t charge = fresh->charge();
  const HashedKey k = hash_key(old->primary_key);
  Shard& s = shard_for(k.hash);
  Graveyard graveyard;
  std::unique_lock lock(s.mutex);
  if (charge > s.budget) return false;
  auto kit = s.keys.find(k);
  if (kit == s.keys.end()) return false;
  NodeId id = s.node_of(kit->second, old.get());
  if (id == kNoNode) return false;
  s.replace(id, std::move(fresh), charge, /*touch=*/true, graveyard);
  return true;
}

std::size_t Store::erase(std::string_view primary_key) {
  const HashedKey k = hash_key(primary_key);
  Shard& s = shard_for(k.hash);
  Graveyard graveyard;
  std::unique_lock lock(s.mutex);
  auto kit = s.keys.find(k);
  return kit == s.keys.end() ? 0 : s.remove_all(kit, Why::Purged, graveyard, nullptr);
}

bool Store::erase_entry(const std::shared_ptr<const Entry>& e) {
  if (!e) return false;
  const HashedKey k = hash_key(e->primary_key);
  Shard& s = shard_for(k.hash);
  Graveyard graveyard;
  std::unique_lock lock(s.mutex);
  auto kit = s.keys.find(k);
  if (kit == s.keys.end()) return false;
  NodeId id = s.node_of(kit->second, e.get());
  if (id == kNoNode) return false;
  s.remove(kit, id, Why::Purged, graveyard, nullptr);
  return true;
}

std::size_t Store::purge_prefix(std::string_view key_prefix) {
  std::size_t purged = 0;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard graveyard;
    std::unique_lock lock(s.mutex);
    auto it = s.ordered_keys.lower_bound(key_prefix);
    while (it != s.ordered_keys.end() && it->starts_with(key_prefix)) {
      const std::string_view key = *it;
      ++it;  // removing the key erases its own set element, not this one
      purged += s.remove_all(s.keys.find(hash_key(key)), Why::Purged, graveyard, nullptr);
    }
  }
  return purged;
}

std::size_t Store::purge_tag(std::string_view tag) {
  std::size_t purged = 0;
  std::vector<NodeId> ids;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard graveyard;
    std::unique_lock lock(s.mutex);
    auto t = s.tags.find(tag);
    if (t == s.tags.end()) continue;
    ids.assign(t->second.begin(), t->second.end());  // removals erase from (and finally erase) this set
    for (NodeId id : ids) s.remove_node(id, Why::Purged, graveyard, nullptr);
    purged += ids.size();
  }
  return purged;
}

std::size_t Store::purge_all() {
  std::size_t purged = 0;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    // Swapped out under the lock, destroyed after it.
    Shard::KeyMap keys;
    Shard::OrderedKeys ordered_keys;
    Shard::TagIndex tags;
    NodePool nodes;
    std::unique_lock lock(s.mutex);
    const uint64_t n = get(s.objects);
    purged += n;
    ordered_keys.swap(s.ordered_keys);
    keys.swap(s.keys);
    tags.swap(s.tags);
    nodes.swap(s.nodes);
    s.queue.clear();
    s.bytes.store(0, std::memory_order_relaxed);
    s.objects.store(0, std::memory_order_relaxed);
    s.key_count.store(0, std::memory_order_relaxed);
    add(s.purged, n);
  }
  return purged;
}

// Swaps rewrite(*old) in for each snapshot entry of shard `s` that is still stored.
std::size_t Store::rewrite_snapshot(Shard& s, const std::vector<std::shared_ptr<const Entry>>& snapshot,
                                    const RewriteFn& rewrite) {
  std::size_t done = 0;
  for (const auto& old : snapshot) {
    std::shared_ptr<const Entry> fresh = rewrite(*old);  // no lock held
    const bool fits = fresh && same_slot(*old, *fresh);
    const uint64_t charge = fits ? fresh->charge() : 0;
    Graveyard graveyard;
    std::unique_lock lock(s.mutex);
    auto kit = s.keys.find(hash_key(old->primary_key));
    if (kit == s.keys.end()) continue;
    NodeId id = s.node_of(kit->second, old.get());
    if (id == kNoNode) continue;  // replaced or removed meanwhile: the newer state wins
    if (fits && charge <= s.budget) {
      s.replace(id, std::move(fresh), charge, /*touch=*/false, graveyard);
      add(s.rewritten, 1);
    } else {
      s.remove(kit, id, Why::Purged, graveyard, nullptr);
    }
    ++done;
  }
  return done;
}

std::size_t Store::rewrite_key(std::string_view primary_key, const RewriteFn& rewrite) {
  const HashedKey k = hash_key(primary_key);
  Shard& s = shard_for(k.hash);
  Graveyard snapshot;
  {
    std::shared_lock lock(s.mutex);
    if (auto kit = s.keys.find(k); kit != s.keys.end()) s.collect(kit->second, snapshot);
  }
  return rewrite_snapshot(s, snapshot, rewrite);
}

std::size_t Store::rewrite_prefix(std::string_view key_prefix, const RewriteFn& rewrite) {
  std::size_t done = 0;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard snapshot;
    {
      std::shared_lock lock(s.mutex);
      for (auto it = s.ordered_keys.lower_bound(key_prefix); it != s.ordered_keys.end() && it->starts_with(key_prefix);
           ++it)
        s.collect(s.keys.find(hash_key(*it))->second, snapshot);
    }
    done += rewrite_snapshot(s, snapshot, rewrite);
  }
  return done;
}

std::size_t Store::rewrite_tag(std::string_view tag, const RewriteFn& rewrite) {
  std::size_t done = 0;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard snapshot;
    {
      std::shared_lock lock(s.mutex);
      if (auto t = s.tags.find(tag); t != s.tags.end())
        for (NodeId id : t->second) snapshot.push_back(s.nodes[id].entry);
    }
    done += rewrite_snapshot(s, snapshot, rewrite);
  }
  return done;
}

std::size_t Store::rewrite_all(const RewriteFn& rewrite) {
  std::size_t done = 0;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard snapshot;  // one shard at a time bounds the snapshot to ~1/N of the store
    {
      std::shared_lock lock(s.mutex);
      snapshot.reserve(get(s.objects));
      for (const auto& [key, kn] : s.keys) s.collect(kn, snapshot);
    }
    done += rewrite_snapshot(s, snapshot, rewrite);
  }
  return done;
}

void Store::set_limits(uint64_t max_bytes, unsigned max_variants) {
  if (max_variants == 0) throw std::invalid_argument("store: max_variants must be at least 1");
  std::lock_guard serialize(limits_mutex_);
  const unsigned old_variants = max_variants_.exchange(max_variants, std::memory_order_relaxed);
  max_bytes_.store(max_bytes, std::memory_order_relaxed);
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard graveyard;
    std::unique_lock lock(s.mutex);
    s.budget = max_bytes / shard_count_;
    if (max_variants < old_variants) s.trim_variants(max_variants, graveyard);
    s.evict_until_fits(0, graveyard, nullptr);
  }
}

StoreStats Store::stats() const noexcept {
  StoreStats t;
  for (unsigned i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    t.objects += get(s.objects);
    t.keys += get(s.key_count);
    t.bytes += get(s.bytes);
    t.evictions += get(s.evictions);
    t.evicted_bytes += get(s.evicted_bytes);
    t.variant_cap_drops += get(s.variant_cap_drops);
    t.vary_change_drops += get(s.vary_change_drops);
    t.rejected_too_large += get(s.rejected_too_large);
    t.purged += get(s.purged);
    t.rewritten += get(s.rewritten);
  }
  t.max_bytes = max_bytes_.load(std::memory_order_relaxed);
  return t;
}

std::string Store::check_invariants() const {
  const unsigned max_variants = max_variants_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    std::unique_lock lock(s.mutex);
    if (std::string why = s.check(i, shard_count_ - 1, max_variants); !why.empty()) return why;
  }
  return {};
}

}  // namespace cachalot::cache
