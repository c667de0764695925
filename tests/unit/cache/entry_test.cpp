// Entry helpers: variant selection (RFC 9111 §4.1) and soft purges.
#include "cache/entry.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "cache/evaluate.h"
#include "cache/vary.h"

using namespace cachalot;

namespace {

constexpr int64_t kT = 1700000000;
core::TimePoint at(int64_t offset) { return core::to_time_point(kT + offset); }
using Fields = std::vector<std::pair<std::string, std::string>>;

http::HeaderMap fields(const Fields& f) {
  http::HeaderMap h;
  for (const auto& [n, v] : f) h.add(n, v);
  return h;
}

// A variant stored for a request with these fields under this Vary.
cache::EntryRef stored_for(std::vector<std::string> vary_names, const Fields& request) {
  cache::EntryDraft d;
  d.primary_key = "http://example.com/a";
  d.vary_names = std::move(vary_names);
  d.variant_key = cache::variant_key(d.vary_names, fields(request));
  return cache::build_entry(d);
}

}  // namespace

TEST_CASE("matches_variant: the request's normalised Vary values must equal the stored ones (RFC 9111 §4.1)",
          "[policy][entry]") {
  struct Row {
    const char* name;
    std::vector<std::string> vary;  // lower-case, sorted (as parse_vary leaves them)
    Fields stored_request;
    Fields request;
    bool want;
  };
  const std::vector<Row> rows = {
      {"no Vary: every request", {}, {{"Accept-Encoding", "gzip"}}, {{"Accept-Encoding", "br"}}, true},
      {"the same value", {"accept-encoding"}, {{"Accept-Encoding", "gzip"}}, {{"Accept-Encoding", "gzip"}}, true},
      {"another value", {"accept-encoding"}, {{"Accept-Encoding", "gzip"}}, {{"Accept-Encoding", "br"}}, false},
      {"§4.1 case-insensitive values are case-folded", {"accept-encoding"}, {{"Accept-Encoding", "gzip"}},
       {{"Accept-Encoding", "GZIP"}}, true},
      {"§4.1 whitespace and order where the syntax allows", {"accept-encoding"},
       {{"Accept-Encoding", "gzip, br"}}, {{"Accept-Encoding", "br,gzip"}}, true},
      {"§4.1 combined field lines", {"accept-encoding"}, {{"Accept-Encoding", "gzip, br"}},
       {{"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br"}}, true},
      {"§4.1 the field absent then and now", {"x-lang"}, {}, {}, true},
      {"§4.1 absent then, present now", {"x-lang"}, {}, {{"X-Lang", "de"}}, false},
      {"§4.1 present then, absent now", {"x-lang"}, {{"X-Lang", "de"}}, {}, false},
      {"§4.1 absent differs from empty", {"x-lang"}, {}, {{"X-Lang", ""}}, false},
      {"every name must match", {"accept-encoding", "x-lang"}, {{"Accept-Encoding", "gzip"}, {"X-Lang", "de"}},
       {{"Accept-Encoding", "gzip"}, {"X-Lang", "fr"}}, false},
      {"fields not named by Vary do not matter", {"x-lang"}, {{"X-Lang", "de"}, {"X-Other", "1"}},
       {{"X-Lang", "de"}, {"X-Other", "2"}}, true},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      const cache::EntryRef e = stored_for(r.vary, r.stored_request);
      REQUIRE(e);
      CHECK(cache::matches_variant(*e, fields(r.request)) == r.want);
    }
  }
}

namespace {

// Stored at kT (its response time) with lifetime 100 s, validators kept an hour.
cache::EntryDraft fresh_draft() {
  cache::EntryDraft d;
  d.primary_key = "http://example.com/a";
  d.status = 200;
  d.headers.add("ETag", "\"v1\"");
  d.body = "hello";
  d.freshness.request_time = at(0);
  d.freshness.response_time = at(0);
  d.freshness.lifetime = core::Seconds(100);
  d.freshness.keep = core::Seconds(3600);
  return d;
}

}  // namespace

