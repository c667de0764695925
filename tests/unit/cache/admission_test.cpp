// Admission: admit() for a full response, freshen() for a 304 merged into a
// stored entry (RFC 9111 §3, §3.1, §3.2, §4.3.3, §4.3.4).
#include "cache/admission.h"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cache/vary.h"
#include "http/date.h"
#include "proxy/wire.h"

using namespace cachalot;
using cache::StoreReason;

namespace {

constexpr int64_t kT = 1700000000;  // "now": the response (or the 304) arrives
using Fields = std::vector<std::pair<std::string, std::string>>;

std::string D(int64_t offset) { return http::format_http_date(kT + offset); }
core::TimePoint at(int64_t offset) { return core::to_time_point(kT + offset); }

// What admit() / freshen() need besides the response, for a GET of /a.
struct Gate {
  http::RequestHead req;
  cache::RequestCacheControl req_cc;
  cache::StorableOptions storable;
  cache::FreshnessOptions freshness;
  std::vector<std::string> tag_fields = {"Surrogate-Key", "Cache-Tag"};

  explicit Gate(const Fields& request = {}) {
    req.method = http::Method::Get;
    req.target = "/a";
    for (const auto& [n, v] : request) req.headers.add(n, v);
    req_cc = cache::parse_request_cache_control(req);
  }
  cache::AdmissionContext ctx(int64_t sent = -1, int64_t received = 0) const {
    cache::AdmissionContext c;
    c.request = &req;
    c.request_cc = &req_cc;
    c.primary_key = "http://example.com/a";
    c.storable = &storable;
    c.freshness = &freshness;
    c.tag_fields = &tag_fields;
    c.route = "api";
    c.route_generation = 3;
    c.request_time = at(sent);
    c.response_time = at(received);
    return c;
  }
};

http::ResponseHead response(int status, const Fields& fields) {
  http::ResponseHead r;
  r.status = status;
  for (const auto& [n, v] : fields) r.headers.add(n, v);
  return r;
}

std::optional<std::string> get(const http::HeaderMap& h, std::string_view name) {
  auto v = h.get(name);
  return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
}

Fields all(const http::HeaderMap& h) {
  Fields out;
  for (auto f : h) out.emplace_back(std::string(f.name), std::string(f.value));
  return out;
}

}  // namespace

