#include "cache/key.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace cachalot;

TEST_CASE("primary_key normalises the target URI per RFC 3986 §6 and RFC 9110 §4.2.3", "[policy][key]") {
  struct Row {
    const char* name;
    std::string_view scheme = "http";
    std::string_view host = "example.com";
    std::string_view target = "/a";
    cache::KeyOptions opts = {};
    std::string want;
  };
  const std::vector<Row> rows = {
      {.name = "baseline", .want = "http://example.com/a"},
      {.name = "RFC 3986 §6.2.2.1 scheme and host are lower-cased", .scheme = "HTTP", .host = "Example.COM",
       .want = "http://example.com/a"},
      {.name = "RFC 3986 §6.2.2.1 the path keeps its case", .target = "/A/b", .want = "http://example.com/A/b"},
      {.name = "RFC 9110 §4.2.3 the default http port is dropped", .host = "example.com:80",
       .want = "http://example.com/a"},
      {.name = "RFC 9110 §4.2.3 the default https port is dropped", .scheme = "https", .host = "example.com:443",
       .want = "https://example.com/a"},
      {.name = "RFC 9110 §4.2.3 443 is not the default for http", .host = "example.com:443",
       .want = "http://example.com:443/a"},
      {.name = "RFC 9110 §4.2.3 another port is kept", .host = "example.com:8080",
       .want = "http://example.com:8080/a"},
      {.name = "RFC 3986 §6.2.3 an empty port is dropped", .host = "example.com:", .want = "http://example.com/a"},
      {.name = "RFC 3986 §6.2.3 leading zeros of a port are dropped", .host = "example.com:0080",
       .want = "http://example.com/a"},
      {.name = "RFC 3986 §3.2.2 an IPv6 literal keeps its colons", .host = "[::1]:80", .want = "http://[::1]/a"},
      {.name = "RFC 3986 §3.2.2 an IPv6 literal with a port", .host = "[::1]:8080",
       .want = "http://[::1]:8080/a"},
      {.name = "a '/' in the host is encoded so it cannot forge a path", .host = "evil.com/x",
       .want = "http://evil.com%2Fx/a"},
      {.name = "RFC 3986 §3.2.2 a ':' outside an IPv6 literal is not a port separator", .host = "a:b:8080",
       .want = "http://a%3Ab:8080/a"},
      {.name = "RFC 3986 §3.2.2 a port follows an IPv6 literal only right after its ']'", .host = "[::1",
       .want = "http://[::1/a"},
      {.name = "RFC 3986 §6.2.2.1 percent-encoding hex is upper-cased", .target = "/a%2fb%c3%a9",
       .want = "http://example.com/a%2Fb%C3%A9"},
      {.name = "RFC 3986 §6.2.2.2 percent-encoded unreserved characters are decoded", .target = "/%7Euser/%41%2d",
       .want = "http://example.com/~user/A-"},
      {.name = "RFC 3986 §6.2.2.2 an encoded '/' stays encoded", .target = "/a%2Fb",
       .want = "http://example.com/a%2Fb"},
      {.name = "RFC 3986 §2.1 bytes not allowed in a URI are encoded", .target = "/a b/\xc3\xa9\"",
       .want = "http://example.com/a%20b/%C3%A9%22"},
      {.name = "RFC 3986 §2.4 a '%' without two hex digits is data and is encoded", .target = "/a%zz/%4",
       .want = "http://example.com/a%25zz/%254"},
      {.name = "RFC 3986 §2.4 a stray '%' never pairs with a decoded character", .target = "/%8%41",
       .want = "http://example.com/%258A"},
      {.name = "RFC 3986 §5.2.4 '..' removes the previous segment", .target = "/a/b/../c",
       .want = "http://example.com/a/c"},
      {.name = "RFC 3986 §5.2.4 '.' segments are removed", .target = "/a/./b/.", .want = "http://example.com/a/b/"},
      {.name = "RFC 3986 §5.2.4 '..' at the root stays at the root", .target = "/../a",
       .want = "http://example.com/a"},
      {.name = "RFC 3986 §5.2.4 a trailing '..' leaves a directory", .target = "/a/b/..",
       .want = "http://example.com/a/"},
      {.name = "RFC 3986 §5.2.4 RFC example /a/b/c/./../../g", .target = "/a/b/c/./../../g",
       .want = "http://example.com/a/g"},
      {.name = "RFC 3986 §6.2.2 encoded dot segments are removed too", .target = "/a/%2E%2e/b",
       .want = "http://example.com/b"},
      {.name = "RFC 3986 §5.2.4 empty segments are kept", .target = "//a//b", .want = "http://example.com//a//b"},
      {.name = "RFC 9110 §4.2.3 an empty path is '/'", .target = "", .want = "http://example.com/"},
      {.name = "RFC 9112 §3.2.2 absolute-form uses its own path and query", .target = "http://other.example/p?x=1",
       .want = "http://example.com/p?x=1"},
      {.name = "RFC 9112 §3.2.2 absolute-form without a path", .target = "HTTP://other.example?x=1",
       .want = "http://example.com/?x=1"},
      {.name = "RFC 9110 §7.1 a fragment is dropped", .target = "/p?q=1#frag", .want = "http://example.com/p?q=1"},
      {.name = "RFC 3986 §3.4 the query is kept in order by default", .target = "/p?b=2&a=1",
       .want = "http://example.com/p?b=2&a=1"},
      {.name = "RFC 3986 §6.2.2.2 unreserved characters in the query are decoded", .target = "/p?x=%7e&y=%2f",
       .want = "http://example.com/p?x=~&y=%2F"},
      {.name = "an empty query drops its '?'", .target = "/p?", .want = "http://example.com/p"},
      {.name = "sort_query sorts parameters by name, stably", .target = "/p?b=2&a=1&c&a=0",
       .opts = {.sort_query = true}, .want = "http://example.com/p?a=1&a=0&b=2&c"},
      {.name = "sort_query drops empty parameters", .target = "/p?b=1&&a=2&", .opts = {.sort_query = true},
       .want = "http://example.com/p?a=2&b=1"},
      {.name = "sort_query does not split at an encoded '&'", .target = "/p?b=1%26a%3d0&a=2",
       .opts = {.sort_query = true}, .want = "http://example.com/p?a=2&b=1%26a%3D0"},
      {.name = "ignore_params drops the named parameters", .target = "/p?utm_source=x&id=1&utm_medium=y",
       .opts = {.ignore_params = {"utm_source", "utm_medium"}}, .want = "http://example.com/p?id=1"},
      {.name = "ignore_params matches names after percent-decoding", .target = "/p?utm%5Fsource=x&id=1",
       .opts = {.ignore_params = {"utm_source"}}, .want = "http://example.com/p?id=1"},
      {.name = "ignore_params removing every parameter drops the '?'", .target = "/p?utm_source=x",
       .opts = {.ignore_params = {"utm_source"}}, .want = "http://example.com/p"},
      {.name = "ignore_params is case-sensitive", .target = "/p?UTM_SOURCE=x",
       .opts = {.ignore_params = {"utm_source"}}, .want = "http://example.com/p?UTM_SOURCE=x"},
  };
  const http::HeaderMap none;
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(cache::primary_key(r.scheme, r.host, r.target, none, r.opts) == r.want); }
  }
}

