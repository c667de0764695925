#include "proxy/exchange.h"

#include <random>

#include <spdlog/spdlog.h>

#include "auth/jwt.h"
#include "cache/evaluate.h"
#include "cache/key.h"
#include "cache/l2_record.h"
#include "cache/partition.h"
#include "cache/storable.h"
#include "cache/vary.h"
#include "core/json.h"
#include "http/range.h"
#include "proxy/app.h"
#include "proxy/client_connection.h"
#include "proxy/origin_fetch.h"
#include "proxy/refresher.h"
#include "proxy/wire.h"

namespace cachalot::proxy {

using asio::awaitable;

Exchange::Exchange(Worker& w, std::shared_ptr<const Runtime> rt, http::RequestHead& req, ClientConnection* conn,
                   ForwardedRequest& fwd, Outcome& out, ResponseBuffers& buffers)
    : w_(w),
      app_(w.app),
      rt_(std::move(rt)),
      req_(req),
      conn_(conn),
      out_(out),
      buffers_(buffers),
      responder_(conn, req, out, buffers, rt_->config().server.timeouts.send, w.app.draining(),
                 &rt_->drop_targeted_cache_control()),
      fwd_(fwd),
      key_(fwd.key()) {}

Exchange::Exchange(Worker& w, std::shared_ptr<const Runtime> rt, http::RequestHead& req, ForwardedRequest& fwd,
                   Outcome& out, ResponseBuffers& buffers)
    : w_(w),
      app_(w.app),
      rt_(std::move(rt)),
      req_(req),
      conn_(nullptr),
      out_(out),
      buffers_(buffers),
      responder_(nullptr, req, out, buffers, rt_->config().server.timeouts.send, false,
                 &rt_->drop_targeted_cache_control()),
      fwd_(fwd),
      policy_(&rt_->policy_for(fwd.path())),
      key_(fwd.key()) {}

awaitable<void> Exchange::run() {
  const auto& cfg = rt_->config();
  ForwardOptions opts;
  opts.fallback_host = cfg.upstream.url.host;
  opts.trusted_proxies = &rt_->trusted_proxies();
  opts.drop_fields = &rt_->drop_request_fields();
  opts.accept_encoding = &rt_->accept_encoding();
  if (auto e = fwd_.prepare(req_, conn_->scheme(), conn_->peer(), opts); e != http::TargetError::None)
    return bad_target(e);
  policy_ = &rt_->policy_for(fwd_.path());
  out_.route_id = policy_->metric_id;
  fwd_.finish_key(req_, policy_->key);
  if (req_.method == http::Method::Purge) return purge_method();
  auto& parser = conn_->parser();
  // RFC 9110 §14.2: Range is defined for GET only (a HEAD's is ignored); a
  // bytes range is answered from the cache, another unit goes to the origin.
  if (req_.method == http::Method::Get) {
    if (auto r = req_.headers.get("range")) {
      range_ = true;
      // Range is no list (RFC 9110 §14.2): two field lines are the origin's to judge.
      if (!http::is_bytes_range(*r) || req_.headers.count("range") != 1) foreign_range_ = true;
    }
  }
  responder_.set_range(range_);
  const bool cacheable = (req_.method == http::Method::Get || req_.method == http::Method::Head) && !policy_->bypass &&
                         !foreign_range_ && parser.content_length() <= 0 && !parser.chunked() && !fwd_.asterisk();
  if (cacheable && policy_->partition) {
    // A partitioned route serves and stores only what the request's own
    // verified claim keys; without one, the request goes to the origin as is.
    if (auto rejected = partition_of_request(); !rejected.empty()) return partition_pass(rejected);
  }
  return cacheable ? this->cacheable() : pass();
}

std::string_view Exchange::partition_of_request() {
  using metrics::PartitionOutcome;
  const auto& jwt = *policy_->partition;
  std::optional<std::string_view> token;
  if (req_.headers.count("authorization") == 1) token = auth::bearer_token(*req_.headers.get("authorization"));
  if (!token && !req_.headers.has("authorization")) {
    w_.metrics.partition(out_.route_id, PartitionOutcome::NoToken);
    return "partition-no-token";
  }
  auth::JwtResult r;
  if (token) r = w_.tokens.verify(*token, jwt, core::to_unix_seconds(core::Clock::now()));
  if (!token || !r.ok()) {
    // A second Authorization line, another scheme, or a token that does not verify.
    w_.metrics.partition(out_.route_id, PartitionOutcome::InvalidToken);
    return "partition-invalid-token";
  }
  // "<namespace>:<claim>" (auth::JwtPolicy::ns): the same claim from another
  // identity provider, key or route is another partition.
  const std::string partition = jwt.ns + ":" + r.claim;
  fwd_.set_partition(partition);
  // Vary: Authorization keys by the claim: a refreshed token keeps the user's entries.
  partition_fields_ = req_.headers;
  partition_fields_.remove("authorization");
  partition_fields_.add("authorization", cache::partition_tag(partition));
  return {};
}

const http::HeaderMap& Exchange::variant_fields() {
  if (fwd_.partition().empty()) return req_.headers;
  if (partition_fields_.empty()) {
    // A background refresh: its request was verified when it found the entry stale.
    partition_fields_ = req_.headers;
    partition_fields_.remove("authorization");
    partition_fields_.add("authorization", cache::partition_tag(fwd_.partition()));
  }
  return partition_fields_;
}

awaitable<void> Exchange::partition_pass(std::string_view detail) {
  out_.result = metrics::Result::Pass;
  out_.cache_status = "fwd=bypass; detail=" + std::string(detail);
  FetchPlan plan;
  plan.pass = true;
  co_await OriginFetch(*this, plan).run();
}

awaitable<void> Exchange::bad_target(http::TargetError e) {
  // RFC 9112 §3.2, RFC 9110 §4.2.4: a target or Host we would have to guess about.
  w_.metrics.bad_requests.fetch_add(1, std::memory_order_relaxed);
  out_.cache_status = "fwd=bypass; detail=bad-" + std::string(http::to_string(e));
  co_await responder_.error(400, e == http::TargetError::Host ? "invalid Host" : "invalid request target", true);
}

awaitable<void> Exchange::pass() {
  out_.result = metrics::Result::Pass;
  if (policy_->bypass)
    out_.cache_status = "fwd=bypass; detail=route";
  else if (foreign_range_)
    out_.cache_status = "fwd=bypass; detail=range-unit";
  else if (range_)
    out_.cache_status = "fwd=bypass; detail=range-not-stored";
  else
    out_.cache_status = "fwd=method";
  FetchPlan plan;
  plan.pass = true;
  co_await OriginFetch(*this, plan).run();
}

// ---------------------------------------------------------------- lookup

cache::EntryRef Exchange::lookup(bool& vary_miss) {
  // Variants of one URL nearly always share their Vary list: compute this
  // request's variant key once per distinct list, not once per variant.
  std::string_view keyed_names;
  bool keyed = false;
  std::string request_variant;
  const http::HeaderMap& fields = variant_fields();
  return app_.store().find(key_, [&](const cache::Entry& e) {
    if (e.vary().empty()) return true;
    if (!keyed || keyed_names != e.vary()) {
      request_variant = cache::variant_key_joined(e.vary(), fields);
      keyed_names = e.vary();
      keyed = true;
    }
    bool ok = request_variant == e.variant_key();
    if (!ok) vary_miss = true;
    return ok;
  });
}

bool Exchange::still_valid(const cache::EntryRef& e, core::TimePoint now) {
  uint64_t generation = policy_->route ? app_.route_generation(policy_->name) : 0;
  if (e->route_generation_is(generation) && now < e->drop_after()) return true;
  app_.store().erase_entry(e);
  return false;
}

void Exchange::maybe_refresh_ahead(const cache::EntryRef& e, core::TimePoint now) {
  if (!policy_->refresh_ahead) return;
  double p = cache::refresh_ahead_probability(e->freshness(), now);
  if (p <= 0) return;
  thread_local std::minstd_rand rng{std::random_device{}()};
  if (std::uniform_real_distribution<double>(0, 1)(rng) < p) start_refresh(e);
}

void Exchange::start_refresh(const cache::EntryRef& e) { Refresher::start(w_, rt_, req_, fwd_, e); }

awaitable<void> Exchange::cacheable() {
  auto now = core::Clock::now();
  rcc_ = cache::parse_request_cache_control(req_);
  const bool authorized = req_.headers.has("authorization");

  bool vary_miss = false;
  cache::EntryRef entry = lookup(vary_miss);
  if (entry && !still_valid(entry, now)) entry.reset();
  // RFC 9111 §3.5: a response stored for another request may answer an authorized one only if it says so.
  // A partition's entries were stored for this claim's requests only (the key holds it).
  const bool partitioned = !fwd_.partition().empty();
  if (entry && authorized && !partitioned && !entry->may_serve_to_authorized()) entry.reset();

  std::string_view miss_reason = vary_miss && !entry ? "vary-miss" : "uri-miss";
  std::string_view detail;
  if (entry) {
    const cache::Freshness fresh = entry->freshness();
    auto ev = cache::evaluate(fresh, rcc_, now);
    switch (ev.decision) {
      case cache::Decision::Hit: {
        out_.cache_status.assign(std::string_view("hit; ttl="));
        wire::append_num(out_.cache_status, fresh.ttl(now));
        if (partitioned) {
          out_.cache_status += "; detail=partition";
          w_.metrics.partition(out_.route_id, metrics::PartitionOutcome::Hit);
        }
        maybe_refresh_ahead(entry, now);
        co_await responder_.entry(*entry, metrics::Result::Hit);
        co_return;
      }
      case cache::Decision::HitStale: {
        out_.cache_status = "hit; ttl=" + std::to_string(fresh.ttl(now)) + "; detail=" +
                            std::string(cache::to_string(ev.reason));
        if (ev.reason == cache::LookupReason::StaleWhileRevalidate) start_refresh(entry);
        if (partitioned) w_.metrics.partition(out_.route_id, metrics::PartitionOutcome::Hit);
        co_await responder_.entry(*entry, metrics::Result::Stale);
        co_return;
      }
      case cache::Decision::Revalidate:
      case cache::Decision::Miss:
        miss_reason = cache::fwd_value(ev.reason);
        detail = cache::to_string(ev.reason);
        break;
    }
  }
  if (rcc_.only_if_cached) {
    // RFC 9111 §5.2.1.7
    out_.cache_status = "fwd=miss; detail=only-if-cached";
    co_await responder_.error(504, "only-if-cached", false);
    co_return;
  }

  FetchPlan plan;
  plan.may_store = !rcc_.no_store && req_.method == http::Method::Get;
  plan.stale = entry;
  plan.conditional = entry && (!entry->origin_etag().empty() || !entry->last_modified().empty());
  out_.cache_status = "fwd=" + std::string(miss_reason);
  if (!detail.empty() && detail != miss_reason) out_.cache_status += "; detail=" + std::string(detail);
  out_.result = metrics::Result::Miss;
  const auto& cc = rt_->config().cache.coalesce;
  // A Range miss fetches the whole response (no Range forwarded), stores it
  // and answers the range from the entry; when it is not stored (too large,
  // unknown length, not storable) the fetch is dropped before any byte
  // reached the client and the Range goes to the origin as sent.
  // A request that forbids storing (no-store) cannot be filled: its Range goes
  // to the origin, as the client sent it.
  plan.range = range_ && plan.may_store;
  if (range_ && !plan.may_store) {
    co_await range_pass();
  } else if (plan.range) {
    co_await OriginFetch(*this, plan).run();
    if (plan.range_declined) co_await range_pass();
  } else if (cc.enabled && !authorized && plan.may_store) {
    co_await fetch_coalesced(plan);
  } else {
    co_await fill(plan);
  }
}

// ---------------------------------------------------------------- publishing

cache::AdmissionContext Exchange::admission(uint64_t route_generation, core::TimePoint request_time,
                                            core::TimePoint response_time) {
  cache::AdmissionContext c;
  c.request = &req_;
  c.request_cc = &rcc_;
  c.primary_key = key_;
  c.storable = &policy_->storable;
  c.freshness = &policy_->freshness;
  c.tag_fields = &rt_->config().cache.tag_headers;
  c.targeted = &rt_->targeted_cache_control();       // RFC 9213 §2.2
  c.withheld = &rt_->drop_targeted_cache_control();  // RFC 9213 §3
  c.route = policy_->name;
  c.route_generation = route_generation;
  c.synthesize_etag = policy_->synthesize_etag;
  c.partitioned = !fwd_.partition().empty();  // the key carries the verified claim
  c.variant_fields = &variant_fields();
  c.request_time = request_time;
  c.response_time = response_time;
  return c;
}

Exchange::Published Exchange::publish(const cache::InvalidationLog::Ticket& ticket, const cache::EntryRef& e,
                                      const cache::EntryRef& replacing) {
  auto& store = app_.store();
  auto now = core::Clock::now();
  const std::string& partition = fwd_.partition();
  const uint64_t partition_budget = policy_->partition_max_bytes;
  if (!partition.empty() && !cache::fits_partition(*e, partition_budget)) {
    // Larger than the whole partition: storing it would evict all of the user's other entries and still not fit.
    w_.metrics.store_decision(cache::StoreReason::TooLarge);
    return Published::NoRoom;
  }
  bool stored = false;
  auto verdict = app_.invalidations().publish(ticket, *e, [&](cache::InvalidationLog::Verdict v) {
    // A soft purge issued while this fetch was in flight: publish it already stale.
    cache::EntryRef p = v == cache::InvalidationLog::Verdict::Stale ? cache::mark_stale(*e, now) : e;
    if (replacing && store.replace_if_same(replacing, p)) {
      stored = true;
      return;
    }
    auto pr = store.publish(p);
    w_.metrics.evicted(metrics::EvictionReason::Memory, pr.evicted.count);
    w_.metrics.evicted(metrics::EvictionReason::VariantCap, pr.variant_cap.count);
    w_.metrics.evicted(metrics::EvictionReason::VaryChanged, pr.vary_changed.count);
    stored = pr.stored();
  });
  if (verdict == cache::InvalidationLog::Verdict::Drop) {
    w_.metrics.store_decision(metrics::StoreDecisionExtra::Invalidated);
    return Published::Dropped;
  }
  if (!stored) {
    w_.metrics.store_decision(cache::StoreReason::TooLarge);
    return Published::NoRoom;
  }
  app_.note_host(fwd_.authority());
  if (!partition.empty())
    w_.metrics.evicted(metrics::EvictionReason::Partition,
                       app_.enforce_partition_budget(partition, partition_budget, e.get()));
  return Published::Stored;
}

// ---------------------------------------------------------------- the shared L2 store

awaitable<void> Exchange::fill(FetchPlan& plan) {
  const bool served = co_await from_l2(plan);
  if (served) co_return;
  co_await OriginFetch(*this, plan).run();
}

awaitable<bool> Exchange::from_l2(FetchPlan& plan) {
  L2Tier* l2 = w_.l2;
  const auto& l2cfg = rt_->config().cache.l2;
  // Only what the fleet may share is ever in L2: no partition, no
  // Authorization (RFC 9111 §3.5), no Range fill, and only when this
  // request could use a stored response at all. A stale local entry is
  // revalidated with the origin instead.
  if (!l2 || !l2cfg || plan.stale || !plan.may_store || plan.range || req_.method != http::Method::Get ||
      req_.headers.has("authorization") || !fwd_.partition().empty() ||
      cache::key_path(key_).size() > cache::l2::kMaxPathBytes)
    co_return false;
  auto& m = app_.metrics().l2();
  // Fleet-wide coalescing: the first lookup of a cold key takes its lock (it
  // fills for the fleet); one that finds the lock held waits for the fill
  // announcement, up to coalesce_wait, then looks again without locking.
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(l2cfg->coalesce_wait);
  bool waited = false;
  cache::InvalidationLog::Ticket ticket;
  uint64_t generation = 0;
  L2Reply reply;
  for (;;) {
    // From here on an invalidation voids what the lookup brings back, as for an origin fetch.
    ticket = app_.invalidations().enter();
    generation = policy_->route ? app_.route_generation(policy_->name) : 0;
    // A local invalidation whose markers Redis does not have yet may match:
    // this lookup could find the record it voids (after the ticket: purger.h).
    if (!app_.purger().l2_may_look_up(key_)) {
      m.error(metrics::L2Error::Pending);
      co_return false;
    }
    L2Lookup q;
    q.primary_key = key_;
    q.fields = cache::l2::lookup_fields(key_, policy_->name);
    if (wait.count() > 0 && !waited) {
      q.lock_ms = wait.count();
      q.lock_token = l2->new_token();
    }
    const std::string token = q.lock_token;
    const auto sent = std::chrono::steady_clock::now();
    reply = co_await async_l2_lookup(*l2, std::move(q), asio::use_awaitable);
    if (reply.status == L2Reply::Status::Error) {
      m.error(reply.error);
      co_return false;
    }
    if (reply.status == L2Reply::Status::Found) break;
    if (reply.status == L2Reply::Status::Invalidated)
      metrics::L2Metrics::inc(m.invalidated);
    else
      m.miss(metrics::L2Miss::Absent);
    if (reply.lock == L2Reply::Lock::Acquired) plan.l2_lead = std::make_unique<L2Lead>(w_.l2_weak, key_, token);
    if (reply.lock != L2Reply::Lock::Held) co_return false;
    waited = true;
    const bool filled = co_await async_l2_wait(*l2, key_, sent, wait, asio::use_awaitable);
    metrics::L2Metrics::inc(filled ? m.waits_filled : m.waits_timed_out);
    if (!responder_.connected() && conn_) co_return true;  // the client left while waiting
  }
  cache::EntryDraft record;
  int64_t written_clock_ms = 0;
  const cache::l2::DecodeError bad = cache::l2::decode_record(reply.record, record, written_clock_ms);
  if (bad != cache::l2::DecodeError::None || record.primary_key != key_) {
    m.error(metrics::L2Error::Corrupt);
    spdlog::debug("cache.l2: record for {} unusable: {}", key_,
                  bad != cache::l2::DecodeError::None ? cache::l2::to_string(bad) : "another key");
    co_return false;
  }
  // The one admission gate, for this request, as if the record's response had
  // just arrived; then the record's own freshness (its age kept, RFC 9111 §4.2.3).
  const auto now = core::Clock::now();
  http::ResponseHead resp;
  resp.status = record.status;
  resp.headers = record.headers;
  auto admitted = cache::admit(admission(generation, now, now), resp);
  if (!admitted.verdict.store) {
    m.miss(metrics::L2Miss::Refused);
    co_return false;
  }
  cache::EntryDraft& d = *admitted.entry;
  if (d.variant_key != record.variant_key || d.vary_names != record.vary_names) {
    m.miss(metrics::L2Miss::Vary);
    co_return false;
  }
  d.freshness = cache::l2::rebased(record.freshness, written_clock_ms, now,
                                   core::Duration(reply.since_store_ms));
  d.body = std::move(record.body);
  d.synthesize_etag = false;  // an ETag the writer synthesized is in the fields already
  d.etag_synthesized = record.etag_synthesized;
  cache::EntryRef entry = cache::build_entry(d);
  const auto ev = cache::evaluate(entry->freshness(), rcc_, now);
  const bool swr = ev.decision == cache::Decision::HitStale && ev.reason == cache::LookupReason::StaleWhileRevalidate;
  if (ev.decision != cache::Decision::Hit && !swr) {
    m.miss(metrics::L2Miss::Stale);
    co_return false;
  }
  const Published published = publish(ticket, entry, nullptr);
  if (published == Published::Dropped) {
    metrics::L2Metrics::inc(m.invalidated);  // purged here while the lookup was in flight
    co_return false;
  }
  ticket.leave();
  metrics::L2Metrics::inc(m.hits);
  if (published == Published::Stored) w_.metrics.store_decision(cache::StoreReason::Stored);
  plan.permit.finish(cache::Fill::State::Done, entry);  // followers are served from it
  // RFC 9211 §2.1: "hit" (the request was not forwarded); the detail says
  // which tier. A request that waited for another node's fill was collapsed
  // into that node's forward, as a local follower is (§2.6).
  out_.cache_status.assign(std::string_view(waited ? "fwd=uri-miss; collapsed; ttl=" : "hit; ttl="));
  wire::append_num(out_.cache_status, entry->freshness().ttl(now));
  out_.cache_status += "; detail=l2";
  out_.result = swr ? metrics::Result::Stale : waited ? metrics::Result::Coalesced : metrics::Result::Hit;
  if (swr) start_refresh(entry);
  co_await responder_.entry(*entry, out_.result);
  co_return true;
}

awaitable<void> Exchange::range_pass() {
  // RFC 9211 §2.8: one detail; the first one stays.
  if (out_.cache_status.find("; detail=") == std::string::npos) out_.cache_status += "; detail=range-not-stored";
  FetchPlan plan;
  plan.pass = true;
  co_await OriginFetch(*this, plan).run();
}

awaitable<void> Exchange::fetch_coalesced(FetchPlan& plan) {
  const auto& cc = rt_->config().cache.coalesce;
  const auto idle = rt_->config().upstream.timeouts.idle;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto ticket = app_.coalescer().join(key_, cc.max_waiters, core::Clock::now());
    if (ticket.role == cache::Coalescer::Role::Leader) {
      plan.permit = std::move(ticket.permit);
      co_await fill(plan);
      co_return;
    }
    if (ticket.role == cache::Coalescer::Role::Alone) break;
    w_.metrics.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
    auto r = co_await responder_.follow(ticket.fill, cc.timeout, idle);
    if (r == Responder::FollowResult::Served || !responder_.connected()) co_return;
    if (r == Responder::FollowResult::TimedOut) break;
    // The leader's response was not shareable with us (go alone), or it
    // failed before its head: the retry may already be stored by the next leader.
    if (ticket.fill->state() == cache::Fill::State::Uncacheable) break;
    auto now = core::Clock::now();
    bool vary_miss = false;
    auto stored = lookup(vary_miss);
    if (stored && still_valid(stored, now) &&
        cache::evaluate(stored->freshness(), rcc_, now).decision == cache::Decision::Hit) {
      out_.cache_status = "fwd=uri-miss; collapsed; ttl=" + std::to_string(stored->freshness().ttl(now));
      co_await responder_.entry(*stored, metrics::Result::Coalesced);
      co_return;
    }
  }
  co_await fill(plan);
}

