// Config: the validated, immutable form of cachalot.yaml.
//
// The member initializers below are the only place defaults live; they match
// config/cachalot.yaml (a unit test loads that file and compares it with
// Config{}). Durations are milliseconds, sizes are bytes. The accepted range
// of each value is in the key table, config_fields() in config.cpp. A reload
// builds a new Config and swaps the shared_ptr<const Config>.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/jwt.h"
#include "config/address.h"
#include "core/clock.h"
#include "config/units.h"

namespace re2 {
class RE2;
}

namespace cachalot::config {

using Duration = core::Duration;  // milliseconds
using namespace std::chrono_literals;

struct ServerTimeouts {  // all but drain are > 0
  Duration client_header = 10s;  // time to receive a complete request head
  Duration client_idle = 60s;    // keep-alive idle time between requests
  Duration client_body = 30s;    // max gap while receiving a request body
  Duration send = 30s;           // max gap while writing to a slow client
  Duration drain = 10s;          // on SIGTERM, time for in-flight requests to finish
  bool operator==(const ServerTimeouts&) const = default;
};

struct ServerLimits {
  uint64_t max_header_bytes = 32 * kKiB;  // request line + fields; above it: 431 (URI alone: 414)
  uint64_t max_uri_length = 8 * kKiB;     // above it: 414
  uint64_t max_body_size = 16 * kMiB;     // request body; above it: 413
  uint32_t max_connections = 10000;       // per worker
  bool operator==(const ServerLimits&) const = default;
};

struct ServerConfig {
  std::vector<ListenerConfig> listen = {*parse_listen_address("127.0.0.1:8080")};
  uint32_t workers = 2;  // event-loop threads; 0 in the file is resolved at load to one per CPU
  ServerTimeouts timeouts;
  ServerLimits limits;
  CidrSet purge_allow = {{*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")}};  // who may send PURGE
  // Peers whose X-Forwarded-For/-Host/-Proto and Forwarded fields are extended;
  // from any other peer the proxy replaces them with its own.
  CidrSet trusted_proxies;
  // Request fields stripped before forwarding: fields some frameworks read as
  // the "real" URL or method, which would let a client reach a resource under
  // another resource's cache key. Tokens; never Host, Content-Length or
  // Transfer-Encoding (the proxy needs them to frame and route the request).
  std::vector<std::string> drop_request_fields = {"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
                                                  "X-HTTP-Method", "X-Method-Override"};
  bool operator==(const ServerConfig&) const = default;
};

struct UpstreamTimeouts {  // all > 0
  Duration connect = 3s;
  Duration first_byte = 30s;  // request sent -> response head received
  Duration idle = 30s;        // max gap between reads of a response body
  Duration pool_idle = 60s;   // an idle pooled connection is closed after this
  bool operator==(const UpstreamTimeouts&) const = default;
};

struct UpstreamPool {
  uint32_t max_idle_per_worker = 64;  // idle keep-alive connections kept per worker
  bool operator==(const UpstreamPool&) const = default;
};

struct UpstreamTls {  // used only for https://
  bool verify = true;   // verify the origin's certificate
  std::string ca_file;  // extra CA bundle; empty = system store
  std::string sni;      // empty = host from url
  bool operator==(const UpstreamTls&) const = default;
};

struct UpstreamConfig {
  UpstreamUrl url;  // required: there is no default origin
  UpstreamTimeouts timeouts;
  UpstreamPool pool;
  uint32_t max_concurrent_misses = 0;  // per worker; 0 = unlimited
  UpstreamTls tls;
  bool operator==(const UpstreamConfig&) const = default;
};

struct CoalesceConfig {
  bool enabled = true;
  uint32_t max_waiters = 1024;  // per key; further requests go to the origin
  Duration timeout = 10s;       // a waiter gives up and goes to the origin itself (> 0)
  Duration hit_for_miss = 10s;  // remember a key whose response was not shareable
  bool operator==(const CoalesceConfig&) const = default;
};

// Warm restarts (cache.snapshot): the store is written to `path` on SIGTERM
// (after the drain) and, with an interval, periodically; it is loaded from
// there at start, before the listeners open.
struct SnapshotConfig {
  std::string path;        // "" = off; the packages use /var/lib/cachalot/cache.snap
  Duration interval = 0s;  // also write every interval while running; 0 = only on SIGTERM (else >= 1s)
  bool operator==(const SnapshotConfig&) const = default;
};

// The optional shared L2 store (cache.l2, src/cluster/l2_client.h): a local
// miss looks the entry up in Redis before the origin; what the fleet may share
// is stored there. Only present when the file has a cache.l2 section.
struct L2Config {
  RedisAddress redis = *parse_redis_address("redis://127.0.0.1:6379/1");
  uint64_t max_object_size = 1 * kMiB;  // larger bodies stay local
  Duration timeout = 50ms;              // a lookup slower than this is a miss (the origin answers); > 0
  // Subtracted from a record's fill time: covers the store command's trip to
  // Redis, so a record never looks filled after an invalidation it preceded.
  Duration fill_margin = 5ms;
  // Fleet-wide coalescing: a cold key's first lookup takes a lock (this
  // long); the other nodes' lookups wait up to this long for its fill
  // (announced by pub/sub), then go to the origin themselves. 0 = off.
  Duration coalesce_wait = 2s;
  std::string prefix = "cachalot:l2:";  // Redis keys: <prefix>r:<cache key>, <prefix>marks, <prefix>l:<cache key>
  bool operator==(const L2Config&) const = default;
};

struct CacheConfig {
  uint64_t max_memory = 256 * kMiB;     // byte budget: bodies + fields + per-entry overhead
  uint64_t max_object_size = 8 * kMiB;  // larger responses are streamed but not stored; <= max_memory
  // A GET with Range that misses fetches the whole response (and answers the
  // range from the stored entry) when its Content-Length is at most this
  // (and max_object_size); otherwise the Range is forwarded to the origin.
  uint64_t range_fill_max_size = 8 * kMiB;
  uint32_t shards = 16;                 // power of two, 1..65536
  uint32_t max_variants = 16;           // Vary variants kept per URL
  double heuristic_fraction = 0.1;      // RFC 9111 §4.2.2: fraction of (Date - Last-Modified), 0..1
  Duration heuristic_max = 24h;         // cap on heuristic freshness
  Duration keep = 1h;                   // an expired entry with validators is kept this long to revalidate
  Duration stale_if_error = 0s;         // serve stale on origin errors this long even without the directive
  // RFC 9111 §4.2.4: when the origin cannot be reached at all (refused, reset
  // or closed without answering; not an HTTP error status), a stale entry is
  // served this long past its lifetime, unless must-revalidate,
  // proxy-revalidate, s-maxage or no-cache forbid it. Entries are kept that long.
  Duration stale_on_disconnect = 10s;
  std::vector<std::string> tag_headers = {"Surrogate-Key", "Cache-Tag"};  // response fields holding purge tags
  // RFC 9213 target list, most applicable first: the first of these response
  // fields present with a valid value decides storing and freshness instead
  // of Cache-Control and Expires. Tokens, unique, never Cache-Control; [] = off.
  std::vector<std::string> targeted_cache_control = {"CDN-Cache-Control"};
  // Fields of targeted_cache_control removed from responses to clients
  // (RFC 9213 §3: when nothing downstream uses them); all others are forwarded.
  std::vector<std::string> drop_targeted_cache_control;
  // The content codings the origin uses: a request's Accept-Encoding is
  // forwarded (and keyed) reduced to those it accepts. Tokens, unique, not
  // "*" or "identity"; [] = forwarded as sent.
  std::vector<std::string> accept_encoding;
  bool synthesize_etag = true;  // stored 200s without ETag and Last-Modified get a strong ETag from their body
  CoalesceConfig coalesce;
  uint32_t max_background_refreshes = 64;  // per worker
  SnapshotConfig snapshot;
  std::optional<L2Config> l2;  // nullopt: no cache.l2 section, no L2
  bool operator==(const CacheConfig&) const = default;
};

struct AdminConfig {
  std::optional<ListenerConfig> listen = parse_listen_address("127.0.0.1:9901");  // nullopt: "" = disabled
  std::string token;  // if set, requests need "Authorization: Bearer <token>"; required off loopback
  // Host names (host or host:port; without a port, any port) the admin API
  // answers to besides IP literals and localhost: every other Host is refused
  // (421), so a DNS-rebound name cannot reach it from a browser.
  std::vector<std::string> hosts;
  // Request fields whose values GET /cache shows only as a hash, besides
  // Cookie, Authorization and Proxy-Authorization (always hashed).
  std::vector<std::string> redact_fields;
  bool operator==(const AdminConfig&) const = default;
};

enum class LogLevel { Trace, Debug, Info, Warn, Error };
enum class AccessLogFormat {
  Text,  // one human-readable line per request
  Json,  // one JSON object per line
};

struct LogConfig {
  LogLevel level = LogLevel::Info;
  std::string access_log = "stderr";  // "off", "stderr", or a file path
  AccessLogFormat access_log_format = AccessLogFormat::Text;
  bool operator==(const LogConfig&) const = default;
};

// The invalidation bus (src/cluster): every invalidation this node applies is
// published to a Redis stream, and the other nodes' are applied here. Only
// present when the file has a cluster: section; without it no Redis is needed.
struct ClusterConfig {
  RedisAddress redis = *parse_redis_address("redis://127.0.0.1:6379/0");
  std::string stream = "cachalot:invalidations";  // the stream's key
  std::string node;                // this node's name in events; "" in the file = the host name (resolved at load)
  uint32_t max_events = 100000;    // XADD MAXLEN ~: how far back a node that was away can catch up
  uint32_t queue_limit = 10000;    // local events kept while Redis is unreachable; more are dropped
  uint32_t read_batch = 100;       // XREAD COUNT: events read (and applied) per round trip
  Duration timeout = 3s;           // connect and command timeout (> 0)
  Duration backoff_min = 100ms;    // first reconnect delay (> 0); doubles per failed attempt
  Duration backoff_max = 5s;       // reconnect delay cap; >= backoff_min
  bool operator==(const ClusterConfig&) const = default;
};

// What a route does with a response that carries Set-Cookie.
enum class SetCookiePolicy {
  NoStore,  // do not store it (the response is still served)
  // "store_without" (alias "strip", the older name): store it without the
  // Set-Cookie fields; the client that caused the fetch (or the revalidation)
  // still gets them, nobody served from the entry does.
  Strip,
};

struct RouteKey {
  bool sort_query = false;
  std::vector<std::string> ignore_params;  // query parameters dropped from the key
  std::vector<std::string> headers;  // extra request fields in the key (names as written)
  bool operator==(const RouteKey&) const = default;
};

// A route's per-user partitions (route partition.jwt): responses are stored
// per verified claim of the request's bearer JWT (auth/jwt.h).
struct PartitionJwt {
  std::vector<auth::Algorithm> algorithms;  // required, non-empty, unique; at least one fits the key
  std::string key_file;                     // required: PEM public key (RS256/ES256) or the HMAC secret (HS256)
  std::shared_ptr<const auth::JwtKey> key;  // read from key_file at load (a reload reads it again)
  std::string issuer;                       // "" = not checked
  std::string audience;                     // "" = not checked
  std::string claim = "sub";                // the claim that names the partition
  Duration leeway = 30s;                    // exp / nbf leeway
  bool operator==(const PartitionJwt&) const = default;  // key compares by identity
};

struct Route {
  std::string name;    // [A-Za-z0-9_.-]+, unique; used in metrics and purges
  std::string prefix;  // exactly one of prefix and regex is non-empty
  std::string regex;   // RE2 syntax, unanchored (PartialMatch): write ^ to anchor
  std::shared_ptr<const re2::RE2> compiled;  // set iff regex is; shared so Config stays copyable

  bool bypass = false;                 // never cache, never coalesce
  Duration default_ttl = 0s;           // freshness when the origin says nothing (0 = RFC heuristics)
  Duration min_ttl = 0s;               // floor on explicit freshness
  Duration max_ttl = 0s;               // cap on any freshness (0 = no cap); >= min_ttl
  Duration stale_while_revalidate = 0s;  // default window when the origin sends none
  Duration stale_if_error = 0s;        // default window when the origin sends none
  bool refresh_ahead = false;          // refresh hot entries shortly before they expire
  SetCookiePolicy set_cookie = SetCookiePolicy::NoStore;
  std::optional<bool> synthesize_etag;  // unset: cache.synthesize_etag
  RouteKey key;
  std::optional<PartitionJwt> partition;  // unset: no partitions
  // Bytes one partition may hold (sum of its entries' charge); storing more
  // evicts that partition's oldest entries. Only with partition.
  uint64_t partition_max_bytes = 1 * kMiB;

  // `path` is the request target's path (origin-form, without the query).
  bool matches(std::string_view path) const;
  bool operator==(const Route&) const = default;  // compiled compares by identity
};

struct Config {
  ServerConfig server;
  UpstreamConfig upstream;
  CacheConfig cache;
  AdminConfig admin;
  LogConfig log;
  std::optional<ClusterConfig> cluster;  // nullopt: no cluster: section, a node on its own
  std::vector<Route> routes;  // in file order
  std::string source_path;    // the file it was loaded from (or the name given to load_config_string)

  // The first route that matches `path`, or nullptr (RFC rules alone apply).
  const Route* match_route(std::string_view path) const;
  bool operator==(const Config&) const = default;
};

// One problem in a config file. line and column are 1-based; 0 means the
// problem has no position (a missing file, a required key that is absent).
struct ConfigError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;  // dotted path: "server.timeouts.client_header", "routes[2].prefix"; may be empty
  std::string message;

  // "file:line:col: key: message", leaving out the parts that are not known.
  std::string to_string() const;
};

using LoadResult = std::variant<std::shared_ptr<const Config>, std::vector<ConfigError>>;

// Parses and validates; on failure returns every error found, in file order.
LoadResult load_config_file(const std::string& path);
LoadResult load_config_string(std::string_view yaml, std::string name);

std::string_view to_string(LogLevel level);
std::string_view to_string(AccessLogFormat format);
std::string_view to_string(SetCookiePolicy policy);

}  // namespace cachalot::config
