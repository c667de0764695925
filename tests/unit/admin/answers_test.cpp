// The admin API's JSON answers (admin/answers.h): the bytes conversation
// tests and scripts read, and request bytes that are not UTF-8.
#include "admin/answers.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "admin/redact.h"
#include "cache/vary.h"

using namespace cachalot;
using namespace cachalot::admin;

namespace {

constexpr int64_t kT = 1700000000;
core::TimePoint at(int64_t offset) { return core::to_time_point(kT + offset); }

cache::EntryRef entry(std::string primary_key, std::string variant_key, std::vector<std::string> tags) {
  cache::EntryDraft d;
  d.primary_key = std::move(primary_key);
  d.variant_key = std::move(variant_key);
  d.headers.add("ETag", "\"v1\"");
  d.headers.add("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT");
  d.body = "hello";
  d.freshness.request_time = d.freshness.response_time = at(0);
  d.freshness.lifetime = core::Seconds(60);
  d.freshness.stale_while_revalidate = core::Seconds(5);
  d.tags = std::move(tags);
  d.route = "r";
  return cache::build_entry(d);
}

}  // namespace

TEST_CASE("admin errors are {\"error\":message}", "[admin][answers]") {
  CHECK(error_body("use POST") == "{\"error\":\"use POST\"}\n");
  CHECK(error_body("bad \"x\"\\\n") == "{\"error\":\"bad \\\"x\\\"\\\\\\n\"}\n");
  CHECK(body_of({{"status", "ok"}}) == "{\"status\":\"ok\"}\n");
}

TEST_CASE("purge answers: count, kind and soft; or the route's new generation", "[admin][answers]") {
  cache::Purge p;
  p.kind = cache::Purge::Kind::Prefix;
  p.value = "/p/";
  p.soft = true;
  CHECK(purge_body(p, {3, 0, ""}) == "{\"purged\":3,\"kind\":\"prefix\",\"soft\":true}\n");
  p.kind = cache::Purge::Kind::All;
  p.soft = false;
  CHECK(purge_body(p, {0, 0, ""}) == "{\"purged\":0,\"kind\":\"all\",\"soft\":false}\n");
  p.kind = cache::Purge::Kind::Route;
  p.value = "api";
  CHECK(purge_body(p, {0, 7, ""}) == "{\"route\":\"api\",\"generation\":7}\n");
}

TEST_CASE("GET /cache: the key, then each variant's fields in order", "[admin][answers]") {
  auto e = entry("http://example.com/a", "", {"t1", "t2"});
  Inspection found{"http://example.com/a", {e}};
  const std::string want = "{\"key\":\"http://example.com/a\",\"variants\":[{\"variant\":\"\",\"status\":200,"
                           "\"age\":10,\"ttl\":50,\"lifetime\":60,\"heuristic\":false,\"stale_while_revalidate\":5,"
                           "\"stale_if_error\":0,\"etag\":\"\\\"v1\\\"\",\"last_modified\":"
                           "\"Tue, 14 Nov 2023 22:13:20 GMT\",\"size\":5,\"charge\":" +
                           std::to_string(e->charge()) + ",\"route\":\"r\",\"tags\":[\"t1\",\"t2\"]}]}\n";
  CHECK(inspect_body(found, redacted_names({}), at(10)) == want);
  CHECK(inspect_body({"http://example.com/none", {}}, redacted_names({}), at(10)) ==
        "{\"key\":\"http://example.com/none\",\"variants\":[]}\n");
}

TEST_CASE("GET /cache with bytes that are not UTF-8 in the URL, a variant and a tag: U+FFFD, valid JSON",
          "[admin][answers]") {
  http::HeaderMap req;
  req.add("X-Lang", "d\xe9");
  req.add("Cookie", "sid=\xff");
  const std::vector<std::string> vary = {"cookie", "x-lang"};
  const std::string url = "http://example.com/caf\xe9?q=\xff";
  auto e = entry(url, cache::variant_key(vary, req), {"t\xfe"});
  std::string text;
  REQUIRE_NOTHROW(text = inspect_body({url, {e}}, redacted_names({}), at(10)));
  auto j = core::Json::parse(text);  // throws on invalid JSON or UTF-8
  CHECK(j["key"] == "http://example.com/caf\xef\xbf\xbd?q=\xef\xbf\xbd");
  const std::string variant = j["variants"][0]["variant"];
  CHECK(variant.find("x-lang:2:d\xef\xbf\xbd") != std::string::npos);
  CHECK(variant.find("cookie:5:sha256:") != std::string::npos);  // still redacted, digest of the raw bytes
  CHECK(j["variants"][0]["tags"] == core::Json::array({"t\xef\xbf\xbd"}));
}

TEST_CASE("GET /cluster: disabled, or the bus' state in order", "[admin][answers]") {
  CHECK(cluster_body(std::nullopt) == "{\"enabled\":false}\n");
  cluster::BusStatus st;
  st.connected = true;
  st.node = "a";
  st.incarnation = "00ff";
  st.redis = "redis://:***@127.0.0.1:6379";
  st.stream = "cachalot";
  st.last_id = "1-0";
  st.last_seq = 4;
  st.queued = 1;
  st.published = 4;
  st.applied = 2;
  st.own = 4;
  st.reconnects = 1;
  st.lag_last_seconds = 0.0012345678;
  st.since_ms = 1700000000000;
  st.last_error = "connection refused";
  st.last_error_ms = 1699999999000;
  CHECK(cluster_body(st) ==
        "{\"enabled\":true,\"connected\":true,\"node\":\"a\",\"incarnation\":\"00ff\","
        "\"redis\":\"redis://:***@127.0.0.1:6379\",\"stream\":\"cachalot\",\"last_id\":\"1-0\",\"last_seq\":4,"
        "\"queued\":1,\"published\":4,\"applied\":2,\"own\":4,\"duplicates\":0,\"invalid\":0,\"dropped\":0,"
        "\"reconnects\":1,\"resyncs\":0,\"lag_last_seconds\":0.001235,\"since_ms\":1700000000000,"
        "\"last_error\":\"connection refused\",\"last_error_ms\":1699999999000}\n");
}
