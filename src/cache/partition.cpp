#include "cache/partition.h"

#include <algorithm>

namespace cachalot::cache {

std::vector<EntryRef> partition_victims(std::vector<EntryRef> entries, const Entry* keep, uint64_t budget) {
  uint64_t total = 0;
  for (const auto& e : entries) total += e->charge();
  std::vector<EntryRef> victims;
  if (total <= budget) return victims;
  std::stable_sort(entries.begin(), entries.end(),
                   [](const EntryRef& a, const EntryRef& b) { return a->stored_at() < b->stored_at(); });
  for (auto& e : entries) {
    if (total <= budget) break;
    if (e.get() == keep) continue;
    total -= e->charge();
    victims.push_back(std::move(e));
  }
  return victims;
}

}  // namespace cachalot::cache
