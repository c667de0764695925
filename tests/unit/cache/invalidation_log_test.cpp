// InvalidationLog: an invalidation voids every response whose origin request
// was sent before it, including fills still in flight when it is recorded.
#include "cache/invalidation_log.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cache/key.h"

using namespace cachalot;
using cache::InvalidationLog;
using Kind = cache::Purge::Kind;
using Rule = cache::InvalidationLog::Rule;
using Verdict = cache::InvalidationLog::Verdict;

namespace {

cache::EntryRef entry(std::string key, std::vector<std::string> tags = {}, std::string route = "") {
  cache::EntryDraft d;
  d.primary_key = std::move(key);
  d.tags = std::move(tags);
  d.route = std::move(route);
  return cache::build_entry(d);
}

// A rule (Rule has no default for `authority` and `path`, so rows build it here).
Rule rule(Kind kind, std::string path = "", std::optional<std::string> authority = std::nullopt, bool soft = false) {
  Rule r;
  r.kind = kind;
  r.path = std::move(path);
  r.authority = std::move(authority);
  r.soft = soft;
  return r;
}
Rule url(std::string path, bool soft = false) { return rule(Kind::Url, std::move(path), std::nullopt, soft); }

}  // namespace

namespace Catch {
template <>
struct StringMaker<Verdict> {
  static std::string convert(Verdict v) {
    switch (v) {
      case Verdict::Publish: return "Publish";
      case Verdict::Stale: return "Stale";
      case Verdict::Drop: return "Drop";
    }
    return "?";
  }
};
}  // namespace Catch

TEST_CASE("a fill that entered before an invalidation is voided by it; one that entered after is not",
          "[invalidation_log]") {
  const cache::EntryRef a = entry("http://example.com/a");
  struct Row {
    const char* name;
    std::vector<Rule> before;  // recorded before the fill entered (while another fill is in flight)
    std::vector<Rule> after;   // recorded after it entered, before it publishes
    Verdict want;
  };
  const std::vector<Row> rows = {
      {"nothing recorded: publish", {}, {}, Verdict::Publish},
      {"a matching hard rule after the fill entered: drop", {}, {url("/a")}, Verdict::Drop},
      {"a matching soft rule after the fill entered: publish stale", {}, {url("/a", true)}, Verdict::Stale},
      {"a non-matching rule: publish", {}, {url("/b")}, Verdict::Publish},
      {"a matching rule recorded before the fill entered does not void it", {url("/a")}, {}, Verdict::Publish},
      {"a soft rule recorded before does not either", {url("/a", true)}, {}, Verdict::Publish},
      {"a hard rule wins over an earlier soft one", {}, {url("/a", true), url("/a")}, Verdict::Drop},
      {"a hard rule wins over a later soft one", {}, {url("/a"), url("/a", true)}, Verdict::Drop},
      {"a soft match among non-matching rules", {}, {url("/b"), url("/a", true), url("/c")}, Verdict::Stale},
      {"only the rules after the fill count", {url("/a")}, {url("/b")}, Verdict::Publish},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      InvalidationLog log;
      auto older = log.enter();  // keeps the "before" rules alive
      for (const Rule& x : r.before) log.record(x);
      auto ticket = log.enter();
      CHECK(ticket.start() == r.before.size());
      for (const Rule& x : r.after) log.record(x);
      CHECK(log.check(ticket, *a) == r.want);
      CHECK(log.publish(ticket, *a, [](Verdict) {}) == r.want);
    }
  }
}

