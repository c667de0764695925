#include "config/config.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <sstream>

using namespace cachalot::config;

#define UPSTREAM "upstream: { url: 'http://origin' }\n"
using namespace std::chrono_literals;

namespace {

const std::string kReferenceFile = CACHALOT_TEST_DATA "/../../config/cachalot.yaml";
const std::string kDataDir = CACHALOT_TEST_DATA "/config/";

std::shared_ptr<const Config> expect_config(const LoadResult& result) {
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
    for (const ConfigError& e : *errors) UNSCOPED_INFO(e.to_string());
    FAIL("config did not load");
  }
  return std::get<std::shared_ptr<const Config>>(result);
}

std::vector<ConfigError> expect_errors(const LoadResult& result) {
  REQUIRE(std::holds_alternative<std::vector<ConfigError>>(result));
  return std::get<std::vector<ConfigError>>(result);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("the reference file loads with the defaults of Config{}", "[config]") {
  auto config = expect_config(load_config_file(kReferenceFile));
  Config expected;
  expected.upstream.url = *parse_upstream_url("http://127.0.0.1:9000");
  expected.source_path = kReferenceFile;
  CHECK(*config == expected);

  // Spot checks that Config{} says what the file says.
  CHECK(config->server.listen.at(0).text == "127.0.0.1:8080");
  CHECK(config->server.workers == 2);
  CHECK(config->server.timeouts.client_header == 10s);
  CHECK(config->server.limits.max_header_bytes == 32 * 1024);
  CHECK(config->server.purge_allow.contains(std::string_view("127.0.0.1")));
  CHECK(config->server.purge_allow.contains(std::string_view("::1")));
  CHECK_FALSE(config->server.purge_allow.contains(std::string_view("10.0.0.1")));
  CHECK(config->upstream.url.port == 9000);
  CHECK(config->upstream.timeouts.pool_idle == 60s);
  CHECK(config->upstream.tls.verify);
  CHECK(config->cache.max_memory == 256 * kMiB);
  CHECK(config->cache.max_object_size == 8 * kMiB);
  CHECK(config->cache.shards == 16);
  CHECK(config->cache.heuristic_fraction == 0.1);
  CHECK(config->cache.heuristic_max == 24h);
  CHECK(config->cache.tag_headers == std::vector<std::string>{"Surrogate-Key", "Cache-Tag"});
  CHECK(config->cache.coalesce.hit_for_miss == 10s);
  CHECK(config->cache.stale_on_disconnect == 10s);
  CHECK(config->cache.targeted_cache_control == std::vector<std::string>{"CDN-Cache-Control"});
  CHECK(config->cache.drop_targeted_cache_control.empty());
  CHECK(config->cache.accept_encoding.empty());
  REQUIRE(config->admin.listen);
  CHECK(config->admin.listen->port == 9901);
  CHECK(config->admin.token.empty());
  CHECK(config->admin.hosts.empty());
  CHECK(config->admin.redact_fields.empty());
  CHECK(config->server.trusted_proxies.ranges.empty());
  CHECK(config->server.drop_request_fields == std::vector<std::string>{"X-Original-URL", "X-Rewrite-URL",
                                                                       "X-HTTP-Method-Override", "X-HTTP-Method",
                                                                       "X-Method-Override"});
  CHECK(config->log.level == LogLevel::Info);
  CHECK(config->log.access_log == "stderr");
  CHECK(config->routes.empty());
}

TEST_CASE("a file with only upstream.url loads the same as the reference file", "[config]") {
  auto minimal = expect_config(load_config_string("upstream:\n  url: \"http://127.0.0.1:9000\"\n", "minimal"));
  auto reference = expect_config(load_config_file(kReferenceFile));
  Config copy = *minimal;
  copy.source_path = reference->source_path;
  CHECK(copy == *reference);
}

TEST_CASE("the commented routes example in the reference file loads with the route defaults", "[config]") {
  // Replace "routes: []" by the commented example below it, uncommented once.
  std::istringstream in(read_file(kReferenceFile));
  std::string yaml, line;
  bool in_example = false;
  while (std::getline(in, line)) {
    if (line == "routes: []") continue;
    if (line == "# routes:") in_example = true;
    yaml += (in_example && line.starts_with("# ") ? line.substr(2) : line) + "\n";
  }
  REQUIRE(in_example);
  auto config = expect_config(load_config_string(yaml, "example"));
  REQUIRE(config->routes.size() == 1);
  Route expected;
  expected.name = "api";
  expected.prefix = "/api/";
  CHECK(config->routes[0] == expected);
  CHECK(expected.key.ignore_params.empty());
  CHECK(expected.set_cookie == SetCookiePolicy::NoStore);
}

TEST_CASE("without a cluster section there is no bus; the commented example loads the cluster defaults",
          "[config]") {
  CHECK_FALSE(Config{}.cluster);
  CHECK_FALSE(expect_config(load_config_file(kReferenceFile))->cluster);

  // Uncomment the "# cluster:" block of the reference file (up to the blank line after it).
  std::istringstream in(read_file(kReferenceFile));
  std::string yaml, line;
  bool in_example = false, seen = false;
  while (std::getline(in, line)) {
    if (line == "# cluster:") in_example = seen = true;
    if (in_example && line.empty()) in_example = false;
    yaml += (in_example && line.starts_with("# ") ? line.substr(2) : line) + "\n";
  }
  REQUIRE(seen);
  auto config = expect_config(load_config_string(yaml, "example"));
  REQUIRE(config->cluster);
  ClusterConfig expected;
  char host[256] = {};
  REQUIRE(gethostname(host, sizeof host - 1) == 0);
  expected.node = host;  // node: "" is the host name
  CHECK(*config->cluster == expected);
  CHECK(expected.redis.host == "127.0.0.1");
  CHECK(expected.redis.port == 6379);
  CHECK(expected.stream == "cachalot:invalidations");
  CHECK(expected.max_events == 100000);
  CHECK(expected.backoff_max == 5s);

  // "cluster:" alone turns the bus on with the same defaults.
  auto bare = expect_config(load_config_string(UPSTREAM "cluster:\n", "bare"));
  REQUIRE(bare->cluster);
  CHECK(*bare->cluster == expected);
}

TEST_CASE("without cache.l2 there is no L2; the commented example loads the L2 defaults", "[config]") {
  CHECK_FALSE(Config{}.cache.l2);
  CHECK_FALSE(expect_config(load_config_file(kReferenceFile))->cache.l2);
  // Uncomment the "  # l2:" block of the reference file (up to "admin:").
  std::istringstream in(read_file(kReferenceFile));
  std::string yaml, line;
  bool in_example = false, seen = false;
  while (std::getline(in, line)) {
    if (line == "  # l2:") in_example = seen = true;
    if (in_example && !line.starts_with("  #")) in_example = false;
    yaml += (in_example ? "  " + line.substr(4) : line) + "\n";
  }
  REQUIRE(seen);
  auto config = expect_config(load_config_string(yaml, "example"));
  REQUIRE(config->cache.l2);
  const L2Config expected;
  CHECK(*config->cache.l2 == expected);
  CHECK(expected.redis.db == 1);
  CHECK(expected.max_object_size == 1 * kMiB);
  CHECK(expected.timeout == 50ms);
  CHECK(expected.prefix == "cachalot:l2:");
  CHECK(expected.coalesce_wait == 2s);
  auto bare = expect_config(load_config_string(UPSTREAM "cache:\n  l2:\n", "bare"));
  REQUIRE(bare->cache.l2);
  CHECK(*bare->cache.l2 == expected);
}

TEST_CASE("every cache.l2 option is read", "[config]") {
  auto config = expect_config(load_config_string(UPSTREAM R"(cache:
  l2:
    redis: "unix:///run/redis/redis.sock?db=3"
    max_object_size: 64KiB
    timeout: 20ms
    fill_margin: 0s
    coalesce_wait: 0s
    prefix: "fleet:"
)",
                                                 "l2.yaml"));
  REQUIRE(config->cache.l2);
  const L2Config& c = *config->cache.l2;
  CHECK(c.redis.unix_socket);
  CHECK(c.redis.db == 3);
  CHECK(c.max_object_size == 64 * kKiB);
  CHECK(c.timeout == 20ms);
  CHECK(c.fill_margin == 0ms);
  CHECK(c.coalesce_wait == 0ms);
  CHECK(c.prefix == "fleet:");
}

