// ForwardedRequest: the request as this hop forwards it. What is forwarded is
// what is keyed: the request line and Host sent to the origin are read out
// of the primary key, so preparing and keying the forwarded request again
// gives the same key.
#include "proxy/forwarded_request.h"

#include <catch2/catch.hpp>

#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cache/key.h"
#include "cache/vary.h"
#include "http/parser.h"

namespace {
// The key as the proxy completes it: prepare(), then finish_key() once.
std::string finished_key(cachalot::proxy::ForwardedRequest& f, const cachalot::http::RequestHead& r,
                         const cachalot::cache::KeyOptions& o) {
  f.finish_key(r, o);
  return f.key();
}
}  // namespace

using namespace cachalot;
using http::TargetError;
using proxy::ForwardedRequest;
using proxy::ForwardOptions;
using proxy::Peer;

namespace Catch {
template <>
struct StringMaker<TargetError> {
  static std::string convert(TargetError e) { return std::string(http::to_string(e)); }
};
}  // namespace Catch

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

// server.trusted_proxies = [10.0.0.0/8, ::1/128]; drop_request_fields as in the sample config.
struct Setup {
  config::CidrSet trusted;
  std::vector<std::string> drop = {"X-Original-URL", "X-HTTP-Method-Override"};
  Setup() {
    for (const char* c : {"10.0.0.0/8", "::1/128"}) {
      auto cidr = config::parse_cidr(c);
      REQUIRE(cidr);
      trusted.ranges.push_back(*cidr);
    }
  }
  ForwardOptions opts(std::string_view fallback = "origin.internal") const {
    return {.trusted_proxies = &trusted, .drop_fields = &drop, .fallback_host = fallback};
  }
};

const Peer kClient{"192.0.2.7", {192, 0, 2, 7}};   // not trusted
const Peer kProxy{"10.1.2.3", {10, 1, 2, 3}};       // trusted
const Peer kV6Client{"2001:db8::7", {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}};
const Peer kV6Proxy{"::1", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

http::RequestHead request(std::string target, const Fields& fields, http::Method method = http::Method::Get,
                          int version_minor = 1) {
  http::RequestHead r;
  r.method = method;
  r.method_name = std::string(http::to_string(method));
  r.target = std::move(target);
  r.version_minor = version_minor;
  for (const auto& [n, v] : fields) r.headers.add(n, v);
  return r;
}

std::string serialize(ForwardedRequest& fr, const http::RequestHead& req, const cache::KeyOptions& key = {}) {
  std::string out;
  fr.serialize_head(out, req, req.method_name, finished_key(fr, req, key), [](std::string_view) { return false; });
  return out;
}

// Everything after the request line and Host: the fields and forwarding fields.
std::string fields_of(const std::string& head) {
  const std::size_t host = head.find("\r\nHost: ");
  const std::size_t after = head.find("\r\n", host + 2);
  return head.substr(after + 2);
}

// The origin's view: the forwarded head parsed as a request on the wire.
http::RequestHead parse(const std::string& head) {
  const std::string bytes = head + "\r\n";
  http::Parser p(http::Parser::Kind::Request, {});
  p.execute(bytes.data(), bytes.size());
  INFO(head);
  REQUIRE(p.error() == http::ParseError::None);
  REQUIRE(p.message_complete());
  return p.request();
}

// Prepares (from an untrusted client, on `scheme`), keys, forwards, parses the
// forwarded head and prepares and keys it again. Returns both keys.
struct RoundTrip {
  TargetError error = TargetError::None;
  std::string key, again;
  std::string head, path, authority;
};
RoundTrip round_trip(const Setup& s, std::string_view scheme, http::RequestHead req, const cache::KeyOptions& key) {
  RoundTrip out;
  ForwardedRequest fr;
  out.error = fr.prepare(req, scheme, kClient, s.opts());
  if (out.error != TargetError::None) return out;
  out.key = finished_key(fr, req, key);
  out.path = std::string(fr.path());
  out.authority = fr.authority();
  out.head = serialize(fr, req, key);
  http::RequestHead forwarded = parse(out.head);
  ForwardedRequest again;
  const TargetError e = again.prepare(forwarded, scheme, kClient, s.opts());
  INFO(out.head);
  REQUIRE(e == TargetError::None);
  out.again = finished_key(again, forwarded, key);
  CHECK(std::string(again.path()) == out.path);
  CHECK(again.authority() == out.authority);
  return out;
}

}  // namespace

