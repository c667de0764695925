// The one Store suite: every test runs against 1 shard and 16 shards, with
// SIEVE and with LRU. Budgets are given per shard, so the same numbers hold
// whatever the shard count.
#include "cache/store.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cachalot::cache {
namespace {

struct StoreConfig {
  unsigned shards;
  EvictionPolicy policy;
};

const std::vector<StoreConfig> kConfigs = {
    {1, EvictionPolicy::Sieve}, {16, EvictionPolicy::Sieve}, {1, EvictionPolicy::Lru}, {16, EvictionPolicy::Lru}};

std::string describe(const StoreConfig& c) {
  return std::to_string(c.shards) + " shard(s), " + std::string(to_string(c.policy));
}

StoreOptions options(const StoreConfig& c, uint64_t per_shard_budget, unsigned max_variants = 4) {
  return StoreOptions{per_shard_budget * c.shards, c.shards, max_variants, c.policy};
}

struct Spec {
  std::string key;
  std::string variant = "";
  std::size_t body = 100;
  std::vector<std::string> tags = {};
  std::vector<std::string> vary = {};
};

EntryDraft draft(const Spec& s) {
  EntryDraft d;
  d.primary_key = s.key;
  d.variant_key = s.variant;
  d.vary_names = s.vary;
  d.body.assign(s.body, 'x');
  d.headers.add("content-type", "text/plain");
  d.tags = s.tags;
  return d;
}

EntryRef make(const Spec& s) { return build_entry(draft(s)); }

// A new entry built from `e`'s draft after `change` (entries never change:
// a 304 merge or a soft purge builds a new one this way).
template <class Change>
EntryRef rebuilt(const Entry& e, Change&& change) {
  EntryDraft d = draft_of(e);
  change(d);
  return build_entry(d);
}

// A copy with a marker (its ETag), as a 304 merge or a soft purge would build it.
EntryRef copy_marked(const Entry& e, std::string marker) {
  return rebuilt(e, [&](EntryDraft& d) { d.headers.set("ETag", marker); });
}

std::string key(int i) { return "http://example.test:80/item/" + std::to_string(i); }

}  // namespace

TEST_CASE("a published entry is found by its key and variant and nowhere else", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  EntryRef e = make({key(1)});

  PublishResult r = store.publish(e);

  CHECK(r.status == PublishStatus::Stored);
  CHECK(r.evicted.count == 0);
  CHECK(store.find_variant(key(1), "") == e);
  CHECK(store.find(key(1), [](const Entry&) { return true; }) == e);
  CHECK(store.find_variant(key(1), "gzip") == nullptr);
  CHECK(store.find(key(1), [](const Entry&) { return false; }) == nullptr);
  CHECK(store.find_variant(key(2), "") == nullptr);
  CHECK(store.variants(key(1)) == std::vector<EntryRef>{e});
  CHECK(store.variants(key(2)).empty());
  StoreStats st = store.stats();
  CHECK(st.objects == 1);
  CHECK(st.keys == 1);
  CHECK(st.bytes == e->charge());
  CHECK(store.check_invariants() == "");
}

TEST_CASE("publishing the same variant again replaces it and accounts for the new size", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  EntryRef first = make({key(1), "gzip", 100, {}, {"accept-encoding"}});
  EntryRef second = make({key(1), "gzip", 5000, {}, {"accept-encoding"}});
  store.publish(first);

  PublishResult r = store.publish(second);

  CHECK(r.status == PublishStatus::Replaced);
  CHECK(store.find_variant(key(1), "gzip") == second);
  CHECK(store.variants(key(1)).size() == 1);
  CHECK(store.stats().objects == 1);
  CHECK(store.stats().bytes == second->charge());
  CHECK(store.stats().evictions == 0);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("variants of one key are kept apart and listed oldest published first", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  std::vector<EntryRef> v;
  for (std::string enc : {"gzip", "br", "identity"}) {
    v.push_back(make({key(1), enc, 100, {}, {"accept-encoding"}}));
    store.publish(v.back());
  }

  CHECK(store.variants(key(1)) == v);
  CHECK(store.find_variant(key(1), "br") == v[1]);
  CHECK(store.find(key(1), [](const Entry& e) { return e.variant_key().size() > 4; }) == v[2]);
  CHECK(store.stats().objects == 3);
  CHECK(store.stats().keys == 1);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("the variant cap drops the least recently published variant", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20, /*max_variants=*/2));
  auto variant = [](const char* enc) { return make({key(1), enc, 100, {}, {"accept-encoding"}}); };
  auto gzip = variant("gzip"), br = variant("br"), zstd = variant("zstd");
  store.publish(gzip);
  store.publish(br);

  PublishResult r = store.publish(zstd);

  CHECK(r.variant_cap.count == 1);
  CHECK(r.variant_cap.bytes == gzip->charge());
  CHECK(store.variants(key(1)) == std::vector<EntryRef>{br, zstd});

  SECTION("republishing a variant makes it the most recently published") {
    auto br2 = variant("br");
    CHECK(store.publish(br2).status == PublishStatus::Replaced);
    store.publish(variant("identity"));
    CHECK(store.find_variant(key(1), "zstd") == nullptr);
    CHECK(store.find_variant(key(1), "br") == br2);
    CHECK(store.stats().variant_cap_drops == 2);
  }
  CHECK(store.check_invariants() == "");
}

