#include "cache/eviction.h"

namespace cachalot::cache {

std::string_view to_string(EvictionPolicy p) noexcept {
  switch (p) {
    case EvictionPolicy::Sieve: return "sieve";
    case EvictionPolicy::Lru: return "lru";
  }
  return "unknown";
}

std::optional<EvictionPolicy> parse_eviction_policy(std::string_view s) noexcept {
  if (s == "sieve") return EvictionPolicy::Sieve;
  if (s == "lru") return EvictionPolicy::Lru;
  return std::nullopt;
}

}  // namespace cachalot::cache
