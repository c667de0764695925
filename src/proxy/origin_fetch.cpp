#include "proxy/origin_fetch.h"

#include <spdlog/spdlog.h>

#include "cache/conditional.h"
#include "cache/partition.h"
#include "cache/evaluate.h"
#include "cache/validation.h"
#include "proxy/app.h"
#include "proxy/client_connection.h"
#include "proxy/wire.h"

namespace cachalot::proxy {

using namespace std::string_view_literals;

using asio::awaitable;
using net::UpstreamError;

namespace {

metrics::UpstreamErrorKind kind_of(UpstreamError e) {
  switch (e) {
    case UpstreamError::ConnectRefused: return metrics::UpstreamErrorKind::Connect;
    case UpstreamError::ConnectTimeout: return metrics::UpstreamErrorKind::ConnectTimeout;
    case UpstreamError::Reset: return metrics::UpstreamErrorKind::Reset;
    case UpstreamError::Timeout: return metrics::UpstreamErrorKind::Timeout;
    case UpstreamError::BadResponse: return metrics::UpstreamErrorKind::BadResponse;
    case UpstreamError::Tls: return metrics::UpstreamErrorKind::Tls;
    default: return metrics::UpstreamErrorKind::Write;
  }
}

// Hit-for-miss only when the response is not shareable by nature; an error
// status says nothing about the next response.
bool not_shareable(cache::StoreReason r) {
  using R = cache::StoreReason;
  return r == R::NoStore || r == R::Private || r == R::SetCookie || r == R::VaryStar || r == R::Authorization;
}

bool is_conditional_field(std::string_view n) {
  return http::iequals(n, "if-none-match") || http::iequals(n, "if-modified-since") || http::iequals(n, "if-match") ||
         http::iequals(n, "if-unmodified-since") || http::iequals(n, "if-range");
}

}  // namespace

OriginFetch::Slot::Slot(Worker& worker) : w(worker) { ++w.fetches_in_flight; }

OriginFetch::Slot::~Slot() {
  --w.fetches_in_flight;
  while (!w.fetch_waiters.empty()) {
    auto t = w.fetch_waiters.front().lock();
    w.fetch_waiters.pop_front();
    if (t) {
      t->cancel();
      break;
    }
  }
}

OriginFetch::OriginFetch(Exchange& x, FetchPlan& plan)
    : x_(x), plan_(plan), w_(x.w_), cfg_(x.rt_->config()) {}

OriginFetch::~OriginFetch() { release(false); }

void OriginFetch::release(bool reusable) {
  if (!up_) return;
  if (!reusable) up_->close();
  w_.pool->release(std::move(up_));
  w_.metrics.upstream_connections.fetch_sub(1, std::memory_order_relaxed);
}

cache::AdmissionContext OriginFetch::admission() const {
  return x_.admission(route_generation_, request_time_, response_time_);
}

cache::AdmissionContext OriginFetch::admission_as_get(std::optional<http::RequestHead>& as_get) const {
  auto ctx = admission();
  if (x_.req_.method != http::Method::Get) {
    as_get.emplace(x_.req_);
    as_get->method = http::Method::Get;
    as_get->method_name = "GET";
    ctx.request = &*as_get;
  }
  return ctx;
}

bool OriginFetch::publish(const cache::EntryRef& e, const cache::EntryRef& replacing) {
  return x_.publish(ticket_, e, replacing) == Exchange::Published::Stored;
}

// ---------------------------------------------------------------- the request

void OriginFetch::build_head() {
  const auto& req = x_.req_;
  auto& head = x_.buffers_.request_head;  // reused across requests: no allocation in steady state
  head.clear();
  const bool pass = plan_.pass;
  std::string_view method = req.method_name.empty() ? http::to_string(req.method) : std::string_view(req.method_name);
  x_.fwd_.serialize_head(head, req, method, x_.key_, [pass](std::string_view n) {
    if (http::iequals(n, "expect") || http::iequals(n, "content-length")) return true;
    // A cache fill fetches the full response and answers the client's
    // conditionals and Range itself (RFC 9111 §3.2 shows no Range here).
    return !pass && (is_conditional_field(n) || http::iequals(n, "range"));
  });
  if (plan_.conditional && plan_.stale) {
    http::HeaderMap v;
    cache::add_validators(v, plan_.stale->origin_etag(), plan_.stale->last_modified());
    v.serialize(head);
  }
  if (x_.conn_ && pass) {
    auto& p = x_.conn_->parser();
    has_body_ = p.content_length() > 0 || p.chunked();
    if (p.chunked()) {
      head.append("Transfer-Encoding: chunked\r\n"sv);
    } else if (p.content_length() >= 0) {
      head.append("Content-Length: "sv);
      wire::append_num(head, p.content_length());
      head.append("\r\n"sv);
    }
  }
  head.append("\r\n"sv);
}

awaitable<bool> OriginFetch::take_slot() {
  const uint32_t cap = cfg_.upstream.max_concurrent_misses;
  if (cap > 0 && w_.fetches_in_flight >= cap) {
    auto timer = std::make_shared<asio::steady_timer>(w_.ioc);
    auto deadline = std::chrono::steady_clock::now() + cfg_.upstream.timeouts.first_byte;
    timer->expires_at(deadline);
    while (w_.fetches_in_flight >= cap && std::chrono::steady_clock::now() < deadline) {
      w_.fetch_waiters.push_back(timer);
      asio::error_code ec;
      co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (w_.fetches_in_flight >= cap) co_return false;
  }
  slot_.emplace(w_);
  co_return true;
}

awaitable<bool> OriginFetch::send_request_body() {
  auto& conn = *x_.conn_;
  auto& parser = conn.parser();
  const bool chunked = parser.chunked();
  const auto idle = cfg_.upstream.timeouts.idle;
  std::vector<asio::const_buffer> b;
  std::string size_line;
  for (;;) {
    // Body bytes parsed with the head are already in parser.body().
    if (!parser.body().empty()) {
      b.clear();
      std::size_t total = 0;
      for (auto s : parser.body()) total += s.size();
      if (chunked) {
        size_line.clear();
        char hex[20];
        auto r = std::to_chars(hex, hex + sizeof hex, total, 16);
        size_line.append(hex, r.ptr);
        size_line.append("\r\n"sv);
        b.push_back(asio::buffer(size_line));
      }
      for (auto s : parser.body()) b.push_back(asio::buffer(s.data(), s.size()));
      if (chunked) b.push_back(asio::buffer("\r\n", 2));
      const UpstreamError we = co_await up_->write(b, idle);
      if (we != UpstreamError::None) co_return false;
      parser.body().clear();
    }
    if (parser.message_complete()) break;
    const auto rs = co_await conn.read_body(cfg_.server.timeouts.client_body);
    if (rs != ClientConnection::ReadStatus::Ok) {
      body_failed_ = true;
      co_return false;
    }
  }
  if (chunked) {
    std::array<asio::const_buffer, 1> end{asio::buffer("0\r\n\r\n", 5)};
    const UpstreamError we = co_await up_->write(end, idle);
    if (we != UpstreamError::None) co_return false;
  }
  co_return true;
}

awaitable<UpstreamError> OriginFetch::send() {
  const auto& req = x_.req_;
  const auto& ut = cfg_.upstream.timeouts;
  auto& pool = *w_.pool;
  UpstreamError err = UpstreamError::None;
  const std::string& head = x_.buffers_.request_head;
  for (int attempt = 0; attempt < 2; ++attempt) {
    up_ = co_await pool.acquire(err, attempt == 0);
    if (!up_) break;
    w_.metrics.upstream_connections.fetch_add(1, std::memory_order_relaxed);
    w_.metrics.upstream_requests.fetch_add(1, std::memory_order_relaxed);
    up_->parser.set_expect_no_body(req.method == http::Method::Head);
    if (!ticket_) {
      // From here on, an invalidation voids what this fetch brings back.
      ticket_ = x_.app_.invalidations().enter();
      route_generation_ = x_.policy_->route ? x_.app_.route_generation(x_.policy_->name) : 0;
    }
    request_time_ = core::Clock::now();
    sent_at_ = std::chrono::steady_clock::now();
    err = co_await up_->write(std::string_view(head), ut.idle);
    if (err == UpstreamError::None && has_body_ && !co_await send_request_body())
      err = body_failed_ ? UpstreamError::None : UpstreamError::WriteFailed;
    if (body_failed_) co_return UpstreamError::WriteFailed;
    if (err == UpstreamError::None) err = co_await up_->read_head(ut.first_byte);
    while (err == UpstreamError::None && up_->parser.response().status < 200) {
      const auto& interim = up_->parser.response();
      // RFC 9110 §15.2.2: a server switches protocols only when asked; we never
      // forward Upgrade, so a 101 is a bad response, never a tunnel.
      if (interim.status == 101) {
        err = UpstreamError::BadResponse;
        break;
      }
      co_await x_.responder_.interim(interim);  // 103 Early Hints... (RFC 9110 §15.2)
      up_->parser.next_message();
      up_->parser.set_expect_no_body(req.method == http::Method::Head);
      err = co_await up_->read_head(ut.first_byte);
    }
    if (err == UpstreamError::None) co_return err;
    // RFC 9112 §9.3.1: an idempotent request on a pooled connection the origin
    // closed meanwhile is retried once on a new one, if nothing came back.
    const bool idempotent =
        http::is_safe(req.method) || req.method == http::Method::Put || req.method == http::Method::Delete;
    const bool retry = up_->reused && !has_body_ && idempotent &&
                       (err == UpstreamError::Reset || err == UpstreamError::WriteFailed) && up_->nothing_received();
    release(false);
    if (!retry) break;
  }
  co_return err;
}

// ---------------------------------------------------------------- outcomes

bool OriginFetch::stale_usable_on_error(core::TimePoint now) const {
  return plan_.stale && !plan_.pass &&
         cache::can_serve_stale_on_error(plan_.stale->freshness(), x_.rcc_, now,
                                         std::chrono::duration_cast<core::Seconds>(cfg_.cache.stale_if_error));
}

bool OriginFetch::stale_usable_when_disconnected(core::TimePoint now) const {
  return plan_.stale && !plan_.pass &&
         cache::can_serve_stale_when_disconnected(plan_.stale->freshness(), x_.rcc_, now, x_.rt_->stale_on_disconnect());
}

awaitable<void> OriginFetch::serve_stale_on_error(int origin_status, std::string_view detail, metrics::Result result) {
  auto now = core::Clock::now();
  x_.out_.cache_status = "fwd=stale; fwd-status=" + std::to_string(origin_status) +
                         "; ttl=" + std::to_string(plan_.stale->freshness().ttl(now)) + "; detail=" + std::string(detail);
  co_await x_.responder_.entry(*plan_.stale, result);
}

awaitable<void> OriginFetch::failed(UpstreamError err) {
  w_.metrics.upstream_error(kind_of(err));
  release(false);
  plan_.permit.finish(cache::Fill::State::Failed);
  const auto now = core::Clock::now();
  std::string stale_detail;
  metrics::Result result = metrics::Result::StaleError;
  if (stale_usable_on_error(now)) {
    // RFC 5861 §4: failing to reach the origin at all is an error too.
    stale_detail = "stale-if-error-" + std::string(net::to_string(err));
  } else if (net::is_disconnection(err) && stale_usable_when_disconnected(now)) {
    // RFC 9111 §4.2.4: a disconnected cache may serve stale (cache.stale_on_disconnect).
    stale_detail = "stale-on-disconnect-" + std::string(net::to_string(err));
    result = metrics::Result::StaleDisconnect;
  }
  spdlog::warn("upstream {} for {} {}: {}{}{}", cfg_.upstream.url.text, http::to_string(x_.req_.method), x_.req_.target,
               net::to_string(err), stale_detail.empty() ? "" : "; served stale: ", stale_detail);
  if (!stale_detail.empty()) {
    co_await serve_stale_on_error(0, stale_detail, result);
    co_return;
  }
  x_.out_.cache_status += "; detail=upstream-" + std::string(net::to_string(err));
  co_await x_.responder_.error(net::is_timeout(err) ? 504 : 502, "upstream " + std::string(net::to_string(err)), false);
}

awaitable<void> OriginFetch::not_modified() {
  // The stored response is a GET's; a HEAD revalidated it (RFC 9111 §4.3.5),
  // so the gate judges the merged response as the GET it updates.
  std::optional<http::RequestHead> as_get;
  auto f = cache::freshen(admission_as_get(as_get), *plan_.stale, up_->parser.response());
  release(up_->reusable());  // the 304 is not used past this point
  w_.metrics.upstream_duration.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at_).count());
  auto& out = x_.out_;
  const http::HeaderMap* client = f.client_fields.empty() ? nullptr : &f.client_fields;
  if (f.entry) {
    publish(f.entry, plan_.stale);
    w_.metrics.store_decision(metrics::StoreDecisionExtra::Revalidated);
    plan_.permit.finish(cache::Fill::State::Done, f.entry);
    out.cache_status = "fwd=stale; fwd-status=304; ttl=" + std::to_string(f.entry->freshness().ttl(response_time_));
    co_await x_.responder_.entry(*f.entry, metrics::Result::Revalidated, client);
    co_return;
  }
  // The 304 made the response unstorable (private, no-store...): it is no longer shared.
  x_.app_.store().erase_entry(plan_.stale);
  w_.metrics.store_decision(metrics::StoreDecisionExtra::Unshared);
  plan_.permit.finish(cache::Fill::State::Uncacheable);
  cache::EntryDraft d = cache::draft_of(*plan_.stale);
  d.headers = std::move(f.response_fields);
  d.withheld = x_.rt_->drop_targeted_cache_control();  // RFC 9213 §3, as for any response
  cache::EntryRef served = cache::build_entry(d);
  out.cache_status = "fwd=stale; fwd-status=304; detail=" + std::string(cache::to_string(f.verdict.reason));
  co_await x_.responder_.entry(*served, metrics::Result::Revalidated, client);
}