TEST_CASE("every cluster option is read", "[config]") {
  auto config = expect_config(load_config_string(UPSTREAM R"(cluster:
  redis: "unix:///run/redis/redis.sock?db=2"
  stream: "fleet:purges"
  node: "cache-a.eu-1"
  max_events: 10
  queue_limit: 50
  read_batch: 7
  timeout: 500ms
  backoff_min: 50ms
  backoff_max: 1s
)",
                                                 "cluster.yaml"));
  REQUIRE(config->cluster);
  const ClusterConfig& c = *config->cluster;
  CHECK(c.redis.unix_socket);
  CHECK(c.redis.path == "/run/redis/redis.sock");
  CHECK(c.redis.db == 2);
  CHECK(c.stream == "fleet:purges");
  CHECK(c.node == "cache-a.eu-1");
  CHECK(c.max_events == 10);
  CHECK(c.queue_limit == 50);
  CHECK(c.read_batch == 7);
  CHECK(c.timeout == 500ms);
  CHECK(c.backoff_min == 50ms);
  CHECK(c.backoff_max == 1s);
}

TEST_CASE("every route option is read", "[config]") {
  auto config = expect_config(load_config_file(kDataDir + "routes.yaml"));
  CHECK(config->upstream.url.tls());
  REQUIRE(config->routes.size() == 4);

  const Route& r = config->routes[0];
  CHECK(r.name == "static");
  CHECK(r.prefix == "/static/");
  CHECK(r.regex.empty());
  CHECK(r.compiled == nullptr);
  CHECK_FALSE(r.bypass);
  CHECK(r.default_ttl == 1h);
  CHECK(r.min_ttl == 5min);
  CHECK(r.max_ttl == 24h);
  CHECK(r.stale_while_revalidate == 30s);
  CHECK(r.stale_if_error == 10min);
  CHECK(r.refresh_ahead);
  CHECK(r.set_cookie == SetCookiePolicy::Strip);
  CHECK(r.key.sort_query);
  CHECK(r.key.ignore_params == std::vector<std::string>{"utm_source", "utm_campaign", "fbclid"});
  CHECK(r.key.headers == std::vector<std::string>{"Accept-Encoding", "X-Device"});

  const Route& v = config->routes[1];
  CHECK(v.name == "versioned-api.v2");
  CHECK(v.prefix.empty());
  CHECK(v.regex == "^/v[0-9]+/items");
  CHECK(v.compiled != nullptr);
  CHECK(v.key.ignore_params.empty());  // an empty list replaces the default
  CHECK(config->routes[2].bypass);
}

