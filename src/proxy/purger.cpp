#include "proxy/purger.h"

#include "cache/invalidation.h"
#include "cache/key.h"
#include "cache/l2_record.h"
#include "core/clock.h"
#include "proxy/app.h"
#include "proxy/runtime.h"

namespace cachalot::proxy {

namespace {

constexpr std::string_view kSchemes[] = {"http", "https"};

// The normalised path and query of a target, as a key holds it ("/a/b?x=1").
std::string normalized_target(std::string_view target, const cache::KeyOptions& opts) {
  return std::string(cache::key_path(cache::primary_key("http", "h", target, http::HeaderMap{}, opts)));
}

}  // namespace

cache::PurgeOutcome Purger::apply(const cache::Purge& p, const Runtime& rt, Source source) {
  using Kind = cache::Purge::Kind;
  cache::PurgeOutcome out;
  cache::InvalidationLog::Rule rule;
  rule.kind = p.kind;
  rule.soft = p.soft;
  switch (p.kind) {
    case Kind::Url: {
      // The route is chosen by the normalised path; its key options shape the query.
      std::string plain = normalized_target(p.value, {});
      const RoutePolicy& policy = rt.policy_for(std::string_view(plain).substr(0, plain.find('?')));
      rule.path = normalized_target(p.value, policy.key);
      break;
    }
    case Kind::Prefix: rule.path = normalized_target(p.value, {}); break;
    case Kind::Tag:
    case Kind::Route:
    case Kind::Partition: rule.path = p.value; break;
    case Kind::All: break;
  }
  if (p.kind == Kind::Route) {
    bool known = false;
    for (const auto& r : rt.config().routes) known = known || r.name == p.value;
    if (!known) {
      out.error = "no route named " + p.value;
      return out;
    }
  }
  if (p.host && (p.kind == Kind::Url || p.kind == Kind::Prefix)) {
    rule.authority = cache::normalized_authority("http", *p.host);
    rule.authority_https = cache::normalized_authority("https", *p.host);
  }

  // 0. with L2: pending until Redis has the markers (before the log, so a
  // lookup whose ticket comes after the rule sees it pending)
  L2Invalidator* l2 = source == Source::Local ? l2_.load(std::memory_order_acquire) : nullptr;
  std::vector<std::string> marker_fields = l2 ? cache::l2::marker_fields(rule) : std::vector<std::string>{};
  uint64_t pending = 0;
  if (!marker_fields.empty()) {
    std::lock_guard lk(l2_pending_mu_);
    if (l2_pending_.size() < kMaxL2Pending) {
      pending = l2_pending_next_++;
      l2_pending_.emplace(pending, rule);
    } else {
      l2_pending_[0].kind = cache::Purge::Kind::All;  // stands for this one and the rest
    }
  }

  // 1. fills in flight will not publish what this matches
  log_.record(rule);
  // 2. requests from now on do not join fills that started before
  coalescer_.detach_if([&](const cache::Fill& f) { return cache::InvalidationLog::may_match_key(rule, f.key()); });

  // 3. the store
  auto now = core::Clock::now();
  cache::RewriteFn rewrite = [now](const cache::Entry& e) { return cache::mark_stale(e, now); };
  const bool soft = p.soft;
  std::vector<std::string> hosts = p.host ? std::vector<std::string>{*p.host} : app_.hosts();
  switch (p.kind) {
    case Kind::Url:
      for (const auto& h : hosts)
        for (auto scheme : kSchemes) {
          std::string base = std::string(scheme) + "://" + cache::normalized_authority(scheme, h) + rule.path;
          out.purged += soft ? store_.rewrite_key(base, rewrite) : store_.erase(base);
          // Variants split by key headers (route key.headers, a trusted proxy's
          // forwarded host): base + '\n' + entries ('\n' cannot occur in a path).
          base.push_back('\n');
          out.purged += soft ? store_.rewrite_prefix(base, rewrite) : store_.purge_prefix(base);
        }
      break;
    case Kind::Prefix:
      for (const auto& h : hosts)
        for (auto scheme : kSchemes) {
          std::string base = std::string(scheme) + "://" + cache::normalized_authority(scheme, h) + rule.path;
          out.purged += soft ? store_.rewrite_prefix(base, rewrite) : store_.purge_prefix(base);
        }
      break;
    case Kind::Tag: out.purged = soft ? store_.rewrite_tag(p.value, rewrite) : store_.purge_tag(p.value); break;
    case Kind::All: out.purged = soft ? store_.rewrite_all(rewrite) : store_.purge_all(); break;
    case Kind::Route: out.generation = app_.bump_route_generation(p.value); break;
    case Kind::Partition: {
      // Every entry of a partition carries its reserved tag (cache::partition_tag()),
      // one per namespace: the claim is purged under every partitioned route.
      for (const std::string& ns : rt.partition_namespaces()) {
        const std::string tag = cache::partition_tag(ns + ":" + p.value);
        out.purged += soft ? store_.rewrite_tag(tag, rewrite) : store_.purge_tag(tag);
      }
      break;
    }
  }

  // 4. and 5. the shared L2 store, then the other nodes (after this node's
  // own purge: both only queue)
  InvalidationPublisher* pub = source == Source::Local ? publisher_.load(std::memory_order_acquire) : nullptr;
  if (marker_fields.empty()) {
    if (pub) pub->publish(p);
  } else {
    // A soft purge voids L2 records too: they are refetched, not revalidated.
    auto written = [this, pending] {
      std::lock_guard lk(l2_pending_mu_);
      l2_pending_.erase(pending);  // id 0 (overflow) goes with the first overflowed one written: an "all" marker
    };
    std::function<void()> forward;
    if (pub) forward = [pub, p] { pub->publish(p); };
    l2->invalidate(std::move(marker_fields), std::move(written), std::move(forward));
  }
  return out;
}

bool Purger::l2_may_look_up(std::string_view primary_key) const {
  std::lock_guard lk(l2_pending_mu_);
  for (const auto& [id, r] : l2_pending_)
    if (cache::InvalidationLog::may_match_key(r, primary_key)) return false;
  return true;
}

void Purger::after_unsafe(const http::RequestHead& req, int status, const http::HeaderMap& resp_headers,
                          std::string_view authority, const Runtime& rt) {
  if (http::is_safe(req.method) || !cache::invalidates(req.method, status)) return;
  for (const auto& target : cache::invalidation_targets(req.target, resp_headers, authority)) {
    cache::Purge p;
    p.kind = cache::Purge::Kind::Url;
    p.value = target;
    p.host = std::string(authority);
    apply(p, rt);
  }
}

}  // namespace cachalot::proxy
