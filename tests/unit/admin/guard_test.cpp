#include "admin/guard.h"

#include <catch2/catch.hpp>

#include <utility>
#include <vector>

using namespace cachalot;
using namespace cachalot::admin;

namespace {

using Fields = std::vector<std::pair<const char*, const char*>>;

http::RequestHead request(http::Method method, const char* target, const Fields& fields, int version_minor = 1) {
  http::RequestHead req;
  req.method = method;
  req.target = target;
  req.version_minor = version_minor;
  for (const auto& [name, value] : fields) req.headers.add(name, value);
  return req;
}

}  // namespace

TEST_CASE("the admin API answers only to Host names that cannot be DNS-rebound", "[admin][guard]") {
  const std::vector<std::string> extra = {"admin.example", "Ops.Internal:9901"};
  struct Row {
    const char* label;
    const char* host;
    bool allowed;
  };
  const Row rows[] = {
      {"IPv4 literal with the port", "127.0.0.1:9901", true},
      {"IPv4 literal without a port", "127.0.0.1", true},
      {"any IPv4 literal: an address cannot be rebound", "10.1.2.3:8000", true},
      {"IPv6 literal in brackets", "[::1]:9901", true},
      {"IPv6 literal without a port", "[::1]", true},
      {"localhost with any port", "localhost:12345", true},
      {"localhost is case-insensitive (RFC 9110 §4.2.3)", "LocalHost", true},
      {"an empty port counts as none (RFC 3986 §3.2.3)", "localhost:", true},
      {"admin.hosts entry without a port: any port", "admin.example:9901", true},
      {"admin.hosts entry without a port: no port", "admin.example", true},
      {"admin.hosts compares case-insensitively", "ADMIN.example:1", true},
      {"admin.hosts entry with a port: that port", "ops.internal:9901", true},
      {"admin.hosts entry with a port: another port is refused", "ops.internal:9902", false},
      {"admin.hosts entry with a port: no port means 80", "ops.internal", false},
      {"DNS rebinding: an attacker's name", "attacker.example:9901", false},
      {"a name that only ends like an allowed one", "evil-admin.example", false},
      {"a subdomain of localhost is a name, not loopback", "a.localhost:9901", false},
      {"a name ending in an IP-like label", "127.0.0.1.attacker.example", false},
      {"a non-dotted-quad number is not an IP literal", "2130706433:9901", false},
      {"an IPv6 literal without brackets", "::1", false},
      {"brackets around something that is not IPv6", "[attacker.example]:9901", false},
      {"a port out of range", "127.0.0.1:65536", false},
      {"a port that is not a number", "127.0.0.1:http", false},
      {"empty", "", false},
      {"a space inside", "127.0.0.1 :9901", false},
  };
  for (const Row& row : rows) {
    INFO(row.label << ": " << row.host);
    CHECK(host_allowed(row.host, extra) == row.allowed);
  }
  // A NUL would end the C string inet_pton reads, leaving an IP literal.
  CHECK_FALSE(host_allowed(std::string_view("127.0.0.1\0.attacker.example", 27), extra));
}

TEST_CASE("a state change is the listener's own origin only when Origin matches the Host", "[admin][guard]") {
  const std::vector<std::string> extra = {"admin.example"};
  struct Row {
    const char* label;
    const char* origin;
    const char* host;
    bool allowed;
  };
  const Row rows[] = {
      {"same origin (RFC 6454 §4)", "http://127.0.0.1:9901", "127.0.0.1:9901", true},
      {"scheme and host compare case-insensitively", "HTTP://LOCALHOST:9901", "localhost:9901", true},
      {"the default port may be written or left out", "http://127.0.0.1", "127.0.0.1:80", true},
      {"IPv6 same origin", "http://[::1]:9901", "[::1]:9901", true},
      {"an admin.hosts name is ours too (a front proxy may rewrite Host)", "http://admin.example", "127.0.0.1:9901",
       true},
      {"CSRF: another site", "http://attacker.example", "127.0.0.1:9901", false},
      {"CSRF: another IP literal is another site", "http://192.0.2.1", "127.0.0.1:9901", false},
      {"another port on localhost is another origin", "http://localhost:3000", "localhost:9901", false},
      {"another loopback spelling is another origin", "http://localhost:9901", "127.0.0.1:9901", false},
      {"https is another origin (the listener is plain http)", "https://127.0.0.1:9901", "127.0.0.1:9901", false},
      {"an opaque origin (sandboxed frame, file: page)", "null", "127.0.0.1:9901", false},
      {"an origin has no path", "http://127.0.0.1:9901/", "127.0.0.1:9901", false},
      {"empty", "", "127.0.0.1:9901", false},
  };
  for (const Row& row : rows) {
    INFO(row.label << ": Origin " << row.origin << ", Host " << row.host);
    CHECK(origin_allowed(row.origin, row.host, extra) == row.allowed);
  }
}