TEST_CASE("routes match in file order, the first match wins", "[config]") {
  auto config = expect_config(load_config_file(kDataDir + "routes.yaml"));
  struct Row {
    const char* path;
    const char* route;  // nullptr: no route
  };
  const Row rows[] = {
      {"/static/app.js", "static"},
      {"/static/private/x", "static"},        // the prefix route comes first
      {"/v2/items/7", "versioned-api.v2"},
      {"/api/v2/items", "everything-else"},   // the regex is anchored with ^
      {"/v2/itemsx", "versioned-api.v2"},     // PartialMatch: the pattern need not cover the path
      {"/me/private/x", "private_"},          // unanchored regex
      {"/account", "private_"},
      {"/static", "everything-else"},         // a prefix is a plain string compare
      {"/", "everything-else"},
  };
  for (const Row& row : rows) {
    INFO(row.path);
    const Route* route = config->match_route(row.path);
    REQUIRE(route);
    CHECK(route->name == row.route);
  }

  auto no_routes = expect_config(load_config_string("upstream: {url: 'http://o'}", "t"));
  CHECK(no_routes->match_route("/") == nullptr);
}

TEST_CASE("each kind of bad input is one error with its line, column and key", "[config]") {
  struct Row {
    const char* label;
    const char* yaml;
    int line, column;
    const char* key;
    const char* message;  // a substring
  };
  const Row rows[] = {
      {"YAML syntax error", "server:\n  listen: [\"127.0.0.1:8080\"\n" UPSTREAM, 3, 1, "", "YAML syntax error"},
      {"not a map", "- server\n", 1, 1, "", "expected a map of sections, got a list"},
      {"unknown section", "servr:\n  workers: 1\n" UPSTREAM,
       1, 1, "servr", "unknown key 'servr' (did you mean 'server'?)"},
      {"unknown key", "server:\n  listn: []\n" UPSTREAM,
       2, 3, "server.listn", "unknown key 'listn' (did you mean 'listen'?)"},
      {"unknown key, nothing close", "cache:\n  colour: red\n" UPSTREAM, 2, 3, "cache.colour", "unknown key 'colour'"},
      {"duplicate key", "cache:\n  shards: 4\n  shards: 8\n" UPSTREAM,
       3, 3, "cache.shards", "duplicate key (first at line 2)"},
      {"integer of the wrong type", "server:\n  workers: many\n" UPSTREAM,
       2, 12, "server.workers", "expected an integer in 0..256, got 'many'"},
      {"integer out of range", "server:\n  workers: 300\n" UPSTREAM,
       2, 12, "server.workers", "300 is out of range 0..256"},
      {"section of the wrong type", "server:\n  timeouts: 10s\n" UPSTREAM,
       2, 13, "server.timeouts", "expected a map, got '10s'"},
      {"list of the wrong type", "cache:\n  tag_headers: Cache-Tag\n" UPSTREAM,
       2, 16, "cache.tag_headers", "expected a list, got 'Cache-Tag'"},
      {"bad field name in a list", "cache:\n  tag_headers: [\"Cache Tag\"]\n" UPSTREAM,
       2, 17, "cache.tag_headers[0]", "expected a field name, got 'Cache Tag'"},
      {"YAML 1.1 boolean", "cache:\n  coalesce:\n    enabled: yes\n" UPSTREAM,
       3, 14, "cache.coalesce.enabled", "expected true or false, got 'yes'"},
      {"missing value", "admin:\n  token:\n" UPSTREAM, 2, 3, "admin.token", "expected a string, got nothing"},
      {"bad size", "cache:\n  max_memory: 256MB!\n" UPSTREAM,
       2, 15, "cache.max_memory", "expected a size such as 512, 64KiB"},
      {"size below the minimum", "server:\n  limits:\n    max_header_bytes: 100\n" UPSTREAM,
       3, 23, "server.limits.max_header_bytes", "must be at least 1KiB"},
      {"bad duration", "server:\n  timeouts:\n    client_idle: 1 minute\n" UPSTREAM,
       3, 18, "server.timeouts.client_idle", "expected a duration such as 500ms"},
      {"negative duration", UPSTREAM "cache:\n  keep: -1h\n", 3, 9, "cache.keep", "expected a duration"},
      {"duplicate section", UPSTREAM "upstream:\n  timeouts:\n    connect: 0s\n",
       2, 1, "upstream", "duplicate key (first at line 1)"},
      {"zero timeout", "upstream:\n  url: 'http://o'\n  timeouts:\n    connect: 0s\n",
       4, 14, "upstream.timeouts.connect", "must be greater than 0"},
      {"fraction out of range", "cache:\n  heuristic_fraction: 1.5\n" UPSTREAM,
       2, 23, "cache.heuristic_fraction", "expected a number in 0..1"},
      {"shards not a power of two", "cache:\n  shards: 48\n" UPSTREAM,
       2, 11, "cache.shards", "48 is not a power of two"},
      {"zero shards", "cache:\n  shards: 0\n" UPSTREAM, 2, 11, "cache.shards", "0 is out of range 1..65536"},
      {"object larger than the cache", "cache:\n  max_memory: 1MiB\n" UPSTREAM,
       2, 3, "cache.max_memory", "cache.max_object_size (8MiB) must not exceed cache.max_memory (1MiB)"},
      {"log level", "log:\n  level: verbose\n" UPSTREAM,
       2, 10, "log.level", "expected one of trace, debug, info, warn, error, got 'verbose'"},
      {"access log format", "log:\n  access_log_format: xml\n" UPSTREAM,
       2, 22, "log.access_log_format", "expected one of text, json"},
      {"listen host is a name", "server:\n  listen: [\"localhost:8080\"]\n" UPSTREAM,
       2, 12, "server.listen[0]", "host 'localhost' is not an IP address"},
      {"listen without a host", "server:\n  listen: [\":8080\"]\n" UPSTREAM, 2, 12, "server.listen[0]", "missing host"},
      {"no listeners", "server:\n  listen: []\n" UPSTREAM, 2, 11, "server.listen", "at least one address is required"},
      {"tls listener without a key",
       "server:\n  listen:\n    - address: \"127.0.0.1:8443\"\n      tls: { cert: c.pem }\n" UPSTREAM,
       4, 7, "server.listen[0].tls.key", "is required with tls"},
      {"tls listener without an address", "server:\n  listen:\n    - tls: { cert: c.pem, key: k.pem }\n" UPSTREAM,
       3, 7, "server.listen[0].address", "is required"},
      {"same address twice", "admin:\n  listen: \"127.0.0.1:8080\"\n" UPSTREAM,
       2, 3, "admin.listen", "127.0.0.1:8080 is already used by server.listen[0]"},
      {"bad CIDR", "server:\n  purge_allow: [\"10.0.0.1/8\"]\n" UPSTREAM,
       2, 17, "server.purge_allow[0]", "did you mean 10.0.0.0/8?"},
      {"bad upstream url", "upstream:\n  url: \"http://origin/base\"\n",
       2, 8, "upstream.url", "only an origin is allowed"},
      {"upstream scheme", "upstream:\n  url: \"ftp://origin\"\n", 2, 8, "upstream.url", "scheme must be http or https"},
      {"upstream without url", "upstream:\n  pool: {}\n", 1, 1, "upstream.url", "is required"},
      {"no upstream section", "log:\n  level: info\n", 0, 0, "upstream.url", "is required"},
      {"bad regex", UPSTREAM "routes:\n  - name: a\n    regex: \"(\"\n",
       4, 12, "routes[0].regex", "invalid regex: missing )"},
      {"duplicate route name", UPSTREAM "routes:\n  - name: a\n    prefix: /a\n  - name: a\n    prefix: /b\n",
       5, 5, "routes[1].name", "duplicate route name 'a' (first at line 3)"},
      {"prefix and regex", UPSTREAM "routes:\n  - name: a\n    prefix: /a\n    regex: ^/a\n",
       5, 5, "routes[0].regex", "set either prefix or regex, not both"},
      {"neither prefix nor regex", UPSTREAM "routes:\n  - name: a\n    bypass: true\n",
       3, 5, "routes[0]", "needs a prefix or a regex"},
      {"route without a name", UPSTREAM "routes:\n  - prefix: /a\n", 3, 5, "routes[0].name", "is required"},
      {"bad route name", UPSTREAM "routes:\n  - name: my api\n    prefix: /a\n",
       3, 11, "routes[0].name", "expected a name of letters"},
      {"prefix without a slash", UPSTREAM "routes:\n  - name: a\n    prefix: api/\n",
       4, 13, "routes[0].prefix", "starting with '/'"},
      {"unknown route key", UPSTREAM "routes:\n  - name: a\n    prefix: /a\n    bypas: true\n",
       5, 5, "routes[0].bypas", "did you mean 'bypass'?"},
      {"set_cookie value", UPSTREAM "routes:\n  - name: a\n    prefix: /a\n    set_cookie: keep\n",
       5, 17, "routes[0].set_cookie", "expected one of no_store, strip, store_without"},
      {"RFC 9213 §2.2: Cache-Control is no targeted field",
       "cache:\n  targeted_cache_control: [CDN-Cache-Control, cache-control]\n" UPSTREAM, 2, 47,
       "cache.targeted_cache_control[1]", "Cache-Control is the fallback a targeted field replaces"},
      {"a targeted field that is not a token", "cache:\n  targeted_cache_control: [\"CDN Cache\"]\n" UPSTREAM, 2, 28,
       "cache.targeted_cache_control[0]", "expected a field name, got 'CDN Cache'"},
      {"a targeted field listed twice", "cache:\n  targeted_cache_control: [A-CC, CDN-Cache-Control, a-cc]\n" UPSTREAM,
       2, 53, "cache.targeted_cache_control[2]", "'a-cc' is already listed (cache.targeted_cache_control[0])"},
      {"RFC 9213 §2.2: a field off the target list is always forwarded",
       "cache:\n  drop_targeted_cache_control: [Cachalot-Cache-Control]\n" UPSTREAM, 2, 3,
       "cache.drop_targeted_cache_control[0]", "Cachalot-Cache-Control is not in cache.targeted_cache_control"},
      {"accept_encoding: '*' is no content coding", "cache:\n  accept_encoding: [gzip, \"*\"]\n" UPSTREAM, 2, 27,
       "cache.accept_encoding[1]", "'*' is not a content coding the origin applies"},
      {"accept_encoding: identity is no content coding", "cache:\n  accept_encoding: [Identity]\n" UPSTREAM, 2, 21,
       "cache.accept_encoding[0]", "'Identity' is not a content coding"},
      {"accept_encoding: a coding listed twice", "cache:\n  accept_encoding: [br, gzip, GZIP]\n" UPSTREAM, 2, 31,
       "cache.accept_encoding[2]", "'GZIP' is already listed (cache.accept_encoding[1])"},
      {"stale_on_disconnect is a duration", "cache:\n  stale_on_disconnect: soon\n" UPSTREAM, 2, 24,
       "cache.stale_on_disconnect", "expected a duration"},
      {"min_ttl above max_ttl", UPSTREAM "routes:\n  - name: a\n    prefix: /a\n    min_ttl: 1h\n    max_ttl: 5m\n",
       6, 5, "routes[0].max_ttl", "max_ttl (5m) is below min_ttl (1h)"},
      {"bad key header", UPSTREAM "routes:\n  - name: a\n    prefix: /a\n    key: { headers: [\"X Foo\"] }\n",
       5, 22, "routes[0].key.headers[0]", "expected a field name, got 'X Foo'"},
      {"bad trusted proxy range", "server:\n  trusted_proxies: [\"10.0.0.1/8\"]\n" UPSTREAM,
       2, 21, "server.trusted_proxies[0]", "did you mean 10.0.0.0/8?"},
      {"trusted_proxies not a list", "server:\n  trusted_proxies: 10.0.0.0/8\n" UPSTREAM,
       2, 20, "server.trusted_proxies", "expected a list, got '10.0.0.0/8'"},
      {"dropped field is not a token", "server:\n  drop_request_fields: [\"X Foo\"]\n" UPSTREAM,
       2, 25, "server.drop_request_fields[0]", "expected a field name, got 'X Foo'"},
      {"RFC 9112 §6: Content-Length frames the request, it cannot be dropped",
       "server:\n  drop_request_fields: [X-Foo, content-length]\n" UPSTREAM,
       2, 32, "server.drop_request_fields[1]", "content-length may not be dropped"},
      {"RFC 9112 §6.1: Transfer-Encoding frames the request, it cannot be dropped",
       "server:\n  drop_request_fields: [Transfer-Encoding]\n" UPSTREAM,
       2, 25, "server.drop_request_fields[0]", "Transfer-Encoding may not be dropped"},
      {"RFC 9110 §7.2: Host routes the request, it cannot be dropped",
       "server:\n  drop_request_fields: [HOST]\n" UPSTREAM,
       2, 25, "server.drop_request_fields[0]", "HOST may not be dropped"},
      {"admin host with a path", "admin:\n  hosts: [\"admin.example/x\"]\n" UPSTREAM,
       2, 11, "admin.hosts[0]", "expected a host name, optionally with :port, got 'admin.example/x'"},
      {"admin host with port 0", "admin:\n  hosts: [\"admin.example:0\"]\n" UPSTREAM,
       2, 11, "admin.hosts[0]", "expected a port in 1..65535 after ':' in 'admin.example:0'"},
      {"admin host with an empty port", "admin:\n  hosts: [ok.example, \"admin.example:\"]\n" UPSTREAM,
       2, 23, "admin.hosts[1]", "expected a port in 1..65535"},
      {"redacted field is not a token", "admin:\n  redact_fields: [\"X Key\"]\n" UPSTREAM,
       2, 19, "admin.redact_fields[0]", "expected a field name, got 'X Key'"},
      {"admin off loopback without a token", "admin:\n  listen: \"0.0.0.0:9901\"\n" UPSTREAM,
       2, 3, "admin.token", "required when admin.listen is not a loopback address"},
      {"admin off loopback with an empty token", "admin:\n  listen: \"[::]:9901\"\n  token: \"\"\n" UPSTREAM,
       3, 3, "admin.token", "required when admin.listen is not a loopback address"},
      {"admin on a private address without a token", "admin:\n  listen: \"10.1.2.3:9901\"\n" UPSTREAM,
       2, 3, "admin.token", "required when admin.listen is not a loopback address"},
      {"max_pipeline was removed", "server:\n  limits:\n    max_pipeline: 32\n" UPSTREAM,
       3, 5, "server.limits.max_pipeline", "unknown key 'max_pipeline'"},
      {"snapshot interval below a second", "cache:\n  snapshot:\n    path: /tmp/c.snap\n    interval: 500ms\n" UPSTREAM,
       4, 15, "cache.snapshot.interval", "must be 0 (off) or at least 1s"},
      {"snapshot interval without a path", "cache:\n  snapshot:\n    interval: 5m\n" UPSTREAM,
       3, 5, "cache.snapshot.interval", "needs cache.snapshot.path"},
      {"snapshot path not a string", "cache:\n  snapshot:\n    path: [a]\n" UPSTREAM,
       3, 11, "cache.snapshot.path", "expected a file path"},
      {"unknown snapshot key", "cache:\n  snapshot:\n    file: /x\n" UPSTREAM,
       3, 5, "cache.snapshot.file", "unknown key 'file'"},
      {"route not a map", UPSTREAM "routes:\n  - api\n", 3, 5, "routes[0]", "expected a route (a map), got 'api'"},
      {"cluster redis scheme", UPSTREAM "cluster:\n  redis: \"tcp://127.0.0.1:6379\"\n",
       3, 10, "cluster.redis", "expected redis://host[:port][/db] or unix:///path"},
      {"cluster redis database", UPSTREAM "cluster:\n  redis: \"redis://127.0.0.1/zero\"\n",
       3, 10, "cluster.redis", "database 'zero' is not a number"},
      {"cluster unknown key", UPSTREAM "cluster:\n  max_event: 10\n",
       3, 3, "cluster.max_event", "did you mean 'max_events'?"},
      {"cluster empty stream", UPSTREAM "cluster:\n  stream: \"\"\n", 3, 11, "cluster.stream", "must not be empty"},
      {"cluster node with a space", UPSTREAM "cluster:\n  node: \"cache a\"\n",
       3, 9, "cluster.node", "expected a name of up to 64 letters"},
      {"cluster max_events of 0", UPSTREAM "cluster:\n  max_events: 0\n",
       3, 15, "cluster.max_events", "0 is out of range 1..1000000000"},
      {"cluster queue_limit of 0", UPSTREAM "cluster:\n  queue_limit: 0\n",
       3, 16, "cluster.queue_limit", "0 is out of range 1..10000000"},
      {"cluster zero timeout", UPSTREAM "cluster:\n  timeout: 0s\n", 3, 12, "cluster.timeout", "must be greater than 0"},
      {"cluster backoff_max below backoff_min", UPSTREAM "cluster:\n  backoff_min: 2s\n  backoff_max: 1s\n",
       4, 3, "cluster.backoff_max", "backoff_max (1s) is below backoff_min (2s)"},
      {"cluster not a map", UPSTREAM "cluster: redis://h\n", 2, 10, "cluster", "expected a map, got 'redis://h'"},
      {"l2 redis scheme", "cache:\n  l2:\n    redis: \"http://h\"\n" UPSTREAM,
       3, 12, "cache.l2.redis", "expected redis://host[:port][/db] or unix:///path"},
      {"l2 zero timeout", "cache:\n  l2:\n    timeout: 0s\n" UPSTREAM, 3, 14, "cache.l2.timeout",
       "must be greater than 0"},
      {"l2 unknown key", "cache:\n  l2:\n    ttl: 5s\n" UPSTREAM, 3, 5, "cache.l2.ttl", "unknown key 'ttl'"},
      {"l2 larger than the local limit", "cache:\n  max_object_size: 1MiB\n  l2:\n    max_object_size: 2MiB\n" UPSTREAM,
       4, 5, "cache.l2.max_object_size", "must not exceed cache.max_object_size"},
      {"routes not a list", UPSTREAM "routes: { name: a }\n", 2, 9, "routes", "expected a list of routes"},
  };
  for (const Row& row : rows) {
    INFO(row.label << ":\n" << row.yaml);
    auto errors = expect_errors(load_config_string(row.yaml, "bad.yaml"));
    for (const ConfigError& e : errors) UNSCOPED_INFO(e.to_string());
    REQUIRE(errors.size() == 1);
    const ConfigError& e = errors[0];
    CHECK(e.file == "bad.yaml");
    CHECK(e.line == row.line);
    CHECK(e.column == row.column);
    CHECK(e.key == row.key);
    CHECK_THAT(e.message, Catch::Contains(row.message));
  }
}

