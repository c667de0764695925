#include "cache/snapshot.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "http/header_map.h"

namespace cachalot::cache::snapshot {

namespace {

// ---- little-endian primitives

void put_u16(std::string& out, uint16_t v) {
  const char b[2] = {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
  out.append(b, 2);
}
void put_u32(std::string& out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 4);
}
void put_u64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 8);
}
void put_i64(std::string& out, int64_t v) { put_u64(out, static_cast<uint64_t>(v)); }
void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

uint64_t get_le(const char* p, int n) noexcept {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// A bounds-checked cursor over a payload or the header.
struct Cursor {
  std::string_view s;
  std::size_t at = 0;
  bool ok = true;

  bool need(std::size_t n) noexcept {
    if (!ok || s.size() - at < n) ok = false;
    return ok;
  }
  uint64_t le(int n) noexcept {
    if (!need(static_cast<std::size_t>(n))) return 0;
    uint64_t v = get_le(s.data() + at, n);
    at += static_cast<std::size_t>(n);
    return v;
  }
  uint8_t u8() noexcept { return static_cast<uint8_t>(le(1)); }
  uint16_t u16() noexcept { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() noexcept { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() noexcept { return le(8); }
  int64_t i64() noexcept { return static_cast<int64_t>(le(8)); }
  std::string_view str() noexcept {
    const uint32_t n = u32();
    if (!need(n)) return {};
    std::string_view v = s.substr(at, n);
    at += n;
    return v;
  }
};

uint32_t frame_check(const char* len_bytes) noexcept {
  return static_cast<uint32_t>(XXH3_64bits(len_bytes, 4));
}

// RFC 9110 §5.6.2 tchar (ASCII only: no locale, no function call per byte).
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return kTchar[static_cast<unsigned char>(c)]; });
}

// No CR, LF or NUL: nothing that could end a field line or the head early.
bool is_line_safe(std::string_view s) noexcept {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// The stored fields: "Name: value\r\n" lines. Framing and hop-by-hop fields
// are never stored (the head block adds its own Content-Length), so a record
// carrying one is not something this daemon wrote.
bool parse_fields(std::string_view block, http::HeaderMap& out) {
  while (!block.empty()) {
    const std::size_t eol = block.find("\r\n");
    if (eol == std::string_view::npos) return false;
    const std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = http::trim_ows(line.substr(colon + 1));
    if (!is_token(name) || !is_line_safe(value)) return false;
    for (std::string_view framing : {"content-length", "transfer-encoding", "connection"})
      if (http::iequals(name, framing)) return false;
    out.add(name, value);
  }
  return true;
}

}  // namespace

std::string_view to_string(Skip s) noexcept {
  switch (s) {
    case Skip::Corrupt: return "corrupt";
    case Skip::Malformed: return "malformed";
    case Skip::Expired: return "expired";
    case Skip::Invalidated: return "invalidated";
    case Skip::Budget: return "budget";
    case Skip::kCount: break;
  }
  return "unknown";
}

// ---------------------------------------------------------------- writing

std::string encode_header(const Header& h) {
  std::string out;
  const std::string_view origin = std::string_view(h.origin).substr(0, kMaxOriginBytes);
  out.reserve(kHeaderFixedBytes + origin.size() + 8);
  out.append(kMagic);
  put_u32(out, h.version);
  put_u32(out, static_cast<uint32_t>(kHeaderFixedBytes + origin.size() + 8));
  put_u64(out, h.file_bytes);
  put_u64(out, h.count);
  put_i64(out, h.written_clock_ms);
  put_i64(out, h.written_wall_ms);
  put_str(out, origin);
  put_u64(out, XXH3_64bits(out.data(), out.size()));
  return out;
}

namespace {

void append_payload(std::string& out, const Entry& e) {
  const Freshness f = e.freshness();
  put_i64(out, f.request_time.time_since_epoch().count());
  put_i64(out, f.response_time.time_since_epoch().count());
  for (core::Seconds s : {f.corrected_initial_age, f.lifetime, f.stale_while_revalidate, f.stale_if_error, f.keep,
                          f.stale_on_disconnect})
    put_u32(out, static_cast<uint32_t>(std::clamp<int64_t>(s.count(), 0, UINT32_MAX)));
  out.push_back(static_cast<char>((f.heuristic ? 1 : 0) | (f.no_cache ? 2 : 0) | (f.must_revalidate ? 4 : 0)));
  out.push_back(static_cast<char>((e.may_serve_to_authorized() ? 1 : 0) | (e.etag_synthesized() ? 2 : 0)));
  put_u16(out, static_cast<uint16_t>(e.status()));
  for (std::string_view s : {e.primary_key(), e.variant_key(), e.vary(), e.tag_list(), e.route(), e.fields_block(),
                             e.withheld_block(), e.body()})
    put_str(out, s);
}

}  // namespace

