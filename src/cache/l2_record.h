// L2 records and markers: the pure part of the shared L2 store in Redis
// (cache.l2; the I/O is cluster/l2_client.*, the flow proxy/exchange.cpp).
//
// A record is one stored response (one variant of one URL), as the snapshot
// codec writes it (cache/snapshot.h encode_payload / decode_payload), in an
// envelope:
//
//   0  8  magic "CACHL2RC"
//   8  4  envelope version (kRecordVersion)
//  12  4  payload version (snapshot::kVersion: the payload is a snapshot record's)
//  16  8  written_clock_ms: the writer's core::Clock::now() when it encoded the
//         record (the payload's request and response times are on that clock)
//  24  8  XXH3-64 of the payload
//  32  .  payload
//  (all integers little-endian)
//
// In Redis a record is a hash (cluster/l2_client.cpp has the scripts):
//   rec     the envelope above
//   fill    when its origin request was sent, in ms on Redis' clock (TIME at
//           the store, minus the time the node measured since it sent the
//           request, minus cache.l2.fill_margin)
//   stored  Redis' TIME at the store, ms
//   tags    the entry's tags, '\n'-joined
// with PEXPIRE = what is left of its lifetime and stale windows (ttl_ms()).
//
// Invalidations are markers: fields of one hash ("<prefix>marks") whose
// value is Redis' TIME (ms) when the marker was written. A record is
// unservable when any marker that could match it is >= its fill time. The
// field names (one per thing an invalidation can name):
//   "a"                       everything (purge all)
//   "r " route                the route's entries
//   "t " tag                  entries carrying the tag
//   "u " origin path          one URL: origin is "<scheme>://<authority>" of
//   "u *" path                the key, or '*' for every host; path is
//                             key_path() (normalised path and query)
//   "p " origin prefix        every URL whose key_path starts with prefix
//   "p *" prefix
// marker_fields() names what an invalidation writes; lookup_fields() what a
// lookup of a key checks besides the record's tags (tag_field(), added by
// the lookup script from the record). They agree with
// InvalidationLog::matches(): tests/unit/cache/l2_record_test.cpp checks it.
// Partitioned entries never go to L2, so a partition purge writes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cache/entry.h"
#include "cache/invalidation_log.h"
#include "cache/storable.h"
#include "core/clock.h"
#include "http/message.h"

namespace cachalot::cache::l2 {

inline constexpr std::string_view kRecordMagic = "CACHL2RC";
inline constexpr uint32_t kRecordVersion = 1;
inline constexpr std::size_t kEnvelopeBytes = 32;
// Keys whose path is longer are not shared: a lookup checks one prefix marker
// per byte of the path (twice: this host and every host).
inline constexpr std::size_t kMaxPathBytes = 1024;

// Why a response is kept out of L2 although it may be stored locally.
enum class Refusal : uint8_t {
  None,           // it may be shared with the fleet
  Authorization,  // the request carried Authorization (RFC 9111 §3.5): even a public answer stays local
  Partition,      // a partitioned route's entry (per-user, key holds the claim)
  Private,        // private="field" (qualified, §5.2.2.7): stripped locally, never shared further
  SetCookie,      // the response set a cookie (even one stripped by set_cookie: store_without)
  TooLarge,       // body above cache.l2.max_object_size
  LongKey,        // path above kMaxPathBytes, or not a key
  kCount
};
// "none", "authorization", "partition", "private", "set-cookie", "too-large", "long-key".
std::string_view to_string(Refusal r) noexcept;

// The admission gate passed (`verdict.store`); may the entry also go to L2?
// `cc` is the directives the gate used (EntryDraft::cc).
Refusal refusal(const http::RequestHead& req, const http::ResponseHead& resp, const ResponseCacheControl& cc,
                const StoreVerdict& verdict, std::string_view primary_key, bool partitioned);
Refusal refusal_for_size(std::size_t body_bytes, uint64_t max_object_size) noexcept;

// The Redis key of the record for `primary_key`: prefix + "r:" + key. One
// record per URL (the last variant stored wins; a lookup whose Vary values
// differ is a miss).
std::string record_key(std::string_view prefix, std::string_view primary_key);
std::string marks_key(std::string_view prefix);
// Fleet-wide coalescing: the key's fill lock (prefix + "l:" + key) and the
// pub/sub channel its fills are announced on (prefix + "f:" + key).
std::string lock_key(std::string_view prefix, std::string_view primary_key);
std::string fill_channel(std::string_view prefix, std::string_view primary_key);

std::string encode_record(const Entry& e, core::TimePoint clock_now);

enum class DecodeError : uint8_t {
  None,
  Magic,      // not a record (or another envelope version)
  Version,    // the payload is from another snapshot codec version
  Checksum,   // the payload's checksum failed
  Malformed,  // the payload did not decode (snapshot::decode_payload)
  kCount
};
std::string_view to_string(DecodeError e) noexcept;
DecodeError decode_record(std::string_view record, EntryDraft& out, int64_t& written_clock_ms);

// The record's freshness moved onto this process' clock: at `clock_now` the
// entry is as old as when it was written plus `since_store` (Redis' TIME now
// minus at the store: RFC 9111 §4.2.3, age is real time since the response).
Freshness rebased(const Freshness& f, int64_t written_clock_ms, core::TimePoint clock_now,
                  core::Duration since_store) noexcept;

// PX for a record: what is left at `now` of its lifetime plus its longest
// stale window (stale-while-revalidate, stale-if-error; not cache.keep, which
// only keeps a local copy for revalidation). <= 0: not worth storing.
int64_t ttl_ms(const Freshness& f, core::TimePoint now) noexcept;

// Marker fields an invalidation writes (see the file comment). Empty for a
// partition purge (nothing partitioned is shared).
std::vector<std::string> marker_fields(const InvalidationLog::Rule& r);
// Marker fields a lookup of `primary_key` (stored under `route`) checks,
// besides one tag_field() per tag of the record.
std::vector<std::string> lookup_fields(std::string_view primary_key, std::string_view route);
std::string tag_field(std::string_view tag);

// The marker check the lookup script does, in C++ for the tests: is a record
// filled at `fill_ms` void, given the markers' values (absent ones omitted)?
bool voided(int64_t fill_ms, const std::vector<int64_t>& marker_ms) noexcept;

}  // namespace cachalot::cache::l2
