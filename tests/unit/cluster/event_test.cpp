#include "cluster/event.h"

#include <catch2/catch.hpp>

using namespace cachalot;
using namespace cachalot::cluster;
using namespace std::chrono_literals;

namespace {

using Fields = std::vector<std::pair<std::string_view, std::string_view>>;

Fields view(const std::vector<std::pair<std::string_view, std::string>>& encoded) {
  Fields out;
  for (const auto& [k, v] : encoded) out.emplace_back(k, v);
  return out;
}

Event purge_event(cache::Purge::Kind kind, std::string value, uint64_t seq, std::string node = "a",
                  std::string inc = "0000000000000001") {
  Event e;
  e.purge.kind = kind;
  e.purge.value = std::move(value);
  e.node = std::move(node);
  e.incarnation = std::move(inc);
  e.seq = seq;
  e.time_ms = 1700000000123;
  return e;
}

Event hello(uint64_t seq, std::string node = "a", std::string inc = "0000000000000001") {
  Event e;
  e.kind = Event::Kind::Hello;
  e.node = std::move(node);
  e.incarnation = std::move(inc);
  e.seq = seq;
  return e;
}

}  // namespace

TEST_CASE("stream ids parse, print and order as Redis orders them", "[cluster]") {
  auto id = StreamId::parse("1700000000123-7");
  REQUIRE(id);
  CHECK(id->ms == 1700000000123);
  CHECK(id->seq == 7);
  CHECK(id->to_string() == "1700000000123-7");
  CHECK(StreamId{1, 9} < StreamId{2, 0});
  CHECK(StreamId{2, 1} > StreamId{2, 0});
  for (const char* bad : {"", "17", "17-", "-1", "a-1", "1-b", "1-2-3", "1 -2"}) {
    INFO(bad);
    CHECK_FALSE(StreamId::parse(bad));
  }
}

TEST_CASE("every purge kind survives encode then decode, soft and hard, with and without a host", "[cluster]") {
  using K = cache::Purge::Kind;
  struct Row {
    K kind;
    const char* value;
    std::optional<std::string> host;
    bool soft;
  };
  const Row rows[] = {
      {K::Url, "/a?x=1 2", std::string("example.com:8080"), false},
      {K::Url, "/b", std::nullopt, true},
      {K::Prefix, "/api/", std::nullopt, false},
      {K::Tag, "product-7", std::nullopt, true},
      {K::All, "", std::nullopt, true},
      {K::Route, "static", std::nullopt, false},
      {K::Partition, "user:42 @example", std::nullopt, false},
  };
  for (const Row& row : rows) {
    INFO(cache::to_string(row.kind) << " " << row.value);
    Event e = purge_event(row.kind, row.value, 42);
    e.purge.host = row.host;
    e.purge.soft = row.soft;
    auto encoded = encode(e);
    CHECK(encoded.front() == std::pair<std::string_view, std::string>{"v", "1"});
    Decoded d = decode(view(encoded));
    REQUIRE(d.event);
    CHECK(d.event->kind == Event::Kind::Purge);
    CHECK(d.event->purge.kind == row.kind);
    CHECK(d.event->purge.value == row.value);
    CHECK(d.event->purge.host == row.host);
    CHECK(d.event->purge.soft == row.soft);
    CHECK(d.event->node == "a");
    CHECK(d.event->incarnation == "0000000000000001");
    CHECK(d.event->seq == 42);
    CHECK(d.event->time_ms == 1700000000123);
  }
}

TEST_CASE("a hello carries only who and the last sequence number", "[cluster]") {
  auto encoded = encode(hello(9));
  Decoded d = decode(view(encoded));
  REQUIRE(d.event);
  CHECK(d.event->kind == Event::Kind::Hello);
  CHECK(d.event->seq == 9);
}

TEST_CASE("entries a node cannot read are refused with a reason; unknown fields are ignored", "[cluster]") {
  auto good = encode(purge_event(cache::Purge::Kind::Url, "/a", 1));
  auto with = [&](std::string_view name, std::string_view value) {
    Fields f = view(good);
    bool replaced = false;
    for (auto& [k, v] : f)
      if (k == name) v = value, replaced = true;
    if (!replaced) f.emplace_back(name, value);
    return f;
  };
  auto without = [&](std::string_view name) {
    Fields f = view(good);
    std::erase_if(f, [&](const auto& kv) { return kv.first == name; });
    return f;
  };
  struct Row {
    const char* label;
    Fields fields;
    const char* error;  // nullptr: readable
  };
  const Row rows[] = {
      {"a newer version", with("v", "2"), "version 2"},
      {"no version", without("v"), "no version"},
      {"no node", without("node"), "missing node"},
      {"an empty node", with("node", ""), "missing node"},
      {"no sequence number", without("seq"), "missing"},
      {"a sequence number that is not one", with("seq", "x"), "not a number"},
      {"an unknown kind", with("kind", "ban"), "unknown kind 'ban'"},
      {"soft is not 0 or 1", with("soft", "yes"), "soft not 0 or 1"},
      {"a url purge without a value", with("value", ""), "empty value"},
      {"an extra field from a later minor change", with("reason", "deploy"), nullptr},
  };
  for (const Row& row : rows) {
    INFO(row.label);
    Decoded d = decode(row.fields);
    if (row.error) {
      CHECK_FALSE(d.event);
      CHECK_THAT(d.error, Catch::Contains(row.error));
    } else {
      CHECK(d.event);
    }
  }
}