TEST_CASE("primary_key appends configured request fields after the path", "[policy][key]") {
  struct Row {
    const char* name;
    std::vector<std::string> key_headers;
    std::vector<std::pair<std::string, std::string>> request;
    std::string want;
  };
  const std::vector<Row> rows = {
      {"a present field", {"X-Tenant"}, {{"x-tenant", "abc"}}, "http://example.com/a\nx-tenant:3:abc"},
      {"an absent field differs from an empty one", {"X-Tenant"}, {}, "http://example.com/a\nx-tenant:!"},
      {"an empty field", {"X-Tenant"}, {{"X-Tenant", ""}}, "http://example.com/a\nx-tenant:0:"},
      {"fields follow the configured order", {"x-b", "x-a"}, {{"X-A", "1"}, {"X-B", "2"}},
       "http://example.com/a\nx-b:1:2\nx-a:1:1"},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::HeaderMap h;
      for (const auto& [n, v] : r.request) h.add(n, v);
      cache::KeyOptions opts;
      opts.headers = r.key_headers;
      CHECK(cache::primary_key("http", "example.com", "/a", h, opts) == r.want);
    }
  }
}

TEST_CASE("key_path gives the path and query of a key for prefix purges", "[policy][key]") {
  struct Row {
    const char* name;
    std::string_view key;
    std::string_view want;
  };
  const std::vector<Row> rows = {
      {"path only", "http://example.com/a", "/a"},
      {"path and query", "https://example.com:8443/a/b?x=1", "/a/b?x=1"},
      {"extra fields are not part of the path", "http://example.com/a?x\nx-tenant:!", "/a?x"},
      {"not a key", "junk", ""},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(cache::key_path(r.key) == r.want); }
  }
  CHECK(cache::key_path(cache::primary_key("http", "h", "/p/../q?z", {}, {})) == "/q?z");
}

TEST_CASE("primary_key handles more query parameters than fit inline", "[policy][key]") {
  std::string target = "/p?", want = "http://example.com/p?";
  for (int i = 99; i >= 0; --i) target += "k" + std::to_string(1000 + i) + "=" + std::to_string(i) + (i ? "&" : "");
  for (int i = 0; i < 100; ++i) want += "k" + std::to_string(1000 + i) + "=" + std::to_string(i) + (i < 99 ? "&" : "");
  cache::KeyOptions opts;
  opts.sort_query = true;
  CHECK(cache::primary_key("http", "example.com", target, {}, opts) == want);
}