awaitable<void> OriginFetch::head_response() {
  // RFC 9111 §4.3.5: a HEAD response that reached us with a stored GET
  // response for the same request (the variant it selected, §4.1) says
  // something about that stored response.
  const auto& resp = up_->parser.response();
  const cache::EntryRef stored = plan_.stale;
  const cache::HeadMerge m = cache::merge_head(stored->fields(), stored->body().size(), resp);
  auto& out = x_.out_;
  switch (m.verdict) {
    case cache::HeadUpdate::Update: {
      // "update the stored response as described in Section 4.3.4": the HEAD's
      // fields are merged as a 304's (Set-Cookie to this client only) and the
      // result passes the gate as the GET it is.
      std::optional<http::RequestHead> as_get;
      auto f = cache::freshen(admission_as_get(as_get), *stored, resp);
      if (!f.entry) {
        // Its directives now forbid sharing (private, no-store...): as for a 304.
        x_.app_.store().erase_entry(stored);
        w_.metrics.store_decision(metrics::StoreDecisionExtra::Unshared);
        head_detail_ = "head-unshared";
        break;
      }
      release(up_->reusable());  // a HEAD response has no body: nothing more to read
      w_.metrics.upstream_duration.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at_).count());
      if (publish(f.entry, stored)) w_.metrics.store_decision(metrics::StoreDecisionExtra::HeadUpdated);
      out.cache_status = "fwd=stale; fwd-status=" + std::to_string(resp.status) +
                         "; ttl=" + std::to_string(f.entry->freshness().ttl(response_time_)) + "; detail=head-update";
      const http::HeaderMap* client = f.client_fields.empty() ? nullptr : &f.client_fields;
      co_await x_.responder_.entry(*f.entry, metrics::Result::Revalidated, client);
      co_return;
    }
    case cache::HeadUpdate::MarkStale:
      // "otherwise, the cache SHOULD consider the stored response to be stale":
      // the next GET revalidates it (a soft purge's stale copy, in its place).
      if (x_.app_.store().replace_if_same(stored, cache::mark_stale(*stored, response_time_)))
        w_.metrics.store_decision(metrics::StoreDecisionExtra::HeadMarkedStale);
      head_detail_ = "head-mark-stale";
      break;
    case cache::HeadUpdate::Ignore:
      break;
  }
  co_await relay();
}