TEST_CASE("all errors in a file are reported, in file order", "[config]") {
  const std::string path = kDataDir + "many_errors.yaml";
  auto errors = expect_errors(load_config_file(path));
  std::vector<std::string> got;
  for (const ConfigError& e : errors) got.push_back(e.to_string().substr(path.size()));
  CHECK(got == std::vector<std::string>{
                   ":3:30: server.listen[1]: expected ':port' after ']'",
                   ":4:12: server.workers: expected an integer in 0..256, got 'lots'",
                   ":6:5: server.timeouts.client_heder: unknown key 'client_heder' (did you mean 'client_header'?)",
                   ":8:15: cache.max_memory: expected a size such as 512, 64KiB, 256MiB or 1GiB, got '256MB!'",
                   ":9:11: cache.shards: 48 is not a power of two",
                   ":11:8: upstream.url: scheme must be http or https, not 'ftp'",
                   ":15:5: routes[1].name: duplicate route name 'a' (first at line 13)",
                   ":16:12: routes[1].regex: invalid regex: missing ): (unclosed",
               });
}

TEST_CASE("a missing or empty file is an error naming the file", "[config]") {
  auto missing = expect_errors(load_config_file(kDataDir + "no-such-file.yaml"));
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].to_string() == kDataDir + "no-such-file.yaml: cannot open: No such file or directory");

  for (const char* empty : {"", "# only a comment\n", "~\n"}) {
    auto errors = expect_errors(load_config_string(empty, "empty.yaml"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].to_string() == "empty.yaml: the file is empty; upstream.url is required");
  }
}

