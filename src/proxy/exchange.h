// Exchange: one request's pipeline.
//
//   ForwardedRequest (validated target, owned forwarding fields, hop-by-hop
//   gone) -> primary key and variant key derived from it -> route policy ->
//   lookup (pure evaluate)
//     hit   -> Responder writes the stored entry
//     miss  -> Coalescer: the Leader holds a FetchPermit and runs an
//              OriginFetch (admission gate, publish unless an invalidation
//              voided it, stream to the client); a Follower follows the fill
//     stale -> served at once; a Refresher revalidates in the background
//
// The Exchange decides; the Responder writes; the OriginFetch talks to the
// origin. A background revalidation is an Exchange with no client (its
// Responder has no connection) that holds the permit and runs the same fetch.
#pragma once

#include <memory>
#include <string>

#include <asio.hpp>

#include "cache/admission.h"
#include "cache/cache_control.h"
#include "cache/coalescer.h"
#include "cache/entry.h"
#include "cache/invalidation_log.h"
#include "http/message.h"
#include "proxy/forwarded_request.h"
#include "proxy/l2_tier.h"
#include "proxy/responder.h"
#include "proxy/runtime.h"

namespace cachalot::proxy {

struct Worker;
class App;
class ClientConnection;

// What one fetch from the origin is for.
struct FetchPlan {
  bool pass = false;                          // forward as is: request body, nothing stored
  bool may_store = false;                     // the request allows storing the response
  bool conditional = false;                   // revalidate `stale` with its validators
  cache::EntryRef stale;  // entry being revalidated / stale-if-error fallback
  cache::FetchPermit permit;                  // the leader of a fill (empty otherwise)
  // A GET with a bytes Range: fetch the whole response without Range, store
  // it, answer the range from the entry (RFC 9110 §14).
  bool range = false;
  // This request fills the key for the fleet (cache.l2.coalesce_wait): it
  // holds the key's L2 lock until the fill is stored in L2 or given up.
  std::unique_ptr<L2Lead> l2_lead;
  // Set by the fetch: the response was not stored (too large for
  // cache.range_fill_max_size, unknown length, not storable), nothing was
  // sent to the client; the Exchange forwards the Range as sent.
  bool range_declined = false;
};

class Exchange {
 public:
  // A client's request, parsed from `conn` (its body, if any, is still
  // there). `fwd` and `buffers` belong to the connection and are reused.
  Exchange(Worker& w, std::shared_ptr<const Runtime> rt, http::RequestHead& req, ClientConnection* conn,
           ForwardedRequest& fwd, Outcome& out, ResponseBuffers& buffers);
  // A background revalidation: `req` and `fwd` are (copies of) the prepared
  // request that found the entry stale, key included.
  Exchange(Worker& w, std::shared_ptr<const Runtime> rt, http::RequestHead& req, ForwardedRequest& fwd,
           Outcome& out, ResponseBuffers& buffers);

  // Not a coroutine: prepares the request and returns the step it leads to.
  asio::awaitable<void> run();
  asio::awaitable<void> revalidate(cache::EntryRef stale, cache::FetchPermit permit);

  const RoutePolicy& policy() const noexcept { return *policy_; }

 private:
  friend class OriginFetch;
  asio::awaitable<void> bad_target(http::TargetError e);
  asio::awaitable<void> cacheable();
  asio::awaitable<void> pass();
  // A Range miss whose whole response was not stored: the Range goes to the origin.
  asio::awaitable<void> range_pass();
  asio::awaitable<void> purge_method();
  // Route partition: verifies the bearer token and keys the request by its
  // claim (fwd_.set_partition). "" when partitioned, else the Cache-Status
  // detail of the rejection (counted): partition-no-token / -invalid-token.
  std::string_view partition_of_request();
  // A partitioned route's request without a valid token: forwarded, nothing stored or served.
  asio::awaitable<void> partition_pass(std::string_view detail);
  // The fields variant keys are computed from: the request's, with a
  // partitioned request's Authorization replaced by its claim.
  const http::HeaderMap& variant_fields();
  asio::awaitable<void> fetch_coalesced(FetchPlan& plan);
  // The fill of a local miss (the coalescing leader, or a request alone):
  // the shared L2 store first (cache.l2), then the origin.
  asio::awaitable<void> fill(FetchPlan& plan);
  // cache.l2: looks the entry up in the shared L2 store; a usable record is
  // judged by the admission gate for this request, published here like a
  // fill, and served. False: nothing served, go to the origin.
  asio::awaitable<bool> from_l2(FetchPlan& plan);
  // What publishing an entry did (every publish: fills, 304 merges, L2 hits).
  enum class Published : uint8_t {
    Stored,   // the store holds it now
    Dropped,  // an invalidation issued after `ticket` entered matches it: not stored, not usable
    NoRoom,   // too large for the store or its partition: not stored, still usable for this request
  };
  // Publishes `e` unless an invalidation voided it (InvalidationLog, see
  // origin_fetch.h); `replacing`: the entry a 304 freshened.
  Published publish(const cache::InvalidationLog::Ticket& ticket, const cache::EntryRef& e,
                    const cache::EntryRef& replacing);
  // The admission gate's context for this request (the one gate: fills, 304s, L2 records).
  cache::AdmissionContext admission(uint64_t route_generation, core::TimePoint request_time,
                                    core::TimePoint response_time);
  // The stored variant for this request, if any (`vary_miss`: the URL has
  // variants, none for this request).
  cache::EntryRef lookup(bool& vary_miss);
  // Dropped by a route purge or past every window: removed, not usable.
  bool still_valid(const cache::EntryRef& e, core::TimePoint now);
  void maybe_refresh_ahead(const cache::EntryRef& e, core::TimePoint now);
  void start_refresh(const cache::EntryRef& e);

  Worker& w_;
  App& app_;
  std::shared_ptr<const Runtime> rt_;
  http::RequestHead& req_;
  ClientConnection* conn_;
  Outcome& out_;
  ResponseBuffers& buffers_;
  Responder responder_;
  bool range_ = false;          // a GET with Range
  bool foreign_range_ = false;  // ... in a unit other than bytes (passed to the origin)
  ForwardedRequest& fwd_;
  const RoutePolicy* policy_ = nullptr;
  const std::string& key_;  // fwd_.key()
  cache::RequestCacheControl rcc_;
  http::HeaderMap partition_fields_;  // variant_fields() of a partitioned request
};

}  // namespace cachalot::proxy