TEST_CASE("which entries each rule kind matches", "[invalidation_log]") {
  struct Row {
    const char* name;
    Rule rule;
    cache::EntryRef e;
    bool want;
  };
  const std::string k = "http://example.com/a/b?x=1";
  const std::vector<Row> rows = {
      {"Url: the key's path and query", rule(Kind::Url, "/a/b?x=1"), entry(k), true},
      {"Url: the query is part of the URL", rule(Kind::Url, "/a/b"), entry(k), false},
      {"Url: another path", rule(Kind::Url, "/a/c?x=1"), entry(k), false},
      {"Url: not a prefix match", rule(Kind::Url, "/a"), entry(k), false},
      {"Url: without an authority it matches every host", rule(Kind::Url, "/a/b?x=1"),
       entry("https://other.example:8443/a/b?x=1"), true},
      {"Url: with the key's authority", rule(Kind::Url, "/a/b?x=1", "example.com"), entry(k),
       true},
      {"Url: with another authority", rule(Kind::Url, "/a/b?x=1", "other.example"), entry(k),
       false},
      {"Url: the authority includes a non-default port",
       rule(Kind::Url, "/a", "example.com:8080"), entry("http://example.com:8080/a"), true},
      {"Url: a port makes another authority", rule(Kind::Url, "/a", "example.com"),
       entry("http://example.com:8080/a"), false},
      {"Url: key header entries after '\\n' are not part of the URL", rule(Kind::Url, "/a"),
       entry("http://example.com/a\nx-tenant:3:abc"), true},
      {"Url: an IPv6 authority", rule(Kind::Url, "/a", "[::1]:8080"),
       entry("http://[::1]:8080/a"), true},
      {"Prefix: the path itself", rule(Kind::Prefix, "/a/b"), entry(k), true},
      {"Prefix: a parent path", rule(Kind::Prefix, "/a/"), entry(k), true},
      {"Prefix: a string prefix, not a segment prefix", rule(Kind::Prefix, "/a/b?x"), entry(k), true},
      {"Prefix: '/' matches everything", rule(Kind::Prefix, "/"), entry(k), true},
      {"Prefix: longer than the path", rule(Kind::Prefix, "/a/b?x=12"), entry(k), false},
      {"Prefix: another path", rule(Kind::Prefix, "/b"), entry(k), false},
      {"Prefix: with the key's authority", rule(Kind::Prefix, "/a", "example.com"), entry(k),
       true},
      {"Prefix: with another authority", rule(Kind::Prefix, "/a", "example.org"), entry(k),
       false},
      {"Prefix: key header entries are not matched", rule(Kind::Prefix, "/a\nx"),
       entry("http://example.com/a\nx-tenant:!"), false},
      {"Tag: an entry carrying the tag", rule(Kind::Tag, "t2"), entry(k, {"t1", "t2"}), true},
      {"Tag: an entry without it", rule(Kind::Tag, "t3"), entry(k, {"t1", "t2"}), false},
      {"Tag: tags are case-sensitive", rule(Kind::Tag, "T1"), entry(k, {"t1"}), false},
      {"Tag: an untagged entry", rule(Kind::Tag, "t1"), entry(k), false},
      {"All: everything", rule(Kind::All), entry(k), true},
      {"Route: an entry stored under the route", rule(Kind::Route, "api"), entry(k, {}, "api"), true},
      {"Route: an entry stored under another route", rule(Kind::Route, "api"), entry(k, {}, "web"),
       false},
      {"Route: an entry stored under no route", rule(Kind::Route, "api"), entry(k), false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK(InvalidationLog::matches(r.rule, *r.e) == r.want);
      // The same answer through the log, hard and soft.
      for (bool soft : {false, true}) {
        InvalidationLog log;
        auto ticket = log.enter();
        Rule x = r.rule;
        x.soft = soft;
        log.record(x);
        const Verdict want = !r.want ? Verdict::Publish : soft ? Verdict::Stale : Verdict::Drop;
        CHECK(log.check(ticket, *r.e) == want);
      }
    }
  }
}