std::string encode_payload(const Entry& e) {
  std::string out;
  append_payload(out, e);
  return out;
}

void append_record(std::string& out, const Entry& e) {
  const std::size_t frame = out.size();
  out.append(kFrameBytes, '\0');
  append_payload(out, e);
  const std::size_t len = out.size() - frame - kFrameBytes;
  std::string head;
  put_u32(head, static_cast<uint32_t>(len));
  put_u32(head, frame_check(head.data()));
  put_u64(head, XXH3_64bits(out.data() + frame + kFrameBytes, len));
  std::memcpy(out.data() + frame, head.data(), kFrameBytes);
}

// ---------------------------------------------------------------- reading

bool decode_payload(std::string_view payload, EntryDraft& d) {
  Cursor c{payload};
  Freshness f;
  f.request_time = core::TimePoint(core::Duration(c.i64()));
  f.response_time = core::TimePoint(core::Duration(c.i64()));
  f.corrected_initial_age = core::Seconds(c.u32());
  f.lifetime = core::Seconds(c.u32());
  f.stale_while_revalidate = core::Seconds(c.u32());
  f.stale_if_error = core::Seconds(c.u32());
  f.keep = core::Seconds(c.u32());
  f.stale_on_disconnect = core::Seconds(c.u32());
  const uint8_t fflags = c.u8();
  const uint8_t flags = c.u8();
  const uint16_t status = c.u16();
  const std::string_view primary_key = c.str(), variant_key = c.str(), vary = c.str(), tags = c.str(),
                         route = c.str(), fields = c.str(), withheld = c.str(), body = c.str();
  if (!c.ok || c.at != payload.size()) return false;  // short, or bytes left over
  if ((fflags & ~7) != 0 || (flags & ~3) != 0 || status < 100 || status > 999) return false;
  // A key is "scheme://authority/..." (key.h). The key, variant key, Vary
  // names and tags are only compared, never written to a client; the fields
  // and the status are, so those are checked (parse_fields).
  if (primary_key.find("://") == std::string_view::npos || primary_key.find('\r') != std::string_view::npos ||
      !is_line_safe(route))
    return false;
  // Reset field by field: the strings keep their capacity from the last record.
  d.headers.clear();
  if (!parse_fields(fields, d.headers)) return false;
  // Fields kept from clients (RFC 9213 §3, entry.h) come back withheld.
  d.withheld.clear();
  if (!withheld.empty()) {
    const std::size_t shown = d.headers.size();
    if (!parse_fields(withheld, d.headers)) return false;
    for (std::size_t i = shown; i < d.headers.size(); ++i) {
      const std::string_view name = d.headers.at(i).name;
      if (std::none_of(d.withheld.begin(), d.withheld.end(), [&](const std::string& n) { return http::iequals(n, name); }))
        d.withheld.emplace_back(name);
    }
  }
  f.heuristic = (fflags & 1) != 0;
  f.no_cache = (fflags & 2) != 0;
  f.must_revalidate = (fflags & 4) != 0;
  d.primary_key.assign(primary_key);
  d.variant_key.assign(variant_key);
  d.vary_names = split_joined(vary);
  d.tags = split_joined(tags);
  d.route.assign(route);
  d.status = status;
  d.body.assign(body);
  d.freshness = f;
  // build_entry() reads only the §3.5 flags from cc: public stands for all three.
  d.cc = ResponseCacheControl{};
  d.cc.public_ = (flags & 1) != 0;
  d.etag_synthesized = (flags & 2) != 0;
  d.route_generation = 0;
  return true;
}

Reader::Result Reader::fail(std::string why) {
  error_ = std::move(why);
  return Result::Error;
}

// A take() that came back short: the end of the file, or a read error.
std::string Reader::short_read(std::string what) const {
  std::string err = src_->error();
  return err.empty() ? what : fmt::format("read error ({}) at offset {}", err, pos_);
}

