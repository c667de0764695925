// L2 records and markers (cache/l2_record.h): the record envelope round
// trip and its damage, the rebasing of ages, the PX, what may be shared with
// the fleet, and that markers match exactly what InvalidationLog::matches()
// does for the local store.
#include "cache/l2_record.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "cache/cache_control.h"
#include "cache/key.h"

using namespace cachalot;
namespace l2 = cachalot::cache::l2;
using Rule = cache::InvalidationLog::Rule;
using Kind = cache::Purge::Kind;

namespace {

constexpr int64_t kT = 1700000000;
core::TimePoint at(int64_t seconds) { return core::to_time_point(kT + seconds); }

cache::EntryDraft draft(std::string key) {
  cache::EntryDraft d;
  d.primary_key = std::move(key);
  d.status = 200;
  d.headers.add("Cache-Control", "max-age=100, stale-while-revalidate=30");
  d.headers.add("ETag", "\"v1\"");
  d.headers.add("Date", "Tue, 14 Nov 2023 22:13:20 GMT");
  d.body = "hello";
  d.freshness.request_time = at(0);
  d.freshness.response_time = at(0);
  d.freshness.lifetime = core::Seconds(100);
  d.freshness.stale_while_revalidate = core::Seconds(30);
  d.freshness.keep = core::Seconds(3600);
  return d;
}

// Does any marker an invalidation writes meet a field a lookup of `e` checks?
bool markers_meet(const Rule& r, const cache::Entry& e) {
  std::vector<std::string> wrote = l2::marker_fields(r);
  std::vector<std::string> checks = l2::lookup_fields(e.primary_key(), e.route());
  for (const auto& t : e.tags()) checks.push_back(l2::tag_field(t));
  return std::any_of(wrote.begin(), wrote.end(),
                     [&](const std::string& w) { return std::find(checks.begin(), checks.end(), w) != checks.end(); });
}

Rule rule(Kind k, std::string path, std::optional<std::string> host = std::nullopt) {
  Rule r;
  r.kind = k;
  r.path = std::move(path);
  if (host) {
    r.authority = cache::normalized_authority("http", *host);
    r.authority_https = cache::normalized_authority("https", *host);
  }
  return r;
}

}  // namespace

TEST_CASE("an L2 record round-trips an entry through the snapshot payload codec") {
  cache::EntryDraft d = draft("https://example.com/a/b?x=1");
  d.tags = {"blue", "red"};
  d.route = "api";
  d.vary_names = {"accept-encoding"};
  d.variant_key = "gzip";
  const cache::EntryRef e = cache::build_entry(d);
  const std::string rec = l2::encode_record(*e, at(5));
  REQUIRE(rec.substr(0, 8) == l2::kRecordMagic);

  cache::EntryDraft out;
  int64_t written = 0;
  REQUIRE(l2::decode_record(rec, out, written) == l2::DecodeError::None);
  CHECK(written == at(5).time_since_epoch().count());
  CHECK(out.primary_key == e->primary_key());
  CHECK(out.variant_key == "gzip");
  CHECK(out.vary_names == std::vector<std::string>{"accept-encoding"});
  CHECK(out.tags == std::vector<std::string>{"blue", "red"});
  CHECK(out.route == "api");
  CHECK(out.body == "hello");
  CHECK(out.status == 200);
  CHECK(out.headers.get("etag") == std::optional<std::string_view>("\"v1\""));
  CHECK(out.freshness.lifetime == core::Seconds(100));
  CHECK(out.freshness.stale_while_revalidate == core::Seconds(30));
  CHECK(out.freshness.response_time == at(0));
}

TEST_CASE("a damaged or foreign L2 record is refused with a named reason") {
  const std::string rec = l2::encode_record(*cache::build_entry(draft("http://h/a")), at(0));
  cache::EntryDraft out;
  int64_t written = 0;
  CHECK(l2::decode_record("", out, written) == l2::DecodeError::Magic);
  CHECK(l2::decode_record("CACHSNAP" + rec.substr(8), out, written) == l2::DecodeError::Magic);
  std::string other_payload = rec;
  other_payload[12] = 99;  // payload codec version
  CHECK(l2::decode_record(other_payload, out, written) == l2::DecodeError::Version);
  std::string flipped = rec;
  flipped.back() ^= 1;
  CHECK(l2::decode_record(flipped, out, written) == l2::DecodeError::Checksum);
  CHECK(l2::decode_record(rec.substr(0, rec.size() - 1), out, written) == l2::DecodeError::Checksum);
  CHECK(l2::to_string(l2::DecodeError::Checksum) == "checksum");
}

TEST_CASE("a record's age keeps growing across nodes (RFC 9111 §4.2.3)") {
  cache::Freshness f = draft("http://h/a").freshness;  // received at at(0), on the writer's clock
  // Written at the writer's at(10); read 3 s after the store on a node whose clock is 1000 s ahead.
  const int64_t written = at(10).time_since_epoch().count();
  const cache::Freshness g = l2::rebased(f, written, at(1013), core::Duration(3000));
  CHECK(g.current_age(at(1013)) == core::Seconds(13));
  CHECK(g.ttl(at(1013)) == 87);
  // A negative time since the store (Redis' clock stepped back) never makes it younger.
  const cache::Freshness h = l2::rebased(f, written, at(1010), core::Duration(-5000));
  CHECK(h.current_age(at(1010)) == core::Seconds(10));
}