TEST_CASE("prepare removes hop-by-hop and Connection-nominated fields, but Host is always sent "
          "(RFC 9110 §7.6.1)",
          "[proxy][forwarded]") {
  Setup s;
  auto req = request("/a", {{"Host", "example.com"},
                            {"Connection", "keep-alive, X-Hop, Host"},
                            {"Connection", "x-other"},
                            {"Keep-Alive", "timeout=5"},
                            {"Proxy-Connection", "keep-alive"},
                            {"TE", "trailers"},
                            {"Trailer", "X-Sum"},
                            {"Upgrade", "h2c"},
                            {"X-Hop", "1"},
                            {"X-Other", "2"},
                            {"X-Keep", "kept"},
                            {"Accept", "*/*"}});
  ForwardedRequest fr;
  REQUIRE(fr.prepare(req, "http", kClient, s.opts()) == TargetError::None);
  Fields left;
  for (auto f : req.headers) left.emplace_back(std::string(f.name), std::string(f.value));
  CHECK(left == Fields{{"X-Keep", "kept"}, {"Accept", "*/*"}});
  const std::string head = serialize(fr, req);
  CHECK(head.rfind("GET /a HTTP/1.1\r\nHost: example.com\r\nX-Keep: kept\r\nAccept: */*\r\n", 0) == 0);
  CHECK(head.find("\r\nHost:") == head.rfind("\r\nHost:"));  // exactly one Host
  CHECK(fr.authority() == "example.com");
}

TEST_CASE("prepare removes every Connection-nominated field even past the fast path's limit", "[proxy][forwarded]") {
  Setup s;
  Fields fields = {{"Host", "example.com"}};
  std::string names;
  for (int i = 0; i < 20; ++i) {
    names += (i ? ", X-N" : "X-N") + std::to_string(i);
    fields.emplace_back("X-N" + std::to_string(i), "v");
  }
  fields.emplace_back("Connection", names);
  fields.emplace_back("X-Keep", "kept");
  auto req = request("/a", fields);
  ForwardedRequest fr;
  REQUIRE(fr.prepare(req, "http", kClient, s.opts()) == TargetError::None);
  REQUIRE(req.headers.size() == 1);
  CHECK(req.headers.has("x-keep"));
}