TEST_CASE("admit stores a response without the fields a shared cache never keeps (RFC 9111 §3.1)",
          "[admission]") {
  struct Row {
    const char* name;
    // Added to the baseline: 200, Cache-Control: max-age=60, ETag, Content-Type, X-Keep.
    Fields extra = {};
    std::string cache_control = "max-age=60";
    cache::StorableOptions opts = {};
    bool store = true;
    StoreReason reason = StoreReason::Stored;
    std::vector<std::string> absent = {};  // must not be stored
    std::vector<std::string> strip = {};   // verdict.strip_fields
  };
  // More names in Connection than http::ConnectionTokens keeps (the slow path),
  // beside Age and a strip-list field: all of them go in the same call.
  Fields many_named = {{"Age", "3"}, {"X-A", "1"}};
  std::vector<std::string> many_absent = {"connection", "age", "x-a"};
  std::string connection;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "X-H" + std::to_string(i);
    connection += (i ? ", " : "") + name;
    many_named.emplace_back(name, "1");
    many_absent.push_back("x-h" + std::to_string(i));
  }
  many_named.emplace_back("Connection", connection);
  const std::vector<Row> rows = {
      {.name = "§3 baseline: every end-to-end field is stored"},
      {.name = "§3.1, RFC 9110 §7.6.1 hop-by-hop fields are not stored",
       .extra = {{"Connection", "keep-alive"},
                 {"Keep-Alive", "timeout=5"},
                 {"Proxy-Connection", "keep-alive"},
                 {"TE", "trailers"},
                 {"Trailer", "X-Sum"},
                 {"Transfer-Encoding", "chunked"},
                 {"Upgrade", "h2c"}},
       .absent = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}},
      {.name = "RFC 9110 §7.6.1 fields named by Connection are not stored",
       .extra = {{"Connection", "X-Hop, x-other"}, {"X-Hop", "1"}, {"X-Other", "2"}},
       .absent = {"connection", "x-hop", "x-other"}},
      {.name = "RFC 9110 §7.6.1 twenty fields named by Connection, Age and a no-cache field: none stored",
       .extra = many_named, .cache_control = "max-age=60, no-cache=\"X-A\"", .absent = many_absent,
       .strip = {"x-a"}},
      {.name = "§3.2 Content-Length is not stored (the entry frames its own body)",
       .extra = {{"Content-Length", "5"}}, .absent = {"content-length"}},
      {.name = "§4.2.3 Age is not stored (it is recomputed on every use)", .extra = {{"Age", "10"}},
       .absent = {"age"}},
      {.name = "§3.1 Proxy-Authenticate and Proxy-Authentication-Info are not stored",
       .extra = {{"Proxy-Authenticate", "Basic"}, {"Proxy-Authentication-Info", "x"}},
       .absent = {"proxy-authenticate", "proxy-authentication-info"}},
      {.name = "§5.2.2.4 the fields named by no-cache=\"...\" are not stored",
       .extra = {{"X-A", "1"}}, .cache_control = "max-age=60, no-cache=\"X-A\"", .absent = {"x-a"},
       .strip = {"x-a"}},
      {.name = "§5.2.2.7 the fields named by private=\"...\" are not stored",
       .extra = {{"X-B", "1"}}, .cache_control = "max-age=60, private=\"X-B\"", .absent = {"x-b"},
       .strip = {"x-b"}},
      {.name = "§3.1 Set-Cookie is not stored under set_cookie: strip", .extra = {{"Set-Cookie", "a=1"}},
       .opts = {.allow_set_cookie_strip = true}, .absent = {"set-cookie"}, .strip = {"set-cookie"}},
      {.name = "Set-Cookie without set_cookie: strip: not stored at all", .extra = {{"Set-Cookie", "a=1"}},
       .store = false, .reason = StoreReason::SetCookie},
      {.name = "§5.2.2.7 unqualified private: not stored", .cache_control = "private, max-age=60", .store = false,
       .reason = StoreReason::Private},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Gate g;
      g.storable = r.opts;
      Fields fields = {{"Cache-Control", r.cache_control},
                       {"ETag", "\"v1\""},
                       {"Content-Type", "text/plain"},
                       {"X-Keep", "kept"}};
      fields.insert(fields.end(), r.extra.begin(), r.extra.end());
      const auto a = cache::admit(g.ctx(), response(200, fields));
      CHECK(a.verdict.store == r.store);
      CHECK(a.verdict.reason == r.reason);
      if (!r.store) {
        CHECK_FALSE(a.entry);
        continue;
      }
      REQUIRE(a.entry);
      CHECK(a.verdict.strip_fields == r.strip);
      const http::HeaderMap& h = a.entry->headers;
      for (const auto& name : r.absent) CHECK_FALSE(get(h, name));
      CHECK(get(h, "x-keep") == "kept");
      CHECK(get(h, "content-type") == "text/plain");
      CHECK(get(h, "etag") == "\"v1\"");
      CHECK(get(h, "cache-control") == r.cache_control);
    }
  }
}

TEST_CASE("admit fills in the entry: key, route, status, freshness, times", "[admission]") {
  Gate g;
  const auto a = cache::admit(g.ctx(-1, 0), response(203, {{"Cache-Control", "max-age=60"}, {"Age", "10"}}));
  REQUIRE(a.entry);
  const cache::EntryDraft& e = *a.entry;
  CHECK(e.primary_key == "http://example.com/a");
  CHECK(e.route == "api");
  CHECK(e.route_generation == 3);
  CHECK(e.status == 203);
  CHECK(cache::build_entry(e)->stored_at() == at(0));  // an entry is stored at its response time
  CHECK(e.cc.max_age == 60);
  CHECK(e.freshness.lifetime == core::Seconds(60));
  CHECK(e.freshness.current_age(at(0)) == core::Seconds(11));  // §4.2.3: Age 10 + 1 s response delay
  CHECK(e.body.empty());  // the caller appends the body, then build_entry()
  CHECK(e.vary_names.empty());
  CHECK(e.variant_key.empty());
}