TEST_CASE("a record expires in Redis after its lifetime and longest stale window, not cache.keep") {
  cache::Freshness f = draft("http://h/a").freshness;
  CHECK(l2::ttl_ms(f, at(0)) == 130'000);   // 100 fresh + 30 swr
  CHECK(l2::ttl_ms(f, at(120)) == 10'000);
  CHECK(l2::ttl_ms(f, at(131)) <= 0);
  f.stale_if_error = core::Seconds(300);
  CHECK(l2::ttl_ms(f, at(0)) == 400'000);
  f.corrected_initial_age = core::Seconds(50);
  CHECK(l2::ttl_ms(f, at(0)) == 350'000);
}

TEST_CASE("what the admission gate stores locally is shared with the fleet unless it is personal") {
  http::RequestHead req;
  req.method = http::Method::Get;
  http::ResponseHead resp;
  resp.status = 200;
  cache::ResponseCacheControl cc;
  cache::StoreVerdict v;
  v.store = true;
  const std::string key = "http://h/a";
  SECTION("baseline: shared") { CHECK(l2::refusal(req, resp, cc, v, key, false) == l2::Refusal::None); }
  SECTION("§3.5 a request with Authorization, even answered public") {
    req.headers.add("Authorization", "Bearer x");
    cc.public_ = true;
    CHECK(l2::refusal(req, resp, cc, v, key, false) == l2::Refusal::Authorization);
  }
  SECTION("a partitioned route's entry") {
    CHECK(l2::refusal(req, resp, cc, v, key, true) == l2::Refusal::Partition);
    std::string pkey = key;
    cache::append_partition(pkey, "ns:alice");
    CHECK(l2::refusal(req, resp, cc, v, pkey, false) == l2::Refusal::Partition);
  }
  SECTION("§5.2.2.7 private=\"field\" (qualified): stored locally without it, never shared") {
    cc.private_fields = {"x-user"};
    CHECK(l2::refusal(req, resp, cc, v, key, false) == l2::Refusal::Private);
  }
  SECTION("Set-Cookie, even stripped by set_cookie: store_without") {
    v.strip_set_cookie = true;
    CHECK(l2::refusal(req, resp, cc, v, key, false) == l2::Refusal::SetCookie);
    v.strip_set_cookie = false;
    resp.headers.add("Set-Cookie", "a=b");
    CHECK(l2::refusal(req, resp, cc, v, key, false) == l2::Refusal::SetCookie);
  }
  SECTION("a path longer than kMaxPathBytes") {
    CHECK(l2::refusal(req, resp, cc, v, "http://h/" + std::string(l2::kMaxPathBytes, 'a'), false) ==
          l2::Refusal::LongKey);
  }
  SECTION("a body above cache.l2.max_object_size") {
    CHECK(l2::refusal_for_size(1025, 1024) == l2::Refusal::TooLarge);
    CHECK(l2::refusal_for_size(1024, 1024) == l2::Refusal::None);
  }
}

TEST_CASE("L2 markers match exactly the entries the local invalidation rules match") {
  std::vector<cache::EntryRef> entries;
  for (const char* key : {"http://example.com/a/b?x=1", "https://example.com/a/b?x=1", "http://example.com:8080/a/b",
                          "http://other.org/a/c", "http://example.com/z\nx-tenant:1:7", "http://example.com/"}) {
    cache::EntryDraft d = draft(key);
    d.tags = {std::string(key).find("other") != std::string::npos ? "green" : "blue"};
    d.route = std::string(key).find("/a/") != std::string::npos ? "api" : "";
    entries.push_back(cache::build_entry(d));
  }
  std::vector<Rule> rules = {
      rule(Kind::All, ""),
      rule(Kind::Route, "api"),
      rule(Kind::Route, "none"),
      rule(Kind::Tag, "blue"),
      rule(Kind::Tag, "green"),
      rule(Kind::Url, "/a/b?x=1"),
      rule(Kind::Url, "/a/b?x=1", "example.com"),
      rule(Kind::Url, "/a/b?x=1", "example.com:443"),
      rule(Kind::Url, "/a/b", "example.com:8080"),
      rule(Kind::Url, "/z"),
      rule(Kind::Url, "/a/b"),
      rule(Kind::Prefix, "/a/"),
      rule(Kind::Prefix, "/a/", "other.org"),
      rule(Kind::Prefix, "/"),
      rule(Kind::Prefix, "/a/b?"),
      rule(Kind::Prefix, "/b"),
  };
  for (const auto& r : rules)
    for (const auto& e : entries) {
      INFO("rule " << cache::to_string(r.kind) << " " << r.path << " host " << r.authority.value_or("*") << ", key "
                   << e->primary_key());
      CHECK(markers_meet(r, *e) == cache::InvalidationLog::matches(r, *e));
    }
}

TEST_CASE("a partition purge writes no L2 marker: nothing partitioned is shared") {
  CHECK(l2::marker_fields(rule(Kind::Partition, "alice")).empty());
}

TEST_CASE("a record is void when any marker is at or after its fill time") {
  CHECK_FALSE(l2::voided(1000, {}));
  CHECK_FALSE(l2::voided(1000, {999, 1}));
  CHECK(l2::voided(1000, {1000}));
  CHECK(l2::voided(1000, {5, 2000}));
}

TEST_CASE("L2 keys keep the whole cache key, binary-safe") {
  CHECK(l2::record_key("p:", "http://h/a\nx:1:2") == "p:r:http://h/a\nx:1:2");
  CHECK(l2::marks_key("p:") == "p:marks");
  const auto f = l2::lookup_fields("http://h/ab", "api");
  const std::set<std::string> want = {"a", "r api", "u http://h/ab", "u */ab", "p http://h/", "p */",
                                      "p http://h/a", "p */a", "p http://h/ab", "p */ab"};
  CHECK(std::set<std::string>(f.begin(), f.end()) == want);
}
