// Partitions (route partition:): the key entry, the one admission gate with
// `partitioned`, the reserved tag, and the per-partition budget.
#include "cache/partition.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cache/admission.h"
#include "cache/invalidation_log.h"
#include "cache/key.h"
#include "cache/vary.h"

using namespace cachalot;
using cache::StoreReason;

namespace {

constexpr int64_t kT = 1700000000;
core::TimePoint at(int64_t offset) { return core::to_time_point(kT + offset); }

std::string partitioned_key(std::string base, std::string_view claim) {
  cache::append_partition(base, claim);
  return base;
}

// The proxy names a partition "<namespace>:<claim>" (auth::JwtPolicy::ns); a
// purge by partition names the claim, in every namespace.
std::string ns_key(std::string base, std::string_view claim, std::string_view ns = "0123456789abcdef") {
  cache::append_partition(base, std::string(ns) + ":" + std::string(claim));
  return base;
}

struct Gate {
  http::RequestHead req;
  cache::RequestCacheControl req_cc;
  cache::StorableOptions storable;
  cache::FreshnessOptions freshness;
  std::vector<std::string> tag_fields = {"Surrogate-Key"};
  std::string key;
  http::HeaderMap variant_fields;

  explicit Gate(std::string k, bool authorized = true) : key(std::move(k)) {
    req.method = http::Method::Get;
    req.target = "/dash/a";
    if (authorized) req.headers.add("Authorization", "Bearer token-1");
    req.headers.add("Accept-Language", "en");
    req_cc = cache::parse_request_cache_control(req);
    variant_fields = req.headers;
    variant_fields.remove("authorization");
    variant_fields.add("authorization", cache::partition_tag("alice"));
  }
  cache::AdmissionContext ctx(bool partitioned) const {
    cache::AdmissionContext c;
    c.request = &req;
    c.request_cc = &req_cc;
    c.primary_key = key;
    c.storable = &storable;
    c.freshness = &freshness;
    c.tag_fields = &tag_fields;
    c.partitioned = partitioned;
    if (partitioned) c.variant_fields = &variant_fields;
    c.request_time = at(-1);
    c.response_time = at(0);
    return c;
  }
};

http::ResponseHead response(std::vector<std::pair<std::string, std::string>> fields) {
  http::ResponseHead r;
  r.status = 200;
  for (const auto& [n, v] : fields) r.headers.add(n, v);
  return r;
}

cache::EntryRef entry(std::string key, int64_t stored, std::size_t body) {
  cache::EntryDraft d;
  d.primary_key = std::move(key);
  d.body.assign(body, 'x');
  d.freshness.response_time = at(stored);
  d.freshness.request_time = at(stored);
  return cache::build_entry(d);
}

}  // namespace

TEST_CASE("a partition entry cannot collide with a URL, another claim or an unpartitioned key", "[partition][key]") {
  const std::string base = "http://h/dash/a";
  const std::string alice = partitioned_key(base, "alice");
  CHECK(alice == "http://h/dash/a\n\x1fp=5:alice");
  CHECK(cache::key_partition(alice) == "alice");
  CHECK(cache::key_partition(base).empty());
  CHECK(cache::key_path(alice) == "/dash/a");  // forwarded as the URL, purged with it
  CHECK(partitioned_key(base, "bob") != alice);
  // A claim that looks like a length and another claim is still one claim.
  CHECK(cache::key_partition(partitioned_key(base, "5:alice")) == "5:alice");
  CHECK(partitioned_key(base, "5:alice") != alice);
  // The encoded path of any request target cannot hold the marker.
  const std::string forged = cache::primary_key("http", "h", "/dash/a%0A%1Fp=5:alice", {}, {});
  CHECK(forged != alice);
  CHECK(cache::key_partition(forged).empty());
  // Nor can a key header entry's value ("name:len:value", no control bytes in a field value).
  http::HeaderMap h;
  h.add("X-Tenant", "\x1fp=5:alice");
  cache::KeyOptions opts;
  opts.headers = {"X-Tenant"};
  const std::string with_header = cache::primary_key("http", "h", "/dash/a", h, opts);
  CHECK(cache::key_partition(with_header).empty());
  // The partition entry comes after key header entries.
  CHECK(cache::key_partition(partitioned_key(with_header, "alice")) == "alice");
}

TEST_CASE("admission with a partition: private and Authorization responses are stored, no-store never",
          "[partition][admission]") {
  struct Row {
    const char* name;
    std::vector<std::pair<std::string, std::string>> fields;
    bool partitioned;
    bool keyed;  // the key carries a partition entry
    bool store;
    StoreReason reason;
  };
  const Row rows[] = {
      {"baseline: private, unpartitioned (§5.2.2.7)", {{"Cache-Control", "private, max-age=60"}}, false, false, false,
       StoreReason::Private},
      {"private in a partition", {{"Cache-Control", "private, max-age=60"}}, true, true, true, StoreReason::Stored},
      {"Authorization without public, unpartitioned (§3.5)", {{"Cache-Control", "max-age=60"}}, false, false, false,
       StoreReason::Authorization},
      {"Authorization in a partition", {{"Cache-Control", "max-age=60"}}, true, true, true, StoreReason::Stored},
      {"no-store in a partition", {{"Cache-Control", "private, no-store, max-age=60"}}, true, true, false,
       StoreReason::NoStore},
      {"Set-Cookie in a partition", {{"Cache-Control", "private, max-age=60"}, {"Set-Cookie", "a=1"}}, true, true,
       false, StoreReason::SetCookie},
      {"Vary: * in a partition", {{"Cache-Control", "private, max-age=60"}, {"Vary", "*"}}, true, true, false,
       StoreReason::VaryStar},
      {"flag without a partition in the key relaxes nothing", {{"Cache-Control", "private, max-age=60"}}, true, false,
       false, StoreReason::Private},
  };
  for (const auto& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Gate g(r.keyed ? partitioned_key("http://h/dash/a", "alice") : "http://h/dash/a");
      auto a = cache::admit(g.ctx(r.partitioned), response(r.fields));
      CHECK(a.verdict.store == r.store);
      CHECK(cache::to_string(a.verdict.reason) == cache::to_string(r.reason));
      CHECK(static_cast<bool>(a.entry) == r.store);
    }
  }
}

