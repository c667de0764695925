// Entry: one stored response (one variant of one primary key), in ONE
// allocation.
//
// Layout of the allocation:
//   [Entry: fixed metadata, 88 bytes]
//   [primary key][variant key][vary names][tags][route name][head block][withheld?][body]
// The head block is the serialised status line and stored fields
// ("HTTP/1.1 200 OK\r\nContent-Type: ...\r\n", no final CRLF), ready for a
// gathered write; the serving code appends Via, Content-Length, Age,
// Cache-Status and Connection per request (not stored: 40 bytes an object
// that a hit formats in a few nanoseconds). Stored fields that clients do not
// get (cache.drop_targeted_cache_control, RFC 9213 §3: kept because a 304 or
// HEAD merge re-reads them) are serialised apart, in the withheld block, so
// the head block stays exactly what a client receives. The withheld block is
// rare: when present (kHasWithheld) it opens the last piece, after a 4-byte
// length, and the body follows it; the body always ends the allocation. No parsed HeaderMap is kept: the
// rare paths that need fields (304 merges, inspection, a client's 304)
// parse them back from the head (fields()). Validators are offsets into the
// head; Vary names and tags are '\n'-joined.
//
// Invariants: an Entry never changes once built; replacing one builds a new
// one (a 304 merge builds from a draft, a soft purge clones the block with
// new freshness). Ownership is an intrusive count (EntryRef, like
// std::shared_ptr but 4 bytes inside the block instead of a 16-byte control
// block); the store holds one reference per stored entry. The store's own
// links live in the Store (its node pool), not here.
//
// Building: an EntryDraft (mutable, the old field-by-field form) collects a
// response while it arrives; build_entry() packs it. draft_of() unpacks an
// entry for the paths that change fields.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_control.h"
#include "cache/freshness.h"
#include "core/clock.h"
#include "http/header_map.h"

namespace cachalot::cache {

class Entry;

// An owning reference to an Entry (intrusive count; thread-safe like shared_ptr).
class EntryRef {
 public:
  EntryRef() noexcept = default;
  EntryRef(std::nullptr_t) noexcept {}
  EntryRef(const EntryRef& o) noexcept;
  EntryRef(EntryRef&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  EntryRef& operator=(const EntryRef& o) noexcept;
  EntryRef& operator=(EntryRef&& o) noexcept;
  ~EntryRef();

  const Entry* get() const noexcept { return p_; }
  const Entry& operator*() const noexcept { return *p_; }
  const Entry* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  void reset() noexcept { EntryRef().swap(*this); }
  void swap(EntryRef& o) noexcept { std::swap(p_, o.p_); }
  friend bool operator==(const EntryRef& a, const EntryRef& b) noexcept { return a.p_ == b.p_; }
  friend bool operator==(const EntryRef& a, std::nullptr_t) noexcept { return a.p_ == nullptr; }
  // Adopts a pointer whose count already includes this reference.
  static EntryRef adopt(const Entry* p) noexcept {
    EntryRef r;
    r.p_ = p;
    return r;
  }
  // Gives up this reference without releasing it (the store's own reference).
  const Entry* release() noexcept {
    const Entry* p = p_;
    p_ = nullptr;
    return p;
  }

 private:
  const Entry* p_ = nullptr;
};

// The mutable form of an entry: filled while a response arrives, then packed.
struct EntryDraft {
  std::string primary_key;              // normalised scheme://host/path?query (see key.h)
  std::string variant_key;              // normalised request values of the Vary fields ("" without Vary)
  std::vector<std::string> vary_names;  // lower-cased, sorted, unique, from the response's Vary
  int status = 200;
  http::HeaderMap headers;  // stored response fields (no hop-by-hop, Age or Content-Length; Date kept)
  // Names (any case) of `headers` stored but never sent downstream: they go
  // to the withheld block. ETag, Last-Modified and Date are never withheld.
  std::vector<std::string> withheld;
  std::string body;         // complete body
  ResponseCacheControl cc;  // parsed once when stored (only the §3.5 flags are kept)
  Freshness freshness;      // computed once when stored (freshness.h)
  std::vector<std::string> tags;
  std::string route;        // name of the route it was stored under ("" = none)
  uint64_t route_generation = 0;
  // build_entry() adds a strong ETag computed from the complete body
  // (synthesize_etag), or the ETag in `headers` is one it added before
  // (etag_synthesized, a draft of a stored entry).
  bool synthesize_etag = false;
  bool etag_synthesized = false;
};

class Entry {
 public:
  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;