TEST_CASE("prepare normalises the authority it forwards and keys (RFC 9112 §3.2.2, RFC 9110 §4.2.3)",
          "[proxy][forwarded]") {
  struct Row {
    const char* name;
    std::string_view scheme = "http";
    std::string target = "/a";
    Fields fields = {{"Host", "example.com"}};
    int version_minor = 1;
    TargetError error = TargetError::None;
    std::string authority = "example.com";
    std::string forwarded_target = "/a";  // req.target after prepare
  };
  const std::vector<Row> rows = {
      {.name = "baseline"},
      {.name = "RFC 3986 §6.2.2.1 Host is lower-cased, §6.2.3 the default port dropped",
       .fields = {{"Host", "EXAMPLE.com:80"}}},
      {.name = "RFC 9110 §4.2.3 https drops 443", .scheme = "https", .fields = {{"Host", "example.com:443"}}},
      {.name = "RFC 9110 §4.2.3 http keeps 443", .fields = {{"Host", "example.com:443"}},
       .authority = "example.com:443"},
      {.name = "RFC 9110 §4.2.3 https keeps 80", .scheme = "https", .fields = {{"Host", "example.com:80"}},
       .authority = "example.com:80"},
      {.name = "RFC 3986 §6.2.3 leading zeros of the port", .fields = {{"Host", "example.com:0080"}}},
      {.name = "RFC 3986 §6.2.3 an empty port", .fields = {{"Host", "example.com:"}}},
      {.name = "another port is kept", .fields = {{"Host", "Example.com:8080"}}, .authority = "example.com:8080"},
      {.name = "an IPv6 literal", .fields = {{"Host", "[::1]:80"}}, .authority = "[::1]"},
      {.name = "an IPv6 literal is lower-cased", .fields = {{"Host", "[2001:DB8::1]:8080"}},
       .authority = "[2001:db8::1]:8080"},
      {.name = "RFC 9112 §3.2.2 the absolute-form authority wins over Host and is normalised",
       .target = "http://EXAMPLE.com:80/a", .fields = {{"Host", "other.example"}}},
      {.name = "RFC 9112 §3.2.2 even over an invalid Host", .target = "http://example.com/a",
       .fields = {{"Host", "a/b"}}},
      {.name = "RFC 9112 §3.2.2 https absolute-form on an https listener", .scheme = "https",
       .target = "HTTPS://example.com:443/a?x", .forwarded_target = "/a?x"},
      {.name = "RFC 9112 §3.2.2 absolute-form without a path is forwarded as '/'",
       .target = "http://example.com", .forwarded_target = "/"},
      {.name = "RFC 9112 §3.2.2 absolute-form with only a query", .target = "http://example.com?x=1",
       .forwarded_target = "/?x=1"},
      {.name = "RFC 9112 §3.2 HTTP/1.0 without Host: the configured fallback", .fields = {}, .version_minor = 0,
       .authority = "origin.internal"},
      {.name = "RFC 9112 §3.2 an empty Host: the fallback", .fields = {{"Host", ""}}, .authority = "origin.internal"},
      {.name = "RFC 9112 §3.2 an invalid Host", .fields = {{"Host", "a/b"}}, .error = TargetError::Host},
      {.name = "RFC 9110 §4.2.4 userinfo in Host", .fields = {{"Host", "user@example.com"}},
       .error = TargetError::Host},
      {.name = "RFC 9110 §4.2.4 userinfo in the target", .target = "http://user@example.com/a",
       .error = TargetError::Userinfo},
      {.name = "RFC 3986 §3.5 a fragment", .target = "/a#f", .error = TargetError::Fragment},
      {.name = "RFC 3986 §2.1 an invalid escape", .target = "/a%zz", .error = TargetError::Escape},
      {.name = "RFC 9110 §4.2 a foreign scheme", .target = "ftp://example.com/a", .error = TargetError::Scheme},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Setup s;
      auto req = request(r.target, r.fields, http::Method::Get, r.version_minor);
      ForwardedRequest fr;
      REQUIRE(fr.prepare(req, r.scheme, kClient, s.opts()) == r.error);
      if (r.error != TargetError::None) continue;
      CHECK(fr.authority() == r.authority);
      CHECK(fr.scheme() == r.scheme);
      CHECK(req.target == r.forwarded_target);
      const std::string key = finished_key(fr, req, {});
      CHECK(cache::key_authority(key) == r.authority);
      CHECK(serialize(fr, req).find("\r\nHost: " + r.authority + "\r\n") != std::string::npos);
    }
  }
}

TEST_CASE("prepare removes server.drop_request_fields, by name in any case", "[proxy][forwarded]") {
  Setup s;
  auto req = request("/a", {{"Host", "example.com"},
                            {"x-original-url", "/admin"},
                            {"X-HTTP-Method-Override", "DELETE"},
                            {"X-Original-URL", "/admin"},
                            {"X-Keep", "kept"}});
  ForwardedRequest fr;
  REQUIRE(fr.prepare(req, "http", kClient, s.opts()) == TargetError::None);
  CHECK(req.headers.size() == 1);
  CHECK(req.headers.has("x-keep"));

  auto no_drop = request("/a", {{"Host", "example.com"}, {"X-Original-URL", "/admin"}});
  ForwardOptions opts = s.opts();
  opts.drop_fields = nullptr;
  REQUIRE(fr.prepare(no_drop, "http", kClient, opts) == TargetError::None);
  CHECK(no_drop.headers.has("x-original-url"));
}

