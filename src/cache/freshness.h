// Freshness: RFC 9111 §4.2 numbers computed once, when a response is stored.
#pragma once

#include <cstdint>

#include "core/clock.h"

namespace cachalot::cache {

// What an entry may be used for at a given moment.
enum class FreshnessState : uint8_t {
  Fresh,                // current age < lifetime: serve as a hit
  StaleWhileRevalidate, // stale, inside stale-while-revalidate: serve and refresh in the background
  StaleRevalidateOnly,  // stale: must be validated with the origin before use (stale-if-error may still apply)
  Expired,              // past every window (swr, sie, keep): useless except for its validators
};

struct Freshness {
  core::TimePoint request_time{};      // when the request that fetched it was sent
  core::TimePoint response_time{};     // when the response head arrived
  core::Seconds corrected_initial_age{0};  // §4.2.3
  core::Seconds lifetime{0};           // freshness lifetime, §4.2.1 (0 when none)
  core::Seconds stale_while_revalidate{0};  // RFC 5861 §3 window (0 when none or forbidden)
  core::Seconds stale_if_error{0};     // RFC 5861 §4 window (0 when none or forbidden)
  bool heuristic = false;              // lifetime came from §4.2.2 heuristics or a route default
  bool no_cache = false;               // must be validated before every use (§5.2.2.4)
  bool must_revalidate = false;        // must-revalidate / proxy-revalidate / s-maxage: never serve stale (§4.2.4)

  // Age of the stored response at `now`, §4.2.3.
  core::Seconds current_age(core::TimePoint now) const noexcept;
  // The entry's state at `now` (ignoring request directives).
  FreshnessState state(core::TimePoint now) const noexcept;
  // Seconds of freshness left (negative when stale).
  int64_t ttl(core::TimePoint now) const noexcept;
};

}  // namespace cachalot::cache