  std::string_view primary_key() const noexcept { return piece(0); }
  std::string_view variant_key() const noexcept { return piece(1); }
  // Lower-case names from the response's Vary, sorted and unique, joined by '\n' ("" without Vary).
  std::string_view vary() const noexcept { return piece(2); }
  std::vector<std::string> vary_names() const;
  // Tags joined by '\n'.
  std::string_view tag_list() const noexcept { return piece(3); }
  std::vector<std::string> tags() const;
  bool has_tag(std::string_view tag) const noexcept;
  std::string_view route() const noexcept { return piece(4); }
  // Status line and stored fields; no final CRLF. The serving code adds Via,
  // Content-Length (unless wire::status_has_no_body), Age, Cache-Status and Connection.
  std::string_view head_block() const noexcept { return piece(5); }
  std::string_view body() const noexcept {
    std::string_view b = piece(6);
    if (flags_ & kHasWithheld) [[unlikely]]
      b.remove_prefix(4 + withheld_size());
    return b;
  }

  int status() const noexcept { return status_; }
  Freshness freshness() const noexcept;
  // Freshness::current_age() without unpacking the rest (the hit path's Age).
  core::Seconds current_age(core::TimePoint now) const noexcept {
    const int64_t resident = (now.time_since_epoch().count() - response_time_ms_) / 1000;
    return core::Seconds(corrected_initial_age_ + (resident > 0 ? resident : 0));
  }
  std::string_view etag() const noexcept { return head_block().substr(etag_off_, etag_len_); }
  std::string_view last_modified() const noexcept { return head_block().substr(lm_off_, lm_len_); }
  // The ETag is Cachalot's own (a hash of the body, see build_entry()): clients
  // validate against it, the origin never hears of it.
  bool etag_synthesized() const noexcept { return (flags_ & kEtagSynthesized) != 0; }
  // The validator the origin sent, for conditional requests to the origin.
  std::string_view origin_etag() const noexcept { return etag_synthesized() ? std::string_view() : etag(); }
  std::optional<int64_t> date() const noexcept;
  // RFC 9111 §3.5: may this response answer a request with Authorization?
  bool may_serve_to_authorized() const noexcept { return (flags_ & kAuthorizedOk) != 0; }
  // Was the entry stored under this generation of its route (App::route_generation)?
  bool route_generation_is(uint64_t g) const noexcept { return route_generation_ == static_cast<uint32_t>(g); }
  uint32_t route_generation() const noexcept { return route_generation_; }
  core::TimePoint stored_at() const noexcept;
  // Past this (stale windows and keep window spent) the entry is useless.
  core::TimePoint drop_after() const noexcept;

  // Every stored field, parsed back from the head and the withheld block
  // (rare paths: merges, inspection). The withheld fields come last.
  http::HeaderMap fields() const;
  // The stored fields clients get, parsed back from the head (a client's 304).
  http::HeaderMap downstream_fields() const;
  // The stored fields clients get, as serialised ("Name: value\r\n" lines).
  std::string_view fields_block() const noexcept {
    return head_block().substr(fields_begin_);
  }
  // The stored fields clients do not get ("Name: value\r\n" lines; usually "").
  std::string_view withheld_block() const noexcept {
    if (!(flags_ & kHasWithheld)) return {};
    return piece(6).substr(4, withheld_size());
  }

  // Bytes this entry is charged against cache.max_memory: its allocation as
  // malloc really spends it, plus what the Store spends on it (store.h).
  std::size_t charge() const noexcept;
  // The bytes of the allocation (for snapshots and L2 records).
  std::size_t allocation_size() const noexcept { return alloc_size_; }