TEST_CASE("mark_stale gives a copy whose lifetime ends at its current age (a soft purge)", "[policy][entry]") {
  struct Row {
    const char* name;
    int64_t now;
    int64_t initial_age = 0;
    int64_t swr = 0;
    int64_t want_lifetime;
    cache::FreshnessState want_state;
  };
  using cache::FreshnessState;
  const std::vector<Row> rows = {
      {"a fresh entry becomes stale now", 10, 0, 0, 10, FreshnessState::StaleRevalidateOnly},
      {"just stored: lifetime 0", 0, 0, 0, 0, FreshnessState::StaleRevalidateOnly},
      {"§4.2.3 its initial age counts", 10, 5, 0, 15, FreshnessState::StaleRevalidateOnly},
      {"RFC 5861 stale-while-revalidate still applies", 10, 0, 30, 10, FreshnessState::StaleWhileRevalidate},
      {"an entry already stale keeps its lifetime", 150, 0, 0, 100, FreshnessState::StaleRevalidateOnly},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      cache::EntryDraft d = fresh_draft();
      d.freshness.corrected_initial_age = core::Seconds(r.initial_age);
      d.freshness.stale_while_revalidate = core::Seconds(r.swr);
      const cache::EntryRef e = cache::build_entry(d);
      const cache::Freshness before = e->freshness();
      const std::string head_before(e->head_block());
      const auto stale = cache::mark_stale(*e, at(r.now));
      REQUIRE(stale);
      CHECK(stale.get() != e.get());
      CHECK(stale->freshness().lifetime == core::Seconds(r.want_lifetime));
      CHECK(stale->freshness().state(at(r.now)) == r.want_state);
      CHECK(stale->drop_after() == cache::drop_after(stale->freshness()));
      // The rest is the same entry; the original is untouched (published entries never change).
      CHECK(stale->body() == e->body());
      CHECK(stale->etag() == "\"v1\"");
      CHECK(stale->head_block() == e->head_block());
      CHECK(e->freshness().lifetime == before.lifetime);
      CHECK(e->head_block() == head_before);
      // The next request revalidates it (or serves it stale while refreshing).
      const auto eval = cache::evaluate(stale->freshness(), {}, at(r.now));
      CHECK(eval.decision != cache::Decision::Hit);
    }
  }
  SECTION("within a second: the age is in whole seconds, and the copy is stale at once") {
    const cache::EntryRef e = cache::build_entry(fresh_draft());
    const auto now = at(10) + std::chrono::milliseconds(700);
    const auto stale = cache::mark_stale(*e, now);
    REQUIRE(stale);
    CHECK(stale->freshness().lifetime == core::Seconds(10));
    CHECK(stale->freshness().state(now) != cache::FreshnessState::Fresh);
  }
}

TEST_CASE("an entry keeps every freshness number of its draft, the disconnect grace included", "[policy][entry]") {
  // The packed form must not lose a window: drop_after() and state() use them all
  // (RFC 9111 §4.2.4 disconnect grace: cache.stale_on_disconnect at store time).
  cache::EntryDraft d = fresh_draft();
  d.freshness.corrected_initial_age = core::Seconds(3);
  d.freshness.stale_while_revalidate = core::Seconds(5);
  d.freshness.stale_if_error = core::Seconds(7);
  d.freshness.keep = core::Seconds(0);
  d.freshness.stale_on_disconnect = core::Seconds(4000);
  d.freshness.heuristic = true;
  const cache::EntryRef e = cache::build_entry(d);
  const cache::Freshness f = e->freshness();
  CHECK(f.corrected_initial_age == core::Seconds(3));
  CHECK(f.lifetime == core::Seconds(100));
  CHECK(f.stale_while_revalidate == core::Seconds(5));
  CHECK(f.stale_if_error == core::Seconds(7));
  CHECK(f.keep == core::Seconds(0));
  CHECK(f.stale_on_disconnect == core::Seconds(4000));
  CHECK(f.heuristic);
  // The disconnect grace is the longest window here: it decides when the entry may go.
  CHECK(e->drop_after() == at(100 + 4000 - 3));
  CHECK(f.state(at(100 + 3000)) == cache::FreshnessState::StaleRevalidateOnly);
  // with_freshness() and mark_stale() carry it too.
  const auto stale = cache::mark_stale(*e, at(10));
  REQUIRE(stale);
  CHECK(stale->freshness().stale_on_disconnect == core::Seconds(4000));
  CHECK(cache::with_freshness(*e, f)->freshness().stale_on_disconnect == core::Seconds(4000));
}