TEST_CASE("the bearer token must match exactly, scheme case-insensitive", "[admin][guard]") {
  CHECK(token_matches("Bearer s3cret", "s3cret"));
  CHECK(token_matches("bearer s3cret", "s3cret"));  // RFC 9110 §11.1: the scheme is case-insensitive
  CHECK_FALSE(token_matches(std::nullopt, "s3cret"));
  CHECK_FALSE(token_matches("Bearer s3cre", "s3cret"));
  CHECK_FALSE(token_matches("Bearer s3cret-and-more", "s3cret"));
  CHECK_FALSE(token_matches("Bearer S3CRET", "s3cret"));  // the credentials are not
  CHECK_FALSE(token_matches("Basic czNjcmV0", "s3cret"));
  CHECK_FALSE(token_matches("s3cret", "s3cret"));
  CHECK_FALSE(token_matches("Bearer ", ""));  // no token configured: nothing matches
}

TEST_CASE("check_request runs Host, then cross-site, then token checks", "[admin][guard]") {
  config::AdminConfig open;
  config::AdminConfig locked;
  locked.token = "t0k";
  using M = http::Method;
  struct Row {
    const char* label;
    http::RequestHead req;
    const config::AdminConfig* admin;
    Verdict expected;
  };
  const Row rows[] = {
      {"a plain scrape", request(M::Get, "/metrics", {{"Host", "127.0.0.1:9901"}}), &open, Verdict::Answer},
      {"curl purge: no Origin, no Sec-Fetch-Site", request(M::Post, "/purge?all=1", {{"Host", "127.0.0.1:9901"}}),
       &open, Verdict::Answer},
      {"DNS rebinding GET", request(M::Get, "/metrics", {{"Host", "attacker.example:9901"}}), &open,
       Verdict::MisdirectedHost},
      {"RFC 9112 §3.2: HTTP/1.1 without Host", request(M::Get, "/metrics", {}), &open, Verdict::BadHost},
      {"RFC 9112 §3.2: two Host lines",
       request(M::Get, "/metrics", {{"Host", "127.0.0.1"}, {"Host", "attacker.example"}}), &open, Verdict::BadHost},
      {"HTTP/1.0 without Host (no browser sends that)", request(M::Get, "/healthz", {}, 0), &open, Verdict::Answer},
      {"CSRF: cross-site form POST",
       request(M::Post, "/purge?all=1",
               {{"Host", "127.0.0.1:9901"}, {"Origin", "http://attacker.example"}, {"Content-Type", "text/plain"}}),
       &open, Verdict::CrossOrigin},
      {"same-origin POST from the admin's own page",
       request(M::Post, "/purge?all=1",
               {{"Host", "127.0.0.1:9901"}, {"Origin", "http://127.0.0.1:9901"}, {"Sec-Fetch-Site", "same-origin"}}),
       &open, Verdict::Answer},
      {"Fetch Metadata: cross-site without Origin",
       request(M::Post, "/reload", {{"Host", "127.0.0.1:9901"}, {"Sec-Fetch-Site", "cross-site"}}), &open,
       Verdict::CrossSiteFetch},
      {"Fetch Metadata: same-site is another origin",
       request(M::Post, "/reload", {{"Host", "localhost:9901"}, {"Sec-Fetch-Site", "same-site"}}), &open,
       Verdict::CrossSiteFetch},
      {"Fetch Metadata: none is the user's own navigation",
       request(M::Post, "/reload", {{"Host", "localhost:9901"}, {"Sec-Fetch-Site", "none"}}), &open,
       Verdict::Answer},
      {"any method but GET and HEAD is a state change",
       request(M::Delete, "/purge", {{"Host", "127.0.0.1"}, {"Origin", "http://attacker.example"}}), &open,
       Verdict::CrossOrigin},
      {"a cross-site GET is left to CORS (the page cannot read the answer)",
       request(M::Get, "/metrics",
               {{"Host", "127.0.0.1:9901"}, {"Origin", "http://attacker.example"}, {"Sec-Fetch-Site", "cross-site"}}),
       &open, Verdict::Answer},
      {"the token is required", request(M::Get, "/metrics", {{"Host", "127.0.0.1"}}), &locked, Verdict::BadToken},
      {"the token is given", request(M::Get, "/metrics", {{"Host", "127.0.0.1"}, {"Authorization", "Bearer t0k"}}),
       &locked, Verdict::Answer},
      {"/healthz needs no token", request(M::Get, "/healthz", {{"Host", "127.0.0.1"}}), &locked, Verdict::Answer},
      {"a misdirected request is refused before the token is looked at",
       request(M::Get, "/metrics", {{"Host", "attacker.example"}, {"Authorization", "Bearer t0k"}}), &locked,
       Verdict::MisdirectedHost},
      {"a valid token does not make a cross-site state change acceptable",
       request(M::Post, "/purge?all=1",
               {{"Host", "127.0.0.1"}, {"Origin", "http://attacker.example"}, {"Authorization", "Bearer t0k"}}),
       &locked, Verdict::CrossOrigin},
  };
  for (const Row& row : rows) {
    INFO(row.label);
    Verdict got = check_request(row.req, *row.admin);
    CHECK(to_string(got) == to_string(row.expected));
  }
  CHECK(status_of(Verdict::MisdirectedHost) == 421);
  CHECK(status_of(Verdict::CrossOrigin) == 403);
  CHECK(status_of(Verdict::CrossSiteFetch) == 403);
  CHECK(status_of(Verdict::BadToken) == 401);
  CHECK(status_of(Verdict::BadHost) == 400);
}
