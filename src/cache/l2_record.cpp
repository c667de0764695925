#include "cache/l2_record.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "cache/key.h"
#include "cache/snapshot.h"

namespace cachalot::cache::l2 {

namespace {

void put_le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int n) noexcept {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// "<scheme>://<authority>" of a key.
std::string_view key_origin(std::string_view key) noexcept {
  const std::size_t sep = key.find("://");
  if (sep == std::string_view::npos) return {};
  const std::size_t slash = key.find('/', sep + 3);
  return slash == std::string_view::npos ? std::string_view{} : key.substr(0, slash);
}

}  // namespace

std::string_view to_string(Refusal r) noexcept {
  switch (r) {
    case Refusal::None: return "none";
    case Refusal::Authorization: return "authorization";
    case Refusal::Partition: return "partition";
    case Refusal::Private: return "private";
    case Refusal::SetCookie: return "set-cookie";
    case Refusal::TooLarge: return "too-large";
    case Refusal::LongKey: return "long-key";
    case Refusal::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(DecodeError e) noexcept {
  switch (e) {
    case DecodeError::None: return "none";
    case DecodeError::Magic: return "magic";
    case DecodeError::Version: return "version";
    case DecodeError::Checksum: return "checksum";
    case DecodeError::Malformed: return "malformed";
    case DecodeError::kCount: break;
  }
  return "unknown";
}

Refusal refusal(const http::RequestHead& req, const http::ResponseHead& resp, const ResponseCacheControl& cc,
                const StoreVerdict& verdict, std::string_view primary_key, bool partitioned) {
  if (partitioned || !key_partition(primary_key).empty()) return Refusal::Partition;
  if (req.headers.has("authorization")) return Refusal::Authorization;
  if (cc.private_ || !cc.private_fields.empty()) return Refusal::Private;
  if (verdict.strip_set_cookie || resp.headers.has("set-cookie") || resp.headers.has("set-cookie2"))
    return Refusal::SetCookie;
  const std::string_view path = key_path(primary_key);
  if (path.empty() || path.size() > kMaxPathBytes) return Refusal::LongKey;
  return Refusal::None;
}

Refusal refusal_for_size(std::size_t body_bytes, uint64_t max_object_size) noexcept {
  return body_bytes > max_object_size ? Refusal::TooLarge : Refusal::None;
}

std::string record_key(std::string_view prefix, std::string_view primary_key) {
  std::string k;
  k.reserve(prefix.size() + 2 + primary_key.size());
  k.append(prefix).append("r:").append(primary_key);
  return k;
}

std::string marks_key(std::string_view prefix) { return std::string(prefix) + "marks"; }

std::string lock_key(std::string_view prefix, std::string_view primary_key) {
  return std::string(prefix) + "l:" + std::string(primary_key);
}

std::string fill_channel(std::string_view prefix, std::string_view primary_key) {
  return std::string(prefix) + "f:" + std::string(primary_key);
}

std::string encode_record(const Entry& e, core::TimePoint clock_now) {
  const std::string payload = snapshot::encode_payload(e);
  std::string out;
  out.reserve(kEnvelopeBytes + payload.size());
  out.append(kRecordMagic);
  put_le(out, kRecordVersion, 4);
  put_le(out, snapshot::kVersion, 4);
  put_le(out, static_cast<uint64_t>(clock_now.time_since_epoch().count()), 8);
  put_le(out, XXH3_64bits(payload.data(), payload.size()), 8);
  out.append(payload);
  return out;
}

DecodeError decode_record(std::string_view rec, EntryDraft& out, int64_t& written_clock_ms) {
  if (rec.size() < kEnvelopeBytes || rec.substr(0, kRecordMagic.size()) != kRecordMagic ||
      get_le(rec.data() + 8, 4) != kRecordVersion)
    return DecodeError::Magic;
  if (get_le(rec.data() + 12, 4) != snapshot::kVersion) return DecodeError::Version;
  written_clock_ms = static_cast<int64_t>(get_le(rec.data() + 16, 8));
  const std::string_view payload = rec.substr(kEnvelopeBytes);
  if (get_le(rec.data() + 24, 8) != XXH3_64bits(payload.data(), payload.size())) return DecodeError::Checksum;
  if (!snapshot::decode_payload(payload, out)) return DecodeError::Malformed;
  return DecodeError::None;
}

Freshness rebased(const Freshness& f, int64_t written_clock_ms, core::TimePoint clock_now,
                  core::Duration since_store) noexcept {
  // Age at the writer's clock W is W - response_time; here, at L, it must be
  // that plus the time since: L - (response_time + shift) = W - response_time + since.
  const core::Duration since = since_store.count() > 0 ? since_store : core::Duration(0);
  return snapshot::shifted(f, core::Duration(clock_now.time_since_epoch().count() - written_clock_ms) - since);
}

int64_t ttl_ms(const Freshness& f, core::TimePoint now) noexcept {
  const core::Seconds stale = std::max(f.stale_while_revalidate, f.stale_if_error);
  const core::TimePoint until = f.response_time + f.lifetime + stale - f.corrected_initial_age;
  return (until - now).count();
}

std::vector<std::string> marker_fields(const InvalidationLog::Rule& r) {
  using Kind = Purge::Kind;
  std::vector<std::string> out;
  switch (r.kind) {
    case Kind::All: out.emplace_back("a"); break;
    case Kind::Route: out.push_back("r " + r.path); break;
    case Kind::Tag: out.push_back(tag_field(r.path)); break;
    case Kind::Partition: break;
    case Kind::Url:
    case Kind::Prefix: {
      const std::string kind = r.kind == Kind::Url ? "u " : "p ";
      if (!r.authority) {
        out.push_back(kind + "*" + r.path);
        break;
      }
      out.push_back(kind + "http://" + *r.authority + r.path);
      out.push_back(kind + "https://" + (r.authority_https ? *r.authority_https : *r.authority) + r.path);
      break;
    }
  }
  return out;
}

std::vector<std::string> lookup_fields(std::string_view primary_key, std::string_view route) {
  std::vector<std::string> out;
  const std::string_view origin = key_origin(primary_key);
  const std::string_view path = key_path(primary_key);
  out.reserve(3 + 2 * path.size() + (route.empty() ? 0 : 1));
  out.emplace_back("a");
  if (!route.empty()) out.push_back("r " + std::string(route));
  out.push_back("u " + std::string(origin) + std::string(path));
  out.push_back("u *" + std::string(path));
  for (std::size_t n = 1; n <= path.size(); ++n) {
    const std::string_view p = path.substr(0, n);
    out.push_back("p " + std::string(origin) + std::string(p));
    out.push_back("p *" + std::string(p));
  }
  return out;
}

std::string tag_field(std::string_view tag) { return "t " + std::string(tag); }

bool voided(int64_t fill_ms, const std::vector<int64_t>& marker_ms) noexcept {
  return std::any_of(marker_ms.begin(), marker_ms.end(), [&](int64_t m) { return m >= fill_ms; });
}

}  // namespace cachalot::cache::l2