TEST_CASE("withheld fields are stored but never in the head clients get (RFC 9213 §3)", "[policy][entry]") {
  // §3: a cache MAY remove a targeted field "when configured to do so because it is
  // known not to be used downstream"; the entry keeps it, because a later 304 or
  // HEAD merge re-reads the stored fields (RFC 9111 §3.2, §4.3.4) to select
  // the directives again.
  cache::EntryDraft d = fresh_draft();
  d.headers.add("Cachalot-Cache-Control", "max-age=600");
  d.headers.add("X-A", "1");
  d.headers.add("cachalot-cache-control", "public");
  d.headers.add("Date", "Tue, 14 Nov 2023 22:13:20 GMT");
  d.withheld = {"CACHALOT-cache-control", "etag", "date"};  // validators and Date are never withheld
  const cache::EntryRef e = cache::build_entry(d);
  const std::string_view head = e->head_block();
  CHECK(head.find("achalot-Cache-Control") == std::string_view::npos);
  CHECK(head.find("achalot-cache-control") == std::string_view::npos);
  CHECK(head == "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nX-A: 1\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n");
  CHECK(e->withheld_block() == "Cachalot-Cache-Control: max-age=600\r\ncachalot-cache-control: public\r\n");
  // The block sits in front of the body, which still ends the allocation.
  CHECK(e->body() == d.body);
  CHECK(e->allocation_size() == sizeof(cache::Entry) + e->primary_key().size() + head.size() + 4 +
                                    e->withheld_block().size() + d.body.size());
  CHECK(e->etag() == "\"v1\"");
  CHECK(e->date().has_value());
  // Every stored field for merges, only the others for a client's 304.
  const http::HeaderMap all = e->fields();
  CHECK(all.get_combined("cachalot-cache-control") == "max-age=600, public");
  CHECK(all.get_combined("x-a") == "1");
  const http::HeaderMap down = e->downstream_fields();
  CHECK_FALSE(down.has("cachalot-cache-control"));
  CHECK(down.get_combined("etag") == "\"v1\"");
  // draft_of() gives them back withheld, so a rebuilt entry (a 304 merge) withholds them too.
  const cache::EntryDraft back = cache::draft_of(*e);
  REQUIRE(back.withheld.size() == 1);
  CHECK(http::iequals(back.withheld[0], "cachalot-cache-control"));
  const cache::EntryRef again = cache::build_entry(back);
  CHECK(again->head_block() == e->head_block());
  CHECK(again->withheld_block() == e->withheld_block());
  // A soft purge copies the block as it is.
  CHECK(cache::mark_stale(*e, at(10))->withheld_block() == e->withheld_block());
  CHECK(cache::mark_stale(*e, at(10))->body() == d.body);
  CHECK(again->body() == d.body);
  // An empty body behind a withheld block.
  cache::EntryDraft empty = d;
  empty.body.clear();
  const cache::EntryRef bare = cache::build_entry(empty);
  CHECK(bare->body().empty());
  CHECK(bare->withheld_block() == e->withheld_block());
  // Without withheld names the head holds every field and the block is empty.
  const cache::EntryRef plain = cache::build_entry(fresh_draft());
  CHECK(plain->withheld_block().empty());
  CHECK(plain->allocation_size() == sizeof(cache::Entry) + plain->primary_key().size() + plain->head_block().size() +
                                        plain->body().size());
}
