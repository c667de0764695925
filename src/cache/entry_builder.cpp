#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

#include <xxhash.h>

#include "cache/entry.h"
#include "cache/purge.h"
#include "cache/vary.h"
#include "http/date.h"

namespace cachalot::cache {

using namespace std::string_view_literals;

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out.push_back('\n');
    out.append(s);
  }
  return out;
}

uint32_t to_u32_seconds(core::Seconds s) {
  return static_cast<uint32_t>(std::clamp<int64_t>(s.count(), 0, UINT32_MAX));
}

}  // namespace

// The validators and Date are never withheld: the head block's offsets and
// conditional requests need them.
bool withheld_downstream(std::string_view name, const std::vector<std::string>& withheld) noexcept {
  if (withheld.empty() || http::iequals(name, "etag") || http::iequals(name, "last-modified") ||
      http::iequals(name, "date"))
    return false;
  for (const auto& w : withheld)
    if (http::iequals(w, name)) return true;
  return false;
}

// A strong entity tag from the body bytes: XXH3-128, base64url without
// padding (22 characters), quoted. The same bytes give the same tag on every
// instance and after every restart.
namespace {
void append_body_etag(std::string& out, std::string_view body) {
  const XXH128_hash_t h = XXH3_128bits(body.data(), body.size());
  unsigned char b[16];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned char>(h.high64 >> (56 - 8 * i));
    b[8 + i] = static_cast<unsigned char>(h.low64 >> (56 - 8 * i));
  }
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  out.push_back('"');
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : b) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  out.push_back('"');
}

}  // namespace

EntryRef build_entry(const EntryDraft& d, bool complete) {
  // The head block: status line, fields, then what we add.
  std::string head;
  head.reserve(64 + d.headers.byte_size());
  head.append("HTTP/1.1 "sv);
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, d.status);
  head.append(b, r.ptr);
  head.push_back(' ');
  head.append(http::reason_phrase(d.status));
  head.append("\r\n"sv);
  const auto fields_begin = static_cast<uint32_t>(head.size());
  std::string held;  // the withheld block
  uint32_t etag_off = 0, etag_len = 0, lm_off = 0, lm_len = 0;
  bool have_etag = false, have_lm = false;
  std::optional<int64_t> date;
  for (auto f : d.headers) {
    // Whether ranges are served is ours to say (the responder adds
    // "Accept-Ranges: bytes" to stored 200s), not the origin's.
    if (http::iequals(f.name, "accept-ranges")) continue;
    if (withheld_downstream(f.name, d.withheld)) {
      http::append_field(held, f.name, f.value);
      continue;
    }
    const auto value_off = static_cast<uint32_t>(head.size() + f.name.size() + 2);  // after "name: "
    http::append_field(head, f.name, f.value);
    if (!have_etag && http::iequals(f.name, "etag")) {
      have_etag = true;
      etag_off = value_off;
      etag_len = static_cast<uint32_t>(f.value.size());
    } else if (!have_lm && http::iequals(f.name, "last-modified")) {
      have_lm = true;
      lm_off = value_off;
      lm_len = static_cast<uint32_t>(f.value.size());
    } else if (!date && http::iequals(f.name, "date")) {
      date = http::parse_http_date(f.value);
    }
  }
  const bool synthesized = have_etag ? d.etag_synthesized : d.synthesize_etag && complete && !have_lm;
  if (synthesized && !have_etag) {
    head.append("ETag: "sv);
    etag_off = static_cast<uint32_t>(head.size());
    append_body_etag(head, d.body);
    etag_len = static_cast<uint32_t>(head.size() - etag_off);
    head.append("\r\n"sv);
  }

  const std::string vary = join(d.vary_names);
  const std::string tags = join(d.tags);
  // The withheld block, when there is one, opens the body's piece after its
  // 4-byte length (entry.h).
  char held_len[4] = {};
  if (!held.empty()) {
    const auto n = static_cast<uint32_t>(held.size());
    std::memcpy(held_len, &n, 4);
  }
  const std::string_view pieces[] = {d.primary_key, d.variant_key, vary, tags, d.route, head,
                                     std::string_view(held_len, held.empty() ? 0 : 4), held, d.body};
  std::size_t tail = 0;
  for (auto p : pieces) tail += p.size();
  const std::size_t size = sizeof(Entry) + tail;

  void* mem = ::operator new(size);
  Entry* e = new (mem) Entry();
  e->alloc_size_ = static_cast<uint32_t>(std::min<std::size_t>(size, UINT32_MAX));
  char* out = reinterpret_cast<char*>(e + 1);
  uint32_t at = 0;
  for (std::size_t i = 0; i < std::size(pieces); ++i) {
    std::memcpy(out + at, pieces[i].data(), pieces[i].size());
    at += static_cast<uint32_t>(pieces[i].size());
    if (i + 1 < Entry::kPieces) e->ends_[i] = at;  // the last three make one piece
  }
  e->set_freshness(d.freshness);
  e->status_ = static_cast<uint16_t>(d.status);
  if (d.cc.public_ || d.cc.s_maxage.has_value() || d.cc.must_revalidate) e->flags_ |= Entry::kAuthorizedOk;
  if (synthesized) e->flags_ |= Entry::kEtagSynthesized;
  if (!held.empty()) e->flags_ |= Entry::kHasWithheld;
  if (date && *date >= 0 && *date <= int64_t{UINT32_MAX}) {
    e->flags_ |= Entry::kHasDate;
    e->date_ = static_cast<uint32_t>(*date);
  }
  // A validator that does not fit the 16-bit offset and length is not kept:
  // the entry then has none (clients and revalidations get full responses),
  // never a cut one.
  if (etag_len <= UINT16_MAX && etag_off <= UINT16_MAX) {
    e->etag_off_ = static_cast<uint16_t>(etag_off);
    e->etag_len_ = static_cast<uint16_t>(etag_len);
  } else {
    e->flags_ &= static_cast<uint8_t>(~Entry::kEtagSynthesized);
  }
  if (lm_len <= UINT16_MAX && lm_off <= UINT16_MAX) {
    e->lm_off_ = static_cast<uint16_t>(lm_off);
    e->lm_len_ = static_cast<uint16_t>(lm_len);
  }
  e->fields_begin_ = static_cast<uint16_t>(fields_begin);  // our own status line
  e->route_generation_ = static_cast<uint32_t>(d.route_generation);
  return EntryRef::adopt(e);
}

