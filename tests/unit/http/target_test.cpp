// Request-target and Host validation (RFC 9112 §3.2, RFC 9110 §4.2, §7.2, RFC 3986).
#include "http/target.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace cachalot::http;

namespace Catch {
template <>
struct StringMaker<TargetError> {
  static std::string convert(TargetError e) { return std::string(to_string(e)); }
};
}  // namespace Catch

TEST_CASE("parse_target accepts origin-, absolute- and asterisk-form and nothing else (RFC 9112 §3.2)",
          "[http][target]") {
  struct Row {
    const char* name;
    std::string_view target = "/a?x=1";
    Method method = Method::Get;
    TargetError want = TargetError::None;
    std::string_view authority = "";
    std::string_view path_query = "/a?x=1";  // when accepted
    bool asterisk = false;
  };
  const std::vector<Row> rows = {
      {.name = "§3.2.1 baseline: origin-form"},
      {.name = "§3.2.1 origin-form '/'", .target = "/", .path_query = "/"},
      {.name = "§3.2.1 origin-form with empty segments", .target = "//a//b", .path_query = "//a//b"},
      {.name = "§3.2.1 origin-form with valid escapes", .target = "/a%2Fb%7e", .path_query = "/a%2Fb%7e"},
      {.name = "§3.2.1 origin-form with dot segments (normalised later, not refused)", .target = "/a/../b",
       .path_query = "/a/../b"},
      {.name = "RFC 3986 §3.5 a fragment is refused", .target = "/a#f", .want = TargetError::Fragment},
      {.name = "RFC 3986 §3.5 a fragment after the query is refused", .target = "/a?x#f",
       .want = TargetError::Fragment},
      {.name = "RFC 3986 §2.1 an invalid escape in the path is refused", .target = "/a%zz",
       .want = TargetError::Escape},
      {.name = "RFC 3986 §2.1 a '%' with one hex digit at the end of the path", .target = "/a%4",
       .want = TargetError::Escape},
      {.name = "RFC 3986 §2.1 a '%' at the end of the path", .target = "/a%", .want = TargetError::Escape},
      {.name = "a stray '%' in the query is data (keyed and forwarded as %25)", .target = "/a?x=%zz&y=%",
       .path_query = "/a?x=%zz&y=%"},
      {.name = "§3.2.2 absolute-form http", .target = "http://example.com/a?x=1", .authority = "example.com"},
      {.name = "§3.2.2 absolute-form https", .target = "https://example.com:8443/a?x=1",
       .authority = "example.com:8443"},
      {.name = "RFC 3986 §3.1 the scheme is case-insensitive", .target = "HtTpS://Example.COM/a?x=1",
       .authority = "Example.COM"},
      {.name = "§3.2.2 absolute-form without a path", .target = "http://example.com", .authority = "example.com",
       .path_query = ""},
      {.name = "§3.2.2 absolute-form with a query but no path", .target = "http://example.com?x=1",
       .authority = "example.com", .path_query = "?x=1"},
      {.name = "§3.2.2 absolute-form with an IPv6 literal", .target = "http://[::1]:8080/a?x=1",
       .authority = "[::1]:8080"},
      {.name = "§3.2.2 an absolute-form '@' after the authority is path data", .target = "http://h/a@b",
       .authority = "h", .path_query = "/a@b"},
      {.name = "RFC 9110 §4.2 a scheme other than http / https", .target = "ftp://example.com/a",
       .want = TargetError::Scheme},
      {.name = "RFC 9110 §4.2 a scheme that only starts like http", .target = "httpx://example.com/a",
       .want = TargetError::Scheme},
      {.name = "RFC 9110 §4.2.4 userinfo is an error", .target = "http://user@example.com/a",
       .want = TargetError::Userinfo},
      {.name = "RFC 9110 §4.2.4 userinfo with a password", .target = "http://u:p@example.com/a",
       .want = TargetError::Userinfo},
      {.name = "RFC 9110 §4.2.4 an empty userinfo", .target = "http://@example.com/a",
       .want = TargetError::Userinfo},
      {.name = "§3.2.2 an empty authority", .target = "http:///a", .want = TargetError::Host},
      {.name = "§3.2.2 an authority that is not a host", .target = "http://a%2eb/a", .want = TargetError::Host},
      {.name = "§3.2.2 an authority with a port too long", .target = "http://h:123456/a", .want = TargetError::Host},
      {.name = "§3.2.2 an invalid escape in an absolute-form path", .target = "http://h/a%zz",
       .want = TargetError::Escape},
      {.name = "§3.2.2 a stray '%' in an absolute-form query", .target = "http://h?%zz", .authority = "h",
       .path_query = "?%zz"},
      {.name = "§3.2.2 a fragment in absolute-form", .target = "http://h/a#f", .want = TargetError::Fragment},
      {.name = "§3.2.2 a fragment right after the authority", .target = "http://h#f", .want = TargetError::Fragment},
      {.name = "§3.2.4 '*' for OPTIONS", .target = "*", .method = Method::Options, .path_query = "",
       .asterisk = true},
      {.name = "§3.2.4 '*' only for OPTIONS", .target = "*", .want = TargetError::Form},
      {.name = "§3.2.4 '*' only for OPTIONS, not HEAD", .target = "*", .method = Method::Head,
       .want = TargetError::Form},
      {.name = "§3.2.4 asterisk-form is exactly '*'", .target = "*/a", .method = Method::Options,
       .want = TargetError::Form},
      {.name = "§3.2.3 authority-form (CONNECT) is not a form we forward", .target = "example.com:443",
       .method = Method::Connect, .want = TargetError::Form},
      {.name = "§3.2.3 authority-form for GET", .target = "example.com:80", .want = TargetError::Form},
      {.name = "§3.2 an empty target", .target = "", .want = TargetError::Form},
      {.name = "§3.2 a relative path", .target = "a/b", .want = TargetError::Form},
      {.name = "RFC 3986 §3.1 a scheme must start with a letter", .target = "1http://h/a", .want = TargetError::Form},
      {.name = "RFC 3986 §3.1 a scheme of letters, digits, '+', '-', '.'", .target = "ht_tp://h/a",
       .want = TargetError::Form},
      {.name = "RFC 3986 §3.1 an empty scheme", .target = "://h/a", .want = TargetError::Form},
      {.name = "RFC 3986 §3 'http:/' is not absolute-form", .target = "http:/h/a", .want = TargetError::Form},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Target t;
      t.authority = "stale";  // parse_target resets the output
      CHECK(parse_target(r.target, r.method, t) == r.want);
      if (r.want == TargetError::None) {
        CHECK(t.authority == r.authority);
        CHECK(t.path_query == r.path_query);
        CHECK(t.asterisk == r.asterisk);
      }
    }
  }
}

