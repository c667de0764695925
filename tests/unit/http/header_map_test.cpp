#include <catch2/catch.hpp>

#include "http/header_map.h"

using cachalot::http::HeaderMap;

TEST_CASE("a HeaderMap reused for many requests keeps working after removals (clear resets its bookkeeping)",
          "[http][header_map]") {
  // A connection reuses one map: every request adds fields, the forwarding
  // step removes some, then clear(). Thousands of rounds must not corrupt it.
  HeaderMap h;
  for (int round = 0; round < 5000; ++round) {
    h.clear();
    h.add("Host", "x");
    h.add("User-Agent", "bench");
    h.add("Accept", "*/*");
    REQUIRE(h.remove_if([](const HeaderMap::Field& f) { return f.name == "Host"; }) == 1);
    REQUIRE(h.remove("accept") == 1);
    REQUIRE(h.size() == 1);
    REQUIRE(h.get("user-agent") == std::optional<std::string_view>("bench"));
  }
}

TEST_CASE("remove_if removes matching fields in one pass and keeps the order of the others", "[http][header_map]") {
  HeaderMap h;
  h.add("A", "1");
  h.add("B", "2");
  h.add("a", "3");
  h.add("C", "4");
  REQUIRE(h.remove_if([](const HeaderMap::Field& f) { return f.name == "A" || f.name == "a"; }) == 2);
  std::string out;
  h.serialize(out);
  REQUIRE(out == "B: 2\r\nC: 4\r\n");
}

TEST_CASE("compaction after many removals keeps every remaining field intact", "[http][header_map]") {
  HeaderMap h;
  std::string big(3000, 'v');
  h.add("Keep", "k");
  h.add("Big1", big);
  h.add("Big2", big);
  h.add("Tail", "t");
  REQUIRE(h.remove("big1") == 1);
  REQUIRE(h.remove("big2") == 1);  // > 4096 dead bytes and more than half the buffer: compacts
  REQUIRE(h.get("keep") == std::optional<std::string_view>("k"));
  REQUIRE(h.get("tail") == std::optional<std::string_view>("t"));
  REQUIRE(h.byte_size() < 2 * big.size());
}
