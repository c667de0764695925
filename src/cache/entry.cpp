#include "cache/entry.h"

#include "cache/store.h"

namespace cachalot::cache {

namespace {

using store_memory::malloc_chunk;

// libstdc++ keeps up to 15 chars inside the std::string object (already in
// sizeof(Entry)); beyond that, one heap block of capacity() + 1.
constexpr std::size_t kInlineStringCapacity = 15;

std::size_t heap_bytes(const std::string& s) noexcept {
  return s.capacity() > kInlineStringCapacity ? malloc_chunk(s.capacity() + 1) : 0;
}

// A heap copy of a string of this length (as the store's key map and tag
// index make: capacity == size).
std::size_t copy_bytes(std::size_t len) noexcept {
  return len > kInlineStringCapacity ? malloc_chunk(len + 1) : 0;
}

std::size_t heap_bytes(const std::vector<std::string>& v) noexcept {
  std::size_t n = malloc_chunk(v.capacity() * sizeof(std::string));
  for (const std::string& s : v) n += heap_bytes(s);
  return n;
}

// make_shared puts the control block (vtable pointer, use and weak counts)
// and the Entry in one allocation.
constexpr std::size_t kSharedControlBlock = 16;

// HeaderMap::byte_size() counts its two buffers' capacities, not the malloc
// headers and rounding of those two blocks.
constexpr std::size_t kHeaderMapBlocks = 2;
constexpr std::size_t kPerBlockSlack = 24;  // 8-byte header + up to 15 bytes of rounding, rounded up

}  // namespace

// What this entry costs while stored: everything it owns, as glibc malloc
// really allocates it, plus what the Store spends on it (store_memory in
// store.h derives each figure). Uses capacities, not sizes: a body built by
// appending may hold up to 2x its size until shrunk. Over-estimates rather
// than under-estimates, so that the budget bounds the resident memory.
std::size_t Entry::charge() const noexcept {
  std::size_t n = malloc_chunk(sizeof(Entry) + kSharedControlBlock);
  n += heap_bytes(primary_key) + heap_bytes(variant_key) + heap_bytes(head_block) + heap_bytes(body);
  n += heap_bytes(etag) + heap_bytes(last_modified) + heap_bytes(route);
  n += headers.byte_size() + kHeaderMapBlocks * kPerBlockSlack;
  n += heap_bytes(vary_names) + heap_bytes(tags);
  n += heap_bytes(cc.no_cache_fields) + heap_bytes(cc.private_fields);

  n += store_memory::kPerEntry + copy_bytes(primary_key.size());  // the key map holds its own copy
  for (const std::string& tag : tags)
    n += store_memory::kTagMemberBytes + store_memory::kTagHeadBytes + copy_bytes(tag.size());
  return n;
}

}  // namespace cachalot::cache