TEST_CASE("a partitioned entry carries the partition tag; origins cannot set reserved tags", "[partition][admission]") {
  Gate g(partitioned_key("http://h/dash/a", "alice"));
  auto a = cache::admit(g.ctx(true), response({{"Cache-Control", "private, max-age=60"},
                                               {"Surrogate-Key", "\x1fp=bob dash"}}));
  REQUIRE(a.entry);
  CHECK(a.entry->tags == std::vector<std::string>{"dash", cache::partition_tag("alice")});
  auto e = cache::build_entry(*a.entry);
  CHECK(e->has_tag(cache::partition_tag("alice")));
  CHECK_FALSE(e->has_tag(cache::partition_tag("bob")));

  SECTION("a 304 merged into it keeps the tag and stays stored despite private") {
    auto f = cache::freshen(g.ctx(true), *e, [] {
      http::ResponseHead r;
      r.status = 304;
      r.headers.add("Cache-Control", "private, max-age=120");
      return r;
    }());
    REQUIRE(f.entry);
    CHECK(f.entry->has_tag(cache::partition_tag("alice")));
  }
}

TEST_CASE("Vary: Authorization in a partition is keyed by the claim, not the token", "[partition][vary]") {
  const auto resp = response({{"Cache-Control", "private, max-age=60"}, {"Vary", "Authorization, Accept-Language"}});
  Gate first(partitioned_key("http://h/dash/a", "alice"));
  Gate refreshed(partitioned_key("http://h/dash/a", "alice"));
  refreshed.req.headers.remove("authorization");
  refreshed.req.headers.add("Authorization", "Bearer token-2");
  auto a1 = cache::admit(first.ctx(true), resp);
  auto a2 = cache::admit(refreshed.ctx(true), resp);
  REQUIRE(a1.entry);
  REQUIRE(a2.entry);
  CHECK(a1.entry->variant_key == a2.entry->variant_key);
  CHECK(a1.entry->variant_key.find("token-") == std::string::npos);
  auto unpartitioned = cache::variant_key(cache::parse_vary(resp.headers), first.req.headers);
  CHECK(unpartitioned != a1.entry->variant_key);
}

TEST_CASE("partition invalidation rules match that partition's keys only", "[partition][invalidation]") {
  cache::InvalidationLog::Rule r;
  r.kind = cache::Purge::Kind::Partition;
  r.path = "alice";
  CHECK(cache::InvalidationLog::may_match_key(r, ns_key("http://h/a", "alice")));
  CHECK_FALSE(cache::InvalidationLog::may_match_key(r, ns_key("http://h/a", "bob")));
  CHECK_FALSE(cache::InvalidationLog::may_match_key(r, "http://h/a"));
  CHECK_FALSE(cache::InvalidationLog::may_match_key(r, ns_key("http://h/a", "alice2")));
  // The claim under another route's or identity provider's namespace is purged too.
  CHECK(cache::InvalidationLog::may_match_key(r, ns_key("http://h/a", "alice", "fedcba9876543210")));
  // A bare claim is no partition the proxy makes.
  CHECK_FALSE(cache::InvalidationLog::may_match_key(r, partitioned_key("http://h/a", "alice")));

  cache::InvalidationLog log;
  auto ticket = log.enter();
  log.record(r);
  CHECK(log.check(ticket, *entry(ns_key("http://h/a", "alice"), 0, 10)) ==
        cache::InvalidationLog::Verdict::Drop);
  CHECK(log.check(ticket, *entry(ns_key("http://h/a", "bob"), 0, 10)) ==
        cache::InvalidationLog::Verdict::Publish);
}

TEST_CASE("the partition budget evicts that partition's oldest entries, never the new one", "[partition][budget]") {
  auto a = entry(partitioned_key("http://h/1", "alice"), 10, 1000);
  auto b = entry(partitioned_key("http://h/2", "alice"), 20, 1000);
  auto c = entry(partitioned_key("http://h/3", "alice"), 30, 1000);
  const uint64_t one = a->charge();

  SECTION("within budget: nothing") { CHECK(cache::partition_victims({a, b, c}, c.get(), 3 * one).empty()); }
  SECTION("over by one entry: the oldest") {
    auto v = cache::partition_victims({c, a, b}, c.get(), 2 * one);
    REQUIRE(v.size() == 1);
    CHECK(v[0] == a);
  }
  SECTION("room for the new one only") {
    auto v = cache::partition_victims({b, c, a}, c.get(), one);
    REQUIRE(v.size() == 2);
    CHECK(v[0] == a);
    CHECK(v[1] == b);
  }
  SECTION("the kept entry is never a victim, even when it is the oldest") {
    auto v = cache::partition_victims({a, b, c}, a.get(), one);
    REQUIRE(v.size() == 2);
    CHECK(v[0] == b);
    CHECK(v[1] == c);
  }
  CHECK(cache::fits_partition(*a, one));
  CHECK_FALSE(cache::fits_partition(*a, one - 1));
}