TEST_CASE("cache.accept_encoding reduces the forwarded Accept-Encoding before anything is keyed "
          "(RFC 9110 §12.5.3)",
          "[proxy][forwarded]") {
  Setup s;
  const std::vector<std::string> codings = {"br", "gzip"};
  ForwardOptions opts = s.opts();
  opts.accept_encoding = &codings;
  const cache::KeyOptions keyed{.headers = {"Accept-Encoding"}};
  const std::vector<std::string> kAE = {"accept-encoding"};  // a Vary: Accept-Encoding response's names
  struct Row {
    const char* name;
    Fields fields;
    std::optional<std::string> forwarded;  // the one Accept-Encoding line sent, or none
  };
  const std::vector<Row> rows = {
      {"a browser's list: the configured codings it accepts, in configured order",
       {{"Accept-Encoding", "gzip, deflate, br, zstd"}}, "br, gzip"},
      {"weights dropped, x-gzip read as gzip", {{"Accept-Encoding", "x-gzip;q=0.5, br;q=0.9"}}, "br, gzip"},
      {"two lines are one list", {{"Accept-Encoding", "br"}, {"accept-encoding", "gzip;q=0.1"}}, "br, gzip"},
      {"§12.5.3 q=0 is not acceptable", {{"Accept-Encoding", "gzip, br;q=0"}}, "gzip"},
      {"§12.5.3 \"*\" admits the unlisted codings", {{"Accept-Encoding", "*"}}, "br, gzip"},
      {"nothing configured accepted: only identity", {{"Accept-Encoding", "deflate"}}, ""},
      {"identity refused is kept refused", {{"Accept-Encoding", "gzip, identity;q=0"}}, "gzip, identity;q=0"},
      {"an unparsable value is forwarded as sent", {{"Accept-Encoding", "gzip;q=2"}}, "gzip;q=2"},
      {"an absent field stays absent", {}, std::nullopt},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Fields f = {{"Host", "example.com"}};
      f.insert(f.end(), r.fields.begin(), r.fields.end());
      auto req = request("/a", f);
      ForwardedRequest fr;
      REQUIRE(fr.prepare(req, "http", kClient, opts) == TargetError::None);
      // The forwarded request itself carries the value: its key and its head agree.
      CHECK(req.headers.count("accept-encoding") == (r.forwarded ? 1u : 0u));
      if (r.forwarded) CHECK(req.headers.get_combined("accept-encoding") == *r.forwarded);
      const std::string head = serialize(fr, req, keyed);
      http::RequestHead origin = parse(head);
      if (r.forwarded) CHECK(origin.headers.get_combined("accept-encoding") == *r.forwarded);
      // Preparing what the origin got gives the same key (the reduction is idempotent).
      ForwardedRequest again;
      REQUIRE(again.prepare(origin, "http", kClient, opts) == TargetError::None);
      CHECK(finished_key(again, origin, keyed) == fr.key());
      CHECK(cache::variant_key(kAE, origin.headers) == cache::variant_key(kAE, req.headers));
    }
  }
  SECTION("two browsers' lists that accept the same configured codings share a variant") {
    auto a = request("/a", {{"Host", "example.com"}, {"Accept-Encoding", "gzip, deflate, br, zstd"}});
    auto b = request("/a", {{"Host", "example.com"}, {"Accept-Encoding", "br;q=0.9, gzip"}});
    ForwardedRequest fa, fb;
    REQUIRE(fa.prepare(a, "http", kClient, opts) == TargetError::None);
    REQUIRE(fb.prepare(b, "http", kClient, opts) == TargetError::None);
    CHECK(cache::variant_key(kAE, a.headers) == cache::variant_key(kAE, b.headers));
  }
  SECTION("without cache.accept_encoding the value is forwarded as sent") {
    auto req = request("/a", {{"Host", "example.com"}, {"Accept-Encoding", "gzip, deflate, br, zstd"}});
    ForwardedRequest fr;
    REQUIRE(fr.prepare(req, "http", kClient, s.opts()) == TargetError::None);
    CHECK(req.headers.get_combined("accept-encoding") == "gzip, deflate, br, zstd");
  }
}