awaitable<void> OriginFetch::run() {
  w_.sync_pool(x_.rt_->config_ptr());
  build_head();
  const bool expect_continue = [&] {
    auto ex = x_.req_.headers.get("expect");
    return ex && http::iequals(*ex, "100-continue");
  }();
  // RFC 9110 §10.1.1: we read the body ourselves, so tell the client to send it.
  if (expect_continue && has_body_) co_await x_.responder_.continue_100();
  if (!co_await take_slot()) {
    plan_.permit.finish(cache::Fill::State::Failed);
    x_.out_.cache_status += "; detail=origin-busy";
    co_await x_.responder_.error(503, "origin-busy", false);
    co_return;
  }
  UpstreamError err = co_await send();
  if (body_failed_) {
    release(false);
    plan_.permit.finish(cache::Fill::State::Failed);
    auto pe = x_.conn_->parser().error();
    if (pe == http::ParseError::BodyTooLarge)
      co_await x_.responder_.error(413, "body-too-large", true);
    else if (pe != http::ParseError::None)
      co_await x_.responder_.error(400, http::to_string(pe), true);
    else
      x_.out_.close = true;  // the client went away mid-body
    co_return;
  }
  if (err != UpstreamError::None) {
    co_await failed(err);
    co_return;
  }
  const auto& resp = up_->parser.response();
  response_time_ = core::Clock::now();
  if (plan_.conditional && plan_.stale && resp.status == 304) {
    if (!cache::response_304_matches(plan_.stale->fields(), resp.headers)) {
      // RFC 9111 §4.3.4: a 304 naming another validator says nothing about our
      // entry: fetch the full response (the entry stays a stale-if-error fallback).
      release(up_->reusable());
      slot_.reset();
      plan_.conditional = false;
      co_await OriginFetch(x_, plan_).run();
      co_return;
    }
    co_await not_modified();
    co_return;
  }
  if (!plan_.pass && !plan_.conditional && resp.status == 304) {
    // A 304 we did not ask for (our request carried no validators) is an origin fault.
    release(false);
    plan_.permit.finish(cache::Fill::State::Failed);
    w_.metrics.upstream_error(metrics::UpstreamErrorKind::BadResponse);
    if (stale_usable_on_error(response_time_)) {
      co_await serve_stale_on_error(304, "stale-if-error-unsolicited-304");
      co_return;
    }
    x_.out_.cache_status += "; fwd-status=304; detail=unsolicited-304";
    co_await x_.responder_.error(502, "upstream sent 304 to an unconditional request", false);
    co_return;
  }
  // RFC 5861 §4: 500, 502, 503 and 504 are errors a stale entry may stand in for.
  if (cache::is_stale_if_error_status(resp.status) && stale_usable_on_error(response_time_)) {
    int status = resp.status;
    release(false);
    plan_.permit.finish(cache::Fill::State::Failed);
    co_await serve_stale_on_error(status, "stale-if-error");
    co_return;
  }
  if (x_.req_.method == http::Method::Head && plan_.stale && !plan_.pass) {
    co_await head_response();
    co_return;
  }
  co_await relay();
}