TEST_CASE("listeners, admin and workers take their special forms", "[config]") {
  auto config = expect_config(load_config_string(R"(
server:
  listen:
    - "[::]:8080"
    - address: "0.0.0.0:8443"
      tls: { cert: /etc/cachalot/cert.pem, key: /etc/cachalot/key.pem }
  workers: 0
  purge_allow: []
admin:
  listen: ""
upstream:
  url: http://[::1]:9000
cache:
  max_memory: 64MiB
  max_object_size: 64MiB
  shards: 16
  tag_headers: []
routes:
)",
                                                 "special.yaml"));
  REQUIRE(config->server.listen.size() == 2);
  CHECK(config->server.listen[0].host == "::");
  CHECK_FALSE(config->server.listen[0].tls);
  const ListenerConfig& tls = config->server.listen[1];
  CHECK(tls.host == "0.0.0.0");
  CHECK(tls.port == 8443);
  CHECK(tls.tls);
  CHECK(tls.cert_file == "/etc/cachalot/cert.pem");
  CHECK(tls.key_file == "/etc/cachalot/key.pem");
  CHECK(tls.text == "0.0.0.0:8443");
  CHECK(config->server.workers >= 1);  // 0 = one per CPU, resolved at load
  CHECK_FALSE(config->server.purge_allow.contains(std::string_view("127.0.0.1")));
  CHECK_FALSE(config->admin.listen);  // "" disables the admin listener
  CHECK(config->upstream.url.host == "::1");
  CHECK(config->cache.max_object_size == 64 * kMiB);  // exactly max_memory
  CHECK(config->cache.tag_headers.empty());
  CHECK(config->routes.empty());  // "routes:" with nothing under it
}