TEST_CASE("forwarding fields are ours: replaced for untrusted peers, kept and extended for trusted ones "
          "(RFC 7239, RFC 9110 §7.6.3)",
          "[proxy][forwarded]") {
  const Fields sent = {{"Host", "example.com"},
                       {"X-Forwarded-For", "198.51.100.1"},
                       {"X-Forwarded-Host", "public.example"},
                       {"X-Forwarded-Proto", "https"},
                       {"Forwarded", "for=198.51.100.1;host=public.example;proto=https"},
                       {"X-Keep", "kept"}};
  struct Row {
    const char* name;
    Peer peer;
    Fields fields;
    std::string want;  // the forwarded fields after the request line and Host
    int version_minor = 1;
    std::string_view scheme = "http";
  };
  const std::vector<Row> rows = {
      {"an untrusted client's forwarding fields are dropped and written anew", kClient, sent,
       "X-Keep: kept\r\n"
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 192.0.2.7\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: for=192.0.2.7;host=example.com;proto=http\r\n"},
      {"a trusted proxy's values are kept and extended", kProxy, sent,
       "X-Keep: kept\r\n"
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 198.51.100.1, 10.1.2.3\r\n"
       "X-Forwarded-Host: public.example\r\n"
       "X-Forwarded-Proto: https\r\n"
       "Forwarded: for=198.51.100.1;host=public.example;proto=https, for=10.1.2.3;host=example.com;proto=http\r\n"},
      {"a trusted proxy that sent none gets ours", kProxy, {{"Host", "example.com"}},
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 10.1.2.3\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: for=10.1.2.3;host=example.com;proto=http\r\n"},
      {"several X-Forwarded-For lines of a trusted proxy are combined", kProxy,
       {{"Host", "example.com"}, {"X-Forwarded-For", "198.51.100.1"}, {"X-Forwarded-For", "198.51.100.2"}},
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 198.51.100.1, 198.51.100.2, 10.1.2.3\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: for=10.1.2.3;host=example.com;proto=http\r\n"},
      {"RFC 7239 §6 an IPv6 client is quoted as \"[v6]\"", kV6Client, {{"Host", "example.com"}},
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 2001:db8::7\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: for=\"[2001:db8::7]\";host=example.com;proto=http\r\n"},
      {"RFC 7239 §6 a trusted IPv6 proxy ::1", kV6Proxy, {{"Host", "example.com"}, {"X-Forwarded-For", "192.0.2.1"}},
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 192.0.2.1, ::1\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: for=\"[::1]\";host=example.com;proto=http\r\n"},
      {"RFC 7239 §4 a host with a port is quoted", kClient, {{"Host", "example.com:8080"}},
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 192.0.2.7\r\n"
       "X-Forwarded-Host: example.com:8080\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: for=192.0.2.7;host=\"example.com:8080\";proto=http\r\n"},
      {"RFC 9110 §7.6.3 Via names the version received", kClient, {{"Host", "example.com"}},
       "Via: 1.0 cachalot\r\n"
       "X-Forwarded-For: 192.0.2.7\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: for=192.0.2.7;host=example.com;proto=http\r\n",
       0},
      {"the listener's scheme", kClient, {{"Host", "example.com"}},
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-For: 192.0.2.7\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: https\r\n"
       "Forwarded: for=192.0.2.7;host=example.com;proto=https\r\n",
       1, "https"},
      {"no client address: no X-Forwarded-For and no for=", Peer{}, {{"Host", "example.com"}},
       "Via: 1.1 cachalot\r\n"
       "X-Forwarded-Host: example.com\r\n"
       "X-Forwarded-Proto: http\r\n"
       "Forwarded: host=example.com;proto=http\r\n"},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Setup s;
      auto req = request("/a", r.fields, http::Method::Get, r.version_minor);
      ForwardedRequest fr;
      REQUIRE(fr.prepare(req, r.scheme, r.peer, s.opts()) == TargetError::None);
      const std::string head = serialize(fr, req);
      CHECK(head.rfind("GET /a HTTP/1.1\r\nHost: example.com", 0) == 0);
      CHECK(fields_of(head) == r.want);
      // The forwarded head is well-formed HTTP.
      parse(head);
    }
  }
  SECTION("no trusted_proxies configured: nobody is trusted") {
    Setup s;
    auto opts = s.opts();
    opts.trusted_proxies = nullptr;
    auto req = request("/a", sent);
    ForwardedRequest fr;
    REQUIRE(fr.prepare(req, "http", kProxy, opts) == TargetError::None);
    CHECK_FALSE(fr.trusted_peer());
    CHECK(fields_of(serialize(fr, req)).find("public.example") == std::string::npos);
  }
  SECTION("an IPv4 peer seen as IPv4-mapped IPv6 matches a v4 range") {
    Setup s;
    const Peer mapped{"10.1.2.3", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}};
    auto req = request("/a", sent);
    ForwardedRequest fr;
    REQUIRE(fr.prepare(req, "http", mapped, s.opts()) == TargetError::None);
    CHECK(fr.trusted_peer());
  }
}

TEST_CASE("path() is the normalised path, for route matching (RFC 3986 §5.2.4, §6.2.2)", "[proxy][forwarded]") {
  struct Row {
    const char* name;
    std::string target;
    std::string want;
    http::Method method = http::Method::Get;
  };
  const std::vector<Row> rows = {
      {"a normal path as received", "/api/v1/items", "/api/v1/items"},
      {"the query is not part of it", "/api/v1?x=/admin", "/api/v1"},
      {"§5.2.4 '..' cannot step out of a route", "/api/../admin", "/admin"},
      {"§5.2.4 '.' segments", "/a/./b/.", "/a/b/"},
      {"§6.2.2 encoded dot segments count", "/api/%2e%2E/admin", "/admin"},
      {"§6.2.2.2 encoded unreserved characters are decoded", "/%61dmin", "/admin"},
      {"§6.2.2.1 escapes are upper-cased", "/a%2fb", "/a%2Fb"},
      {"an encoded '/' is not a separator", "/api%2F..%2Fadmin", "/api%2F..%2Fadmin"},
      {"'..' at the root", "/../../admin", "/admin"},
      {"empty segments are kept", "//admin", "//admin"},
      {"absolute-form", "http://example.com/x/../y?q", "/y"},
      {"absolute-form without a path", "http://example.com", "/"},
      {"asterisk-form", "*", "/", http::Method::Options},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Setup s;
      auto req = request(r.target, {{"Host", "example.com"}}, r.method);
      ForwardedRequest fr;
      REQUIRE(fr.prepare(req, "http", kClient, s.opts()) == TargetError::None);
      CHECK(fr.path() == r.want);
      CHECK(fr.asterisk() == (r.target == "*"));
      // The route sees the path that is keyed and forwarded.
      const std::string key = finished_key(fr, req, {});
      const std::string_view kp = cache::key_path(key);
      CHECK(kp.substr(0, kp.find('?')) == r.want);
    }
  }
}

