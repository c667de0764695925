// Eviction policies: the queues on their own, then SIEVE against LRU inside a
// Store on a hot set under a stream of one-shot keys.
#include "cache/eviction.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <random>
#include <vector>

#include "cache/store.h"

namespace cachalot::cache {
namespace {

// The smallest node table the queues accept.
struct Hooks {
  explicit Hooks(std::size_t n) : hooks(n) {}
  EvictionHook& hook(NodeId id) { return hooks[id]; }
  std::vector<EvictionHook> hooks;
};

}  // namespace

TEST_CASE("sieve evicts the oldest unvisited object and clears the bits it passes", "[store][eviction]") {
  Hooks nodes(4);
  SieveQueue<Hooks> q(nodes);
  for (NodeId id = 0; id < 4; ++id) q.insert(id);  // 0 is the oldest
  q.touch(0);
  q.touch(2);

  CHECK(q.victim() == 1);  // passes 0, clearing it
  CHECK_FALSE(nodes.hooks[0].visited.load());
  q.erase(1);
  CHECK(q.victim() == 3);  // the hand resumes at 2, clears it, stops at 3
  q.erase(3);
  CHECK(q.victim() == 0);  // past the head the hand wraps to the tail; 0 was cleared
  q.erase(0);
  CHECK(q.victim() == 2);
  q.erase(2);
  CHECK(q.victim() == kNoNode);
  CHECK(q.size() == 0);
}

TEST_CASE("sieve keeps survivors in place and lets new objects in unvisited", "[store][eviction]") {
  Hooks nodes(4);
  SieveQueue<Hooks> q(nodes);
  q.insert(0);
  q.insert(1);
  q.touch(0);
  q.touch(1);
  CHECK(q.victim() == 0);  // every object visited: one full lap clears them all, then the oldest goes
  q.erase(0);
  q.insert(2);
  q.touch(1);
  CHECK(q.victim() == 2);  // the hand (at 1) skips the re-hit 1 and finds the newcomer
  q.erase(2);
  nodes.hooks[2].visited.store(true);  // stale state in a reused slot
  q.insert(2);                          // starts unvisited all the same
  q.touch(1);
  CHECK(q.victim() == 2);
}

TEST_CASE("erasing the object under the sieve hand moves the hand on", "[store][eviction]") {
  Hooks nodes(3);
  SieveQueue<Hooks> q(nodes);
  for (NodeId id = 0; id < 3; ++id) q.insert(id);
  q.touch(0);
  REQUIRE(q.victim() == 1);  // hand now at 1
  q.erase(1);                // removed by someone else (an erase, a purge)
  q.touch(2);
  CHECK(q.victim() == 0);  // 2 is cleared, the hand wraps to 0 (cleared on the first pass)
}

TEST_CASE("lru evicts the least recently used object and a touch saves it", "[store][eviction]") {
  Hooks nodes(3);
  LruQueue<Hooks> q(nodes);
  for (NodeId id = 0; id < 3; ++id) q.insert(id);
  CHECK(q.victim() == 0);
  q.touch(0);
  CHECK(q.victim() == 1);
  q.erase(1);
  CHECK(q.victim() == 2);
  q.touch(0);  // touching the head is a no-op
  CHECK(q.victim() == 2);
  CHECK(q.size() == 2);
}

TEST_CASE("the eviction queue runs the policy it was given", "[store][eviction]") {
  Hooks nodes(2);
  EvictionQueue<Hooks> sieve(nodes, EvictionPolicy::Sieve);
  sieve.insert(0);
  sieve.insert(1);
  sieve.touch(0);
  CHECK(sieve.policy() == EvictionPolicy::Sieve);
  CHECK(sieve.victim() == 1);
  sieve.clear();

  Hooks lru_nodes(2);
  EvictionQueue<Hooks> lru(lru_nodes, EvictionPolicy::Lru);
  lru.insert(0);
  lru.insert(1);
  lru.touch(0);
  CHECK(lru.policy() == EvictionPolicy::Lru);
  CHECK(lru.victim() == 1);
  CHECK(to_string(EvictionPolicy::Lru) == "lru");
  CHECK(parse_eviction_policy("sieve") == EvictionPolicy::Sieve);
  CHECK_FALSE(parse_eviction_policy("fifo").has_value());
}

namespace {

struct ScanOutcome {
  int hot_requests = 0;
  int hot_hits = 0;
  int hot_resident_at_end = 0;
};

// A 100-object cache; 50 hot keys take 40% of the requests (uniformly), the
// other 60% are one-shot keys that are never requested again (a crawler, a
// backup, a cache-busting query string). Misses publish. Deterministic.
ScanOutcome run_hot_set_under_scan(EvictionPolicy policy) {
  constexpr int kCapacity = 100, kHot = 50, kRequests = 40000;
  auto entry = [](char kind, int i) {
    char key[64];
    std::snprintf(key, sizeof key, "http://scan.test/%c/%08d", kind, i);  // equal lengths: equal charges
    EntryDraft d;
    d.primary_key = key;
    d.body.assign(1000, 'b');
    return build_entry(d);
  };
  const uint64_t charge = entry('h', 0)->charge();
  Store store(StoreOptions{kCapacity * charge, 1, 1, policy});
  std::mt19937 rng(20240416);
  ScanOutcome out;
  int scanned = 0;
  for (int i = 0; i < kRequests; ++i) {
    if (rng() % 100 < 40) {
      const int h = static_cast<int>(rng() % kHot);
      ++out.hot_requests;
      auto e = entry('h', h);
      if (store.find_variant(e->primary_key(), ""))
        ++out.hot_hits;
      else
        store.publish(e);
    } else {
      auto e = entry('s', scanned++);
      if (!store.find_variant(e->primary_key(), "")) store.publish(e);
    }
  }
  for (int h = 0; h < kHot; ++h)
    if (!store.variants(entry('h', h)->primary_key()).empty()) ++out.hot_resident_at_end;
  REQUIRE(store.stats().objects == kCapacity);
  REQUIRE(store.check_invariants() == "");
  return out;
}

}  // namespace

TEST_CASE("sieve keeps a hot set through a stream of one-shot keys that lru lets flush it", "[store][eviction]") {
  const ScanOutcome sieve = run_hot_set_under_scan(EvictionPolicy::Sieve);
  const ScanOutcome lru = run_hot_set_under_scan(EvictionPolicy::Lru);
  INFO("hot requests " << sieve.hot_requests << "; hits: sieve " << sieve.hot_hits << ", lru " << lru.hot_hits);
  REQUIRE(sieve.hot_requests == lru.hot_requests);  // same request stream

  // LRU keeps an object only while fewer than 100 distinct keys follow it; the
  // one-shot keys make up most of those. SIEVE keeps whatever was hit since
  // the hand last passed, and the one-shot keys never are.
  CHECK(sieve.hot_hits >= sieve.hot_requests * 95 / 100);
  CHECK(lru.hot_hits <= lru.hot_requests * 75 / 100);
  CHECK(sieve.hot_resident_at_end >= 48);
  CHECK(lru.hot_resident_at_end < sieve.hot_resident_at_end);
}

}  // namespace cachalot::cache