TEST_CASE("may_match_key: Url and Prefix decide from the key, Tag, Route and All cannot", "[invalidation_log]") {
  struct Row {
    const char* name;
    Rule rule;
    std::string_view key;
    bool want;
  };
  const std::vector<Row> rows = {
      {"Url: same path", rule(Kind::Url, "/a"), "http://h/a", true},
      {"Url: other path", rule(Kind::Url, "/a"), "http://h/b", false},
      {"Url: query differs", rule(Kind::Url, "/a"), "http://h/a?x", false},
      {"Url: key fields ignored", rule(Kind::Url, "/a"), "http://h/a\nx-k:!", true},
      {"Url: same authority", rule(Kind::Url, "/a", "h"), "http://h/a", true},
      {"Url: other authority", rule(Kind::Url, "/a", "g"), "http://h/a", false},
      {"Url: https key, same authority", rule(Kind::Url, "/a", "h"), "https://h/a", true},
      {"Prefix: under it", rule(Kind::Prefix, "/a/"), "http://h/a/b", true},
      {"Prefix: not under it", rule(Kind::Prefix, "/a/"), "http://h/b/a/", false},
      {"Prefix: other authority", rule(Kind::Prefix, "/", "g"), "http://h/a", false},
      {"Prefix: not a key", rule(Kind::Prefix, "/"), "junk", false},
      {"Tag: cannot tell", rule(Kind::Tag, "t"), "http://h/a", true},
      {"Route: cannot tell", rule(Kind::Route, "api"), "http://h/a", true},
      {"All: matches", rule(Kind::All), "http://h/a", true},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(InvalidationLog::may_match_key(r.rule, r.key) == r.want); }
  }
}

TEST_CASE("sequence numbers: record() returns increasing numbers and a ticket holds the last one",
          "[invalidation_log]") {
  InvalidationLog log;
  CHECK(log.last_sequence() == 0);
  CHECK(log.record(url("/a")) == 1);
  CHECK(log.record(url("/a")) == 2);
  auto t = log.enter();
  CHECK(t);
  CHECK(t.start() == 2);
  CHECK(log.last_sequence() == 2);
}

TEST_CASE("rules are kept only while a fill that started before them is in flight", "[invalidation_log]") {
  InvalidationLog log;
  SECTION("with no fill in flight record() keeps nothing") {
    log.record(url("/a"));
    log.record(rule(Kind::All));
    CHECK(log.rules_kept() == 0);
    CHECK(log.fills_in_flight() == 0);
    // ...and a fill entering afterwards is not affected by them.
    auto t = log.enter();
    CHECK(log.check(t, *entry("http://h/a")) == Verdict::Publish);
  }
  SECTION("the last fill leaving drops every rule") {
    auto t = log.enter();
    log.record(url("/a"));
    log.record(url("/b"));
    CHECK(log.rules_kept() == 2);
    t.leave();
    CHECK_FALSE(t);
    CHECK(log.rules_kept() == 0);
    CHECK(log.fills_in_flight() == 0);
    t.leave();  // leaving twice is harmless
    CHECK(log.fills_in_flight() == 0);
  }
  SECTION("the oldest fill leaving drops the rules only it needed") {
    auto oldest = log.enter();  // start 0
    log.record(url("/a"));      // seq 1: matters to `oldest` only
    auto middle = log.enter();  // start 1
    log.record(url("/b"));      // seq 2: matters to both
    CHECK(log.rules_kept() == 2);
    {
      auto newest = log.enter();  // start 2, leaves first: needs no rule
      CHECK(log.fills_in_flight() == 3);
    }
    CHECK(log.rules_kept() == 2);  // `oldest` still needs both
    oldest = InvalidationLog::Ticket();  // move-assigning leaves
    CHECK(log.fills_in_flight() == 1);
    CHECK(log.rules_kept() == 1);
    CHECK(log.check(middle, *entry("http://h/b")) == Verdict::Drop);
    CHECK(log.check(middle, *entry("http://h/a")) == Verdict::Publish);
    middle.leave();
    CHECK(log.rules_kept() == 0);
  }
  SECTION("two fills with the same start: the rule stays until both leave") {
    auto a = log.enter();
    auto b = log.enter();
    log.record(url("/a"));
    a.leave();
    CHECK(log.rules_kept() == 1);
    CHECK(log.check(b, *entry("http://h/a")) == Verdict::Drop);
    b.leave();
    CHECK(log.rules_kept() == 0);
  }
  SECTION("a moved ticket stays in flight once, and leaves once") {
    auto a = log.enter();
    log.record(url("/a"));
    InvalidationLog::Ticket moved = std::move(a);
    CHECK_FALSE(a);
    CHECK(moved);
    CHECK(log.fills_in_flight() == 1);
    a.leave();  // the moved-from ticket does nothing
    CHECK(log.rules_kept() == 1);
    CHECK(log.check(moved, *entry("http://h/a")) == Verdict::Drop);
    moved.leave();
    CHECK(log.fills_in_flight() == 0);
    CHECK(log.rules_kept() == 0);
  }
}