TEST_CASE("a trusted proxy's X-Forwarded-Host / -Proto / Forwarded reach the origin, so they are keyed",
          "[proxy][forwarded]") {
  struct Row {
    const char* name;
    Peer peer;
    Fields fields;
    std::string want;
  };
  const std::vector<Row> rows = {
      {"untrusted: the plain key", kClient,
       {{"Host", "example.com"}, {"X-Forwarded-Host", "a.example"}, {"X-Forwarded-Proto", "https"}},
       "http://example.com/a"},
      {"trusted without forwarding fields: the plain key", kProxy, {{"Host", "example.com"}}, "http://example.com/a"},
      {"trusted with X-Forwarded-Host and -Proto", kProxy,
       {{"Host", "example.com"}, {"X-Forwarded-Host", "a.example"}, {"X-Forwarded-Proto", "https"}},
       "http://example.com/a\nx-forwarded-host:9:a.example\nx-forwarded-proto:5:https\nforwarded-origin:!"},
      {"trusted with X-Forwarded-Host only", kProxy, {{"Host", "example.com"}, {"X-Forwarded-Host", "b.example"}},
       "http://example.com/a\nx-forwarded-host:9:b.example\nx-forwarded-proto:!\nforwarded-origin:!"},
      {"trusted with Forwarded: host and proto of the first element", kProxy,
       {{"Host", "example.com"}, {"Forwarded", "for=1.2.3.4;proto=https;host=c.example, for=5.6.7.8;host=x"}},
       "http://example.com/a\nx-forwarded-host:!\nx-forwarded-proto:!\nforwarded-origin:15:c.example;https"},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Setup s;
      auto req = request("/a", r.fields);
      ForwardedRequest fr;
      REQUIRE(fr.prepare(req, "http", r.peer, s.opts()) == TargetError::None);
      const std::string key = finished_key(fr, req, {});
      CHECK(key == r.want);
      // The forwarded request line and Host never carry the key's field entries.
      const std::string head = serialize(fr, req);
      CHECK(head.rfind("GET /a HTTP/1.1\r\nHost: example.com\r\n", 0) == 0);
    }
  }
  SECTION("the same request from a trusted and an untrusted peer keys differently") {
    Setup s;
    const Fields f = {{"Host", "example.com"}, {"X-Forwarded-Host", "a.example"}};
    auto a = request("/a", f), b = request("/a", f);
    ForwardedRequest fa, fb;
    REQUIRE(fa.prepare(a, "http", kProxy, s.opts()) == TargetError::None);
    REQUIRE(fb.prepare(b, "http", kClient, s.opts()) == TargetError::None);
    CHECK(finished_key(fa, a, {}) != finished_key(fb, b, {}));
  }
}

