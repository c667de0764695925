#include "proxy/runtime.h"

#include <algorithm>

namespace cachalot::proxy {

namespace {

core::Seconds secs(core::Duration d) { return std::chrono::duration_cast<core::Seconds>(d); }

RoutePolicy make_policy(const config::Config& cfg, const config::Route* route, metrics::RouteIds& ids) {
  RoutePolicy p;
  p.route = route;
  auto& f = p.freshness;
  f.heuristic_fraction = cfg.cache.heuristic_fraction;
  f.heuristic_max = secs(cfg.cache.heuristic_max);
  f.grace_sie = secs(cfg.cache.stale_if_error);
  f.keep = secs(cfg.cache.keep);
  f.stale_on_disconnect = secs(cfg.cache.stale_on_disconnect);  // entries are kept for the disconnect grace
  bool stale_defaults = cfg.cache.stale_if_error.count() > 0;
  p.synthesize_etag = cfg.cache.synthesize_etag;
  if (route) {
    p.name = route->name;
    p.metric_id = ids.id(route->name);
    p.bypass = route->bypass;
    p.refresh_ahead = route->refresh_ahead;
    if (route->synthesize_etag) p.synthesize_etag = *route->synthesize_etag;
    p.key.sort_query = route->key.sort_query;
    p.key.ignore_params = route->key.ignore_params;
    p.key.headers = route->key.headers;
    f.default_ttl = secs(route->default_ttl);
    f.min_ttl = secs(route->min_ttl);
    f.max_ttl = secs(route->max_ttl);
    f.default_swr = secs(route->stale_while_revalidate);
    f.default_sie = secs(route->stale_if_error);
    p.storable.allow_set_cookie_strip = route->set_cookie == config::SetCookiePolicy::Strip;
    p.storable.has_default_ttl = route->default_ttl.count() > 0;
    if (route->partition) {
      auth::JwtPolicy& j = p.partition.emplace();
      j.algorithms = route->partition->algorithms;
      j.key = route->partition->key;
      j.issuer = route->partition->issuer;
      j.audience = route->partition->audience;
      j.claim = route->partition->claim;
      j.leeway = std::chrono::duration_cast<std::chrono::seconds>(route->partition->leeway);
      j.ns = auth::partition_namespace(route->name, j);
      p.partition_max_bytes = route->partition_max_bytes;
    }
    stale_defaults = stale_defaults || route->stale_while_revalidate.count() > 0 || route->stale_if_error.count() > 0;
  }
  // A response with no lifetime is still worth storing when a stale window
  // (the route's defaults or the cache-wide stale-if-error grace) could serve it.
  p.storable.has_stale_defaults = stale_defaults;
  return p;
}

}  // namespace

Runtime::Runtime(std::shared_ptr<const config::Config> cfg, metrics::RouteIds& ids) : config_(std::move(cfg)) {
  const auto& c = *config_;
  none_ = make_policy(c, nullptr, ids);
  routes_.reserve(c.routes.size());
  for (const auto& r : c.routes) routes_.push_back(make_policy(c, &r, ids));
  for (const auto& p : routes_)
    if (p.partition &&
        std::find(partition_namespaces_.begin(), partition_namespaces_.end(), p.partition->ns) == partition_namespaces_.end())
      partition_namespaces_.push_back(p.partition->ns);
  stale_on_disconnect_ = secs(c.cache.stale_on_disconnect);
  max_object_size_ = std::min<uint64_t>(c.cache.max_object_size, c.cache.max_memory / std::max<uint32_t>(1, c.cache.shards));
}

const RoutePolicy& Runtime::policy_for(std::string_view path) const noexcept {
  const config::Route* r = config_->match_route(path);
  if (!r) return none_;
  return routes_[static_cast<std::size_t>(r - config_->routes.data())];
}

const RoutePolicy& Runtime::policy_named(std::string_view route) const noexcept {
  for (const auto& p : routes_)
    if (p.name == route) return p;
  return none_;
}

}  // namespace cachalot::proxy
