// The per-partition byte budget (route partition_max_bytes): one user's
// entries cannot push out everyone else's. Pure: the caller lists the
// partition's stored entries (Store::tagged(partition_tag(claim))) and
// removes the victims.
//
// Behaviour: storing into a partition that is over its budget evicts that
// partition's oldest entries (by stored_at, the response time of the fill or
// of its last revalidation), never the entry just stored, until the partition
// fits. An entry larger than the budget on its own is not stored at all
// (the caller checks fits_partition() first). Enforced whenever something is
// stored into the partition; the global memory budget (cache.max_memory)
// still evicts across partitions as usual.
#pragma once

#include <cstdint>
#include <vector>

#include "cache/entry.h"

namespace cachalot::cache {

inline bool fits_partition(const Entry& e, uint64_t budget) noexcept { return e.charge() <= budget; }

// The entries to evict, oldest first, so that the rest (with `keep`) sum to
// at most `budget` bytes of charge(). `keep` (may be null) is never chosen.
std::vector<EntryRef> partition_victims(std::vector<EntryRef> entries, const Entry* keep, uint64_t budget);

}  // namespace cachalot::cache