TEST_CASE("the forwarded request line carries the key's path and query", "[proxy][forwarded]") {
  struct Row {
    const char* name;
    std::string target;
    cache::KeyOptions key = {};
    std::string want_line;
    http::Method method = http::Method::Get;
  };
  const cache::KeyOptions sorted{.sort_query = true};
  const cache::KeyOptions ignoring{.ignore_params = {"utm_source"}};
  const cache::KeyOptions both{.sort_query = true, .ignore_params = {"utm_source"}};
  const std::vector<Row> rows = {
      {"as received when already normal", "/a/b?x=1", {}, "GET /a/b?x=1 HTTP/1.1"},
      {"RFC 3986 §5.2.4 dot segments removed", "/a/./b/../c", {}, "GET /a/c HTTP/1.1"},
      {"RFC 3986 §6.2.2.2 unreserved decoded", "/a%7e%41", {}, "GET /a~A HTTP/1.1"},
      {"RFC 3986 §6.2.2.1 escapes upper-cased", "/a%2f?q=%c3%a9", {}, "GET /a%2F?q=%C3%A9 HTTP/1.1"},
      {"a stray '%' in the query is sent as %25", "/a?q=%zz", {}, "GET /a?q=%25zz HTTP/1.1"},
      {"an empty query is dropped", "/a?", {}, "GET /a HTTP/1.1"},
      {"sort_query sorts the forwarded query", "/a?b=2&a=1", sorted, "GET /a?a=1&b=2 HTTP/1.1"},
      {"ignore_params drops the parameter from the forwarded query", "/a?utm_source=x&id=1", ignoring,
       "GET /a?id=1 HTTP/1.1"},
      {"both", "/a/./b/../c?utm_source=x&b=2&&a=1", both, "GET /a/c?a=1&b=2 HTTP/1.1"},
      {"absolute-form becomes origin-form", "http://example.com/x/../y?z", {}, "GET /y?z HTTP/1.1"},
      {"asterisk-form stays '*'", "*", {}, "OPTIONS * HTTP/1.1", http::Method::Options},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Setup s;
      auto req = request(r.target, {{"Host", "example.com"}}, r.method);
      ForwardedRequest fr;
      REQUIRE(fr.prepare(req, "http", kClient, s.opts()) == TargetError::None);
      const std::string head = serialize(fr, req, r.key);
      CHECK(head.substr(0, head.find("\r\n")) == r.want_line);
    }
  }
}

TEST_CASE("what is forwarded is what is keyed: preparing and keying the forwarded request gives the same key",
          "[proxy][forwarded][key-property]") {
  struct Row {
    const char* name;
    std::string target;
    std::string host = "example.com";
    std::string_view scheme = "http";
    cache::KeyOptions key = {};
    http::Method method = http::Method::Get;
  };
  const cache::KeyOptions both{.sort_query = true, .ignore_params = {"utm_source", "fbclid"}};
  const cache::KeyOptions tenant{.headers = {"X-Tenant"}};
  const std::vector<Row> rows = {
      {"RFC 3986 §6 baseline", "/a?x=1"},
      {"§5.2.4 dot segments", "/a/./b/../../c/."},
      {"§6.2.2 encoded dot segments", "/a/%2e%2E/b/%2E"},
      {"§5.2.4 a segment of three dots is not a dot segment", "/a/.../b/..%2e"},
      {"§6.2.2.2 unreserved characters decoded", "/%7Euser/%41%2d%5f%2E"},
      {"§2.2 reserved characters stay encoded", "/a%2Fb%3Fc%23d%25e"},
      {"§2.4 a stray '%' in the query", "/a?x=%&y=%4&z=%zz"},
      {"§2.4 a stray '%' before a decoded character", "/a?%8%41"},
      {"§2.1 bytes outside the URI set", "/a\"b<c>{d}|e^f`g\\h?q=\x7f\xff"},
      {"empty segments and a trailing slash", "//a//b/"},
      {"an empty query", "/a?"},
      {"sort_query and ignore_params", "/p?b=2&utm_source=x&a=1&&a=0&fbclid=1", "example.com", "http", both},
      {"sort_query with an encoded '&' and '='", "/p?b=1%26a%3d0&a=2", "example.com", "http", both},
      {"configured key fields are forwarded with the request", "/a", "example.com", "http", tenant},
      {"RFC 9110 §4.2.3 Host normalised", "/a", "EXAMPLE.COM:80"},
      {"RFC 9110 §4.2.3 https default port", "/a", "Example.com:443", "https"},
      {"a non-default port", "/a", "example.com:08080"},
      {"an IPv6 literal", "/a", "[::1]:080"},
      {"an empty port", "/a", "example.com:"},
      {"RFC 9112 §3.2.2 absolute-form", "http://Other.Example:80/x/../y?b=1", "ignored"},
      {"RFC 9112 §3.2.2 absolute-form without a path", "https://other.example:443", "ignored", "https"},
      {"RFC 9112 §3.2.2 absolute-form with only a query", "http://other.example?q=%7e", "ignored"},
      {"RFC 9112 §3.2.4 asterisk-form", "*", "example.com", "http", {}, http::Method::Options},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Setup s;
      auto req = request(r.target, {{"Host", r.host}, {"X-Tenant", "t1"}}, r.method);
      const RoundTrip rt = round_trip(s, r.scheme, std::move(req), r.key);
      REQUIRE(rt.error == TargetError::None);
      INFO(rt.head);
      CHECK(rt.again == rt.key);
      // The request line and Host are read out of the key.
      const std::string_view line = std::string_view(rt.head).substr(0, rt.head.find("\r\n"));
      if (r.method != http::Method::Options)
        CHECK(line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1) == cache::key_path(rt.key));
      CHECK(rt.authority == cache::key_authority(rt.key));
    }
  }
}

