#include "cache/entry.h"

#include <new>

#include "cache/store.h"

namespace cachalot::cache {

static_assert(sizeof(Entry) == 88, "Entry grew: every byte costs a million times over (issue 10)");

// ---------------------------------------------------------------- EntryRef

EntryRef::EntryRef(const EntryRef& o) noexcept : p_(o.p_) {
  if (p_) p_->refs_.fetch_add(1, std::memory_order_relaxed);
}

EntryRef& EntryRef::operator=(const EntryRef& o) noexcept {
  EntryRef(o).swap(*this);
  return *this;
}

EntryRef& EntryRef::operator=(EntryRef&& o) noexcept {
  EntryRef(std::move(o)).swap(*this);
  return *this;
}

EntryRef::~EntryRef() {
  if (p_) p_->release_ref();
}

void Entry::release_ref() const noexcept {
  // The last reference frees the block: acquire so every write made by other
  // owners happens before it (the usual shared_ptr ordering).
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  const_cast<Entry*>(this)->~Entry();
  ::operator delete(const_cast<Entry*>(this));
}

// ---------------------------------------------------------------- metadata

Freshness Entry::freshness() const noexcept {
  Freshness f;
  f.response_time = core::TimePoint(core::Duration(response_time_ms_));
  f.request_time = core::TimePoint(core::Duration(response_time_ms_ - request_delay_ms_));
  f.corrected_initial_age = core::Seconds(corrected_initial_age_);
  f.lifetime = core::Seconds(lifetime_);
  f.stale_while_revalidate = core::Seconds(swr_);
  f.stale_if_error = core::Seconds(sie_);
  f.keep = core::Seconds(keep_);
  f.stale_on_disconnect = core::Seconds(sod_);
  f.heuristic = (freshness_flags_ & 1) != 0;
  f.no_cache = (freshness_flags_ & 2) != 0;
  f.must_revalidate = (freshness_flags_ & 4) != 0;
  return f;
}

std::optional<int64_t> Entry::date() const noexcept {
  if (!(flags_ & kHasDate)) return std::nullopt;
  return date_;
}

core::TimePoint Entry::stored_at() const noexcept { return core::TimePoint(core::Duration(response_time_ms_)); }

core::TimePoint Entry::drop_after() const noexcept { return cache::drop_after(freshness()); }

std::vector<std::string> split_joined(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    std::size_t nl = s.find('\n');
    out.emplace_back(s.substr(0, nl));
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

std::vector<std::string> Entry::vary_names() const { return split_joined(vary()); }
std::vector<std::string> Entry::tags() const { return split_joined(tag_list()); }

bool Entry::has_tag(std::string_view tag) const noexcept {
  std::string_view s = tag_list();
  while (!s.empty()) {
    std::size_t nl = s.find('\n');
    if (s.substr(0, nl) == tag) return true;
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return false;
}

namespace {
// Adds the "Name: value\r\n" lines of `s` to `h`.
void parse_lines(std::string_view s, http::HeaderMap& h) {
  while (!s.empty()) {
    std::size_t eol = s.find("\r\n");
    std::string_view line = s.substr(0, eol);
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos) h.add(line.substr(0, colon), http::trim_ows(line.substr(colon + 1)));
    if (eol == std::string_view::npos) break;
    s.remove_prefix(eol + 2);
  }
}
}  // namespace

http::HeaderMap Entry::fields() const {
  http::HeaderMap h;
  parse_lines(fields_block(), h);
  parse_lines(withheld_block(), h);
  return h;
}

http::HeaderMap Entry::downstream_fields() const {
  http::HeaderMap h;
  parse_lines(fields_block(), h);
  return h;
}

// What this entry costs while stored: its one block as glibc malloc really
// allocates it, plus the Store's bookkeeping for it (store_memory in store.h).
std::size_t Entry::charge() const noexcept {
  std::size_t n = store_memory::malloc_chunk(alloc_size_) + store_memory::kPerEntry;
  // A tagged entry is also in the shard's tag index: a set member, and the
  // tag's own node and string (charged to every tagged entry: an over-estimate
  // when entries share a tag).
  std::string_view tags = tag_list();
  while (!tags.empty()) {
    const std::size_t nl = tags.find('\n');
    const std::size_t len = std::min(nl, tags.size());
    n += store_memory::kTagMemberBytes + store_memory::kTagHeadBytes + (len > 15 ? store_memory::malloc_chunk(len + 1) : 0);
    if (nl == std::string_view::npos) break;
    tags.remove_prefix(nl + 1);
  }
  return n;
}

}  // namespace cachalot::cache
