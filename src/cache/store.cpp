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

// Transparent hash for the tag index.
struct KeyHash {
  using is_transparent = void;
  std::size_t operator()(const std::string& s) const { return xxh3(s); }
  std::size_t operator()(std::string_view s) const { return xxh3(s); }
};

struct KeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

struct Node {
  EvictionHook hook;
  NodeId next_variant = kNoNode;  // next newer variant of the same key; free-list link when free
  EntryRef entry;                 // null when free; the store's own reference
};
// The figures Entry::charge() uses (store_memory in store.h) must cover the real sizes.
static_assert(sizeof(Node) <= store_memory::kNodeBytes);

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

// The key index: open addressing with linear probing over 8-byte slots (the
// head variant's node id, the key's variant count and 16 bits of its hash);
// the key itself is read from the head variant's entry, so it is stored once.
// Load factor at most 0.7 (then the table doubles), backward-shift deletion
// (no tombstones). An index into it is valid until the next insert or erase.
class KeyTable {
 public:
  static constexpr std::size_t npos = SIZE_MAX;
  struct Slot {
    NodeId head = kNoNode;  // kNoNode: empty
    uint16_t count = 0;     // variants of the key
    uint16_t tag = 0;       // bits 16..31 of the key's hash
  };
  static_assert(sizeof(Slot) == 8);

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return slots_.size(); }
  Slot& operator[](std::size_t i) noexcept { return slots_[i]; }
  const Slot& operator[](std::size_t i) const noexcept { return slots_[i]; }

  template <class KeyOf>
  std::size_t find(const HashedKey& k, const KeyOf& key_of) const noexcept {
    if (slots_.empty()) return npos;
    const uint16_t tag = tag_of(k.hash);
    for (std::size_t i = k.hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.head == kNoNode) return npos;
      if (s.tag == tag && key_of(s.head) == k.text) return i;
    }
  }
  // `k` must not be present. Grows first when needed (rehashing with key_of).
  template <class KeyOf>
  std::size_t insert(const HashedKey& k, NodeId head, const KeyOf& key_of) {
    if ((size_ + 1) * 10 > slots_.size() * 7) grow(key_of);
    std::size_t i = k.hash & mask_;
    while (slots_[i].head != kNoNode) i = (i + 1) & mask_;
    slots_[i] = Slot{head, 0, tag_of(k.hash)};
    ++size_;
    return i;
  }
  // Backward-shift deletion: later slots of the probe run move up.
  template <class KeyOf>
  void erase(std::size_t i, const KeyOf& key_of) noexcept {
    slots_[i] = Slot{};
    --size_;
    for (std::size_t j = (i + 1) & mask_; slots_[j].head != kNoNode; j = (j + 1) & mask_) {
      const std::size_t home = xxh3(key_of(slots_[j].head)) & mask_;
      // Move j back to i if its home is not in the (cyclic) range (i, j].
      const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      slots_[j] = Slot{};
      i = j;
    }
  }
  void clear() noexcept {
    std::vector<Slot>().swap(slots_);
    size_ = 0;
    mask_ = 0;
  }
  void swap(KeyTable& o) noexcept {
    slots_.swap(o.slots_);
    std::swap(size_, o.size_);
    std::swap(mask_, o.mask_);
  }

 private:
  static uint16_t tag_of(std::size_t hash) noexcept { return static_cast<uint16_t>(hash >> 16); }
  template <class KeyOf>
  void grow(const KeyOf& key_of) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.head == kNoNode) continue;
      std::size_t i = xxh3(key_of(s.head)) & mask_;
      while (slots_[i].head != kNoNode) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
};

// Why an entry left the store; decides which counter it feeds.
enum class Why : uint8_t {
  Evicted,      // the eviction policy chose it
  VariantCap,   // beyond max_variants
  VaryChanged,  // the key's Vary names changed
  Replaced,     // a newer copy of the same variant took its place (not counted)
  Purged,       // erase, erase_entry, purge_*, or removed by a rewrite
};

using Graveyard = std::vector<EntryRef>;

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
  return a.primary_key() == b.primary_key() && a.variant_key() == b.variant_key() && a.vary() == b.vary();
}

