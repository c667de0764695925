// Entry: one stored response (one variant of one primary key).
//
// Invariants: an Entry never changes once published to the Store (it is held
// as shared_ptr<const Entry>); a 304 publishes a merged copy. `head_block` is
// the serialized status line and stored fields, ready for a gathered write;
// the serving code appends Age, Date, Cache-Status and Connection per request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cache/freshness.h"
#include "core/clock.h"
#include "http/header_map.h"

namespace cachalot::cache {

struct Entry {
  std::string primary_key;              // normalized scheme://host/path?query (see key.h)
  std::string variant_key;              // normalized request values of the Vary fields ("" without Vary)
  std::vector<std::string> vary_names;  // lower-cased field names from the response's Vary

  int status = 200;
  http::HeaderMap headers;  // stored response fields: hop-by-hop, Age, Date-less copy? no: Date kept
  std::string head_block;   // "HTTP/1.1 200 OK\r\n" + fields except Age/Connection/Keep-Alive, no final CRLF
  std::string body;         // complete body

  Freshness freshness;      // computed once when stored (freshness.h)
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

}  // namespace cachalot::cache
