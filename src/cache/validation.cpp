#include "cache/validation.h"

#include <charconv>
#include <vector>

#include "cache/conditional.h"
#include "cache/storable.h"
#include "http/date.h"
#include "http/hop_by_hop.h"

namespace cachalot::cache {

namespace {

using http::iequals;

// Is `name` listed in any Connection field line of `h`?
bool named_by_connection(const http::HeaderMap& h, std::string_view name) noexcept {
  for (auto f : h) {
    if (!iequals(f.name, "connection")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      if (iequals(http::trim_ows(v.substr(0, comma)), name)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

// Fields of a 304 that never update a stored response (§3.1, §3.2).
bool never_merged(const http::HeaderMap& resp304, std::string_view name) noexcept {
  return iequals(name, "content-length") || http::is_hop_by_hop(name) || proxy_specific_field(name) ||
         named_by_connection(resp304, name);
}

bool same_date(std::string_view a, std::string_view b) noexcept {
  const auto da = http::parse_http_date(a), db = http::parse_http_date(b);
  if (da && db) return *da == *db;
  return http::trim_ows(a) == http::trim_ows(b);
}

}  // namespace

void add_validators(http::HeaderMap& upstream_req, std::string_view etag, std::string_view last_modified) {
  upstream_req.remove("if-none-match");
  upstream_req.remove("if-modified-since");
  if (!etag.empty()) upstream_req.add("If-None-Match", etag);
  if (!last_modified.empty()) upstream_req.add("If-Modified-Since", last_modified);
}

bool response_304_matches(const http::HeaderMap& stored, const http::HeaderMap& resp304) noexcept {
  if (auto tag = resp304.get("etag")) {
    const auto stored_tag = stored.get("etag");
    if (!stored_tag) return false;
    const std::string_view t = http::trim_ows(*tag);
    const bool weak = t.size() >= 2 && t[0] == 'W' && t[1] == '/';
    return weak ? etag_weak_match(t, *stored_tag) : etag_strong_match(t, *stored_tag);
  }
  if (auto lm = resp304.get("last-modified")) {
    const auto stored_lm = stored.get("last-modified");
    return stored_lm && same_date(*lm, *stored_lm);
  }
  return true;
}

http::HeaderMap merge_304(const http::HeaderMap& stored, const http::HeaderMap& resp304) {
  http::HeaderMap out;
  std::vector<std::string_view> replaced;  // names whose 304 lines were already written
  for (auto f : stored) {
    const bool updated = resp304.has(f.name) && !never_merged(resp304, f.name);
    if (!updated) {
      // Age and Date describe the old message; see the header comment.
      if (iequals(f.name, "age") || iequals(f.name, "date")) continue;
      out.add(f.name, f.value);
      continue;
    }
    bool done = false;
    for (std::string_view n : replaced) done = done || iequals(n, f.name);
    if (done) continue;
    for (auto nf : resp304)
      if (iequals(nf.name, f.name)) out.add(nf.name, nf.value);
    replaced.push_back(f.name);
  }
  for (auto nf : resp304)
    if (!stored.has(nf.name) && !never_merged(resp304, nf.name)) out.add(nf.name, nf.value);
  return out;
}

std::string_view to_string(HeadUpdate u) noexcept {
  switch (u) {
    case HeadUpdate::Update: return "update";
    case HeadUpdate::MarkStale: return "mark-stale";
    case HeadUpdate::Ignore: return "ignore";
  }
  return "unknown";
}

HeadMerge merge_head(const http::HeaderMap& stored, uint64_t stored_body_size, const http::ResponseHead& head) {
  HeadMerge m;
  if (head.status != 200) return m;
  m.verdict = HeadUpdate::MarkStale;
  const http::HeaderMap& h = head.headers;
  const auto etag = h.get("etag");
  const auto lm = h.get("last-modified");
  if (etag) {
    const auto stored_tag = stored.get("etag");
    const std::string_view t = http::trim_ows(*etag);
    const bool weak = t.size() >= 2 && t[0] == 'W' && t[1] == '/';
    if (!stored_tag || !(weak ? etag_weak_match(t, *stored_tag) : etag_strong_match(t, *stored_tag))) return m;
  }
  if (lm) {
    const auto stored_lm = stored.get("last-modified");
    if (!stored_lm || !same_date(*lm, *stored_lm)) return m;
  }
  if (!etag && !lm && (stored.has("etag") || stored.has("last-modified"))) return m;
  if (auto cl = h.get("content-length")) {
    const std::string_view v = http::trim_ows(*cl);
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n != stored_body_size) return m;
  }
  m.verdict = HeadUpdate::Update;
  m.fields = merge_304(stored, h);
  return m;
}

}  // namespace cachalot::cache
