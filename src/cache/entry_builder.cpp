#include <charconv>

#include "cache/entry.h"
#include "cache/purge.h"
#include "cache/vary.h"
#include "http/date.h"

namespace cachalot::cache {

void finalize_entry(Entry& e) {
  auto etag = e.headers.get("etag");
  e.etag = etag ? std::string(*etag) : std::string();
  auto lm = e.headers.get("last-modified");
  e.last_modified = lm ? std::string(*lm) : std::string();
  auto date = e.headers.get("date");
  e.date = date ? http::parse_http_date(*date) : std::nullopt;

  e.head_block.clear();
  e.head_block.reserve(64 + e.headers.byte_size());
  e.head_block.append("HTTP/1.1 ");
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, e.status);
  e.head_block.append(b, r.ptr);
  e.head_block.push_back(' ');
  e.head_block.append(http::reason_phrase(e.status));
  e.head_block.append("\r\n");
  e.headers.serialize(e.head_block);
  e.head_block.append("Via: 1.1 cachalot\r\n");
  if (e.status != 204 && e.status != 304 && !(e.status >= 100 && e.status < 200)) {
    e.head_block.append("Content-Length: ");
    r = std::to_chars(b, b + sizeof b, e.body.size());
    e.head_block.append(b, r.ptr);
    e.head_block.append("\r\n");
  }
  e.head_block.shrink_to_fit();
  // A body grown chunk by chunk may hold up to twice its size; charge() counts
  // capacity, so give the slack back before the entry is published.
  if (e.body.capacity() > e.body.size() + e.body.size() / 8 + 64) e.body.shrink_to_fit();

  // Useful until every window has passed: stale-while-revalidate and
  // stale-if-error serve it, and the keep window lets a conditional request
  // revalidate it when it has validators.
  e.drop_after = drop_after(e.freshness);
}

bool matches_variant(const Entry& e, const http::HeaderMap& request_fields) {
  return e.vary_names.empty() || variant_key(e.vary_names, request_fields) == e.variant_key;
}

std::shared_ptr<const Entry> mark_stale(const Entry& e, core::TimePoint now) {
  auto copy = std::make_shared<Entry>(e);
  auto age = copy->freshness.current_age(now);
  if (copy->freshness.lifetime > age) copy->freshness.lifetime = age;
  finalize_entry(*copy);
  return copy;
}

std::string_view to_string(Purge::Kind k) noexcept {
  switch (k) {
    case Purge::Kind::Url: return "url";
    case Purge::Kind::Prefix: return "prefix";
    case Purge::Kind::Tag: return "tag";
    case Purge::Kind::All: return "all";
    case Purge::Kind::Route: return "route";
  }
  return "unknown";
}

}  // namespace cachalot::cache
