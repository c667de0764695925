#include "cache/freshness.h"

namespace cachalot::cache {

core::Seconds Freshness::current_age(core::TimePoint now) const noexcept {
  // §4.2.3: current_age = corrected_initial_age + resident_time
  auto resident = std::chrono::duration_cast<core::Seconds>(now - response_time);
  if (resident.count() < 0) resident = core::Seconds(0);
  return corrected_initial_age + resident;
}

int64_t Freshness::ttl(core::TimePoint now) const noexcept {
  return lifetime.count() - current_age(now).count();
}

FreshnessState Freshness::state(core::TimePoint now) const noexcept {
  int64_t age = current_age(now).count();
  if (!no_cache && age < lifetime.count()) return FreshnessState::Fresh;
  int64_t stale_for = age - lifetime.count();
  if (!no_cache && !must_revalidate && stale_for < stale_while_revalidate.count())
    return FreshnessState::StaleWhileRevalidate;
  return FreshnessState::StaleRevalidateOnly;
}

}  // namespace cachalot::cache