TEST_CASE("a change of Vary drops every old variant of the key", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  auto gzip = make({key(1), "gzip", 100, {}, {"accept-encoding"}});
  auto br = make({key(1), "br", 200, {}, {"accept-encoding"}});
  store.publish(gzip);
  store.publish(br);
  auto fr = make({key(1), "fr", 100, {}, {"accept-language"}});

  PublishResult r = store.publish(fr);

  CHECK(r.status == PublishStatus::Stored);
  CHECK(r.vary_changed.count == 2);
  CHECK(r.vary_changed.bytes == gzip->charge() + br->charge());
  CHECK(store.variants(key(1)) == std::vector<EntryRef>{fr});
  CHECK(store.stats().vary_change_drops == 2);
  CHECK(store.stats().bytes == fr->charge());
  CHECK(store.check_invariants() == "");
}

TEST_CASE("the byte budget is never exceeded and every eviction is counted", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  const uint64_t per_shard = 32 * 1024;
  Store store(options(cfg, per_shard));
  const uint64_t max_bytes = per_shard * cfg.shards;
  std::size_t evicted = 0;
  uint64_t evicted_bytes = 0, published_bytes = 0;
  const int n = 200 * static_cast<int>(cfg.shards);

  for (int i = 0; i < n; ++i) {
    auto e = make({key(i), "", 500 + static_cast<std::size_t>(i % 7) * 300});
    published_bytes += e->charge();
    PublishResult r = store.publish(e);
    REQUIRE(r.status == PublishStatus::Stored);
    evicted += r.evicted.count;
    evicted_bytes += r.evicted.bytes;
    REQUIRE(store.stats().bytes <= max_bytes);
  }

  StoreStats st = store.stats();
  CHECK(evicted > 0);
  CHECK(st.evictions == evicted);
  CHECK(st.evicted_bytes == evicted_bytes);
  CHECK(st.objects + evicted == static_cast<uint64_t>(n));
  CHECK(st.bytes + evicted_bytes == published_bytes);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("an entry larger than a shard's budget is rejected and changes nothing", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  const uint64_t per_shard = 16 * 1024;
  Store store(options(cfg, per_shard));
  auto small = make({key(1)});
  store.publish(small);
  auto huge = make({key(2), "", per_shard});
  REQUIRE(huge->charge() > store.shard_budget());
  const StoreStats before = store.stats();

  PublishResult r = store.publish(huge);

  CHECK(r.status == PublishStatus::TooLarge);
  CHECK_FALSE(r.stored());
  CHECK(store.find_variant(key(2), "") == nullptr);
  CHECK(store.find_variant(key(1), "") == small);
  CHECK(store.stats().bytes == before.bytes);
  CHECK(store.stats().evictions == 0);
  CHECK(store.stats().rejected_too_large == 1);

  SECTION("nor may a replacement that is too large take an entry's place") {
    auto fat = rebuilt(*small, [&](EntryDraft& d) { d.body.assign(per_shard, 'y'); });
    CHECK_FALSE(store.replace_if_same(small, fat));
    CHECK(store.find_variant(key(1), "") == small);
  }
  CHECK(store.check_invariants() == "");
}

TEST_CASE("replace_if_same swaps only while the old entry is still the stored one", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  EntryRef old = make({key(1), "gzip", 100, {"t"}, {"accept-encoding"}});
  store.publish(old);

  EntryRef merged = copy_marked(*old, "\"304\"");
  CHECK(store.replace_if_same(old, merged));
  CHECK(store.find_variant(key(1), "gzip") == merged);
  CHECK(store.stats().objects == 1);
  CHECK(store.stats().bytes == merged->charge());

  SECTION("a second merge based on the replaced entry loses") {
    CHECK_FALSE(store.replace_if_same(old, copy_marked(*old, "late")));
    CHECK(store.find_variant(key(1), "gzip") == merged);
  }
  SECTION("a merge after a newer publish loses") {
    auto newer = make({key(1), "gzip", 100, {}, {"accept-encoding"}});
    store.publish(newer);
    CHECK_FALSE(store.replace_if_same(merged, copy_marked(*merged, "late")));
    CHECK(store.find_variant(key(1), "gzip") == newer);
  }
  SECTION("a merge after an erase loses and stores nothing") {
    store.erase(key(1));
    CHECK_FALSE(store.replace_if_same(merged, copy_marked(*merged, "late")));
    CHECK(store.stats().objects == 0);
  }
  SECTION("a replacement for another variant is refused") {
    auto other = rebuilt(*merged, [](EntryDraft& d) { d.variant_key = "br"; });
    CHECK_FALSE(store.replace_if_same(merged, other));
    CHECK(store.find_variant(key(1), "gzip") == merged);
  }
  CHECK(store.check_invariants() == "");
}

TEST_CASE("a grown 304 merge survives the eviction it causes", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 16 * 1024));
  // One shard's worth of entries in the target's shard: fill the whole store.
  std::vector<EntryRef> all;
  for (int i = 0; i < 40 * static_cast<int>(cfg.shards); ++i) {
    all.push_back(make({key(i), "", 1000}));
    store.publish(all.back());
  }
  EntryRef target;
  for (auto it = all.rbegin(); it != all.rend() && !target; ++it)
    if (store.find_variant((*it)->primary_key(), "") == *it) target = *it;
  REQUIRE(target);
  auto grown = rebuilt(*target, [](EntryDraft& d) { d.body.assign(8000, 'g'); });

  REQUIRE(store.replace_if_same(target, grown));

  CHECK(store.find_variant(target->primary_key(), "") == grown);
  CHECK(store.stats().evictions > 0);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("a grown replacement is never evicted to make its own room", "[store]") {
  // Room for two entries, both hit: SIEVE's hand clears both bits and would
  // come back to the oldest, which is the one being replaced.
  const EvictionPolicy policy = GENERATE(EvictionPolicy::Sieve, EvictionPolicy::Lru);
  const bool merge = GENERATE(true, false);  // replace_if_same, or a soft purge
  INFO(to_string(policy) << (merge ? ", 304 merge" : ", soft purge"));
  EntryRef target = make({key(1), "", 1000});
  EntryRef other = make({key(2), "", 1000});
  Store store(StoreOptions{target->charge() + other->charge() + 100, 1, 4, policy});
  store.publish(target);
  store.publish(other);
  REQUIRE(store.find_variant(key(2), "") == other);
  REQUIRE(store.find_variant(key(1), "") == target);
  auto grown = rebuilt(*target, [](EntryDraft& d) { d.body.assign(1500, 'g'); });

  if (merge)
    REQUIRE(store.replace_if_same(target, grown));
  else
    REQUIRE(store.rewrite_key(key(1), [&](const Entry&) { return grown; }) == 1);

  CHECK(store.find_variant(key(1), "") == grown);
  CHECK(store.find_variant(key(2), "") == nullptr);
  CHECK(store.stats().evictions == 1);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("erase removes every variant of a key and erase_entry only the given one", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  auto a1 = make({key(1), "gzip", 100, {}, {"accept-encoding"}});
  auto a2 = make({key(1), "br", 100, {}, {"accept-encoding"}});
  auto b = make({key(2)});
  store.publish(a1);
  store.publish(a2);
  store.publish(b);

  CHECK(store.erase_entry(a1));
  CHECK_FALSE(store.erase_entry(a1));
  CHECK(store.variants(key(1)) == std::vector<EntryRef>{a2});
  CHECK_FALSE(store.erase_entry(make({key(2)})));  // equal content, not the stored object
  CHECK(store.erase(key(1)) == 1);
  CHECK(store.erase(key(1)) == 0);
  CHECK(store.find_variant(key(2), "") == b);
  CHECK(store.stats().objects == 1);
  CHECK(store.stats().keys == 1);
  CHECK(store.stats().purged == 2);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("a tag purge removes only the variants carrying the tag", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  auto a = make({key(1), "", 100, {"product-1", "listing"}});
  auto b = make({key(2), "", 100, {"product-1"}});
  auto c = make({key(3), "", 100, {"listing"}});
  auto d = make({key(4)});
  auto v1 = make({key(5), "gzip", 100, {"product-1"}, {"accept-encoding"}});
  auto v2 = make({key(5), "br", 100, {"product-2"}, {"accept-encoding"}});
  for (const auto& e : {a, b, c, d, v1, v2}) store.publish(e);

  CHECK(store.purge_tag("product-1") == 3);

  CHECK(store.find_variant(key(1), "") == nullptr);
  CHECK(store.find_variant(key(2), "") == nullptr);
  CHECK(store.find_variant(key(3), "") == c);
  CHECK(store.find_variant(key(4), "") == d);
  CHECK(store.variants(key(5)) == std::vector<EntryRef>{v2});
  CHECK(store.purge_tag("product-1") == 0);
  CHECK(store.purge_tag("nope") == 0);
  CHECK(store.purge_tag("listing") == 1);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("the tag index follows evictions, erases and replacements", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 24 * 1024));
  std::vector<EntryRef> published;
  for (int i = 0; i < 100 * static_cast<int>(cfg.shards); ++i) {
    published.push_back(make({key(i), "", 600, {i % 2 ? "odd" : "even", "all"}}));
    store.publish(published.back());
  }
  REQUIRE(store.stats().evictions > 0);
  // Replace one odd entry with an untagged copy, erase another.
  std::vector<EntryRef> odd_stored;
  for (const auto& e : published)
    if (e->tags()[0] == "odd" && store.find_variant(e->primary_key(), "") == e) odd_stored.push_back(e);
  REQUIRE(odd_stored.size() >= 2);
  auto untagged = rebuilt(*odd_stored[0], [](EntryDraft& d) { d.tags.clear(); });
  REQUIRE(store.replace_if_same(odd_stored[0], untagged));
  REQUIRE(store.erase_entry(odd_stored[1]));
  REQUIRE(store.check_invariants() == "");
  const uint64_t objects = store.stats().objects;

  CHECK(store.purge_tag("odd") == odd_stored.size() - 2);
  CHECK(store.purge_tag("all") == objects - 1 - (odd_stored.size() - 2));
  CHECK(store.stats().objects == 1);
  CHECK(store.find_variant(untagged->primary_key(), "") == untagged);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("a prefix purge removes only keys under the prefix", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  const std::vector<std::string> keys = {
      "http://h.test:80/a/1", "http://h.test:80/a/2", "http://h.test:80/a/2?x=1", "http://h.test:80/ab",
      "http://h.test:80/b/1", "http://g.test:80/a/1", "http://h.test:8080/a/1"};
  for (const auto& k : keys) store.publish(make({k}));
  store.publish(make({"http://h.test:80/a/1", "br", 100, {}, {}}));  // a second variant of /a/1

  CHECK(store.purge_prefix("http://h.test:80/a/") == 4);

  std::set<std::string> left;
  for (const auto& k : keys)
    if (!store.variants(k).empty()) left.insert(k);
  CHECK(left == std::set<std::string>{"http://h.test:80/ab", "http://h.test:80/b/1", "http://g.test:80/a/1",
                                      "http://h.test:8080/a/1"});
  CHECK(store.purge_prefix("http://h.test:80/a") == 1);  // a plain string prefix: /ab matches
  CHECK(store.purge_prefix("http://nothing.test") == 0);
  CHECK(store.purge_prefix("") == 3);
  CHECK(store.stats().objects == 0);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("the prefix index follows evictions and erases", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 24 * 1024));
  for (int i = 0; i < 100 * static_cast<int>(cfg.shards); ++i)
    store.publish(make({(i % 3 ? "http://a.test/x/" : "http://a.test/y/") + std::to_string(i), "", 600}));
  store.erase("http://a.test/x/1");
  REQUIRE(store.stats().evictions > 0);
  REQUIRE(store.check_invariants() == "");
  const uint64_t objects = store.stats().objects;

  const std::size_t y = store.purge_prefix("http://a.test/y/");
  const std::size_t x = store.purge_prefix("http://a.test/x/");

  CHECK(x + y == objects);
  CHECK(x > y);
  CHECK(store.stats().objects == 0);
  CHECK(store.stats().keys == 0);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("purge_all empties the store, which stays usable", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  for (int i = 0; i < 50; ++i) store.publish(make({key(i), "", 100, {"t"}}));

  CHECK(store.purge_all() == 50);

  CHECK(store.stats().objects == 0);
  CHECK(store.stats().bytes == 0);
  CHECK(store.stats().purged == 50);
  CHECK(store.find_variant(key(1), "") == nullptr);
  CHECK(store.purge_tag("t") == 0);
  CHECK(store.check_invariants() == "");
  auto e = make({key(1), "", 100, {"t"}});
  store.publish(e);
  CHECK(store.find_variant(key(1), "") == e);
  CHECK(store.purge_tag("t") == 1);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("a soft purge swaps in the rewritten entries and a null rewrite removes them", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 1 << 20));
  for (int i = 0; i < 10; ++i) store.publish(make({key(i), "", 100, {i < 3 ? "hot" : "cold"}}));
  store.publish(make({"http://other.test/x"}));
  int calls = 0;
  RewriteFn mark_stale = [&](const Entry& e) {
    ++calls;
    return copy_marked(e, "stale");
  };
  auto is_stale = [&](const std::string& k) {
    auto e = store.find_variant(k, "");
    return e && e->etag() == "stale";
  };

  SECTION("by key") {
    CHECK(store.rewrite_key(key(4), mark_stale) == 1);
    CHECK(is_stale(key(4)));
    CHECK_FALSE(is_stale(key(5)));
  }
  SECTION("by prefix") {
    CHECK(store.rewrite_prefix("http://example.test:80/item/", mark_stale) == 10);
    CHECK(is_stale(key(0)));
    CHECK(is_stale(key(9)));
    CHECK_FALSE(is_stale("http://other.test/x"));
  }
  SECTION("by tag, keeping the tag index right") {
    CHECK(store.rewrite_tag("hot", mark_stale) == 3);
    CHECK(is_stale(key(2)));
    CHECK_FALSE(is_stale(key(3)));
    CHECK(store.purge_tag("hot") == 3);
  }
  SECTION("everything") {
    CHECK(store.rewrite_all(mark_stale) == 11);
    CHECK(is_stale("http://other.test/x"));
    CHECK(store.stats().rewritten == 11);
  }
  SECTION("a null rewrite or one for another slot removes the entry") {
    CHECK(store.rewrite_key(key(1), [](const Entry&) { return EntryRef(); }) == 1);
    CHECK(store.find_variant(key(1), "") == nullptr);
    CHECK(store.rewrite_key(key(2), [](const Entry& e) {
      return rebuilt(e, [](EntryDraft& d) { d.primary_key = "http://elsewhere.test/"; });
    }) == 1);
    CHECK(store.find_variant(key(2), "") == nullptr);
    CHECK(store.variants("http://elsewhere.test/").empty());
    CHECK(store.stats().purged == 2);
  }
  SECTION("the callback may use the store") {
    CHECK(store.rewrite_key(key(7), [&](const Entry& e) {
      CHECK(store.find_variant(e.primary_key(), "") != nullptr);
      return copy_marked(e, "stale");
    }) == 1);
    CHECK(is_stale(key(7)));
  }
  SECTION("a grown replacement still ends up stored") {
    CHECK(store.rewrite_key(key(6), [](const Entry& e) {
      return rebuilt(e, [](EntryDraft& d) {
        d.headers.set("ETag", "stale");  // copy_marked(e, "stale"), grown
        d.body.assign(4000, 's');
      });
    }) == 1);
    CHECK(is_stale(key(6)));
    CHECK(store.variants(key(6)).size() == 1);
  }
  CHECK(store.stats().objects + store.stats().purged == 11);
  CHECK(store.check_invariants() == "");
}

TEST_CASE("shrinking the limits evicts down to the new budget and trims variants", "[store]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  Store store(options(cfg, 64 * 1024, /*max_variants=*/4));
  for (int i = 0; i < 20 * static_cast<int>(cfg.shards); ++i) store.publish(make({key(i), "", 1000}));
  for (const char* enc : {"a", "b", "c", "d"}) store.publish(make({key(9999), enc, 100, {}, {"accept-encoding"}}));
  REQUIRE(store.variants(key(9999)).size() == 4);

  store.set_limits(16 * 1024 * cfg.shards, 2);

  CHECK(store.stats().bytes <= 16 * 1024 * cfg.shards);
  CHECK(store.stats().max_bytes == 16 * 1024 * cfg.shards);
  CHECK(store.shard_budget() == 16 * 1024);
  CHECK(store.stats().evictions > 0);
  auto v = store.variants(key(9999));
  CHECK(v.size() <= 2);  // trimmed to 2, possibly evicted further
  if (v.size() == 2) {
    CHECK(v[0]->variant_key() == "c");
    CHECK(v[1]->variant_key() == "d");
  }
  CHECK(store.check_invariants() == "");
}

TEST_CASE("the store refuses impossible options", "[store]") {
  CHECK_THROWS_AS(Store(StoreOptions{1 << 20, 3, 4, EvictionPolicy::Sieve}), std::invalid_argument);
  CHECK_THROWS_AS(Store(StoreOptions{1 << 20, 0, 4, EvictionPolicy::Sieve}), std::invalid_argument);
  CHECK_THROWS_AS(Store(StoreOptions{1 << 20, 4, 0, EvictionPolicy::Sieve}), std::invalid_argument);
  Store store(StoreOptions{1 << 20, 4, 4, EvictionPolicy::Sieve});
  CHECK_THROWS_AS(store.set_limits(1 << 20, 0), std::invalid_argument);
}

TEST_CASE("charge counts the body, fields, keys, tags and the store's own overhead", "[store]") {
  auto bare = make({key(1), "", 0});
  auto big = make({key(1), "", 10000});
  auto tagged = make({key(1), "", 0, {"a-rather-long-tag-name-0001", "b"}});

  CHECK(bare->charge() >= sizeof(Entry) + store_memory::kPerEntry);
  CHECK(big->charge() - bare->charge() >= 10000);
  CHECK(big->charge() - bare->charge() <= 10000 + 32);
  CHECK(tagged->charge() - bare->charge() >= 2 * (store_memory::kTagMemberBytes + store_memory::kTagHeadBytes));

  // The figures themselves (Entry::charge() in entry.cpp, store_memory in
  // store.h): the entry's one block, sizeof(Entry) + its pieces (key, variant
  // key, Vary names, tags, route, head block, body, withheld fields), as glibc
  // malloc rounds it;
  // the store's node and key slot; per tag a set member and the tag's head,
  // plus a heap copy of a tag longer than 15 characters.
  const std::string k = key(1);  // 29 characters
  // Via and Content-Length are not stored: the hit path adds them.
  const std::string head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n";
  CHECK(bare->head_block() == head);
  const std::size_t per_entry = store_memory::kNodeBytes + store_memory::kKeySlotBytes;  // 24 + 16
  CHECK(store_memory::kPerEntry == per_entry);
  CHECK(bare->allocation_size() == sizeof(Entry) + k.size() + head.size());
  CHECK(bare->charge() == store_memory::malloc_chunk(sizeof(Entry) + k.size() + head.size()) + per_entry);
  CHECK(big->charge() == store_memory::malloc_chunk(sizeof(Entry) + k.size() + head.size() + 7 + 10000) + per_entry);
  const std::string tag_list = "a-rather-long-tag-name-0001\nb";  // 29 characters, in the block
  CHECK(tagged->tag_list() == tag_list);
  CHECK(tagged->charge() == store_memory::malloc_chunk(sizeof(Entry) + k.size() + tag_list.size() + head.size() + 3) +
                                per_entry + 2 * (store_memory::kTagMemberBytes + store_memory::kTagHeadBytes) +
                                store_memory::malloc_chunk(27 + 1));

  // Only what the entry holds is resident and charged: build_entry() copies
  // the draft into one exact-size block, so a body's spare capacity (one grown
  // chunk by chunk) stays with the draft.
  EntryDraft reserved = draft({key(1), "", 0});
  reserved.body.reserve(1 << 20);
  const EntryRef packed = build_entry(reserved);
  CHECK(packed->allocation_size() == bare->allocation_size());
  CHECK(packed->charge() == bare->charge());
}

#if defined(__x86_64__) && defined(__GLIBCXX__)
TEST_CASE("charge covers every member of Entry", "[store]") {
  // A tripwire: a new member of Entry may own heap memory that charge() does
  // not count, and the memory budget would silently stop being a bound.
  // Entry owns none: everything variable is in its block's tail. Its fixed
  // part, widest members first so nothing is padded: count 4 + allocation
  // size 4 + 6 piece ends 24 (32; the body ends the allocation), response
  // time 8 (40), route generation and Date 8 (48), request delay and five u32
  // freshness windows 24 (72), validator offsets and lengths 8 (80), fields'
  // start and status 4 (84), two flag bytes 2 (86), the stale-on-disconnect
  // window 2 (88; a withheld block lives in the tail, entry.h).
  INFO("Entry changed: count what the new member owns in Entry::charge() (entry.cpp), then update this size");
  CHECK(sizeof(Entry) == 88);
  // So for the entries of the test above (key 29 characters, head block 43:
  // status line and Content-Type; Via and Content-Length are not stored):
  //   bare:   malloc_chunk(88 + 29 + 43 = 160) = 176, + 24 + 16          = 216
  //   big:    malloc_chunk(160 + 10000 = 10160) = 10176, + 40            = 10216
  //   tagged: malloc_chunk(160 + 29 = 189) = 208, + 40,
  //           + 2 tags x (48 + 240) = 576, + malloc_chunk(28) = 48       = 872
  CHECK(make({key(1), "", 0})->charge() == 216);
  CHECK(make({key(1), "", 10000})->charge() == 10216);
  CHECK(make({key(1), "", 0, {"a-rather-long-tag-name-0001", "b"}})->charge() == 872);
}
#endif

TEST_CASE("concurrent finds, publishes, erases and purges keep every invariant", "[store][concurrency]") {
  const StoreConfig cfg = GENERATE(from_range(kConfigs));
  INFO(describe(cfg));
  const uint64_t per_shard = 48 * 1024;
  Store store(options(cfg, per_shard, /*max_variants=*/3));
  const uint64_t max_bytes = per_shard * cfg.shards;
  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 20000;
  constexpr int kKeys = 64;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  std::atomic<int> wrong_entry{0}, over_budget{0}, ops{0};

  auto worker = [&](int t) {
    std::mt19937 rng(1234 + t);
    const char* encodings[] = {"gzip", "br", "zstd", "identity"};
    const char* tags[] = {"t0", "t1", "t2"};
    int n = 0;
    for (; n < kOpsPerThread && (n % 256 != 0 || std::chrono::steady_clock::now() < deadline); ++n) {
      const int k = static_cast<int>(rng() % kKeys);
      const std::string pk = key(k);
      const char* enc = encodings[rng() % 4];
      const unsigned op = rng() % 100;
      if (op < 55) {
        auto e = store.find_variant(pk, enc);
        if (e && (e->primary_key() != pk || e->variant_key() != enc)) ++wrong_entry;
      } else if (op < 80) {
        store.publish(make({pk, enc, 200 + rng() % 2000, {tags[rng() % 3]}, {"accept-encoding"}}));
      } else if (op < 85) {
        store.erase(pk);
      } else if (op < 89) {
        if (auto e = store.find_variant(pk, enc)) store.erase_entry(e);
      } else if (op < 94) {
        if (auto e = store.find_variant(pk, enc)) store.replace_if_same(e, copy_marked(*e, "merged"));
      } else if (op < 96) {
        store.purge_tag(tags[rng() % 3]);
      } else if (op < 97) {
        store.purge_prefix(key(k / 10));  // "/item/3" also covers /item/30..39
      } else if (op < 98) {
        store.rewrite_tag(tags[rng() % 3], [](const Entry& e) { return copy_marked(e, "stale"); });
      } else if (op < 99) {
        for (const auto& v : store.variants(pk))
          if (v->primary_key() != pk) ++wrong_entry;
      } else {
        if (store.stats().bytes > max_bytes) ++over_budget;
      }
    }
    ops += n;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();

  INFO("operations: " << ops.load());
  CHECK(ops.load() > 0);
  CHECK(wrong_entry.load() == 0);
  CHECK(over_budget.load() == 0);
  CHECK(store.stats().bytes <= max_bytes);
  CHECK(store.check_invariants() == "");
}

}  // namespace cachalot::cache
