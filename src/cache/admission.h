// Admission: the one gate every shared entry passes.
//
// Whatever becomes or updates a shared entry — the response to a miss, a 304
// merged into a stored entry, a background refresh (and later an L2 record) —
// is built here, from storable() (storable.h) and nothing else, so the paths
// cannot drift apart. Pure: times come in as arguments.
//
// Both read the directives with select_response_cache_control() (RFC 9213
// §2.2): the first valid field of the target list (ctx.targeted, e.g.
// CDN-Cache-Control) replaces Cache-Control and Expires for storing and
// freshness alike; without one, Cache-Control. Fields the operator drops
// downstream (ctx.withheld, RFC 9213 §3) are stored but withheld from the
// head clients get (EntryDraft::withheld).
//
//  - admit(): a full response. storable() decides; the entry gets the
//    response's fields minus hop-by-hop fields, Content-Length, Age,
//    Proxy-Authenticate(-Info) (RFC 9111 §3.1) and every field the verdict
//    names (no-cache="f", private="f", Set-Cookie under set_cookie: strip).
//    The body is appended by the caller, then build_entry().
//  - freshen(): a 304 to our conditional request (§4.3.3, §4.3.4). The 304's
//    fields update the stored ones (merge_304), except Set-Cookie, which
//    belongs to the client that caused the revalidation: it goes to that
//    client's response only (client_fields), never into the entry. The
//    merged response then passes storable() like any other; when it is no
//    longer storable (the 304 said private or no-store, ...) there is no
//    entry and the caller removes the stored one (the response is unshared).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_control.h"
#include "cache/entry.h"
#include "cache/freshness.h"
#include "cache/storable.h"
#include "core/clock.h"
#include "http/message.h"

namespace cachalot::cache {

// What the gate needs to know besides the response: the request as it was
// forwarded (its fields select the variant), and the route's options.
struct AdmissionContext {
  const http::RequestHead* request = nullptr;  // the forwarded request
  const RequestCacheControl* request_cc = nullptr;
  std::string_view primary_key;
  const StorableOptions* storable = nullptr;
  const FreshnessOptions* freshness = nullptr;
  const std::vector<std::string>* tag_fields = nullptr;  // cache.tag_headers
  const std::vector<std::string>* targeted = nullptr;    // cache.targeted_cache_control (null: none)
  const std::vector<std::string>* withheld = nullptr;    // cache.drop_targeted_cache_control (null: none)
  std::string_view route;       // "" = none
  uint64_t route_generation = 0;
  bool synthesize_etag = false;     // the policy allows a synthesized ETag (see admit())
  // The request's verified claim names a partition, and primary_key carries
  // it (key.h append_partition): storable() then lets unqualified private and
  // responses to Authorization through, since only requests with the same
  // verified claim can ever find the entry; no-store still wins. The entry
  // gets the partition's reserved tag (partition_tag()).
  bool partitioned = false;
  // The fields the variant key is computed from; null: request->headers. A
  // partitioned request passes its fields with Authorization replaced by the
  // claim, so Vary: Authorization keys by user, not by token.
  const http::HeaderMap* variant_fields = nullptr;
  core::TimePoint request_time{};   // the origin request was sent
  core::TimePoint response_time{};  // its response head arrived
};

struct Admitted {
  StoreVerdict verdict;
  std::unique_ptr<EntryDraft> entry;  // set iff verdict.store; body empty, packed by build_entry() when complete
};
Admitted admit(const AdmissionContext& ctx, const http::ResponseHead& resp);
// Whether a stored response may get a synthesized strong ETag (admit() sets
// EntryDraft::synthesize_etag from it and the policy).
bool may_synthesize_etag(int status, const http::HeaderMap& stored);

struct Freshened {
  StoreVerdict verdict;  // storable() of the merged response
  EntryRef entry;        // the updated entry; null when no longer storable
  // The merged response as the revalidating client gets it: the entry's
  // fields when stored, else every merged field.
  http::HeaderMap response_fields;
  http::HeaderMap client_fields;  // fields of the 304 only that client gets (Set-Cookie)
};
Freshened freshen(const AdmissionContext& ctx, const Entry& stored, const http::ResponseHead& resp304);

// Tags from the configured response fields: Surrogate-Key is space-separated,
// Cache-Tag comma-separated; both separators are accepted in every field.
std::vector<std::string> parse_tags(const http::HeaderMap& h, const std::vector<std::string>& fields);

}  // namespace cachalot::cache