// Calls f(tag) for each tag of `e` (its '\n'-joined list).
template <class F>
void for_each_tag(const Entry& e, F&& f) {
  std::string_view s = e.tag_list();
  while (!s.empty()) {
    const std::size_t nl = s.find('\n');
    f(s.substr(0, nl));
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
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
  using TagIndex = std::unordered_map<std::string, std::unordered_set<NodeId>, KeyHash, KeyEq>;
  using KeyIndex = std::size_t;  // a KeyTable slot

  mutable std::shared_mutex mutex;
  KeyTable keys;
  TagIndex tags;
  NodePool nodes;
  EvictionQueue<NodePool> queue{nodes};
  uint64_t budget = 0;  // max_bytes / shards; guarded by mutex

  // Guarded by mutex for writing; atomics so that stats() needs no lock.
  std::atomic<uint64_t> bytes{0}, objects{0}, key_count{0};
  std::atomic<uint64_t> evictions{0}, evicted_bytes{0}, variant_cap_drops{0}, vary_change_drops{0};
  std::atomic<uint64_t> rejected_too_large{0}, purged{0}, rewritten{0};

  // The key of the entry in node `id` (a key table's view of its keys).
  auto key_of() const noexcept {
    return [this](NodeId id) { return nodes[id].entry->primary_key(); };
  }
  KeyIndex find(const HashedKey& k) const noexcept { return keys.find(k, key_of()); }

  // Shared or exclusive. The variant of key `ki` whose entry is `e`, or kNoNode.
  NodeId node_of(KeyIndex ki, const Entry* e) const noexcept {
    for (NodeId id = keys[ki].head; id != kNoNode; id = nodes[id].next_variant)
      if (nodes[id].entry.get() == e) return id;
    return kNoNode;
  }
  NodeId node_with_variant(KeyIndex ki, std::string_view variant_key) const noexcept {
    for (NodeId id = keys[ki].head; id != kNoNode; id = nodes[id].next_variant)
      if (nodes[id].entry->variant_key() == variant_key) return id;
    return kNoNode;
  }
  void collect(KeyIndex ki, Graveyard& out) const {
    for (NodeId id = keys[ki].head; id != kNoNode; id = nodes[id].next_variant) out.push_back(nodes[id].entry);
  }

  // Exclusive.
  void index_tags(const Entry& e, NodeId id) noexcept {
    for_each_tag(e, [&](std::string_view tag) {
      auto it = tags.find(tag);
      if (it == tags.end()) it = tags.emplace(std::string(tag), std::unordered_set<NodeId>{}).first;
      it->second.insert(id);
    });
  }
  // Exclusive.
  void unindex_tags(const Entry& e, NodeId id) noexcept {
    for_each_tag(e, [&](std::string_view tag) {
      auto it = tags.find(tag);
      if (it == tags.end()) return;  // a tag listed twice in the entry
      it->second.erase(id);
      if (it->second.empty()) tags.erase(it);
    });
  }

  // Exclusive. Removes variant `id` of key `ki`. Returns true when it was the
  // last variant: the key is erased (and key indexes are invalid).
  bool remove(KeyIndex ki, NodeId id, Why why, Graveyard& graveyard, Removed* out) noexcept {
    KeyTable::Slot& slot = keys[ki];
    NodeId* link = &slot.head;
    while (*link != id) {
      assert(*link != kNoNode && "node is not a variant of this key");
      link = &nodes[*link].next_variant;
    }
    Node& n = nodes[id];
    const bool last = slot.count == 1;
    if (last) {
      // Erased while the head entry (whose key the table compares) is still in place.
      keys.erase(ki, key_of());
      sub(key_count, 1);
    } else {
      *link = n.next_variant;
      --slot.count;
    }
    queue.erase(id);
    unindex_tags(*n.entry, id);
    account_removal(why, n.entry->charge(), out);
    graveyard.push_back(std::move(n.entry));
    nodes.release(id);
    return last;
  }

  // Exclusive. Removes every variant of key `ki` (then invalid).
  std::size_t remove_all(KeyIndex ki, Why why, Graveyard& graveyard, Removed* out) noexcept {
    std::size_t n = 0;
    for (bool key_gone = false; !key_gone; ++n) key_gone = remove(ki, keys[ki].head, why, graveyard, out);
    return n;
  }

  // Exclusive. Removes a node found through the queue or the tag index.
  void remove_node(NodeId id, Why why, Graveyard& graveyard, Removed* out) noexcept {
    const KeyIndex ki = find(hash_key(nodes[id].entry->primary_key()));
    assert(ki != KeyTable::npos);
    remove(ki, id, why, graveyard, out);
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
  void insert(const HashedKey& k, EntryRef e, uint64_t charge, Graveyard& graveyard, Removed* evicted) noexcept {
    evict_until_fits(charge, graveyard, evicted);
    const NodeId id = nodes.acquire();
    Node& n = nodes[id];
    n.entry = std::move(e);
    n.next_variant = kNoNode;
    KeyIndex ki = find(k);
    if (ki == KeyTable::npos) {
      ki = keys.insert(k, id, key_of());
      add(key_count, 1);
    } else {
      NodeId* link = &keys[ki].head;
      while (*link != kNoNode) link = &nodes[*link].next_variant;
      *link = id;
    }
    ++keys[ki].count;
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
  void replace(NodeId id, EntryRef fresh, uint64_t charge, bool touch, Graveyard& graveyard) noexcept {
    Node& n = nodes[id];
    const uint64_t old_charge = n.entry->charge();
    if (charge > old_charge) {
      queue.erase(id);
      evict_until_fits(charge - old_charge, graveyard, nullptr);  // stops by the time only `id` is left
      queue.insert(id);
    }
    if (touch) queue.touch(id);
    unindex_tags(*n.entry, id);
    graveyard.push_back(std::move(n.entry));
    bytes.store(get(bytes) - old_charge + charge, std::memory_order_relaxed);
    n.entry = std::move(fresh);
    index_tags(*n.entry, id);
  }

  // Exclusive. Drops the oldest variants of every key holding more than `max`.
  void trim_variants(unsigned max, Graveyard& graveyard) noexcept {
    for (KeyIndex ki = 0; ki < keys.capacity();) {
      const KeyTable::Slot& slot = keys[ki];
      if (slot.head == kNoNode || slot.count <= max) {
        ++ki;
        continue;
      }
      // Removing the oldest variant keeps the key (count > max >= 1) and its slot.
      remove(ki, slot.head, Why::VariantCap, graveyard, nullptr);
    }
  }

  // Shared or exclusive. The keys starting with `prefix` (a walk over the
  // table: prefix purges are rare; every hit avoids an ordered index).
  std::vector<NodeId> heads_with_prefix(std::string_view prefix) const {
    std::vector<NodeId> out;
    for (KeyIndex ki = 0; ki < keys.capacity(); ++ki) {
      const NodeId head = keys[ki].head;
      if (head != kNoNode && nodes[head].entry->primary_key().starts_with(prefix)) out.push_back(head);
    }
    return out;
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
  std::size_t key_count = 0;
  for (KeyIndex ki = 0; ki < keys.capacity(); ++ki) {
    const KeyTable::Slot& kn = keys[ki];
    if (kn.head == kNoNode) continue;
    ++key_count;
    const Entry* first = nodes[kn.head].entry.get();
    if (!first) return fail("key slot without an entry");
    const std::string_view key = first->primary_key();
    if (((xxh3(key) >> 32) & shard_mask) != index) return fail("key in the wrong shard", key);
    if (find(hash_key(key)) != ki) return fail("key not found where it is filed", key);
    if (kn.count == 0 || kn.count > max_variants) return fail("variant count out of range", key);
    uint32_t chain = 0;
    for (NodeId id = kn.head; id != kNoNode; id = nodes[id].next_variant) {
      if (++chain > kn.count) return fail("variant chain longer than its count", key);
      const Node& n = nodes[id];
      if (!n.entry) return fail("chained node without an entry", key);
      if (n.entry->primary_key() != key) return fail("entry filed under another key", key);
      if (n.entry->vary() != first->vary()) return fail("variants with different Vary names", key);
      for (NodeId o = kn.head; o != id; o = nodes[o].next_variant)
        if (nodes[o].entry->variant_key() == n.entry->variant_key()) return fail("duplicate variant_key", key);
      std::set<std::string_view> distinct;
      for_each_tag(*n.entry, [&](std::string_view t) { distinct.insert(t); });
      for (std::string_view tag : distinct) {
        auto t = tags.find(tag);
        if (t == tags.end() || t->second.count(id) == 0) return fail("tag missing from the index", key);
      }
      memberships += distinct.size();
      live.insert(id);
      sum_bytes += n.entry->charge();
      ++sum_objects;
    }
    if (chain != kn.count) return fail("variant chain shorter than its count", key);
  }
  if (sum_bytes != get(bytes)) return fail("bytes " + std::to_string(get(bytes)) + " != sum of charges " +
                                           std::to_string(sum_bytes));
  if (sum_bytes > budget) return fail("over budget");
  if (sum_objects != get(objects)) return fail("object count differs");
  if (key_count != keys.size() || key_count != get(this->key_count)) return fail("key count differs");
  uint64_t indexed = 0;
  for (const auto& [tag, ids] : tags) {
    if (ids.empty()) return fail("empty tag set: " + tag);
    for (NodeId id : ids) {
      if (live.count(id) == 0) return fail("tag index points at a dead node: " + tag);
      if (!nodes[id].entry->has_tag(tag)) return fail("tag index points at an untagged entry: " + tag);
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
  if (options.max_variants == 0 || options.max_variants > UINT16_MAX)
    throw std::invalid_argument("store: max_variants must be between 1 and 65535");
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (unsigned i = 0; i < shard_count_; ++i) {
    shards_[i].budget = options.max_bytes / shard_count_;
    shards_[i].queue.reset(options.policy);
  }
}

Store::~Store() = default;

Store::Shard& Store::shard_for(uint64_t hash) const noexcept {
  // Bits 32.. pick the shard; the shard's table uses the low bits, so the two
  // choices stay independent.
  return shards_[(hash >> 32) & (shard_count_ - 1)];
}

uint64_t Store::shard_budget() const noexcept { return max_bytes_.load(std::memory_order_relaxed) / shard_count_; }

unsigned Store::shard_index(std::string_view primary_key) const noexcept {
  return static_cast<unsigned>(&shard_for(hash_key(primary_key).hash) - shards_.get());
}

EntryRef Store::find_impl(std::string_view primary_key, detail::EntryPredicate match) const {
  const HashedKey k = hash_key(primary_key);
  Shard& s = shard_for(k.hash);
  std::shared_lock lock(s.mutex);
  const auto ki = s.find(k);
  if (ki == KeyTable::npos) return nullptr;
  for (NodeId id = s.keys[ki].head; id != kNoNode;) {
    const Node& n = s.nodes[id];
    if (match(*n.entry)) {
      s.queue.touch(id);
      return n.entry;  // copied before the lock is released
    }
    id = n.next_variant;
  }
  return nullptr;
}

EntryRef Store::find_variant(std::string_view primary_key, std::string_view variant_key) const {
  return find(primary_key, [variant_key](const Entry& e) { return e.variant_key() == variant_key; });
}

std::vector<EntryRef> Store::variants(std::string_view primary_key) const {
  const HashedKey k = hash_key(primary_key);
  const Shard& s = shard_for(k.hash);
  Graveyard out;
  std::shared_lock lock(s.mutex);
  if (auto ki = s.find(k); ki != KeyTable::npos) s.collect(ki, out);
  return out;
}

PublishResult Store::publish(EntryRef e) {
  assert(e);
  const uint64_t charge = e->charge();
  const HashedKey k = hash_key(e->primary_key());
  Shard& s = shard_for(k.hash);
  PublishResult result;
  Graveyard graveyard;  // destroyed after the lock
  std::unique_lock lock(s.mutex);
  if (charge > s.budget) {
    add(s.rejected_too_large, 1);
    result.status = PublishStatus::TooLarge;
    return result;
  }
  if (auto ki = s.find(k); ki != KeyTable::npos) {
    if (s.nodes[s.keys[ki].head].entry->vary() != e->vary()) {
      s.remove_all(ki, Why::VaryChanged, graveyard, &result.vary_changed);
    } else {
      bool key_gone = false;
      if (NodeId same = s.node_with_variant(ki, e->variant_key()); same != kNoNode) {
        result.status = PublishStatus::Replaced;
        key_gone = s.remove(ki, same, Why::Replaced, graveyard, nullptr);
      }
      const unsigned max_variants = max_variants_.load(std::memory_order_relaxed);
      while (!key_gone && s.keys[ki].count >= max_variants)
        key_gone = s.remove(ki, s.keys[ki].head, Why::VariantCap, graveyard, &result.variant_cap);
    }
  }
  s.insert(k, std::move(e), charge, graveyard, &result.evicted);
  return result;
}

bool Store::replace_if_same(const EntryRef& old, EntryRef fresh) {
  if (!old || !fresh || !same_slot(*old, *fresh)) return false;
  const uint64_t charge = fresh->charge();
  const HashedKey k = hash_key(old->primary_key());
  Shard& s = shard_for(k.hash);
  Graveyard graveyard;
  std::unique_lock lock(s.mutex);
  if (charge > s.budget) return false;
  const auto ki = s.find(k);
  if (ki == KeyTable::npos) return false;
  NodeId id = s.node_of(ki, old.get());
  if (id == kNoNode) return false;
  s.replace(id, std::move(fresh), charge, /*touch=*/true, graveyard);
  return true;
}

std::size_t Store::erase(std::string_view primary_key) {
  const HashedKey k = hash_key(primary_key);
  Shard& s = shard_for(k.hash);
  Graveyard graveyard;
  std::unique_lock lock(s.mutex);
  const auto ki = s.find(k);
  return ki == KeyTable::npos ? 0 : s.remove_all(ki, Why::Purged, graveyard, nullptr);
}

bool Store::erase_entry(const EntryRef& e) {
  if (!e) return false;
  const HashedKey k = hash_key(e->primary_key());
  Shard& s = shard_for(k.hash);
  Graveyard graveyard;
  std::unique_lock lock(s.mutex);
  const auto ki = s.find(k);
  if (ki == KeyTable::npos) return false;
  NodeId id = s.node_of(ki, e.get());
  if (id == kNoNode) return false;
  s.remove(ki, id, Why::Purged, graveyard, nullptr);
  return true;
}

std::size_t Store::purge_prefix(std::string_view key_prefix) {
  std::size_t purged = 0;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    Graveyard graveyard;
    std::unique_lock lock(s.mutex);
    for (NodeId head : s.heads_with_prefix(key_prefix))
      purged += s.remove_all(s.find(hash_key(s.nodes[head].entry->primary_key())), Why::Purged, graveyard, nullptr);
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

std::vector<EntryRef> Store::tagged(std::string_view tag) const {
  std::vector<EntryRef> out;
  for (unsigned i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    std::shared_lock lock(s.mutex);
    if (auto t = s.tags.find(tag); t != s.tags.end())
      for (NodeId id : t->second) out.push_back(s.nodes[id].entry);
  }
  return out;
}

std::size_t Store::purge_all() {
  std::size_t purged = 0;
  for (unsigned i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    // Swapped out under the lock, destroyed after it.
    KeyTable keys;
    Shard::TagIndex tags;
    NodePool nodes;
    std::unique_lock lock(s.mutex);
    const uint64_t n = get(s.objects);
    purged += n;
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
std::size_t Store::rewrite_snapshot(Shard& s, const std::vector<EntryRef>& snapshot, const RewriteFn& rewrite) {
  std::size_t done = 0;
  for (const auto& old : snapshot) {
    EntryRef fresh = rewrite(*old);  // no lock held
    const bool fits = fresh && same_slot(*old, *fresh);
    const uint64_t charge = fits ? fresh->charge() : 0;
    Graveyard graveyard;
    std::unique_lock lock(s.mutex);
    const auto ki = s.find(hash_key(old->primary_key()));
    if (ki == KeyTable::npos) continue;
    NodeId id = s.node_of(ki, old.get());
    if (id == kNoNode) continue;  // replaced or removed meanwhile: the newer state wins
    if (fits && charge <= s.budget) {
      s.replace(id, std::move(fresh), charge, /*touch=*/false, graveyard);
      add(s.rewritten, 1);
    } else {
      s.remove(ki, id, Why::Purged, graveyard, nullptr);
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
    if (auto ki = s.find(k); ki != KeyTable::npos) s.collect(ki, snapshot);
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
      for (NodeId head : s.heads_with_prefix(key_prefix))
        for (NodeId id = head; id != kNoNode; id = s.nodes[id].next_variant) snapshot.push_back(s.nodes[id].entry);
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
      for (std::size_t ki = 0; ki < s.keys.capacity(); ++ki)
        if (s.keys[ki].head != kNoNode) s.collect(ki, snapshot);
    }
    done += rewrite_snapshot(s, snapshot, rewrite);
  }
  return done;
}

void Store::for_each(const std::function<void(const Entry&)>& f) const {
  for (unsigned i = 0; i < shard_count_; ++i) {
    Graveyard snapshot;
    {
      const Shard& s = shards_[i];
      std::shared_lock lock(s.mutex);
      snapshot.reserve(get(s.objects));
      for (std::size_t ki = 0; ki < s.keys.capacity(); ++ki)
        if (s.keys[ki].head != kNoNode) s.collect(ki, snapshot);
    }
    for (const auto& e : snapshot) f(*e);
  }
}

std::vector<EntryRef> Store::entries() const {
  std::vector<EntryRef> out;
  out.reserve(stats().objects);
  for (unsigned i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    std::shared_lock lock(s.mutex);
    for (std::size_t ki = 0; ki < s.keys.capacity(); ++ki)
      if (s.keys[ki].head != kNoNode) s.collect(ki, out);
  }
  return out;
}

void Store::set_limits(uint64_t max_bytes, unsigned max_variants) {
  if (max_variants == 0 || max_variants > UINT16_MAX)
    throw std::invalid_argument("store: max_variants must be between 1 and 65535");
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