awaitable<void> Exchange::revalidate(cache::EntryRef stale, cache::FetchPermit permit) {
  req_.method = http::Method::Get;
  req_.method_name = "GET";
  rcc_ = cache::parse_request_cache_control(req_);
  FetchPlan plan;
  plan.may_store = true;
  plan.stale = std::move(stale);
  plan.conditional = !plan.stale->origin_etag().empty() || !plan.stale->last_modified().empty();
  plan.permit = std::move(permit);
  out_.result = metrics::Result::Miss;
  out_.cache_status = "fwd=stale; detail=background";
  co_await OriginFetch(*this, plan).run();
}

// ---------------------------------------------------------------- the PURGE method

awaitable<void> Exchange::purge_method() {
  out_.result = metrics::Result::Purge;
  const auto& addr = conn_->peer().address;
  const bool allowed = !addr.empty() && rt_->config().server.purge_allow.contains(
                                            std::span<const uint8_t>(addr.data(), addr.size()));
  if (!allowed) {
    out_.cache_status = "fwd=bypass; detail=purge-denied";
    co_await responder_.error(403, "purge not allowed from this address", false);
    co_return;
  }
  cache::Purge p;
  p.kind = cache::Purge::Kind::Url;
  p.value = req_.target;
  p.host = fwd_.authority();
  std::size_t n = app_.purger().apply(p, *rt_).purged;
  w_.metrics.purge(metrics::PurgeKind::Method);
  out_.cache_status = n ? "fwd=bypass; detail=purged" : "fwd=bypass; detail=not-cached";
  core::Json answer;  // not a braced list: GCC 12 cannot keep an initializer_list in a coroutine frame
  answer["purged"] = n;
  co_await responder_.json(n ? 200 : 404, core::json_text(answer) + "\n");
}

}  // namespace cachalot::proxy
