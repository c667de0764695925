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

TEST_CASE("merge_head: a HEAD response updates or stales the stored GET response (RFC 9111 §4.3.5)",
          "[policy][validation]") {
  using cache::HeadUpdate;
  // Baseline: the stored GET response has a 10-byte body, an ETag and Last-Modified.
  const Fields stored = {{"Cache-Control", "max-age=60"}, {"ETag", "\"a\""}, {"Last-Modified", kLM},
                         {"Content-Type", "text/plain"}, {"Date", "old"}};
  const Fields no_validators = {{"Cache-Control", "max-age=60"}, {"X-A", "1"}};
  struct Row {
    const char* name;
    Fields head;
    HeadUpdate want;
    Fields want_fields = {};  // for Update
    int status = 200;
    Fields stored_fields = {};  // empty: the baseline
  };
  const std::vector<Row> rows = {
      {"§4.3.5 same ETag: the HEAD's fields update the stored ones (§3.2)",
       {{"ETag", "\"a\""}, {"Cache-Control", "max-age=600"}, {"X-New", "n"}}, HeadUpdate::Update,
       {{"Cache-Control", "max-age=600"}, {"ETag", "\"a\""}, {"Last-Modified", kLM}, {"Content-Type", "text/plain"},
        {"X-New", "n"}}},
      {"§4.3.5 same ETag and Last-Modified", {{"ETag", "\"a\""}, {"Last-Modified", kLM}}, HeadUpdate::Update,
       {{"Cache-Control", "max-age=60"}, {"ETag", "\"a\""}, {"Last-Modified", kLM}, {"Content-Type", "text/plain"}}},
      {"§4.3.5 same Last-Modified alone", {{"Last-Modified", kLM}}, HeadUpdate::Update,
       {{"Cache-Control", "max-age=60"}, {"ETag", "\"a\""}, {"Last-Modified", kLM}, {"Content-Type", "text/plain"}}},
      {"§4.3.5 a weak ETag matches weakly", {{"ETag", "W/\"a\""}}, HeadUpdate::Update,
       {{"Cache-Control", "max-age=60"}, {"ETag", "W/\"a\""}, {"Last-Modified", kLM}, {"Content-Type", "text/plain"}}},
      {"§4.3.5 another ETag: the stored response is stale", {{"ETag", "\"b\""}}, HeadUpdate::MarkStale},
      {"§4.3.5 same ETag, another Last-Modified: stale",
       {{"ETag", "\"a\""}, {"Last-Modified", "Tue, 14 Nov 2023 22:13:21 GMT"}}, HeadUpdate::MarkStale},
      {"§4.3.5 a matching Content-Length is fine", {{"ETag", "\"a\""}, {"Content-Length", "10"}}, HeadUpdate::Update,
       {{"Cache-Control", "max-age=60"}, {"ETag", "\"a\""}, {"Last-Modified", kLM}, {"Content-Type", "text/plain"}}},
      {"§4.3.5 another Content-Length: stale", {{"ETag", "\"a\""}, {"Content-Length", "11"}}, HeadUpdate::MarkStale},
      {"§4.3.5 an unreadable Content-Length: stale", {{"ETag", "\"a\""}, {"Content-Length", "ten"}},
       HeadUpdate::MarkStale},
      {"§4.3.5 no validators cannot confirm a stored response that has them: stale", {{"X-A", "2"}},
       HeadUpdate::MarkStale},
      {"§4.3.5 an ETag cannot match a stored response without one", {{"ETag", "\"a\""}}, HeadUpdate::MarkStale, {},
       200, no_validators},
      {"§4.3.5 neither has validators: the HEAD updates (Content-Length permitting)",
       {{"X-A", "2"}, {"Content-Length", "10"}}, HeadUpdate::Update, {{"Cache-Control", "max-age=60"}, {"X-A", "2"}},
       200, no_validators},
      {"§4.3.5 neither has validators, another Content-Length: stale", {{"Content-Length", "3"}},
       HeadUpdate::MarkStale, {}, 200, no_validators},
      {"§4.3.5 only a 200 counts: a 404 leaves the stored response alone", {{"ETag", "\"b\""}}, HeadUpdate::Ignore,
       {}, 404},
      {"§4.3.5 a 304 to a HEAD is validation's business (merge_304), not this", {{"ETag", "\"a\""}},
       HeadUpdate::Ignore, {}, 304},
      {"§3.2 hop-by-hop and Proxy-Authenticate fields of the HEAD are not taken",
       {{"ETag", "\"a\""}, {"Connection", "X-Hop"}, {"X-Hop", "1"}, {"Transfer-Encoding", "chunked"},
        {"Proxy-Authenticate", "Basic"}},
       HeadUpdate::Update,
       {{"Cache-Control", "max-age=60"}, {"ETag", "\"a\""}, {"Last-Modified", kLM}, {"Content-Type", "text/plain"}}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::ResponseHead head;
      head.status = r.status;
      head.headers = headers(r.head);
      const auto m = cache::merge_head(headers(r.stored_fields.empty() ? stored : r.stored_fields), 10, head);
      CHECK(m.verdict == r.want);
      if (r.want == HeadUpdate::Update)
        CHECK(fields_of(m.fields) == r.want_fields);
      else
        CHECK(m.fields.empty());
    }
  }
  CHECK(cache::to_string(HeadUpdate::Update) == "update");
  CHECK(cache::to_string(HeadUpdate::MarkStale) == "mark-stale");
  CHECK(cache::to_string(HeadUpdate::Ignore) == "ignore");
}
