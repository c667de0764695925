#include "config/address.h"

#include <catch2/catch.hpp>

using namespace cachalot::config;

TEST_CASE("listen addresses need an IP literal host and a port", "[config]") {
  struct Row {
    const char* text;
    const char* host;  // nullptr: rejected
    uint16_t port;
    const char* error_contains;
  };
  const Row rows[] = {
      {"127.0.0.1:8080", "127.0.0.1", 8080, ""},
      {"0.0.0.0:80", "0.0.0.0", 80, ""},
      {"[::1]:8080", "::1", 8080, ""},
      {"[::]:443", "::", 443, ""},
      {"[fe80::1%eth0]:80", nullptr, 0, "not an IP address"},  // zone ids are not supported
      {":8080", nullptr, 0, "missing host"},
      {"localhost:8080", nullptr, 0, "not an IP address"},
      {"127.0.0.1", nullptr, 0, "missing ':port'"},
      {"127.0.0.1:", nullptr, 0, "missing port"},
      {"127.0.0.1:0", nullptr, 0, "1..65535"},
      {"127.0.0.1:65536", nullptr, 0, "1..65535"},
      {"127.0.0.1:http", nullptr, 0, "1..65535"},
      {"::1:8080", nullptr, 0, "needs brackets"},
      {"[::1:8080", nullptr, 0, "missing ']'"},
      {"[::1]8080", nullptr, 0, "expected ':port'"},
      {"[127.0.0.1]:80", nullptr, 0, "not an IP address"},
      {"256.0.0.1:80", nullptr, 0, "not an IP address"},
  };
  for (const Row& row : rows) {
    INFO(row.text);
    std::string error;
    auto listener = parse_listen_address(row.text, &error);
    if (row.host) {
      REQUIRE(listener);
      CHECK(listener->host == row.host);
      CHECK(listener->port == row.port);
      CHECK(listener->text == row.text);
      CHECK_FALSE(listener->tls);
    } else {
      CHECK_FALSE(listener);
      CHECK_THAT(error, Catch::Contains(row.error_contains));
    }
  }
}

TEST_CASE("upstream URLs are an origin: scheme, host and port, nothing else", "[config]") {
  struct Row {
    const char* text;
    const char* scheme;  // nullptr: rejected with `host` as the error
    const char* host;
    uint16_t port;
  };
  const Row rows[] = {
      {"http://127.0.0.1:9000", "http", "127.0.0.1", 9000},
      {"http://origin.internal", "http", "origin.internal", 80},
      {"https://origin.internal", "https", "origin.internal", 443},
      {"HTTPS://Origin.Internal:8443/", "https", "Origin.Internal", 8443},
      {"http://[::1]:9000", "http", "::1", 9000},
      {"http://[::1]", "http", "::1", 80},
      {"ftp://origin", nullptr, "scheme must be http or https, not 'ftp'", 0},
      {"origin:9000", nullptr, "expected http://host[:port]", 0},
      {"http://", nullptr, "missing host", 0},
      {"http://:80", nullptr, "missing host", 0},
      {"http://origin/base", nullptr, "only an origin is allowed", 0},  // no base paths
      {"http://origin?x=1", nullptr, "only an origin is allowed", 0},
      {"http://user:pw@origin", nullptr, "userinfo is not allowed", 0},
      {"http://origin:0", nullptr, "port '0' is not in 1..65535", 0},
      {"http://origin:", nullptr, "missing port", 0},
      {"http://ori gin", nullptr, "invalid host 'ori gin'", 0},
      {"http://[origin]", nullptr, "invalid host 'origin'", 0},
      {"http://::1", nullptr, "needs brackets", 0},
  };
  for (const Row& row : rows) {
    INFO(row.text);
    std::string error;
    auto url = parse_upstream_url(row.text, &error);
    if (!row.scheme) {
      CHECK_FALSE(url);
      CHECK_THAT(error, Catch::Contains(row.host));
      continue;
    }
    REQUIRE(url);
    CHECK(url->scheme == row.scheme);
    CHECK(url->host == row.host);
    CHECK(url->port == row.port);
    CHECK(url->text == row.text);
  }
}

