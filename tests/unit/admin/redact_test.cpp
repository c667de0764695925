#include "admin/redact.h"

#include <catch2/catch.hpp>

#include "cache/key.h"
#include "cache/vary.h"
#include "http/header_map.h"

using namespace cachalot;
using namespace cachalot::admin;

namespace {

// printf %s "$value" | sha256sum | cut -c1-16
const std::string kSidDigest = "sha256:6fdd906cb4eca760";     // "sid=s3cr3t"
const std::string kBearerDigest = "sha256:72319f785566bc35";  // "Bearer tok"

}  // namespace

TEST_CASE("the digest is the first 16 hex digits of SHA-256, as sha256sum prints it", "[admin][redact]") {
  auto names = redacted_names({});
  CHECK(redact_field_entries("cookie:10:sid=s3cr3t", names) == "cookie:10:" + kSidDigest);
  auto empty = sha256("");
  CHECK(empty[0] == 0xe3);  // e3b0c442... (FIPS 180-2 test vector for "")
  CHECK(empty[31] == 0x55);
}

TEST_CASE("credential values in variant keys are shown only as digests", "[admin][redact]") {
  const std::vector<std::string> names = redacted_names({"X-Api-Key"});
  struct Row {
    const char* label;
    std::string in;
    std::string out;
  };
  const Row rows[] = {
      {"no Vary: the empty key", "", ""},
      {"a field that is not a credential is kept", "accept-encoding:7:br,gzip", "accept-encoding:7:br,gzip"},
      {"RFC 6265 Cookie is hashed", "cookie:10:sid=s3cr3t", "cookie:10:" + kSidDigest},
      {"RFC 9110 §11.6.2 Authorization is hashed", "authorization:10:Bearer tok", "authorization:10:" + kBearerDigest},
      {"RFC 9110 §11.7.2 Proxy-Authorization is hashed", "proxy-authorization:10:Bearer tok",
       "proxy-authorization:10:" + kBearerDigest},
      {"admin.redact_fields names are hashed, any case", "x-api-key:10:sid=s3cr3t", "x-api-key:10:" + kSidDigest},
      {"an absent credential stays visible as absent", "cookie:!\nuser-agent:!", "cookie:!\nuser-agent:!"},
      {"an empty credential is hashed too (it differs from absent)", "authorization:0:",
       "authorization:0:sha256:e3b0c44298fc1c14"},
      {"entries around a credential are kept in order", "accept:3:*/*\ncookie:10:sid=s3cr3t\nx-device:6:mobile",
       "accept:3:*/*\ncookie:10:" + kSidDigest + "\nx-device:6:mobile"},
      {"bytes that are not our encoding are hidden whole", "cookie=sid", "?:10:sha256:"},
      {"a length longer than the rest is not our encoding", "cookie:99:sid", "?:13:sha256:"},
  };
  for (const Row& row : rows) {
    INFO(row.label);
    std::string got = redact_field_entries(row.in, names);
    if (row.out.starts_with("?:")) {
      CHECK(got.starts_with(row.out));
      CHECK(got.size() == row.out.size() + 16);
    } else {
      CHECK(got == row.out);
    }
  }
}

TEST_CASE("a value holding ':' and newlines is delimited by its length, not by them", "[admin][redact]") {
  const std::vector<std::string> names = redacted_names({});
  std::string got = redact_field_entries("cookie:5:a:\nb:\nx-device:1:m", names);
  CHECK(got.starts_with("cookie:5:sha256:"));
  CHECK(got.ends_with("\nx-device:1:m"));
  CHECK(got.find("a:") == std::string::npos);
}

TEST_CASE("a primary key keeps its URL and hashes credentials among its key fields", "[admin][redact]") {
  const std::vector<std::string> names = redacted_names({});
  CHECK(redact_primary_key("http://h/p?q=1", names) == "http://h/p?q=1");
  CHECK(redact_primary_key("http://h/p\nauthorization:10:Bearer tok\nx-tenant:1:a", names) ==
        "http://h/p\nauthorization:10:" + kBearerDigest + "\nx-tenant:1:a");
  // The URL part is not field entries: a query that looks like one is kept.
  CHECK(redact_primary_key("http://h/p?cookie:3:abc", names) == "http://h/p?cookie:3:abc");
}

TEST_CASE("keys built by cache/ redact without losing other fields", "[admin][redact]") {
  http::HeaderMap req;
  req.add("Cookie", "sid=s3cr3t");
  req.add("Accept-Encoding", "gzip, br");
  req.add("Authorization", "Bearer tok");
  const std::vector<std::string> names = redacted_names({});

  std::string variant = cache::variant_key(std::vector<std::string>{"accept-encoding", "cookie"}, req);
  REQUIRE(variant.find("s3cr3t") != std::string::npos);
  CHECK(redact_field_entries(variant, names) == "accept-encoding:7:br,gzip\ncookie:10:" + kSidDigest);

  cache::KeyOptions opts;
  opts.headers = {"Authorization", "X-Tenant"};
  std::string key = cache::primary_key("http", "h", "/p", req, opts);
  REQUIRE(key.find("Bearer tok") != std::string::npos);
  std::string shown = redact_primary_key(key, names);
  CHECK(shown.find("Bearer tok") == std::string::npos);
  CHECK(shown == "http://h/p\nauthorization:10:" + kBearerDigest + "\nx-tenant:!");
}