TEST_CASE("config errors format as file:line:col: key: message", "[config]") {
  CHECK(ConfigError{"a.yaml", 3, 7, "cache.shards", "48 is not a power of two"}.to_string() ==
        "a.yaml:3:7: cache.shards: 48 is not a power of two");
  CHECK(ConfigError{"a.yaml", 0, 0, "upstream.url", "is required"}.to_string() == "a.yaml: upstream.url: is required");
  CHECK(ConfigError{"a.yaml", 1, 1, "", "YAML syntax error: x"}.to_string() == "a.yaml:1:1: YAML syntax error: x");
}

TEST_CASE("enum names match the words in the file", "[config]") {
  CHECK(to_string(LogLevel::Warn) == "warn");
  CHECK(to_string(AccessLogFormat::Json) == "json");
  CHECK(to_string(SetCookiePolicy::NoStore) == "no_store");
}

TEST_CASE("forwarding and admin safety keys are read as written", "[config]") {
  auto config = expect_config(load_config_string(R"(
server:
  trusted_proxies: ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]
  drop_request_fields: [X-Original-URL, X-Custom-Override]
admin:
  listen: "0.0.0.0:9901"
  token: "t0ken"
  hosts: [admin.example, "Cachalot.Internal:9901"]
  redact_fields: [X-Api-Key]
upstream:
  url: http://origin
)",
                                                 "safety.yaml"));
  CHECK(config->server.trusted_proxies.contains(std::string_view("10.9.8.7")));
  CHECK(config->server.trusted_proxies.contains(std::string_view("fd12::1")));
  CHECK(config->server.trusted_proxies.contains(std::string_view("192.0.2.7")));
  CHECK_FALSE(config->server.trusted_proxies.contains(std::string_view("192.0.2.8")));
  CHECK(config->server.drop_request_fields == std::vector<std::string>{"X-Original-URL", "X-Custom-Override"});
  CHECK(config->admin.hosts == std::vector<std::string>{"admin.example", "Cachalot.Internal:9901"});
  CHECK(config->admin.redact_fields == std::vector<std::string>{"X-Api-Key"});

  // An empty list replaces the default list: nothing is dropped.
  auto none = expect_config(load_config_string("server:\n  drop_request_fields: []\n" UPSTREAM, "none.yaml"));
  CHECK(none->server.drop_request_fields.empty());
}