TEST_CASE("admit adds Date when the origin sent none (RFC 9110 §6.6.1) and keeps the origin's",
          "[admission]") {
  Gate g;
  SECTION("missing: the response time") {
    const auto a = cache::admit(g.ctx(-1, 0), response(200, {{"Cache-Control", "max-age=60"}}));
    REQUIRE(a.entry);
    CHECK(get(a.entry->headers, "date") == D(0));
    CHECK(a.entry->headers.count("date") == 1);
  }
  SECTION("present: kept as sent") {
    const auto a = cache::admit(g.ctx(-1, 0), response(200, {{"Cache-Control", "max-age=60"}, {"Date", D(-30)}}));
    REQUIRE(a.entry);
    CHECK(get(a.entry->headers, "date") == D(-30));
    CHECK(a.entry->headers.count("date") == 1);
    CHECK(a.entry->freshness.current_age(at(0)) == core::Seconds(30));
  }
}

TEST_CASE("admit computes the variant key from the request it is given (RFC 9111 §4.1)", "[admission]") {
  const Fields resp = {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding, X-Lang"}};
  Gate g(Fields{{"Accept-Encoding", "gzip, br"}, {"X-Lang", "de"}});
  const auto a = cache::admit(g.ctx(), response(200, resp));
  REQUIRE(a.entry);
  CHECK(a.entry->vary_names == std::vector<std::string>{"accept-encoding", "x-lang"});
  CHECK(a.entry->variant_key == "accept-encoding:7:br,gzip\nx-lang:2:de");
  CHECK(a.entry->variant_key == cache::variant_key(a.entry->vary_names, g.req.headers));

  // Another request: another variant.
  Gate other(Fields{{"Accept-Encoding", "gzip"}});
  const auto b = cache::admit(other.ctx(), response(200, resp));
  REQUIRE(b.entry);
  CHECK(b.entry->variant_key == "accept-encoding:4:gzip\nx-lang:!");
  const cache::EntryRef stored_a = cache::build_entry(*a.entry);
  CHECK_FALSE(cache::matches_variant(*stored_a, other.req.headers));
  CHECK(cache::matches_variant(*stored_a, g.req.headers));
}

TEST_CASE("admit parses tags: Surrogate-Key space-separated, Cache-Tag comma-separated, de-duplicated",
          "[admission]") {
  struct Row {
    const char* name;
    Fields fields;
    std::vector<std::string> want;
  };
  const std::vector<Row> rows = {
      {"no tag fields", {}, {}},
      {"Surrogate-Key is space-separated", {{"Surrogate-Key", "a b  c"}}, {"a", "b", "c"}},
      {"Cache-Tag is comma-separated", {{"Cache-Tag", "x,y, z"}}, {"x", "y", "z"}},
      {"both fields, Surrogate-Key first (configured order)", {{"Cache-Tag", "x"}, {"Surrogate-Key", "a"}},
       {"a", "x"}},
      {"duplicates within and across fields are dropped", {{"Surrogate-Key", "a b a"}, {"Cache-Tag", "b,c,a"}},
       {"a", "b", "c"}},
      {"several lines of one field", {{"Surrogate-Key", "a"}, {"Surrogate-Key", "b"}}, {"a", "b"}},
      {"tabs and empty members", {{"Cache-Tag", ",,\ta\t, ,b,"}}, {"a", "b"}},
      {"tags are case-sensitive", {{"Surrogate-Key", "A a"}}, {"A", "a"}},
      {"an unconfigured field carries no tags", {{"X-Tags", "a"}}, {}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Gate g;
      Fields fields = {{"Cache-Control", "max-age=60"}};
      fields.insert(fields.end(), r.fields.begin(), r.fields.end());
      const auto a = cache::admit(g.ctx(), response(200, fields));
      REQUIRE(a.entry);
      CHECK(a.entry->tags == r.want);
    }
  }
  SECTION("no tag fields configured: no tags") {
    Gate g;
    auto ctx = g.ctx();
    ctx.tag_fields = nullptr;
    const auto a = cache::admit(ctx, response(200, {{"Cache-Control", "max-age=60"}, {"Surrogate-Key", "a"}}));
    REQUIRE(a.entry);
    CHECK(a.entry->tags.empty());
  }
}

namespace {

// The stored entry the 304s below refresh: fetched 100 s ago with max-age=60
// (stale now), body "hello".
cache::EntryRef stored_entry(const Gate& g) {
  auto a = cache::admit(g.ctx(-101, -100), response(200, {{"Date", D(-100)},
                                                         {"Cache-Control", "max-age=60"},
                                                         {"ETag", "\"v1\""},
                                                         {"Last-Modified", D(-1000)},
                                                         {"Content-Type", "text/plain"},
                                                         {"X-Foo", "old"},
                                                         {"Surrogate-Key", "s1"}}));
  REQUIRE(a.entry);
  a.entry->body = "hello";
  return cache::build_entry(*a.entry);
}

}  // namespace

TEST_CASE("freshen merges a 304 into the stored entry and re-admits the result (RFC 9111 §3.2, §4.3.4)",
          "[admission]") {
  struct Row {
    const char* name;
    Fields resp304;  // the 304's fields
    bool store = true;
    StoreReason reason = StoreReason::Stored;
    Fields present = {};                   // in the entry's fields (and response_fields)
    std::vector<std::string> absent = {};  // in neither
    Fields client = {};                    // client_fields, exactly
    int64_t lifetime = 60;                 // of the entry, when stored
    int64_t age = 0;                       // of the entry at now, when stored
    std::vector<std::string> tags = {"s1"};
  };
  const std::pair<std::string, std::string> etag = {"ETag", "\"v1\""};
  const std::pair<std::string, std::string> date = {"Date", D(0)};
  const std::vector<Row> rows = {
      {.name = "§4.3.4 a plain 304 updates the fields and the freshness",
       .resp304 = {date, etag, {"Cache-Control", "max-age=120"}, {"X-Foo", "new"}},
       .present = {{"X-Foo", "new"}, {"Cache-Control", "max-age=120"}, {"Content-Type", "text/plain"}, date},
       .lifetime = 120},
      {.name = "§3.2 a 304 without Cache-Control keeps the stored directives, with a new response time",
       .resp304 = {date, etag}, .present = {{"X-Foo", "old"}, {"Cache-Control", "max-age=60"}, date}},
      {.name = "§3.2 Set-Cookie of a 304 goes to the revalidating client only, never into the entry",
       .resp304 = {date, etag, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}, .absent = {"set-cookie"},
       .client = {{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}},
      {.name = "§5.2.2.7 a 304 with private=\"Set-Cookie\": client-only as well",
       .resp304 = {date, etag, {"Cache-Control", "max-age=60, private=\"Set-Cookie\""}, {"Set-Cookie", "a=1"}},
       .absent = {"set-cookie"}, .client = {{"Set-Cookie", "a=1"}}},
      {.name = "§5.2.2.4 a 304 with no-cache=\"Set-Cookie\": client-only as well",
       .resp304 = {date, etag, {"Cache-Control", "max-age=60, no-cache=\"Set-Cookie\""}, {"Set-Cookie", "a=1"}},
       .absent = {"set-cookie"}, .client = {{"Set-Cookie", "a=1"}}},
      {.name = "§5.2.2.7 Cache-Control: private on the 304 leaves no entry; the client gets the merged fields",
       .resp304 = {date, etag, {"Cache-Control", "private"}}, .store = false, .reason = StoreReason::Private,
       .present = {{"Cache-Control", "private"}, {"X-Foo", "old"}, {"Content-Type", "text/plain"}, date}},
      {.name = "§5.2.2.5 Cache-Control: no-store on the 304 leaves no entry",
       .resp304 = {date, etag, {"Cache-Control", "no-store"}}, .store = false, .reason = StoreReason::NoStore,
       .present = {{"Cache-Control", "no-store"}, {"X-Foo", "old"}}},
      {.name = "§5.2.2.7 private with a Set-Cookie: no entry, and the cookie still only in client_fields",
       .resp304 = {date, etag, {"Cache-Control", "private"}, {"Set-Cookie", "a=1"}}, .store = false,
       .reason = StoreReason::Private, .absent = {"set-cookie"}, .client = {{"Set-Cookie", "a=1"}}},
      {.name = "§5.2.2.4 a 304 adding no-cache=\"X-Foo\" strips X-Foo from the entry",
       .resp304 = {date, etag, {"Cache-Control", "max-age=60, no-cache=\"X-Foo\""}}, .absent = {"x-foo"}},
      {.name = "§5.2.2.7 a 304 adding private=\"X-Foo\" strips the 304's own X-Foo too",
       .resp304 = {date, etag, {"Cache-Control", "max-age=60, private=\"X-Foo\""}, {"X-Foo", "new"}},
       .absent = {"x-foo"}},
      {.name = "§3.2 Content-Length of a 304 is ignored (it describes no body)",
       .resp304 = {date, etag, {"Content-Length", "0"}}, .absent = {"content-length"}},
      {.name = "§3.2 the 304's Date replaces the stored one", .resp304 = {{"Date", D(-5)}, etag},
       .present = {{"Date", D(-5)}}, .age = 5},
      {.name = "RFC 9110 §6.6.1 a 304 without Date: the old Date is not kept, the response time is used",
       .resp304 = {etag}, .present = {date}},
      {.name = "§4.2.3 the 304's Age counts for the new age, and is not stored",
       .resp304 = {date, etag, {"Age", "10"}}, .absent = {"age"}, .age = 10},
      {.name = "RFC 9110 §7.6.1 hop-by-hop and Connection-named fields of the 304 are not merged",
       .resp304 = {date, etag, {"Connection", "X-Bar"}, {"X-Bar", "1"}, {"Keep-Alive", "timeout=5"}},
       .absent = {"connection", "x-bar", "keep-alive"}},
      {.name = "§3.1 Proxy-Authenticate of a 304 is not merged",
       .resp304 = {date, etag, {"Proxy-Authenticate", "Basic"}}, .absent = {"proxy-authenticate"}},
      {.name = "§4.1 a 304 with Vary: * leaves no entry", .resp304 = {date, etag, {"Vary", "*"}}, .store = false,
       .reason = StoreReason::VaryStar},
      {.name = "tags follow the merged fields", .resp304 = {date, etag, {"Surrogate-Key", "s2 s3"}},
       .present = {{"Surrogate-Key", "s2 s3"}}, .tags = {"s2", "s3"}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Gate g;
      const auto stored = stored_entry(g);
      const auto f = cache::freshen(g.ctx(0, 0), *stored, response(304, r.resp304));
      CHECK(f.verdict.store == r.store);
      CHECK(f.verdict.reason == r.reason);
      CHECK(all(f.client_fields) == r.client);
      for (const auto& [n, v] : r.present) CHECK(get(f.response_fields, n) == v);
      for (const auto& n : r.absent) CHECK_FALSE(get(f.response_fields, n));
      CHECK_FALSE(get(f.response_fields, "set-cookie"));  // never shared, whatever the verdict
      if (!r.store) {
        CHECK_FALSE(f.entry);
        continue;
      }
      REQUIRE(f.entry);
      const cache::Entry& e = *f.entry;
      const http::HeaderMap fields = e.fields();
      CHECK(all(fields) == all(f.response_fields));
      for (const auto& [n, v] : r.present) CHECK(get(fields, n) == v);
      for (const auto& n : r.absent) CHECK_FALSE(get(fields, n));
      CHECK_FALSE(get(fields, "set-cookie"));
      CHECK(e.head_block().find("\r\nSet-Cookie:") == std::string_view::npos);
      CHECK(e.freshness().lifetime == core::Seconds(r.lifetime));
      CHECK(e.freshness().current_age(at(0)) == core::Seconds(r.age));
      CHECK(e.current_age(at(0)) == core::Seconds(r.age));
      CHECK(e.freshness().state(at(0)) == cache::FreshnessState::Fresh);
      CHECK(e.tags() == r.tags);
      // The representation is the stored one; the entry is built and ready to publish.
      CHECK(e.body() == "hello");
      CHECK(e.status() == 200);
      CHECK(e.primary_key() == stored->primary_key());
      CHECK(e.body().size() == 5);
      CHECK_FALSE(proxy::wire::status_has_no_body(e.status()));  // the hit path adds Content-Length: 5
      CHECK(e.etag() == "\"v1\"");
      CHECK(e.stored_at() == at(0));
      CHECK(e.drop_after() > at(0));
    }
  }
}

TEST_CASE("freshen leaves the stored entry untouched (entries never change once published)", "[admission]") {
  Gate g;
  const auto stored = stored_entry(g);
  const std::string head_before(stored->head_block());
  const auto f = cache::freshen(g.ctx(0, 0), *stored,
                                response(304, {{"Date", D(0)}, {"Cache-Control", "max-age=120"}, {"X-Foo", "new"}}));
  REQUIRE(f.entry);
  CHECK(f.entry != stored);
  CHECK(stored->head_block() == head_before);
  CHECK(get(stored->fields(), "x-foo") == "old");
  CHECK(stored->freshness().lifetime == core::Seconds(60));
  CHECK(f.entry->head_block().find("X-Foo: new\r\n") != std::string_view::npos);
}

TEST_CASE("freshen adds a Date when neither the stored response nor the 304 has one", "[admission]") {
  Gate g;
  cache::EntryDraft without_date = cache::draft_of(*stored_entry(g));
  REQUIRE(without_date.headers.remove("date") == 1);
  const auto stored = cache::build_entry(without_date);
  REQUIRE_FALSE(stored->date());
  const auto f = cache::freshen(g.ctx(0, 0), *stored, response(304, {{"ETag", "\"v1\""}}));
  REQUIRE(f.entry);
  CHECK(get(f.entry->fields(), "date") == D(0));
  CHECK(f.entry->fields().count("date") == 1);
  CHECK(f.entry->date() == kT);
}

TEST_CASE("freshen keeps the variant and takes the route from the context", "[admission]") {
  Gate g(Fields{{"Accept-Encoding", "gzip"}});
  auto a = cache::admit(g.ctx(-101, -100), response(200, {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}}));
  REQUIRE(a.entry);
  const auto stored = cache::build_entry(*a.entry);
  auto ctx = g.ctx(0, 0);
  ctx.route = "web";
  ctx.route_generation = 9;
  const auto f = cache::freshen(ctx, *stored, response(304, {{"Date", D(0)}}));
  REQUIRE(f.entry);
  CHECK(f.entry->variant_key() == stored->variant_key());
  CHECK(f.entry->vary_names() == stored->vary_names());
  CHECK(f.entry->vary() == "accept-encoding");
  CHECK(f.entry->route() == "web");
  CHECK(f.entry->route_generation() == 9);
}

TEST_CASE("admit and freshen read a targeted field of the target list first (RFC 9213 §2.2)", "[admission]") {
  Gate g;
  const std::vector<std::string> targets = {"Cachalot-Cache-Control", "CDN-Cache-Control"};
  auto ctx = [&](int64_t sent, int64_t received) {
    auto c = g.ctx(sent, received);
    c.targeted = &targets;
    return c;
  };
  SECTION("§2.2 a valid targeted field replaces Cache-Control: no-store is ignored") {
    auto a = cache::admit(ctx(-1, 0), response(200, {{"Date", D(0)}, {"Cache-Control", "no-store"},
                                                     {"CDN-Cache-Control", "max-age=600"}}));
    REQUIRE(a.verdict.store);
    CHECK(a.entry->freshness.lifetime == core::Seconds(600));
    // Without a target list the same response is not stored.
    CHECK(cache::admit(g.ctx(-1, 0), response(200, {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=600"}}))
              .verdict.reason == StoreReason::NoStore);
  }
  SECTION("§2.2 a targeted no-store wins over Cache-Control") {
    auto a = cache::admit(ctx(-1, 0), response(200, {{"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "no-store"}}));
    CHECK(a.verdict.reason == StoreReason::NoStore);
  }
  SECTION("§2.1 an invalid first field is ignored, the next one of the list is used") {
    auto a = cache::admit(ctx(-1, 0), response(200, {{"Date", D(0)}, {"Cache-Control", "no-store"},
                                                     {"Cachalot-Cache-Control", "max-age=1.5"},
                                                     {"CDN-Cache-Control", "max-age=300"}}));
    REQUIRE(a.verdict.store);
    CHECK(a.entry->freshness.lifetime == core::Seconds(300));
  }
  SECTION("§2.2 Expires is ignored with a targeted field") {
    auto a = cache::admit(ctx(-1, 0), response(200, {{"Expires", "Fri, 31 Dec 9999 23:59:59 GMT"},
                                                     {"CDN-Cache-Control", "none"}}));
    CHECK(a.verdict.reason == StoreReason::NoFreshness);
  }
  SECTION("§2.2 a targeted field not on the list changes nothing") {
    auto a = cache::admit(ctx(-1, 0), response(200, {{"Date", D(0)}, {"Cache-Control", "max-age=60"},
                                                     {"Other-Cache-Control", "no-store"}}));
    REQUIRE(a.verdict.store);
    CHECK(a.entry->freshness.lifetime == core::Seconds(60));
    CHECK(get(a.entry->headers, "other-cache-control") == "no-store");
  }
  SECTION("§4.3.4 a 304 without the targeted field keeps the stored one's directives") {
    auto a = cache::admit(ctx(-101, -100), response(200, {{"Date", D(-100)}, {"ETag", "\"v1\""},
                                                          {"Cache-Control", "max-age=60"},
                                                          {"CDN-Cache-Control", "max-age=600"}}));
    REQUIRE(a.entry);
    const auto stored = cache::build_entry(*a.entry);
    const auto f = cache::freshen(ctx(-1, 0), *stored, response(304, {{"Date", D(0)}, {"ETag", "\"v1\""}}));
    REQUIRE(f.entry);
    CHECK(f.entry->freshness().lifetime == core::Seconds(600));
    // A 304 whose targeted field says no-store unshares the response.
    const auto g2 = cache::freshen(ctx(-1, 0), *stored,
                                   response(304, {{"Date", D(0)}, {"ETag", "\"v1\""}, {"CDN-Cache-Control", "no-store"}}));
    CHECK_FALSE(g2.entry);
    CHECK(g2.verdict.reason == StoreReason::NoStore);
  }
}

TEST_CASE("fields dropped downstream are stored withheld, and stay so through a 304 (RFC 9213 §3)", "[admission]") {
  Gate g;
  const std::vector<std::string> targets = {"Cachalot-Cache-Control", "CDN-Cache-Control"};
  const std::vector<std::string> drop = {"Cachalot-Cache-Control"};
  auto ctx = [&](int64_t sent, int64_t received) {
    auto c = g.ctx(sent, received);
    c.targeted = &targets;
    c.withheld = &drop;
    return c;
  };
  auto a = cache::admit(ctx(-101, -100), response(200, {{"Date", D(-100)}, {"ETag", "\"v1\""},
                                                        {"Cache-Control", "max-age=60"},
                                                        {"Cachalot-Cache-Control", "max-age=600"},
                                                        {"CDN-Cache-Control", "max-age=30"}}));
  REQUIRE(a.entry);
  CHECK(a.entry->freshness.lifetime == core::Seconds(600));
  const auto stored = cache::build_entry(*a.entry);
  CHECK(stored->head_block().find("Cachalot-Cache-Control") == std::string_view::npos);
  CHECK(stored->head_block().find("CDN-Cache-Control: max-age=30\r\n") != std::string_view::npos);  // §3: forwarded
  CHECK(get(stored->fields(), "cachalot-cache-control") == "max-age=600");
  // The 304 re-reads the withheld field (it has none itself): still 600 s, still withheld.
  const auto f = cache::freshen(ctx(-1, 0), *stored, response(304, {{"Date", D(0)}, {"ETag", "\"v1\""}}));
  REQUIRE(f.entry);
  CHECK(f.entry->freshness().lifetime == core::Seconds(600));
  CHECK(f.entry->head_block().find("Cachalot-Cache-Control") == std::string_view::npos);
  CHECK(get(f.entry->fields(), "cachalot-cache-control") == "max-age=600");
}
