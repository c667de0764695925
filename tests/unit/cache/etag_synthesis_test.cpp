// ETag synthesis: which stored responses get one (RFC 9110 §8.8.3, §15.3.1)
// and what build_entry() makes of it.
#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "cache/admission.h"
#include "cache/entry.h"

using namespace cachalot;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

http::HeaderMap fields(const Fields& f) {
  http::HeaderMap h;
  for (const auto& [n, v] : f) h.add(n, v);
  return h;
}

cache::EntryRef built(std::string body, bool synthesize, const Fields& f = {}, int status = 200, bool complete = true) {
  cache::EntryDraft d;
  d.primary_key = "http://example.com/a";
  d.status = status;
  d.headers = fields(f);
  d.body = std::move(body);
  d.synthesize_etag = synthesize;
  return cache::build_entry(d, complete);
}

}  // namespace

TEST_CASE("may_synthesize_etag: only a 200 without a validator of its own", "[policy][etag]") {
  struct Row {
    int status;
    Fields stored;
    bool expect;
    const char* why;
  };
  const Row rows[] = {
      {200, {{"Content-Type", "application/json"}}, true, "a 200 with no validator"},
      {200, {{"Cache-Control", "no-transform, max-age=60"}}, true, "no-transform: a field is not a content transformation (§7.7)"},
      {200, {{"ETag", "\"a\""}}, false, "the origin's ETag stays the validator"},
      {200, {{"ETag", "W/\"a\""}}, false, "a weak origin ETag too"},
      {200, {{"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}}, false, "Last-Modified is the origin's validator"},
      {200, {{"Content-Range", "bytes 0-1/10"}}, false, "a part, whatever its status says"},
      {206, {}, false, "206: a part of a representation (§15.3.7)"},
      {203, {}, false, "203: not what the origin's representation is"},
      {404, {}, false, "404: not a representation clients validate"},
      {301, {}, false, "301"},
  };
  for (const auto& r : rows) {
    INFO(r.why);
    CHECK(cache::may_synthesize_etag(r.status, fields(r.stored)) == r.expect);
  }
}

TEST_CASE("build_entry: a synthesized ETag is strong, from the body bytes, and never an origin validator",
          "[etag][entry]") {
  auto a = built("{\"v\":1}", true);
  REQUIRE(a->etag_synthesized());
  const std::string tag(a->etag());
  CHECK(std::regex_match(tag, std::regex("^\"[A-Za-z0-9_-]{22}\"$")));
  CHECK(a->origin_etag().empty());  // revalidation with the origin sends no If-None-Match
  CHECK(a->fields().get("etag") == a->etag());  // clients get it as a field of the stored response

  SECTION("the same bytes give the same tag; other bytes another") {
    CHECK(built("{\"v\":1}", true)->etag() == a->etag());
    CHECK(built("{\"v\":2}", true)->etag() != a->etag());
    CHECK(built("", true)->etag() != a->etag());
  }
  SECTION("not asked, or the body not complete yet (a fill's head): none") {
    CHECK(built("{\"v\":1}", false)->etag().empty());
    auto head = built("", true, {}, 200, false);
    CHECK(head->etag().empty());
    CHECK_FALSE(head->etag_synthesized());
  }
  SECTION("an origin ETag or Last-Modified wins") {
    auto e = built("x", true, {{"ETag", "\"o\""}});
    CHECK(e->etag() == "\"o\"");
    CHECK_FALSE(e->etag_synthesized());
    CHECK(e->origin_etag() == "\"o\"");
    auto lm = built("x", true, {{"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}});
    CHECK(lm->etag().empty());
  }
  SECTION("a draft of the entry keeps it as synthesized (a 304 merge rebuilds the entry)") {
    auto d = cache::draft_of(*a);
    CHECK(d.etag_synthesized);
    auto again = cache::build_entry(d);
    CHECK(again->etag() == a->etag());
    CHECK(again->etag_synthesized());
    CHECK(again->origin_etag().empty());
  }
}

TEST_CASE("build_entry: a validator longer than 64 KiB is not kept, never cut", "[etag][entry]") {
  const std::string huge = "\"" + std::string(70000, 'a') + "\"";
  auto e = built("x", true, {{"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}, {"ETag", huge}});
  CHECK(e->etag().empty());
  CHECK(e->origin_etag().empty());
  CHECK_FALSE(e->etag_synthesized());
  CHECK(e->last_modified() == "Tue, 14 Nov 2023 22:13:20 GMT");
  CHECK(e->fields().get("etag") == huge);  // the field itself is still stored and served
  // Offsets are 16 bits too: a validator that starts past 64 KiB of head is not kept either.
  auto late = built("x", true, {{"ETag", huge}, {"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"}});
  CHECK(late->last_modified().empty());
  CHECK(late->fields().get("last-modified") == "Tue, 14 Nov 2023 22:13:20 GMT");
}