TEST_CASE("standards keys are read as written (RFC 9213, RFC 9111 §4.2.4, RFC 9110 §12.5.3)", "[config]") {
  auto config = expect_config(load_config_string(R"(
cache:
  stale_on_disconnect: 30s
  targeted_cache_control: [Cachalot-Cache-Control, CDN-Cache-Control]
  drop_targeted_cache_control: [cachalot-cache-control]
  accept_encoding: [br, gzip]
upstream:
  url: http://origin
routes:
  - name: a
    prefix: /a
    set_cookie: store_without
  - name: b
    prefix: /b
    set_cookie: strip
)",
                                                 "standards.yaml"));
  CHECK(config->cache.stale_on_disconnect == 30s);
  CHECK(config->cache.targeted_cache_control ==
        std::vector<std::string>{"Cachalot-Cache-Control", "CDN-Cache-Control"});
  CHECK(config->cache.drop_targeted_cache_control == std::vector<std::string>{"cachalot-cache-control"});
  CHECK(config->cache.accept_encoding == std::vector<std::string>{"br", "gzip"});
  // store_without is what strip always did: one policy, two names.
  CHECK(config->routes.at(0).set_cookie == SetCookiePolicy::Strip);
  CHECK(config->routes.at(1).set_cookie == SetCookiePolicy::Strip);

  // An empty target list turns RFC 9213 off; 0s turns the disconnect grace off.
  auto off = expect_config(
      load_config_string("cache:\n  targeted_cache_control: []\n  stale_on_disconnect: 0s\n" UPSTREAM, "off.yaml"));
  CHECK(off->cache.targeted_cache_control.empty());
  CHECK(off->cache.stale_on_disconnect == 0s);
}