std::unique_ptr<cache::EntryDraft> OriginFetch::gate(const http::ResponseHead& resp) {
  auto& out = x_.out_;
  if (plan_.pass) {
    out.cache_status += "; fwd-status=" + std::to_string(resp.status);
    return nullptr;
  }
  const int64_t clen = up_->parser.content_length();
  auto admitted = cache::admit(admission(), resp);
  cache::StoreReason reason = admitted.verdict.reason;
  bool store = admitted.verdict.store && plan_.may_store;
  if (store && clen > static_cast<int64_t>(x_.rt_->max_object_size())) {
    store = false;
    reason = cache::StoreReason::TooLarge;
  }
  if (!plan_.may_store && admitted.verdict.store) reason = cache::StoreReason::RequestNoStore;
  if (!store) {
    w_.metrics.store_decision(reason);
    plan_.permit.finish(cache::Fill::State::Uncacheable);
    plan_.l2_lead.reset();  // nothing for the fleet: its waiting nodes go to the origin now
    if (not_shareable(admitted.verdict.reason) && plan_.may_store)
      x_.app_.coalescer().mark_hit_for_miss(x_.key_, response_time_ + cfg_.cache.coalesce.hit_for_miss);
    // A HEAD names what its response did to the stored GET response instead (§4.3.5).
    out.cache_status += "; fwd-status=" + std::to_string(resp.status) + "; detail=" +
                        std::string(head_detail_.empty() ? cache::to_string(reason) : head_detail_);
    return nullptr;
  }
  auto entry = std::move(admitted.entry);
  if (clen > 0) entry->body.reserve(static_cast<std::size_t>(clen));
  if (w_.l2 && cfg_.cache.l2) {
    l2_candidate_ = true;
    l2_refusal_ = cache::l2::refusal(x_.req_, resp, entry->cc, admitted.verdict, x_.key_, !x_.fwd_.partition().empty());
  }
  out.cache_status += "; fwd-status=" + std::to_string(resp.status) + "; stored; ttl=" +
                      std::to_string(entry->freshness.ttl(response_time_));
  // RFC 9211 §2.8: one detail per entry; a revalidation's detail comes first.
  if (!x_.fwd_.partition().empty() && out.cache_status.find("; detail=") == std::string::npos)
    out.cache_status += "; detail=partition";
  if (entry->synthesize_etag && out.cache_status.find("; detail=") == std::string::npos)
    out.cache_status += "; detail=etag-synthesized";
  // Followers get the head (and then the body as it arrives) only when the
  // body is still to come. A response that arrived whole with its head (most
  // API answers) is stored before the next read: followers are answered from
  // the stored entry at once (Fill::State::Done), and the leader spends
  // nothing on a stream that nobody could use.
  shares_stream_ = plan_.permit && !up_->parser.message_complete();
  if (shares_stream_) {
    // Followers get the head as it will be stored, framed for them.
    auto fh = std::make_shared<cache::Fill::Head>();
    wire::append_status_line(fh->head_block, resp.status, resp.reason);
    // As the entry's own head block: without the withheld fields (RFC 9213 §3).
    for (auto f : entry->headers) {
      if (cache::withheld_downstream(f.name, entry->withheld)) continue;
      http::append_field(fh->head_block, f.name, f.value);
    }
    fh->head_block.append("Via: 1.1 cachalot\r\n"sv);
    if (clen >= 0) {
      fh->head_block.append("Content-Length: "sv);
      wire::append_num(fh->head_block, clen);
      fh->head_block.append("\r\n"sv);
    }
    fh->content_length = clen;
    fh->proto = cache::build_entry(*entry, false);  // the body is still empty (and so has no ETag yet)
    plan_.permit.set_head(std::move(fh));
  }
  return entry;
}