 private:
  friend class EntryRef;
  void set_freshness(const Freshness& f) noexcept;
  friend EntryRef build_entry(const EntryDraft& d, bool complete);
  friend EntryRef with_freshness(const Entry& e, const Freshness& f);
  Entry() = default;
  static constexpr uint8_t kAuthorizedOk = 1;  // public, s-maxage or must-revalidate
  static constexpr uint8_t kHasDate = 2;
  static constexpr uint8_t kEtagSynthesized = 4;
  static constexpr uint8_t kHasWithheld = 8;
  static constexpr std::size_t kPieces = 7;

  const char* tail() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  std::string_view piece(std::size_t i) const noexcept {
    const uint32_t begin = i == 0 ? 0 : ends_[i - 1];
    const uint32_t end = i + 1 < kPieces ? ends_[i] : alloc_size_ - static_cast<uint32_t>(sizeof(Entry));
    return {tail() + begin, end - begin};
  }
  void release_ref() const noexcept;
  uint32_t withheld_size() const noexcept {
    uint32_t n;
    std::memcpy(&n, tail() + ends_[5], 4);
    return n;
  }

  // 88 bytes, widest members first (no padding); every byte counts a
  // million times over in a cache of small objects.
  mutable std::atomic<uint32_t> refs_{1};
  uint32_t alloc_size_ = 0;
  std::array<uint32_t, kPieces - 1> ends_{};  // end offset of each piece in the tail (the body ends the allocation)
  // Freshness, packed (freshness.h has the meaning of each field).
  int64_t response_time_ms_ = 0;
  // The low 32 bits of the route's generation (a wrap would take four
  // billion purges of one route while the entry lives).
  uint32_t route_generation_ = 0;
  uint32_t date_ = 0;              // seconds since the epoch (kHasDate; a Date outside 1970-2106 is not kept)
  uint32_t request_delay_ms_ = 0;  // response_time - request_time
  uint32_t corrected_initial_age_ = 0, lifetime_ = 0, swr_ = 0, sie_ = 0, keep_ = 0;
  // Validators: offset and length in the head block. One that does not fit
  // (longer than 64 KiB, or starting past 64 KiB of head) is not kept: the
  // entry then has none (clients and revalidations get full responses).
  uint16_t etag_off_ = 0, lm_off_ = 0, etag_len_ = 0, lm_len_ = 0;
  uint16_t fields_begin_ = 0;  // after the status line
  uint16_t status_ = 200;
  uint8_t freshness_flags_ = 0;  // heuristic 1, no_cache 2, must_revalidate 4
  uint8_t flags_ = 0;
  uint16_t sod_ = 0;  // Freshness::stale_on_disconnect, seconds (clamped: a grace, never hours)
};

// Is a response field called `name` kept from clients under `withheld`
// (EntryDraft::withheld, cache.drop_targeted_cache_control)? Case-insensitive;
// never ETag, Last-Modified or Date. build_entry() and every head written
// from an origin's response (a relay, a fill's followers) agree through this.
bool withheld_downstream(std::string_view name, const std::vector<std::string>& withheld) noexcept;

// Packs a draft (its body complete) into a new entry: builds the head block
// (status line and stored fields), finds the validators and Date.
// With `complete` false (a fill's head, its body still to come) no ETag is
// synthesized.
EntryRef build_entry(const EntryDraft& d, bool complete = true);
// The lines of a '\n'-joined list (an entry's Vary names or tags).
std::vector<std::string> split_joined(std::string_view s);
// The draft `e` was built from (fields parsed back from its head).
EntryDraft draft_of(const Entry& e);
// A copy of `e` with other freshness numbers (one block copy).
EntryRef with_freshness(const Entry& e, const Freshness& f);

// Does stored variant `e` apply to a request with these (forwarded) fields?
// Its Vary names' normalised values must equal those the entry was stored for.
bool matches_variant(const Entry& e, const http::HeaderMap& request_fields);

// A copy of `e` that is stale from `now` on (a soft purge): its lifetime ends
// at its current age, so stale-while-revalidate and stale-if-error still
// apply and the next request revalidates it.
EntryRef mark_stale(const Entry& e, core::TimePoint now);

}  // namespace cachalot::cache