TEST_CASE("what is forwarded is what is keyed, for generated targets", "[proxy][forwarded][key-property]") {
  // Targets built from pieces that normalisation treats specially: dot
  // segments (plain and encoded), escapes (valid, stray, of unreserved and of
  // reserved characters), separators, bytes that must be encoded, query
  // parameters that sort_query / ignore_params act on; with Hosts of every
  // shape and in absolute-form.
  const std::vector<std::string> path_pieces = {
      "/", "/", "/", "a", "B", ".", "..", "%2e", "%2E", "%2e%2E", "%41", "%7e", "%7E", "%2f", "%2F", "%25", "%c3%a9",
      "~", "-", "_", ":", "@", "!", "$", "&", "'", "(", ")", "*", "+", ",", ";", "=", "\"", "<", ">", "\\", "^",
      "`", "{", "|", "}", "\x7f", "\x80", "\xff", "%20", "...", "//", "%", "%4"};
  const std::vector<std::string> query_pieces = {
      "a", "b", "=", "&", "&&", "utm_source", "utm%5Fsource", "=1", "%", "%4", "%zz", "%8", "%41", "%26", "%3d",
      "/", "?", ":", "@", "%2e", ".", "..", "\x80", "\"", " ", "+", "%2B", "~", "%7e"};
  const std::vector<std::string> hosts = {"example.com", "EXAMPLE.com:80",   "example.com:443", "example.com:0",
                                          "example.com:", "[::1]",           "[::FFFF:1.2.3.4]:00443",
                                          "a-b.c_d~e",   "x!$&'()*+,;=y:99999", "127.0.0.1:8080"};
  const std::vector<cache::KeyOptions> options = {
      {}, {.sort_query = true}, {.ignore_params = {"utm_source", "a"}}, {.sort_query = true, .ignore_params = {"b"}}};

  std::mt19937 rng(20240901);
  auto pick = [&](const std::vector<std::string>& v) -> const std::string& { return v[rng() % v.size()]; };
  constexpr int kTargets = 4000;
  int checked = 0;
  Setup s;
  for (int i = 0; i < kTargets; ++i) {
    std::string path = "/";
    for (int n = static_cast<int>(rng() % 8); n > 0; --n) path += pick(path_pieces);
    std::string target = path;
    if (rng() % 2) {
      target += "?";
      for (int n = static_cast<int>(rng() % 8); n > 0; --n) target += pick(query_pieces);
    }
    const std::string& host = pick(hosts);
    const std::string_view scheme = rng() % 3 ? "http" : "https";
    if (rng() % 5 == 0) target = std::string(rng() % 2 ? "http" : "HTTPS") + "://" + host + target;
    const cache::KeyOptions& opts = options[rng() % options.size()];

    auto req = request(target, {{"Host", rng() % 4 ? host : std::string("Other.Example")}});
    const RoundTrip rt = round_trip(s, scheme, std::move(req), opts);
    INFO("target: " << target << "  host: " << host << "  scheme: " << scheme);
    // A path with a stray '%' (unless the pieces after it happen to make a
    // triplet) is refused, never keyed.
    if (rt.error != TargetError::None) {
      CHECK(rt.error == TargetError::Escape);
      continue;
    }
    ++checked;
    INFO("key: " << rt.key << "\nhead: " << rt.head);
    CHECK(rt.again == rt.key);
    const std::string_view kp = cache::key_path(rt.key);
    CHECK(kp.find_first_of(std::string_view(" \r\n\0#", 5)) == std::string_view::npos);
    CHECK(rt.path == kp.substr(0, kp.find('?')));
  }
  CHECK(checked > kTargets / 4);
}