void OriginFetch::complete_entry(std::unique_ptr<cache::EntryDraft>& draft) {
  // Published before the client's last byte: a client that has the whole
  // response finds it stored (and a purge it sends next finds it too).
  cache::EntryRef entry = cache::build_entry(*draft);
  draft.reset();
  if (plan_.range) range_entry_ = entry;  // the Range is answered from it (relay)
  if (publish(entry, nullptr)) {
    w_.metrics.store_decision(cache::StoreReason::Stored);
    share_l2(*entry);
  }
  plan_.permit.finish(cache::Fill::State::Done, entry);
}

void OriginFetch::share_l2(const cache::Entry& e) {
  if (!l2_candidate_) return;
  const config::L2Config& l2 = *cfg_.cache.l2;
  auto& m = x_.app_.metrics().l2();
  cache::l2::Refusal refusal = l2_refusal_;
  if (refusal == cache::l2::Refusal::None) refusal = cache::l2::refusal_for_size(e.body().size(), l2.max_object_size);
  if (refusal != cache::l2::Refusal::None) {
    metrics::L2Metrics::inc(m.skipped[static_cast<std::size_t>(refusal)]);
    plan_.l2_lead.reset();  // the fleet's waiting nodes go to the origin now
    return;
  }
  const auto now = core::Clock::now();
  const int64_t ttl = cache::l2::ttl_ms(e.freshness(), now);
  if (ttl <= 0) {
    plan_.l2_lead.reset();  // nothing left to share
    return;
  }
  // The fill time Redis records is its TIME minus this: when the origin request was sent, and the margin earlier.
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent_at_) +
                   l2.fill_margin;
  // Storing releases the fleet's lock (when this fill holds it) and announces the fill.
  std::string token = plan_.l2_lead ? plan_.l2_lead->take() : std::string();
  w_.l2->store(std::string(e.primary_key()), cache::l2::encode_record(e, now), std::string(e.tag_list()), age.count(),
               ttl, std::move(token));
}

