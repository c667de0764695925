// OriginFetch: one fetch from the origin for an Exchange, as named steps.
//
//   build the request head (from the ForwardedRequest and the key)
//   take a fetch slot (upstream.max_concurrent_misses)
//   send: connect or reuse, write head and body, read the final head
//         (interim 1xx relayed; an unsolicited 101 is a bad response)
//   then one of:
//     failed         nothing usable came back: stale-if-error, the disconnect
//                    grace (cache.stale_on_disconnect) or 502/504
//     not_modified   304 to our conditional request: freshen through the gate
//     head_response  a HEAD's response with a stored GET response: update it,
//                    mark it stale or leave it (RFC 9111 §4.3.5), then relay
//     relay          a full response: admission gate, head to the client and
//                    the fill, body in lockstep, publish through the
//                    invalidation log before the client's last byte
//
// Every publish goes through publish(), which asks the InvalidationLog
// whether an invalidation issued after this fetch's request was sent voids
// it (cache/invalidation_log.h).
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include <asio.hpp>

#include "cache/admission.h"
#include "cache/invalidation_log.h"
#include "cache/l2_record.h"
#include "net/upstream.h"
#include "proxy/exchange.h"

namespace cachalot::proxy {

class OriginFetch {
 public:
  OriginFetch(Exchange& x, FetchPlan& plan);
  ~OriginFetch();
  OriginFetch(const OriginFetch&) = delete;
  OriginFetch& operator=(const OriginFetch&) = delete;

  asio::awaitable<void> run();

 private:
  // A slot of upstream.max_concurrent_misses, held for the whole fetch.
  struct Slot {
    explicit Slot(Worker& w);
    ~Slot();
    Worker& w;
  };

  void build_head();
  asio::awaitable<bool> take_slot();
  asio::awaitable<net::UpstreamError> send();
  asio::awaitable<bool> send_request_body();
  asio::awaitable<void> failed(net::UpstreamError err);
  asio::awaitable<void> not_modified();
  asio::awaitable<void> head_response();
  asio::awaitable<void> relay();
  // The admission gate for a full response: the entry to fill (and the fill's
  // head offered to followers), or null when nothing is stored.
  std::unique_ptr<cache::EntryDraft> gate(const http::ResponseHead& resp);
  struct Pumped {
    bool complete = false;
    net::UpstreamError err = net::UpstreamError::None;
    bool to_client = false;  // the client is still receiving
  };
  // Copies the body from the origin to the entry, the followers and the client.
  asio::awaitable<Pumped> pump(std::unique_ptr<cache::EntryDraft>& entry, bool to_client);
  // Packs the draft, publishes it and ends the fill Done (the draft is consumed).
  void complete_entry(std::unique_ptr<cache::EntryDraft>& draft);
  bool stale_usable_on_error(core::TimePoint now) const;
  bool stale_usable_when_disconnected(core::TimePoint now) const;
  asio::awaitable<void> serve_stale_on_error(int origin_status, std::string_view detail,
                                             metrics::Result result = metrics::Result::StaleError);
  // The request as the stored GET response's: a HEAD is judged as the GET it updates (§4.3.5).
  cache::AdmissionContext admission_as_get(std::optional<http::RequestHead>& as_get) const;
  cache::AdmissionContext admission() const;
  // Publishes `e` (finalized) unless an invalidation voided it; `replacing`:
  // the entry a 304 freshened. True when the store holds it now.
  bool publish(const cache::EntryRef& e, const cache::EntryRef& replacing);
  // Stores a published fill in the shared L2 store (cache.l2) when the fleet may share it.
  void share_l2(const cache::Entry& e);
  void release(bool reusable);

  Exchange& x_;
  FetchPlan& plan_;
  Worker& w_;
  const config::Config& cfg_;
  std::optional<Slot> slot_;
  std::shared_ptr<net::UpstreamConn> up_;
  cache::InvalidationLog::Ticket ticket_;  // from the moment the request is sent
  uint64_t route_generation_ = 0;          // the route's generation when the request was sent
  core::TimePoint request_time_{}, response_time_{};
  std::chrono::steady_clock::time_point sent_at_{};
  bool has_body_ = false;
  bool body_failed_ = false;  // reading the client's request body failed
  cache::EntryRef range_entry_;  // plan.range: the entry the Range is answered from
  std::string_view head_detail_;  // a HEAD's §4.3.5 verdict, the Cache-Status detail of its relay
  bool l2_candidate_ = false;  // the gate stored the response and cache.l2 is on
  bool shares_stream_ = false;  // followers were given the head: body chunks go to them as they arrive
  cache::l2::Refusal l2_refusal_ = cache::l2::Refusal::None;  // why it stays local, if it does
};

}  // namespace cachalot::proxy
