// Entry: one stored response (one variant of one primary key).
//
// Invariants: an Entry never changes once published to the Store (it is held
// as shared_ptr<const Entry>); a 304 publishes a merged copy. `head_block` is
// the serialized status line and stored fields, ready for a gathered write;
// the serving code appends Age, Date, Cache-Status and Connection per request.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/cache_control.h"
#include "cache/freshness.h"
#include "core/clock.h"
#include "http/header_map.h"

namespace cachalot::cache {

struct Entry {
  std::string primary_key;              // normalized scheme://host/path?query (see key.h)
  std::string variant_key;              // normalized request values of the Vary fields ("" without Vary)
  std::vector<std::string> vary_names;  // lower-cased field names from the response's Vary

  int status = 200;
  http::HeaderMap headers;  // stored response fields (no hop-by-hop, Age or Content-Length; Date kept)
  std::string head_block;   // "HTTP/1.1 200 OK\r\n" + fields except Age/Connection/Keep-Alive, no final CRLF
  std::string body;         // complete body

  ResponseCacheControl cc;  // parsed once when stored
  Freshness freshness;      // computed once when stored (freshness.h)
  std::optional<int64_t> date;  // the stored Date field, unix seconds
  core::TimePoint stored_at{};
  core::TimePoint drop_after{};  // past this (stale windows and keep window spent) the entry is useless

  std::string etag;           // "" if none
  std::string last_modified;  // "" if none
  std::vector<std::string> tags;
  std::string route;          // name of the route it was stored under ("" = none)
  uint64_t route_generation = 0;

  // Bytes this entry is charged against cache.max_memory: bodies, fields and
  // the fixed per-entry overhead (struct, index nodes, allocator headers).
  std::size_t charge() const noexcept;
};

// Completes an entry whose status, headers, body and freshness are set:
// builds head_block (with Content-Length and Via), extracts the validators and
// Date, and sets drop_after from the freshness windows (drop_after(freshness)).
void finalize_entry(Entry& e);

// Does stored variant `e` apply to a request with these (forwarded) fields?
// Its Vary names' normalised values must equal those the entry was stored for.
bool matches_variant(const Entry& e, const http::HeaderMap& request_fields);

// A copy of `e` that is stale from `now` on (a soft purge): its lifetime ends
// at its current age, so stale-while-revalidate and stale-if-error still
// apply and the next request revalidates it.
std::shared_ptr<const Entry> mark_stale(const Entry& e, core::TimePoint now);

}  // namespace cachalot::cache