TEST_CASE("publish() runs the callback, under the log's lock, only when the verdict is not Drop",
          "[invalidation_log]") {
  struct Row {
    const char* name;
    std::vector<Rule> after;
    Verdict want;
  };
  const std::vector<Row> rows = {
      {"no rule: publish", {}, Verdict::Publish},
      {"soft purge: publish stale", {url("/a", true)}, Verdict::Stale},
      {"hard purge: no callback", {url("/a")}, Verdict::Drop},
      {"unrelated rule: publish", {url("/b")}, Verdict::Publish},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      InvalidationLog log;
      auto t = log.enter();
      for (const Rule& x : r.after) log.record(x);
      int calls = 0;
      Verdict seen = Verdict::Drop;
      const Verdict v = log.publish(t, *entry("http://h/a"), [&](Verdict pv) {
        ++calls;
        seen = pv;
      });
      CHECK(v == r.want);
      CHECK(calls == (r.want == Verdict::Drop ? 0 : 1));
      if (calls) CHECK(seen == r.want);
    }
  }
}

TEST_CASE("a publish either sees an invalidation or happens before it (TSan)", "[invalidation_log][threads]") {
  // Publishers enter, maybe wait a little, and publish (start, id) into `published`
  // through publish()'s callback. The recorder records an All rule and then
  // clears `published`, as the Purger records a rule and then purges the
  // store. Whatever a publisher adds afterwards must come from a fill that
  // entered after the rule: every publish of an older fill either happened
  // before the rule (and was cleared) or saw the rule (and was dropped).
  constexpr int kPublishers = 3;
  constexpr int kPublishes = 2000;
  constexpr int kRecords = 300;
  InvalidationLog log;
  std::mutex mu;  // guards `published` and `cleared_for`
  std::set<std::pair<uint64_t, int>> published;
  uint64_t cleared_for = 0;  // the sequence number of the last rule whose clear is done
  std::atomic<int> violations{0}, dropped{0};

  auto check_locked = [&] {
    for (const auto& [start, id] : published)
      if (start < cleared_for) ++violations;
  };
  auto publisher = [&](int id) {
    std::mt19937 rng(static_cast<unsigned>(id) + 17);
    for (int i = 0; i < kPublishes; ++i) {
      auto ticket = log.enter();
      for (unsigned spin = rng() % 64; spin > 0; --spin) std::this_thread::yield();
      const auto e = entry("http://h/" + std::to_string(i));
      const Verdict v = log.publish(ticket, *e, [&](Verdict) {
        std::lock_guard lk(mu);
        published.insert({ticket.start(), id * kPublishes + i});
        check_locked();
      });
      if (v == Verdict::Drop) ++dropped;
    }
  };
  auto recorder = [&] {
    for (int i = 0; i < kRecords; ++i) {
      const uint64_t seq = log.record(rule(Kind::All));
      std::lock_guard lk(mu);
      check_locked();
      published.clear();
      cleared_for = seq;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kPublishers; ++t) threads.emplace_back(publisher, t);
  threads.emplace_back(recorder);
  for (auto& th : threads) th.join();

  {
    std::lock_guard lk(mu);  // the order is always log, then mu: never call the log while holding mu
    check_locked();
  }
  CHECK(violations == 0);
  CHECK(log.fills_in_flight() == 0);
  CHECK(log.rules_kept() == 0);
  CHECK(log.last_sequence() == static_cast<uint64_t>(kRecords));
}