TEST_CASE("valid_host accepts uri-host [\":\" port] and nothing we would have to guess about "
          "(RFC 3986 §3.2.2, §3.2.3, RFC 9110 §4.2.4, §7.2)",
          "[http][target]") {
  struct Row {
    const char* name;
    std::string_view host;
    bool want;
  };
  const std::vector<Row> rows = {
      {"§3.2.2 a reg-name", "example.com", true},
      {"§3.2.2 a reg-name in upper case (compared case-insensitively later)", "EXAMPLE.Com", true},
      {"§3.2.2 a single label", "localhost", true},
      {"§3.2.2 unreserved characters", "a-b_c~d.e", true},
      {"§3.2.2 sub-delims are allowed in a reg-name", "a!$&'()*+,;=b", true},
      {"§3.2.2 IPv4", "192.0.2.1", true},
      {"§3.2.3 IPv4 with a port", "192.0.2.1:8080", true},
      {"§3.2.3 a name with a port", "example.com:80", true},
      {"§3.2.3 a five-digit port", "example.com:65535", true},
      {"§3.2.3 a port of six digits is refused", "example.com:123456", false},
      {"§3.2.3 an empty port (port = *DIGIT)", "host:", true},
      {"§3.2.3 a port that is not digits", "host:http", false},
      {"§3.2.3 two ports", "host:80:81", false},
      {"§3.2.2 IPv6 literal", "[::1]", true},
      {"§3.2.2 IPv6 literal with a port", "[2001:db8::1]:8443", true},
      {"§3.2.2 IPv6 literal with an IPv4 tail", "[::ffff:192.0.2.1]", true},
      {"§3.2.2 IPv6 literal, empty port", "[::1]:", true},
      {"§3.2.2 IPv6 literal without its ']'", "[::1", false},
      {"§3.2.2 an empty IPv6 literal", "[]", false},
      {"§3.2.2 IPv6 literal with a non-hex character", "[::g]", false},
      {"§3.2.2 IPvFuture is not accepted", "[v1.x]", false},
      {"§3.2.2 a zone identifier is not accepted", "[fe80::1%25eth0]", false},
      {"§3.2.2 text after an IPv6 literal", "[::1]x", false},
      {"§3.2.2 a second ']'", "[::1]]", false},
      {"§3.2.3 a port too long after an IPv6 literal", "[::1]:123456", false},
      {"RFC 9112 §3.2 an empty Host (target without authority)", "", true},
      {"a port without a host", ":80", false},
      {"a '/' could forge a path", "a/b", false},
      {"RFC 9110 §4.2.4 userinfo", "user@a", false},
      {"percent-encoding would give one host two spellings", "a%2eb", false},
      {"a space", "a b", false},
      {"a backslash", "a\\b", false},
      {"a NUL byte", std::string_view("a\0b", 3), false},
      {"a '?'", "a?b", false},
      {"a '#'", "a#b", false},
      {"a non-ASCII byte", "caf\xc3\xa9.example", false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(valid_host(r.host) == r.want); }
  }
}

TEST_CASE("TargetError names", "[http][target]") {
  CHECK(to_string(TargetError::None) == "none");
  CHECK(to_string(TargetError::Fragment) == "fragment");
  CHECK(to_string(TargetError::Scheme) == "scheme");
  CHECK(to_string(TargetError::Userinfo) == "userinfo");
  CHECK(to_string(TargetError::Host) == "host");
  CHECK(to_string(TargetError::Escape) == "escape");
  CHECK(to_string(TargetError::Form) == "form");
}
