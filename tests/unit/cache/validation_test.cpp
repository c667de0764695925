#include "cache/validation.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace cachalot;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

http::HeaderMap headers(const Fields& fields) {
  http::HeaderMap h;
  for (const auto& [n, v] : fields) h.add(n, v);
  return h;
}

Fields fields_of(const http::HeaderMap& h) {
  Fields out;
  for (auto f : h) out.emplace_back(f.name, f.value);
  return out;
}

constexpr const char* kLM = "Tue, 14 Nov 2023 22:13:20 GMT";

}  // namespace

TEST_CASE("add_validators makes the upstream request validate the stored response (RFC 9111 §4.3.1)",
          "[policy][validation]") {
  struct Row {
    const char* name;
    Fields request;
    std::string etag, last_modified;
    Fields want;
  };
  const std::vector<Row> rows = {
      {"§4.3.1 ETag becomes If-None-Match", {{"Host", "h"}}, "\"e1\"", "",
       {{"Host", "h"}, {"If-None-Match", "\"e1\""}}},
      {"§4.3.1 Last-Modified becomes If-Modified-Since", {{"Host", "h"}}, "", kLM,
       {{"Host", "h"}, {"If-Modified-Since", kLM}}},
      {"§4.3.1 both validators are sent", {}, "W/\"e1\"", kLM,
       {{"If-None-Match", "W/\"e1\""}, {"If-Modified-Since", kLM}}},
      {"§4.3.2 the client's own validators are replaced by ours",
       {{"If-None-Match", "\"client\""}, {"If-Modified-Since", "x"}, {"Accept", "*/*"}}, "\"e1\"", "",
       {{"Accept", "*/*"}, {"If-None-Match", "\"e1\""}}},
      {"§4.3.1 without validators the request is unconditional", {{"If-None-Match", "\"client\""}}, "", "", {}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::HeaderMap h = headers(r.request);
      cache::add_validators(h, r.etag, r.last_modified);
      CHECK(fields_of(h) == r.want);
    }
  }
}

TEST_CASE("response_304_matches selects the stored response per RFC 9111 §4.3.4", "[policy][validation]") {
  struct Row {
    const char* name;
    Fields stored, resp304;
    bool want;
  };
  const std::vector<Row> rows = {
      {"§4.3.4 the same strong ETag", {{"ETag", "\"a\""}}, {{"ETag", "\"a\""}}, true},
      {"§4.3.4 a different ETag", {{"ETag", "\"a\""}}, {{"ETag", "\"b\""}}, false},
      {"§4.3.4 a weak ETag matches weakly", {{"ETag", "\"a\""}}, {{"ETag", "W/\"a\""}}, true},
      {"§4.3.4 a strong ETag does not select a weakly tagged response", {{"ETag", "W/\"a\""}}, {{"ETag", "\"a\""}},
       false},
      {"§4.3.4 an ETag cannot select a response without one", {{"Last-Modified", kLM}}, {{"ETag", "\"a\""}}, false},
      {"§4.3.4 equal Last-Modified", {{"Last-Modified", kLM}}, {{"Last-Modified", kLM}}, true},
      {"§4.3.4 different Last-Modified", {{"Last-Modified", kLM}},
       {{"Last-Modified", "Tue, 14 Nov 2023 22:13:21 GMT"}}, false},
      {"§4.3.4 a 304 without validators updates the one response validated", {{"ETag", "\"a\""}}, {}, true},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(cache::response_304_matches(headers(r.stored), headers(r.resp304)) == r.want); }
  }
}

TEST_CASE("merge_304 updates stored fields per RFC 9111 §3.2", "[policy][validation]") {
  struct Row {
    const char* name;
    Fields stored, resp304, want;
  };
  const std::vector<Row> rows = {
      {"§3.2 a field in the 304 replaces the stored one in place",
       {{"A", "1"}, {"Cache-Control", "max-age=60"}, {"B", "2"}}, {{"cache-control", "max-age=120"}},
       {{"A", "1"}, {"cache-control", "max-age=120"}, {"B", "2"}}},
      {"§3.2 every stored line of a replaced name goes, every 304 line comes in",
       {{"X", "1"}, {"Y", "y"}, {"X", "2"}}, {{"X", "3"}, {"X", "4"}}, {{"X", "3"}, {"X", "4"}, {"Y", "y"}}},
      {"§3.2 fields new to the entry are appended", {{"A", "1"}}, {{"B", "2"}}, {{"A", "1"}, {"B", "2"}}},
      {"§3.2 Content-Length is never replaced", {{"Content-Length", "10"}}, {{"Content-Length", "0"}},
       {{"Content-Length", "10"}}},
      {"RFC 9110 §7.6.1 hop-by-hop fields in the 304 are not taken", {{"A", "1"}},
       {{"Connection", "close, X-Hop"}, {"X-Hop", "1"}, {"Keep-Alive", "timeout=5"}, {"Transfer-Encoding", "chunked"},
        {"Upgrade", "h2c"}},
       {{"A", "1"}}},
      {"§3.1 Proxy-Authenticate is never stored", {{"A", "1"}}, {{"Proxy-Authenticate", "Basic"}}, {{"A", "1"}}},
      {"§4.2.3 the 304's Date replaces the stored Date", {{"Date", "old"}, {"A", "1"}}, {{"Date", "new"}},
       {{"Date", "new"}, {"A", "1"}}},
      {"§4.2.3 a stored Date is dropped when the 304 has none", {{"Date", "old"}, {"ETag", "\"a\""}},
       {{"ETag", "\"a\""}}, {{"ETag", "\"a\""}}},
      {"§4.2.3 a stored Age is dropped when the 304 has none", {{"Age", "5"}, {"A", "1"}}, {}, {{"A", "1"}}},
      {"§4.2.3 the 304's Age replaces the stored Age", {{"Age", "5"}, {"A", "1"}}, {{"Age", "2"}},
       {{"Age", "2"}, {"A", "1"}}},
      {"§3.2 representation metadata not in the 304 is kept",
       {{"Content-Type", "text/html"}, {"Content-Encoding", "gzip"}}, {{"ETag", "\"a\""}},
       {{"Content-Type", "text/html"}, {"Content-Encoding", "gzip"}, {"ETag", "\"a\""}}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(fields_of(cache::merge_304(headers(r.stored), headers(r.resp304))) == r.want); }
  }
}