TEST_CASE("incarnations are 16 hex digits and differ between processes", "[cluster]") {
  std::string a = new_incarnation(), b = new_incarnation();
  CHECK(a.size() == 16);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

TEST_CASE("the sender tracker tells the next event from a duplicate and from a gap", "[cluster]") {
  using V = SenderTracker::Verdict;
  SenderTracker t;
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 5)) == V::First);  // joined mid-stream
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 6)) == V::Next);
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 6)) == V::Duplicate);  // republished after a lost reply
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 4)) == V::Duplicate);
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 9)) == V::Gap);  // 7 and 8 were lost
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 10)) == V::Next);
  // A hello repeats the last number: equal is fine, more means the tail was lost.
  CHECK(t.see(hello(10)) == V::Next);
  CHECK(t.see(hello(12)) == V::Gap);
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 13)) == V::Next);
  // Another node, or the same node restarted (a new incarnation), is a new sender.
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 1, "b")) == V::First);
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 1, "a", "0000000000000002")) == V::First);
  CHECK(t.size() == 3);
  t.clear();
  CHECK(t.see(purge_event(cache::Purge::Kind::Url, "/a", 20)) == V::First);
}

TEST_CASE("the sender tracker is bounded: the least recently seen sender is forgotten", "[cluster]") {
  using V = SenderTracker::Verdict;
  SenderTracker t;
  for (std::size_t i = 0; i < SenderTracker::kMaxSenders; ++i)
    t.see(purge_event(cache::Purge::Kind::All, "", 1, "n" + std::to_string(i)));
  CHECK(t.see(purge_event(cache::Purge::Kind::All, "", 2, "n0")) == V::Next);  // n0 is now the most recent
  CHECK(t.see(purge_event(cache::Purge::Kind::All, "", 1, "new")) == V::First);
  CHECK(t.size() == SenderTracker::kMaxSenders);
  CHECK(t.see(purge_event(cache::Purge::Kind::All, "", 3, "n0")) == V::Next);   // kept
  CHECK(t.see(purge_event(cache::Purge::Kind::All, "", 2, "n1")) == V::First);  // n1 was evicted
}

TEST_CASE("a reconnecting reader resumes from its last id and resyncs only if entries after it are gone",
          "[cluster]") {
  const StreamId last{1000, 0};
  auto info = [](uint64_t length, StreamId first, StreamId last_generated, std::optional<uint64_t> added) {
    StreamInfo i;
    i.length = length;
    i.first_entry = first;
    i.last_generated = last_generated;
    i.entries_added = added;
    return std::optional<StreamInfo>(i);
  };
  struct Row {
    const char* label;
    bool read_before;
    std::optional<StreamInfo> info;
    StreamId read_from;
    bool resync;
  };
  const Row rows[] = {
      {"no stream (Redis restarted empty): read all of what comes", true, std::nullopt, {0, 0}, false},
      {"the last id is still there", true, info(50, {900, 0}, {1200, 0}, 5000), last, false},
      {"the first entry is the last one read", true, info(50, {1000, 0}, {1200, 0}, 5000), last, false},
      {"trimmed past the last id", true, info(10, {1100, 0}, {1200, 0}, 5000), last, true},
      {"trimmed past it, Redis < 7 (no entries-added)", true, info(10, {1100, 0}, {1200, 0}, std::nullopt), last, true},
      {"a new stream after a Redis restart, nothing trimmed", true, info(3, {1100, 0}, {1200, 0}, 3), last, false},
      {"emptied past the last id", true, info(0, {0, 0}, {1200, 0}, 9), last, true},
      {"empty, nothing added since", true, info(0, {0, 0}, {1000, 0}, 9), last, false},
      {"older than what was read (re-created, or a Redis clock behind)", true, info(4, {10, 0}, {20, 0}, 4),
       {0, 0}, false},
      {"older and trimmed", true, info(4, {10, 0}, {20, 0}, 40), {0, 0}, true},
      {"first connect: nothing added since the start", false, info(50, {10, 0}, {20, 0}, 900), last, false},
      {"first connect: everything kept is from after the start, some trimmed", false,
       info(10, {1100, 0}, {1200, 0}, 900), last, true},
      {"first connect: a young stream, nothing trimmed", false, info(10, {1100, 0}, {1200, 0}, 10), last, false},
  };
  for (const Row& row : rows) {
    INFO(row.label);
    ResumePlan p = plan_resume(last, row.read_before, row.info);
    CHECK(p.read_from == row.read_from);
    CHECK(p.resync == row.resync);
  }
}

TEST_CASE("reconnect backoff doubles from backoff_min up to backoff_max", "[cluster]") {
  config::ClusterConfig cfg;
  cfg.backoff_min = 100ms;
  cfg.backoff_max = 1s;
  config::Duration d{0};
  std::vector<int64_t> got;
  for (int i = 0; i < 6; ++i) got.push_back((d = next_backoff(d, cfg)).count());
  CHECK(got == std::vector<int64_t>{100, 200, 400, 800, 1000, 1000});
}
