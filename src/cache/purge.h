// Purge: one invalidation, whoever asked for it (the admin API, the PURGE
// method, an unsafe method's response, a remote node). The proxy's Purger
// applies it to the store and to fills in flight (see proxy/purger.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cachalot::cache {

struct Purge {
  enum class Kind : uint8_t {
    Url,     // every variant of one URL (value: origin-form path and query)
    Prefix,  // every URL whose normalised path starts with value
    Tag,     // every variant carrying the tag `value` (Surrogate-Key, Cache-Tag)
    All,     // everything
    Route,   // everything stored under the route named `value`
    Partition,  // every entry of the partition whose verified claim is `value` (route partition:)
  };
  Kind kind = Kind::Url;
  std::string value;
  std::optional<std::string> host;  // Url / Prefix: the authority; nullopt = every host with entries
  bool soft = false;                // mark stale instead of removing
};
// "url", "prefix", "tag", "all", "route", "partition".
std::string_view to_string(Purge::Kind k) noexcept;

struct PurgeOutcome {
  std::size_t purged = 0;   // entries (variants) removed or marked stale
  uint64_t generation = 0;  // Route: the route's new generation
  std::string error;        // non-empty: refused (e.g. no route of that name)
};

}  // namespace cachalot::cache