awaitable<OriginFetch::Pumped> OriginFetch::pump(std::unique_ptr<cache::EntryDraft>& entry, bool to_client) {
  auto& responder = x_.responder_;
  const uint64_t max_object = x_.rt_->max_object_size();
  Pumped r;
  r.to_client = to_client;
  for (;;) {
    r.err = co_await up_->read_body(cfg_.upstream.timeouts.idle);
    if (r.err != UpstreamError::None) co_return r;
    auto& spans = up_->parser.body();
    std::size_t total = 0;
    for (auto s : spans) total += s.size();
    const bool last = up_->parser.message_complete();
    if (total > 0) {
      w_.metrics.bytes_from_origin.fetch_add(total, std::memory_order_relaxed);
      if (entry && entry->body.size() + total > max_object) {
        // Too large to keep: stream the rest without storing.
        entry.reset();
        w_.metrics.store_decision(cache::StoreReason::TooLarge);
        plan_.permit.finish(cache::Fill::State::Uncacheable);
      }
      if (entry) {
        for (auto s : spans) entry->body.append(s);
        if (shares_stream_) {
          auto chunk = std::make_shared<std::string>();
          chunk->reserve(total);
          for (auto s : spans) chunk->append(s);
          plan_.permit.append(std::move(chunk));
        }
      }
    }
    if (last) {
      r.complete = true;
      if (entry) complete_entry(entry);
    }
    if (r.to_client && (total > 0 || last) && !co_await responder.stream_body(spans, last)) r.to_client = false;
    if (last) co_return r;
    // A client that left only matters when nobody else needs this body.
    if (!r.to_client && !entry && x_.conn_) co_return r;
  }
}