TEST_CASE("cache.snapshot is off by default and read as written", "[config][snapshot]") {
  auto none = expect_config(load_config_string(UPSTREAM, "none.yaml"));
  CHECK(none->cache.snapshot.path.empty());
  CHECK(none->cache.snapshot.interval == 0s);
  auto on = expect_config(load_config_string(
      "cache:\n  snapshot: { path: /var/lib/cachalot/cache.snap }\n" UPSTREAM, "on.yaml"));
  CHECK(on->cache.snapshot.path == "/var/lib/cachalot/cache.snap");
  CHECK(on->cache.snapshot.interval == 0s);
  auto periodic = expect_config(load_config_string(
      "cache:\n  snapshot:\n    path: /var/lib/cachalot/cache.snap\n    interval: 5m\n" UPSTREAM, "periodic.yaml"));
  CHECK(periodic->cache.snapshot.interval == 5min);
}

TEST_CASE("a loopback admin listener needs no token; any other address does", "[config]") {
  for (const char* listen : {"127.0.0.1:9901", "127.0.0.2:9901", "[::1]:9901", "[::ffff:127.0.0.1]:9901"}) {
    INFO(listen);
    std::string yaml = std::string("admin:\n  listen: \"") + listen + "\"\n" UPSTREAM;
    expect_config(load_config_string(yaml, "loopback.yaml"));
  }
  expect_config(load_config_string("admin:\n  listen: \"\"\n" UPSTREAM, "disabled.yaml"));
  expect_config(load_config_string("admin:\n  listen: \"[::]:9901\"\n  token: t\n" UPSTREAM, "token.yaml"));
  for (const char* listen : {"0.0.0.0:9901", "[::]:9901", "192.168.1.5:9901", "[2001:db8::1]:9901"}) {
    INFO(listen);
    std::string yaml = std::string("admin:\n  listen: \"") + listen + "\"\n" UPSTREAM;
    auto errors = expect_errors(load_config_string(yaml, "open.yaml"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].to_string() == "open.yaml:2:3: admin.token: required when admin.listen is not a loopback address");
  }
}