TEST_CASE("CIDR sets match IPv4, IPv6 and IPv4-mapped IPv6 clients", "[config]") {
  CidrSet set;
  for (const char* text : {"127.0.0.0/8", "10.1.0.0/16", "192.168.1.7", "::1/128", "fd00::/8", "2001:db8::/33"})
    set.ranges.push_back(*parse_cidr(text));
  struct Row {
    const char* address;
    bool allowed;
  };
  const Row rows[] = {
      {"127.0.0.1", true},        {"127.255.255.255", true}, {"128.0.0.1", false},
      {"10.1.200.3", true},       {"10.2.0.1", false},       {"192.168.1.7", true},
      {"192.168.1.8", false},     {"::1", true},             {"::2", false},
      {"fd12:3456::1", true},     {"fe00::1", false},        {"2001:db8:7fff::1", true},
      {"2001:db8:8000::1", false}, {"::ffff:127.0.0.1", true}, {"::ffff:8.8.8.8", false},
      {"not an address", false},  {"", false},
  };
  for (const Row& row : rows) {
    INFO(row.address);
    CHECK(set.contains(std::string_view(row.address)) == row.allowed);
  }

  const std::array<uint8_t, 4> v4{127, 0, 0, 1};
  std::array<uint8_t, 16> v6{};
  v6[15] = 1;  // ::1
  CHECK(set.contains(v4));
  CHECK(set.contains(v6));
  CHECK_FALSE(set.contains(std::span<const uint8_t>(v4.data(), 3)));
  CHECK_FALSE(CidrSet{}.contains(std::string_view("127.0.0.1")));
  CHECK(CidrSet{{*parse_cidr("0.0.0.0/0")}}.contains(std::string_view("8.8.8.8")));
  CHECK_FALSE(CidrSet{{*parse_cidr("0.0.0.0/0")}}.contains(std::string_view("2001:db8::1")));
  CHECK(CidrSet{{*parse_cidr("::/0")}}.contains(std::string_view("8.8.8.8")));  // ::/0 includes mapped IPv4
}

TEST_CASE("CIDR ranges reject bad prefixes and set host bits", "[config]") {
  std::string error;
  CHECK_FALSE(parse_cidr("10.0.0.1/8", &error));
  CHECK(error == "host bits are set; did you mean 10.0.0.0/8?");
  CHECK_FALSE(parse_cidr("2001:db8::1/32", &error));
  CHECK(error == "host bits are set; did you mean 2001:db8::/32?");
  CHECK_FALSE(parse_cidr("10.0.0.0/33", &error));
  CHECK(error == "prefix length must be 0..32");
  CHECK_FALSE(parse_cidr("::/129", &error));
  CHECK_FALSE(parse_cidr("10.0.0.0/", &error));
  CHECK_FALSE(parse_cidr("10.0.0/8", &error));
  CHECK_FALSE(parse_cidr("localhost", &error));
  CHECK(parse_cidr("10.0.0.0/8")->prefix_len == 8 + 96);
  CHECK(parse_cidr("::1")->prefix_len == 128);
}

TEST_CASE("redis addresses: redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]", "[config]") {
  struct Row {
    const char* text;
    bool ok;
    bool unix_socket;
    const char* host_or_path;  // or, when rejected, a part of the error
    uint16_t port;
    uint32_t db;
    const char* user;
    const char* password;
    const char* shown;  // `text`: what logs and GET /cluster print
  };
  const Row rows[] = {
      {"redis://127.0.0.1:6379/0", true, false, "127.0.0.1", 6379, 0, "", "", "redis://127.0.0.1:6379/0"},
      {"redis://redis.internal", true, false, "redis.internal", 6379, 0, "", "", "redis://redis.internal"},
      {"redis://[::1]:7000/3", true, false, "::1", 7000, 3, "", "", "redis://[::1]:7000/3"},
      {"redis://:s3cret@10.0.0.5:6380/2", true, false, "10.0.0.5", 6380, 2, "", "s3cret", "redis://:***@10.0.0.5:6380/2"},
      {"redis://app:p%40ss@redis/1", true, false, "redis", 6379, 1, "app", "p@ss", "redis://app:***@redis/1"},
      {"redis://h/", true, false, "h", 6379, 0, "", "", "redis://h/"},
      {"unix:///run/redis/redis.sock", true, true, "/run/redis/redis.sock", 0, 0, "", "", "unix:///run/redis/redis.sock"},
      {"unix:///tmp/r.sock?db=4", true, true, "/tmp/r.sock", 0, 4, "", "", "unix:///tmp/r.sock?db=4"},
      {"http://127.0.0.1:6379", false, false, "expected redis://", 0, 0, "", "", ""},
      {"redis://", false, false, "missing host", 0, 0, "", "", ""},
      {"redis://h:0", false, false, "1..65535", 0, 0, "", "", ""},
      {"redis://h/x", false, false, "database 'x'", 0, 0, "", "", ""},
      {"redis://user@h", false, false, "needs a password", 0, 0, "", "", ""},
      {"redis://:p%zz@h", false, false, "%-escape", 0, 0, "", "", ""},
      {"redis://a b", false, false, "invalid host", 0, 0, "", "", ""},
      {"unix://run/redis.sock", false, false, "absolute", 0, 0, "", "", ""},
      {"unix:///tmp/r.sock?timeout=1", false, false, "?db=N", 0, 0, "", "", ""},
  };
  for (const Row& row : rows) {
    INFO(row.text);
    std::string error;
    auto a = parse_redis_address(row.text, &error);
    if (!row.ok) {
      CHECK_FALSE(a);
      CHECK_THAT(error, Catch::Contains(row.host_or_path));
      continue;
    }
    REQUIRE(a);
    CHECK(a->unix_socket == row.unix_socket);
    CHECK((row.unix_socket ? a->path : a->host) == row.host_or_path);
    if (!row.unix_socket) CHECK(a->port == row.port);
    CHECK(a->db == row.db);
    CHECK(a->user == row.user);
    CHECK(a->password == row.password);
    CHECK(a->text == row.shown);
  }
}