awaitable<void> OriginFetch::relay() {
  const auto& req = x_.req_;
  const auto& resp = up_->parser.response();
  auto& out = x_.out_;
  auto& responder = x_.responder_;

  // An unsafe method's success invalidates what it changed (RFC 9111 §4.4),
  // before its response reaches the client: the client's next read misses.
  if (plan_.pass) x_.app_.purger().after_unsafe(req, resp.status, resp.headers, x_.fwd_.authority(), *x_.rt_);
  std::unique_ptr<cache::EntryDraft> entry = gate(resp);
  // A stored status other than 200 ignores Range (§14.2): it is relayed (and
  // stored, if it fits) as any fill, streamed, whatever its length.
  if (plan_.range && (resp.status == 200 || !entry)) {
    // A Range miss is answered from the stored entry: the whole body must
    // come first, so it must be stored and of a known, small enough length.
    const int64_t clen = up_->parser.content_length();
    const uint64_t limit = std::min<uint64_t>(cfg_.cache.range_fill_max_size, x_.rt_->max_object_size());
    if (!entry || clen < 0 || static_cast<uint64_t>(clen) > limit) {
      // Nothing reached the client yet: the Range goes to the origin as sent
      // (Exchange::range_pass). This response's body is not read.
      if (entry) w_.metrics.store_decision(cache::StoreReason::TooLarge);
      release(false);
      plan_.permit.finish(cache::Fill::State::Uncacheable);
      plan_.range_declined = true;
      const std::size_t fwd = out.cache_status.find("; fwd-status=");
      if (fwd != std::string::npos) out.cache_status.resize(fwd);
      co_return;
    }
    Pumped pumped{true, UpstreamError::None, false};
    if (!wire::status_has_no_body(resp.status)) pumped = co_await pump(entry, false);
    else complete_entry(entry);
    w_.metrics.upstream_duration.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at_).count());
    if (!pumped.complete) {
      release(false);
      plan_.permit.finish(cache::Fill::State::Failed);
      w_.metrics.store_decision(cache::StoreReason::Incomplete);
      w_.metrics.upstream_error(kind_of(pumped.err));
      out.cache_status += "; detail=upstream-" + std::string(net::to_string(pumped.err));
      co_await responder.error(net::is_timeout(pumped.err) ? 504 : 502, "upstream " + std::string(net::to_string(pumped.err)),
                               false);
      co_return;
    }
    release(up_->reusable());
    // pump() published the entry (complete_entry): answer from it.
    if (range_entry_) co_await responder.entry(*range_entry_, metrics::Result::Miss);
    co_return;
  }
  out.status = resp.status;

  const bool no_body = wire::status_has_no_body(resp.status) || req.method == http::Method::Head;
  bool chunked = false;
  if (!no_body && up_->parser.content_length() < 0) {
    if (req.version_minor >= 1)
      chunked = true;
    else
      out.close = true;  // HTTP/1.0: the end of the body is the end of the connection
  }
  const bool to_client = responder.connected();
  if (to_client) {
    // A client conditional we stripped is answered from the full response (RFC 9110 §13.2.2).
    bool client_304 = false;
    if (!plan_.pass && resp.status == 200) {
      auto etag = resp.headers.get("etag");
      auto lm = resp.headers.get("last-modified");
      client_304 = cache::evaluate_conditional(req, etag ? *etag : std::string_view{}, lm ? *lm : std::string_view{},
                                               std::nullopt) == cache::ConditionalResult::NotModified;
    }
    responder.stream_head(resp, chunked, client_304);
  }

  // The body: origin -> entry, followers and client, in lockstep (pull-based back-pressure).
  Pumped pumped{no_body, UpstreamError::None, to_client};
  if (!no_body) pumped = co_await pump(entry, to_client);
  w_.metrics.upstream_duration.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at_).count());
  if (!pumped.complete) {
    // Cut short: nothing is stored, the client's response is truncated (connection closed).
    const UpstreamError err = pumped.err;
    release(false);
    plan_.permit.finish(cache::Fill::State::Failed);
    if (entry) w_.metrics.store_decision(cache::StoreReason::Incomplete);
    if (err != UpstreamError::None) {
      w_.metrics.upstream_error(kind_of(err));
      out.cache_status += "; detail=upstream-" + std::string(net::to_string(err));
      co_await responder.stream_abort(net::is_timeout(err) ? 504 : 502, "upstream " + std::string(net::to_string(err)));
    }
    out.close = true;
    co_return;
  }
  if (no_body && entry) complete_entry(entry);
  plan_.permit.finish(cache::Fill::State::Uncacheable);  // no effect when already finished
  if (pumped.to_client) co_await responder.stream_end();
  release(up_->reusable());  // last: `resp` lives in the connection
}

}  // namespace cachalot::proxy