std::string Reader::open() {
  const uint64_t size = src_->size();
  std::string head(src_->take(kHeaderFixedBytes));
  pos_ = head.size();
  if (head.size() < kMagic.size() || std::string_view(head).substr(0, kMagic.size()) != kMagic) {
    if (!src_->error().empty()) return short_read("");
    return size == 0 ? "empty file (not a cachalot snapshot)" : "not a cachalot snapshot (bad magic)";
  }
  Cursor c{head, kMagic.size()};
  header_.version = c.u32();
  if (!c.ok) return short_read("truncated header");
  if (header_.version != kVersion)
    return fmt::format("unsupported version {} (this build reads version {})", header_.version, kVersion);
  const uint32_t header_len = c.u32();
  header_.file_bytes = c.u64();
  header_.count = c.u64();
  header_.written_clock_ms = c.i64();
  header_.written_wall_ms = c.i64();
  const uint32_t origin_len = c.u32();
  if (!c.ok) return short_read("truncated header");
  if (origin_len > kMaxOriginBytes || header_len != kHeaderFixedBytes + origin_len + 8)
    return "corrupt header (bad length)";
  const std::string_view rest = src_->take(origin_len + 8);
  pos_ += rest.size();
  if (rest.size() < origin_len + 8) return short_read("truncated header");
  head.append(rest);
  header_.origin = head.substr(kHeaderFixedBytes, origin_len);
  if (get_le(head.data() + kHeaderFixedBytes + origin_len, 8) != XXH3_64bits(head.data(), kHeaderFixedBytes + origin_len))
    return "corrupt header (checksum mismatch)";
  if (header_.file_bytes != size)
    return fmt::format("{} ({} bytes, the header says {})", size < header_.file_bytes ? "truncated" : "extended", size,
                       header_.file_bytes);
  opened_ = true;
  return {};
}

Reader::Result Reader::next(EntryDraft& out) {
  if (!opened_) return fail("not opened");
  const uint64_t size = src_->size();
  if (index_ == header_.count) {
    if (pos_ != size) return fail(fmt::format("{} bytes after the last of {} records", size - pos_, header_.count));
    return Result::End;
  }
  const uint64_t at = pos_;
  frame_.assign(src_->take(kFrameBytes));
  pos_ += frame_.size();
  if (frame_.size() < kFrameBytes)
    return fail(short_read(fmt::format("truncated at record {} of {} (offset {})", index_ + 1, header_.count, at)));
  const uint64_t len = get_le(frame_.data(), 4);
  if (static_cast<uint32_t>(get_le(frame_.data() + 4, 4)) != frame_check(frame_.data()))
    return fail(fmt::format("corrupt record frame at record {} of {} (offset {})", index_ + 1, header_.count, at));
  if (size - pos_ < len)
    return fail(fmt::format("record {} of {} runs past the end (offset {})", index_ + 1, header_.count, at));
  const uint64_t sum = get_le(frame_.data() + 8, 8);
  const std::string_view payload = src_->take(len);
  pos_ += payload.size();
  if (payload.size() < len)
    return fail(short_read(fmt::format("truncated in record {} of {} (offset {})", index_ + 1, header_.count, at)));
  ++index_;
  if (sum != XXH3_64bits(payload.data(), payload.size())) {
    skip_ = Skip::Corrupt;
    return Result::Skipped;
  }
  if (!decode_payload(payload, out)) {
    skip_ = Skip::Malformed;
    return Result::Skipped;
  }
  return Result::Record;
}

// ---------------------------------------------------------------- time

Freshness shifted(const Freshness& f, core::Duration by) noexcept {
  Freshness g = f;
  g.request_time += by;
  g.response_time += by;
  return g;
}

core::Duration downtime(const Header& h, core::TimePoint wall_now) noexcept {
  const int64_t d = wall_now.time_since_epoch().count() - h.written_wall_ms;
  return core::Duration(d > 0 ? d : 0);
}

core::Duration load_shift(const Header& h, core::TimePoint clock_now, core::TimePoint wall_now) noexcept {
  // An entry's age at the writer's clock W is W - response_time (+ its initial
  // age); at the loader's clock L it must be that plus the downtime D:
  // L - (response_time + shift) = W - response_time + D.
  return core::Duration(clock_now.time_since_epoch().count() - h.written_clock_ms) - downtime(h, wall_now);
}

}  // namespace cachalot::cache::snapshot
