#include "cache/conditional.h"

#include "http/date.h"

namespace cachalot::cache {

namespace {

using http::iequals;

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

bool is_weak(std::string_view tag) noexcept { return tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/'; }

// The opaque-tag of an entity-tag ("W/" removed; surrounding OWS trimmed).
std::string_view opaque(std::string_view tag) noexcept {
  tag = http::trim_ows(tag);
  if (is_weak(tag)) tag.remove_prefix(2);
  return tag;
}

}  // namespace

std::string_view to_string(ConditionalResult r) noexcept {
  switch (r) {
    case ConditionalResult::None: return "none";
    case ConditionalResult::NotModified: return "not-modified";
  }
  return "unknown";
}

bool etag_weak_match(std::string_view a, std::string_view b) noexcept {
  const std::string_view oa = opaque(a), ob = opaque(b);
  return !oa.empty() && oa == ob;
}

bool etag_strong_match(std::string_view a, std::string_view b) noexcept {
  a = http::trim_ows(a);
  b = http::trim_ows(b);
  return !a.empty() && !is_weak(a) && !is_weak(b) && a == b;
}

bool if_none_match_matches(std::string_view v, std::string_view etag) noexcept {
  v = http::trim_ows(v);
  if (v == "*") return true;  // §13.1.2: "*" is false iff a current representation exists; it does
  if (http::trim_ows(etag).empty()) return false;
  std::size_t i = 0;
  const std::size_t n = v.size();
  while (i < n) {
    while (i < n && (v[i] == ',' || is_ows(v[i]))) ++i;
    if (i == n) break;
    const std::size_t begin = i;
    if (v[i] == 'W' && i + 1 < n && v[i + 1] == '/') i += 2;
    if (i < n && v[i] == '"') {
      // entity-tag: opaque-tag = DQUOTE *etagc DQUOTE, and etagc includes ','.
      const std::size_t close = v.find('"', i + 1);
      i = close == std::string_view::npos ? n : close + 1;
    } else {
      while (i < n && v[i] != ',') ++i;  // not an entity-tag: compare the raw member
    }
    if (etag_weak_match(v.substr(begin, i - begin), etag)) return true;
    while (i < n && v[i] != ',') ++i;  // junk after a quoted tag
  }
  return false;
}

ConditionalResult evaluate_conditional(const http::RequestHead& req, std::string_view etag,
                                       std::string_view last_modified, std::optional<int64_t> stored_date,
                                       int stored_status) noexcept {
  if (req.method != http::Method::Get && req.method != http::Method::Head) return ConditionalResult::None;
  if (stored_status < 200 || stored_status > 299) return ConditionalResult::None;

  // If-None-Match may span several field lines; any matching member counts.
  bool has_inm = false;
  for (auto f : req.headers) {
    if (!iequals(f.name, "if-none-match")) continue;
    has_inm = true;
    if (if_none_match_matches(f.value, etag)) return ConditionalResult::NotModified;
  }
  if (has_inm) return ConditionalResult::None;

  // §13.1.3: ignore If-Modified-Since unless it is one valid HTTP-date.
  if (req.headers.count("if-modified-since") != 1) return ConditionalResult::None;
  const auto since = http::parse_http_date(*req.headers.get("if-modified-since"));
  if (!since) return ConditionalResult::None;
  std::optional<int64_t> modified = last_modified.empty() ? std::nullopt : http::parse_http_date(last_modified);
  if (!modified) modified = stored_date;  // §4.3.2
  if (!modified) return ConditionalResult::None;
  return *modified <= *since ? ConditionalResult::NotModified : ConditionalResult::None;
}

void copy_304_fields(const http::HeaderMap& stored, http::HeaderMap& out) {
  const bool has_etag = stored.has("etag");
  for (auto f : stored) {
    const std::string_view n = f.name;
    if (iequals(n, "cache-control") || iequals(n, "content-location") || iequals(n, "date") ||
        iequals(n, "etag") || iequals(n, "expires") || iequals(n, "vary") ||
        (!has_etag && iequals(n, "last-modified")))
      out.add(n, f.value);
  }
}

bool if_range_allows(const http::RequestHead& req, std::string_view etag, std::string_view last_modified,
                     std::optional<int64_t> stored_date) noexcept {
  auto v = req.headers.get("if-range");
  if (!v) return true;
  if (req.headers.count("if-range") != 1) return false;
  const std::string_view value = http::trim_ows(*v);
  if (value.empty()) return false;
  if (value.front() == '"' || value.starts_with("W/")) return etag_strong_match(value, etag);
  const auto when = http::parse_http_date(value);
  const auto lm = http::parse_http_date(last_modified);
  if (!when || !lm || *when != *lm) return false;
  return stored_date && *stored_date >= *lm + 1;
}

}  // namespace cachalot::cache
