// Runtime: what a config snapshot means for the request path, computed once
// per snapshot (at start and on every reload), never per request.
//
// Each route's key, freshness and storability options, its metric id and
// the default policy for requests no route matches. Immutable once built; a
// request holds the shared_ptr for its whole exchange, so a reload never
// changes policy half-way through one.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include <optional>

#include "auth/jwt.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/storable.h"
#include "config/config.h"
#include "metrics/metrics.h"

namespace cachalot::proxy {

struct RoutePolicy {
  const config::Route* route = nullptr;  // null: no route matched (RFC rules alone)
  std::string_view name;                 // "" when no route
  uint32_t metric_id = metrics::kNoRoute;
  bool bypass = false;
  bool refresh_ahead = false;
  bool synthesize_etag = true;  // cache.synthesize_etag, or the route's own
  cache::KeyOptions key;
  cache::FreshnessOptions freshness;
  cache::StorableOptions storable;
  // route partition.jwt: requests are verified and keyed per claim (null: none).
  std::optional<auth::JwtPolicy> partition;
  uint64_t partition_max_bytes = 0;  // route partition_max_bytes
};

class Runtime {
 public:
  Runtime(std::shared_ptr<const config::Config> cfg, metrics::RouteIds& ids);

  const config::Config& config() const noexcept { return *config_; }
  const std::shared_ptr<const config::Config>& config_ptr() const noexcept { return config_; }
  // The policy of the first route matching `path` (a normalised path).
  const RoutePolicy& policy_for(std::string_view path) const noexcept;
  const RoutePolicy& policy_named(std::string_view route) const noexcept;
  // The largest body stored: cache.max_object_size, but never more than one
  // shard's budget (the store charges each shard max_memory / shards).
  uint64_t max_object_size() const noexcept { return max_object_size_; }
  const config::CidrSet& trusted_proxies() const noexcept { return config_->server.trusted_proxies; }
  const std::vector<std::string>& drop_request_fields() const noexcept { return config_->server.drop_request_fields; }
  // RFC 9213 target list (cache.targeted_cache_control), for
  // cache::select_response_cache_control() wherever a response is admitted.
  const std::vector<std::string>& targeted_cache_control() const noexcept {
    return config_->cache.targeted_cache_control;
  }
  // cache.drop_targeted_cache_control, for cache::forward_targeted_field().
  const std::vector<std::string>& drop_targeted_cache_control() const noexcept {
    return config_->cache.drop_targeted_cache_control;
  }
  // cache.accept_encoding, for cache::reduce_accept_encoding() on the forwarded request.
  const std::vector<std::string>& accept_encoding() const noexcept { return config_->cache.accept_encoding; }
  // cache.stale_on_disconnect, the `grace` of cache::can_serve_stale_when_disconnected().
  core::Seconds stale_on_disconnect() const noexcept { return stale_on_disconnect_; }
  // The namespaces of the partitioned routes (auth::JwtPolicy::ns), each once.
  const std::vector<std::string>& partition_namespaces() const noexcept { return partition_namespaces_; }

 private:
  std::shared_ptr<const config::Config> config_;
  RoutePolicy none_;
  std::vector<RoutePolicy> routes_;  // parallel to config_->routes
  std::vector<std::string> partition_namespaces_;
  uint64_t max_object_size_ = 0;
  core::Seconds stale_on_disconnect_{0};
};

}  // namespace cachalot::proxy