TEST_CASE("is_normalized_path: only paths primary_key() would write unchanged (RFC 3986 §3.3, §5.2.4)",
          "[policy][key]") {
  struct Row {
    const char* name;
    std::string_view path;
    bool want;
  };
  const std::vector<Row> rows = {
      {"the root", "/", true},
      {"segments", "/a/b", true},
      {"a trailing slash", "/a/b/", true},
      {"§3.3 empty segments are kept by normalisation", "//a//b", true},
      {"§3.3 pchar: unreserved, sub-delims, ':' and '@'", "/~a-b_c.d/:@!$&'()*+,;=", true},
      {"three dots are not a dot segment", "/a/.../b", true},
      {"dots inside a segment", "/.a/b./..c", true},
      {"empty: not a path", "", false},
      {"relative", "a/b", false},
      {"§5.2.4 a '.' segment", "/a/./b", false},
      {"§5.2.4 a trailing '.'", "/a/.", false},
      {"§5.2.4 a '..' segment", "/a/../b", false},
      {"§5.2.4 a trailing '..'", "/a/..", false},
      {"§5.2.4 '/.'", "/.", false},
      {"§5.2.4 '/..'", "/..", false},
      {"§2.1 any '%' (its case or decoding may change)", "/a%2Fb", false},
      {"§2.1 an upper-case escape of a reserved character too", "/%2F", false},
      {"a space", "/a b", false},
      {"a '?' (not part of a path)", "/a?b", false},
      {"a '#'", "/a#b", false},
      {"a backslash", "/a\\b", false},
      {"a non-ASCII byte", "/caf\xc3\xa9", false},
      {"a control byte", "/a\x01", false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK(cache::is_normalized_path(r.path) == r.want);
      // Normal means: normalisation leaves it as it is.
      if (r.want) CHECK(cache::key_path(cache::primary_key("http", "h", r.path, {}, {})) == r.path);
    }
  }
}

TEST_CASE("key_authority gives the normalised authority of a key", "[policy][key]") {
  struct Row {
    const char* name;
    std::string_view key;
    std::string_view want;
  };
  const std::vector<Row> rows = {
      {"a name", "http://example.com/a", "example.com"},
      {"a name and port, with a query", "https://example.com:8443/a?x=1", "example.com:8443"},
      {"an IPv6 literal with a port", "http://[::1]:8080/a", "[::1]:8080"},
      {"extra fields follow the path", "http://h/a\nx-tenant:!", "h"},
      {"an empty authority", "http:///a", ""},
      {"no path: not a key", "http://h", ""},
      {"not a key", "junk", ""},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(cache::key_authority(r.key) == r.want); }
  }
}

TEST_CASE("normalized_authority is the authority a Host keys as (RFC 3986 §6.2.2.1, §6.2.3, RFC 9110 §4.2.3)",
          "[policy][key]") {
  struct Row {
    const char* name;
    std::string_view scheme;
    std::string_view host;
    std::string want;
  };
  const std::vector<Row> rows = {
      {"§6.2.2.1 lower-cased, §6.2.3 http drops 80", "http", "EXAMPLE.com:80", "example.com"},
      {"§6.2.3 https drops 443", "https", "example.com:443", "example.com"},
      {"§6.2.2.1 the scheme is matched case-insensitively", "HTTPS", "example.com:443", "example.com"},
      {"RFC 9110 §4.2.3 443 is not http's default", "http", "example.com:443", "example.com:443"},
      {"RFC 9110 §4.2.3 80 is not https's default", "https", "example.com:80", "example.com:80"},
      {"§6.2.3 leading zeros of the port", "http", "example.com:0080", "example.com"},
      {"§6.2.3 a zero port keeps one digit", "http", "example.com:000", "example.com:0"},
      {"§6.2.3 an empty port", "http", "example.com:", "example.com"},
      {"an unknown scheme has no default port", "ftp", "example.com:21", "example.com:21"},
      {"§3.2.2 an IPv6 literal, default port", "http", "[::1]:80", "[::1]"},
      {"§3.2.2 an IPv6 literal is lower-cased", "https", "[2001:DB8::A]:8443", "[2001:db8::a]:8443"},
      {"a '/' is encoded, so a Host cannot forge a path", "http", "a/b", "a%2Fb"},
      {"a ':' that is not a port separator is encoded", "http", "a:b", "a%3Ab"},
      {"RFC 9112 §3.2 empty", "http", "", ""},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK(cache::normalized_authority(r.scheme, r.host) == r.want);
      // The same as the key's authority, and normalising it again changes nothing.
      CHECK(cache::key_authority(cache::primary_key(r.scheme, r.host, "/", {}, {})) == r.want);
      CHECK(cache::normalized_authority(r.scheme, r.want) == r.want);
    }
  }
}
