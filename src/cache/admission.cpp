#include "cache/admission.h"

#include <algorithm>

#include "cache/key.h"
#include "cache/validation.h"
#include "cache/vary.h"
#include "http/date.h"
#include "http/hop_by_hop.h"

namespace cachalot::cache {

namespace {

using http::iequals;

// The fields a stored response keeps (§3.1): no hop-by-hop field (nor one its
// Connection names), no Content-Length (the entry frames its own body), no
// Age (recomputed on every use), no field of the proxy's own
// (proxy_specific_field()), and none of `strip` (lower-case names from the verdict).
http::HeaderMap stored_fields(const http::HeaderMap& in, const std::vector<std::string>& strip) {
  http::HeaderMap out = in;
  // One pass: hop-by-hop fields, framing and Age (recomputed on every
  // answer), proxy-specific fields (RFC 9111 §3.1) and the route's strip list.
  http::strip_hop_by_hop_and(out, [&](std::string_view name) {
    if (iequals(name, "content-length") || iequals(name, "age") || proxy_specific_field(name)) return true;
    for (const auto& s : strip)
      if (iequals(name, s)) return true;
    return false;
  });
  return out;
}

void ensure_date(http::HeaderMap& h, core::TimePoint response_time) {
  // RFC 9110 §6.6.1: a response from a cache carries Date; an origin without a clock sends none.
  if (!h.has("date")) h.add("Date", http::format_http_date(core::to_unix_seconds(response_time)));
}

const std::vector<std::string>& targets_of(const AdmissionContext& ctx) {
  static const std::vector<std::string> none;
  return ctx.targeted ? *ctx.targeted : none;
}

// Fields of a 304 that belong to the client that caused the revalidation,
// not to the representation every client shares.
bool client_only(std::string_view name) noexcept { return iequals(name, "set-cookie") || iequals(name, "set-cookie2"); }

// A partitioned entry carries its partition's reserved tag.
// The flag relaxes storable() only when the key really carries a partition:
// a partitioned response must never be stored where any request can find it.
bool partitioned(const AdmissionContext& ctx, std::string_view primary_key) {
  return ctx.partitioned && !key_partition(primary_key).empty();
}

void add_partition_tag(std::vector<std::string>& tags, std::string_view primary_key) {
  std::string_view claim = key_partition(primary_key);
  if (!claim.empty()) tags.push_back(partition_tag(claim));
}

}  // namespace

std::vector<std::string> parse_tags(const http::HeaderMap& h, const std::vector<std::string>& fields) {
  std::vector<std::string> tags;
  for (const auto& name : fields) {
    for (auto f : h) {
      if (!iequals(f.name, name)) continue;
      std::string_view v = f.value;
      std::size_t i = 0;
      while (i < v.size()) {
        while (i < v.size() && (v[i] == ' ' || v[i] == ',' || v[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < v.size() && v[j] != ' ' && v[j] != ',' && v[j] != '\t') ++j;
        // Tags starting with \x1f are reserved (partition_tag()): an origin cannot set one.
        if (j > i && v[i] != kReservedTagByte) {
          std::string_view tag = v.substr(i, j - i);
          if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.emplace_back(tag);
        }
        i = j;
      }
    }
  }
  return tags;
}

// RFC 9110 §8.8.3: a strong entity tag changes whenever the representation
// data does; a hash of the stored body bytes does exactly that, for the
// bytes every client of this entry gets (each Vary variant and each content
// coding is its own entry, with its own bytes). Only a 200 gets one: it
// carries a complete representation (§15.3.1), where a 206 carries a part and
// other statuses are not representations clients validate. Never when the
// origin sent a validator of its own (ETag or Last-Modified): its
// validators stay the ones clients and revalidations use. no-transform does
// not stop it: a field added to the header section does not transform the
// content (§7.7).
bool may_synthesize_etag(int status, const http::HeaderMap& stored) {
  return status == 200 && !stored.has("etag") && !stored.has("last-modified") && !stored.has("content-range");
}

Admitted admit(const AdmissionContext& ctx, const http::ResponseHead& resp) {
  Admitted a;
  auto cc = select_response_cache_control(resp.headers, targets_of(ctx));
  a.verdict = storable(*ctx.request, *ctx.request_cc, resp, cc, *ctx.storable, partitioned(ctx, ctx.primary_key));
  if (!a.verdict.store) return a;
  auto e = std::make_unique<EntryDraft>();
  e->primary_key = ctx.primary_key;
  auto vary = parse_vary(resp.headers);
  e->vary_names = vary.names;
  e->variant_key = variant_key(vary, ctx.variant_fields ? *ctx.variant_fields : ctx.request->headers);
  e->status = resp.status;
  e->headers = stored_fields(resp.headers, a.verdict.strip_fields);
  ensure_date(e->headers, ctx.response_time);
  if (ctx.withheld) e->withheld = *ctx.withheld;
  e->cc = std::move(cc);
  e->freshness = compute_freshness(*ctx.request, resp, e->cc, ctx.request_time, ctx.response_time, *ctx.freshness);
  if (ctx.tag_fields) e->tags = parse_tags(resp.headers, *ctx.tag_fields);
  add_partition_tag(e->tags, ctx.primary_key);
  e->route = ctx.route;
  e->route_generation = ctx.route_generation;
  e->synthesize_etag = ctx.synthesize_etag && may_synthesize_etag(e->status, e->headers);
  a.entry = std::move(e);
  return a;
}

Freshened freshen(const AdmissionContext& ctx, const Entry& stored, const http::ResponseHead& resp304) {
  Freshened f;
  http::HeaderMap update;
  for (auto field : resp304.headers) {
    if (client_only(field.name))
      f.client_fields.add(field.name, field.value);
    else
      update.add(field.name, field.value);
  }
  http::ResponseHead merged;
  merged.status = stored.status();
  merged.headers = merge_304(stored.fields(), update);
  ensure_date(merged.headers, ctx.response_time);
  // §4.3.4: the 304's directives now govern (a targeted field's when one
  // qualifies, RFC 9213 §2.2); the merged response is admitted like any other.
  auto cc = select_response_cache_control(merged.headers, targets_of(ctx));
  f.verdict = storable(*ctx.request, *ctx.request_cc, merged, cc, *ctx.storable, partitioned(ctx, stored.primary_key()));
  if (!f.verdict.store) {
    f.response_fields = std::move(merged.headers);
    return f;
  }
  EntryDraft e;
  e.primary_key = stored.primary_key();
  e.variant_key = stored.variant_key();
  e.vary_names = stored.vary_names();
  e.status = stored.status();
  e.body = stored.body();
  // Freshness from the merged response as received, before the fields a
  // cache does not store are stripped, as admit() does: the 304's Age must
  // count (§4.2.3; an upstream cache's 304 can be old), although Age itself
  // is not stored.
  e.freshness = compute_freshness(*ctx.request, merged, cc, ctx.request_time, ctx.response_time, *ctx.freshness);
  if (ctx.tag_fields) e.tags = parse_tags(merged.headers, *ctx.tag_fields);  // as admit(): before stripping
  add_partition_tag(e.tags, e.primary_key);
  e.headers = stored_fields(merged.headers, f.verdict.strip_fields);
  if (ctx.withheld) e.withheld = *ctx.withheld;
  e.cc = std::move(cc);
  e.route = ctx.route;
  e.route_generation = ctx.route_generation;
  f.response_fields = e.headers;
  f.entry = build_entry(e);
  return f;
}

}  // namespace cachalot::cache
