// Snapshot: the cache store as a versioned binary file, for warm restarts.
//
// This file is the pure part: encoding records from an Entry's public
// accessors and decoding them back into an EntryDraft (which build_entry()
// then packs, so every loaded entry is well-formed). No I/O and no clock:
// the file's bytes come in as a string_view (the daemon maps the file), times
// come in as arguments. proxy/snapshotter.* does the files, the store and the
// logging.
//
// Format, version 1 (all integers little-endian):
//
//   header (kHeaderFixedBytes + origin length + 8 bytes):
//     0  8  magic "CACHSNAP"
//     8  4  version (kVersion)
//    12  4  header length, including this and the checksum
//    16  8  file length in bytes (a truncated or extended file is refused
//           before any record is read)
//    24  8  record count
//    32  8  written_clock_ms: core::Clock::now() when written (in test builds
//           it includes the test clock's offset)
//    40  8  written_wall_ms: the system clock when written (the downtime is
//           measured on it)
//    48  4  origin length, then the origin URL (upstream.url) it was filled from
//     .  8  XXH3-64 of every header byte before it
//   records, `count` times:
//     0  4  payload length
//     4  4  frame check: low 32 bits of XXH3-64 of the 4 length bytes
//     8  8  XXH3-64 of the payload
//    16  .  payload:
//           i64 request_time_ms, i64 response_time_ms,
//           u32 corrected_initial_age, lifetime, stale_while_revalidate,
//               stale_if_error, keep, stale_on_disconnect (seconds),
//           u8 freshness flags (heuristic 1, no_cache 2, must_revalidate 4),
//           u8 entry flags (1: may answer requests with Authorization,
//              2: the ETag is Cachalot's own),
//           u16 status,
//           then 8 strings, each u32 length + bytes: primary key, variant key,
//           Vary names ('\n'-joined), tags ('\n'-joined), route name, stored
//           fields clients get ("Name: value\r\n" lines), stored fields
//           withheld from clients (same form, usually empty), body.
//
// Damage, and what reading does about it:
//   - bad magic, another version, a bad header checksum, a file length that
//     differs from the header's: the file is refused (Reader::open);
//   - a record whose frame check fails (its length cannot be trusted, so
//     neither can anything after it), a record running past the end, fewer or
//     more records than the header says: the file is refused (next() returns
//     Error); the caller loads nothing from a refused file;
//   - a record whose payload checksum fails: that record is skipped
//     (Corrupt), the rest are read; a record whose checksum holds but whose
//     payload does not decode, or decodes to fields that could not have been
//     stored (framing fields, CR/LF inside a field): skipped (Malformed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cache/entry.h"
#include "core/clock.h"

namespace cachalot::cache::snapshot {

inline constexpr std::string_view kMagic = "CACHSNAP";
inline constexpr uint32_t kVersion = 2;  // 2: stale-on-disconnect window, withheld fields, synthesized-ETag flag
inline constexpr std::size_t kHeaderFixedBytes = 52;  // up to the origin string
inline constexpr std::size_t kFrameBytes = 16;
inline constexpr std::size_t kMaxOriginBytes = 4096;

struct Header {
  uint32_t version = kVersion;
  uint64_t file_bytes = 0;
  uint64_t count = 0;
  int64_t written_clock_ms = 0;
  int64_t written_wall_ms = 0;
  std::string origin;
};

// Why an entry was not written, or a record not loaded.
enum class Skip : uint8_t {
  Corrupt,      // the record's checksum failed
  Malformed,    // the checksum held, the payload did not decode to a storable response
  Expired,      // past every window (lifetime, stale-while-revalidate, stale-if-error, keep)
  Invalidated,  // its route generation was purged, or an invalidation matched it
  Budget,       // cache.max_memory (or its shard's part of it) was full
  kCount
};
// "corrupt", "malformed", "expired", "invalidated", "budget".
std::string_view to_string(Skip s) noexcept;

// The header's bytes (file_bytes and count as given: a writer encodes a
// placeholder first and the real values once the records are written).
std::string encode_header(const Header& h);
// Appends one framed record for `e`.
void append_record(std::string& out, const Entry& e);
// The payload of a record alone (no frame), for tests.
std::string encode_payload(const Entry& e);
// Decodes a payload (already checksummed) into `out`; false when malformed.
bool decode_payload(std::string_view payload, EntryDraft& out);

// Where a Reader gets its bytes: a file read in blocks by the daemon (no
// mapping, so a read error is an error, not a SIGBUS), or memory in tests.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Total bytes (the file's size).
  virtual uint64_t size() const noexcept = 0;
  // The next `n` bytes, or fewer at the end of the data or on a read error.
  // The view is valid until the next call.
  virtual std::string_view take(std::size_t n) = 0;
  // Why a take() came back short, if not the end of the data ("" otherwise).
  virtual std::string error() const { return {}; }
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) noexcept : bytes_(bytes) {}
  uint64_t size() const noexcept override { return bytes_.size(); }
  std::string_view take(std::size_t n) override {
    std::string_view v = bytes_.substr(at_, n);
    at_ += v.size();
    return v;
  }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
};

// Reads a snapshot, record by record.
class Reader {
 public:
  explicit Reader(ByteSource& source) noexcept : src_(&source) {}
  // Over bytes in memory (which must outlive the reader).
  explicit Reader(std::string_view file) : owned_(std::make_unique<MemorySource>(file)), src_(owned_.get()) {}

  // Parses and checks the header. "" when it is usable, otherwise the
  // problem, in words fit for a log line ("not a cachalot snapshot (bad
  // magic)", "unsupported version 7 (this build reads version 1)", ...).
  std::string open();
  const Header& header() const noexcept { return header_; }

  enum class Result : uint8_t {
    Record,   // `out` holds the next entry
    Skipped,  // a record was skipped: skip_reason() says why (Corrupt or Malformed)
    End,      // every record has been read and the file ends there
    Error,    // the file is damaged beyond this point: error() says how
  };
  Result next(EntryDraft& out);
  Skip skip_reason() const noexcept { return skip_; }
  const std::string& error() const noexcept { return error_; }
  // Records returned so far (Record or Skipped).
  uint64_t records_read() const noexcept { return index_; }

 private:
  Result fail(std::string why);
  std::string short_read(std::string what) const;

  std::unique_ptr<MemorySource> owned_;
  ByteSource* src_;
  Header header_;
  uint64_t pos_ = 0;  // bytes consumed
  uint64_t index_ = 0;
  bool opened_ = false;
  Skip skip_ = Skip::Corrupt;
  std::string error_;
  std::string frame_;  // the current record's frame, copied out of the source
};

// Freshness numbers moved by `by` (request and response times both), so that
// ages measured on the loading process' clock continue those of the writer.
Freshness shifted(const Freshness& f, core::Duration by) noexcept;

// How far to move a snapshot's times when loading it (see shifted()). An
// entry's age keeps growing while the daemon is down (RFC 9111 §4.2.3: age is
// real time since the response was received), so the times are rebased so
// that at the loading process' `clock_now` each entry is as old as it was
// when written plus the downtime. The downtime is measured on the wall clock
// (`wall_now` minus the header's written_wall_ms) and is never negative: a
// wall clock that went backwards leaves ages where they were, it never makes
// an entry younger. Without a test clock offset in either process, clock and
// wall clock agree and the shift is 0.
core::Duration load_shift(const Header& h, core::TimePoint clock_now, core::TimePoint wall_now) noexcept;
// The downtime load_shift() assumes (>= 0).
core::Duration downtime(const Header& h, core::TimePoint wall_now) noexcept;

}  // namespace cachalot::cache::snapshot