// The packed freshness numbers (whole seconds; times in milliseconds).
void Entry::set_freshness(const Freshness& f) noexcept {
  response_time_ms_ = f.response_time.time_since_epoch().count();
  const int64_t delay = response_time_ms_ - f.request_time.time_since_epoch().count();
  request_delay_ms_ = static_cast<uint32_t>(std::clamp<int64_t>(delay, 0, UINT32_MAX));
  corrected_initial_age_ = to_u32_seconds(f.corrected_initial_age);
  lifetime_ = to_u32_seconds(f.lifetime);
  swr_ = to_u32_seconds(f.stale_while_revalidate);
  sie_ = to_u32_seconds(f.stale_if_error);
  keep_ = to_u32_seconds(f.keep);
  sod_ = static_cast<uint16_t>(std::clamp<int64_t>(f.stale_on_disconnect.count(), 0, UINT16_MAX));
  freshness_flags_ = (f.heuristic ? 1 : 0) | (f.no_cache ? 2 : 0) | (f.must_revalidate ? 4 : 0);
}

EntryDraft draft_of(const Entry& e) {
  EntryDraft d;
  d.primary_key = e.primary_key();
  d.variant_key = e.variant_key();
  d.vary_names = e.vary_names();
  d.status = e.status();
  d.headers = e.fields();
  // The withheld fields' names, each once.
  for (std::string_view s = e.withheld_block(); !s.empty();) {
    const std::size_t eol = s.find("\r\n");
    const std::string_view name = s.substr(0, std::min(eol, s.find(':')));
    if (std::none_of(d.withheld.begin(), d.withheld.end(), [&](const std::string& n) { return http::iequals(n, name); }))
      d.withheld.emplace_back(name);
    if (eol == std::string_view::npos) break;
    s.remove_prefix(eol + 2);
  }
  d.body = e.body();
  d.cc = parse_response_cache_control(d.headers.get_combined("cache-control"));
  d.freshness = e.freshness();
  d.tags = e.tags();
  d.route = e.route();
  d.route_generation = e.route_generation();
  d.etag_synthesized = e.etag_synthesized();
  return d;
}

EntryRef with_freshness(const Entry& e, const Freshness& f) {
  void* mem = ::operator new(e.alloc_size_);
  Entry* c = new (mem) Entry();  // one owner, like any new entry
  std::memcpy(static_cast<void*>(c + 1), e.tail(), e.alloc_size_ - sizeof(Entry));
  c->alloc_size_ = e.alloc_size_;
  c->ends_ = e.ends_;
  c->status_ = e.status_;
  c->flags_ = e.flags_;
  c->etag_off_ = e.etag_off_;
  c->etag_len_ = e.etag_len_;
  c->lm_off_ = e.lm_off_;
  c->lm_len_ = e.lm_len_;
  c->date_ = e.date_;
  c->route_generation_ = e.route_generation_;
  c->set_freshness(f);
  return EntryRef::adopt(c);
}

bool matches_variant(const Entry& e, const http::HeaderMap& request_fields) {
  return e.vary().empty() || variant_key_joined(e.vary(), request_fields) == e.variant_key();
}

EntryRef mark_stale(const Entry& e, core::TimePoint now) {
  Freshness f = e.freshness();
  auto age = f.current_age(now);
  if (f.lifetime > age) f.lifetime = age;
  return with_freshness(e, f);
}

std::string_view to_string(Purge::Kind k) noexcept {
  switch (k) {
    case Purge::Kind::Url: return "url";
    case Purge::Kind::Prefix: return "prefix";
    case Purge::Kind::Tag: return "tag";
    case Purge::Kind::All: return "all";
    case Purge::Kind::Route: return "route";
    case Purge::Kind::Partition: return "partition";
  }
  return "unknown";
}

}  // namespace cachalot::cache
