// Coalescer and Fill: one origin fetch per key. The wake callbacks are
// captured and counted (Waker below) and, where a test needs it, do work of
// their own; nothing here waits on a real executor.
#include "cache/coalescer.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace cachalot;
using cache::Coalescer;
using cache::FetchPermit;
using cache::Fill;
using Role = cache::Coalescer::Role;
using State = cache::Fill::State;

namespace {

const core::TimePoint kNow = core::to_time_point(1700000000);
constexpr std::size_t kManyWaiters = 16;

// A wake callback that counts its calls.
struct Waker {
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  Fill::Waker fn() const {
    return [c = calls] { ++*c; };
  }
  int count() const { return *calls; }
};

std::shared_ptr<const Fill::Head> head(int64_t content_length = -1) {
  auto h = std::make_shared<Fill::Head>();
  h->head_block = "HTTP/1.1 200 OK\r\nContent-Type: text/plain";
  h->content_length = content_length;
  h->proto = cache::build_entry(cache::EntryDraft{});
  return h;
}

std::shared_ptr<const std::string> chunk(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

cache::EntryRef entry(std::string body) {
  cache::EntryDraft d;
  d.primary_key = "http://example.com/a";
  d.body = std::move(body);
  return cache::build_entry(d);
}

std::string joined(const Fill::View& v) {
  std::string s;
  for (const auto& c : v.chunks) s += *c;
  return s;
}

}  // namespace

TEST_CASE("the first join for a key leads and later joins follow the same fill", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  REQUIRE(leader.role == Role::Leader);
  CHECK(leader.permit);
  CHECK_FALSE(leader.permit.finished());
  REQUIRE(leader.fill);
  CHECK(leader.permit.fill() == leader.fill);
  CHECK(leader.fill->key() == "k");
  CHECK(leader.fill->state() == State::Pending);
  CHECK(c.in_flight("k"));

  auto f1 = c.join("k", kManyWaiters, kNow);
  auto f2 = c.join("k", kManyWaiters, kNow);
  CHECK(f1.role == Role::Follower);
  CHECK(f2.role == Role::Follower);
  CHECK(f1.fill == leader.fill);
  CHECK(f2.fill == leader.fill);
  CHECK_FALSE(f1.permit);  // only the leader can feed the fill
  CHECK(leader.fill->followers() == 2);

  auto other = c.join("other", kManyWaiters, kNow);
  CHECK(other.role == Role::Leader);
  CHECK(other.fill != leader.fill);
  CHECK(c.size() == 2);
}

TEST_CASE("max_waiters bounds the followers of a fill; past it a request goes alone", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", 2, kNow);
  REQUIRE(leader.role == Role::Leader);
  CHECK(c.join("k", 2, kNow).role == Role::Follower);
  CHECK(c.join("k", 2, kNow).role == Role::Follower);
  auto third = c.join("k", 2, kNow);
  CHECK(third.role == Role::Alone);
  CHECK_FALSE(third.fill);
  CHECK_FALSE(third.permit);
  CHECK(leader.fill->followers() == 2);
  // The bound is the caller's: a request with room to spare still follows.
  CHECK(c.join("k", 3, kNow).role == Role::Follower);
}

TEST_CASE("max_waiters 0 means lead or nothing (a background refresh)", "[coalescer]") {
  Coalescer c;
  auto refresh = c.join("k", 0, kNow);
  CHECK(refresh.role == Role::Leader);
  auto second = c.join("k", 0, kNow);
  CHECK(second.role == Role::Alone);
  CHECK_FALSE(second.fill);
  CHECK(refresh.fill->followers() == 0);
  // A client request may still follow the refresh.
  CHECK(c.join("k", kManyWaiters, kNow).role == Role::Follower);
}

TEST_CASE("the leader storing: head, chunks and Done wake each follower once per change", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  auto follower = c.join("k", kManyWaiters, kNow);
  REQUIRE(follower.role == Role::Follower);
  const auto& fill = follower.fill;

  Waker a, b;
  REQUIRE(fill->subscribe(State::Pending, 0, a.fn()));
  REQUIRE(fill->subscribe(State::Pending, 0, b.fn()));

  leader.permit.set_head(head(10));
  CHECK(a.count() == 1);
  CHECK(b.count() == 1);
  auto v = fill->view(0);
  CHECK(v.state == State::Streaming);
  REQUIRE(v.head);
  CHECK(v.head->content_length == 10);
  CHECK(v.chunks.empty());
  CHECK_FALSE(v.entry);

  // A woken callback is spent: a follower subscribes again for the next change.
  REQUIRE(fill->subscribe(State::Streaming, 0, a.fn()));
  leader.permit.append(chunk("hello"));
  CHECK(a.count() == 2);
  CHECK(b.count() == 1);  // b did not subscribe again

  REQUIRE(fill->subscribe(State::Streaming, 1, a.fn()));
  REQUIRE(fill->subscribe(State::Streaming, 1, b.fn()));
  leader.permit.append(chunk("world"));
  CHECK(a.count() == 3);
  CHECK(b.count() == 2);

  CHECK(joined(fill->view(0)) == "helloworld");
  CHECK(joined(fill->view(1)) == "world");  // from an offset: only what the follower has not sent
  CHECK(fill->view(2).chunks.empty());
  CHECK(fill->view(99).chunks.empty());  // an offset past the end is not an error

  REQUIRE(fill->subscribe(State::Streaming, 2, a.fn()));
  auto stored = entry("helloworld");
  leader.permit.finish(State::Done, stored);
  CHECK(a.count() == 4);
  CHECK(b.count() == 2);
  CHECK(leader.permit.finished());
  v = fill->view(2);
  CHECK(v.state == State::Done);
  CHECK(v.entry == stored);
  CHECK(v.head);  // the head stays readable for followers still sending the body
  CHECK_FALSE(c.in_flight("k"));
  CHECK(c.size() == 0);

  // After the end nothing changes any more.
  leader.permit.append(chunk("late"));
  CHECK(fill->view(0).chunks.size() == 2);
  CHECK(a.count() == 4);
}

TEST_CASE("a chunk or head outside Streaming / Pending is ignored", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  Waker w;
  REQUIRE(leader.fill->subscribe(State::Pending, 0, w.fn()));
  leader.permit.append(chunk("too early"));  // no head yet: nothing to stream
  CHECK(leader.fill->view(0).chunks.empty());
  CHECK(w.count() == 0);
  leader.permit.set_head(head());
  leader.permit.set_head(head(5));  // the head is set once, then immutable
  CHECK(leader.fill->view(0).head->content_length == -1);
  CHECK(w.count() == 1);
}

TEST_CASE("the leader finding the response uncacheable ends the fill Uncacheable", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  auto follower = c.join("k", kManyWaiters, kNow);
  Waker w;
  REQUIRE(follower.fill->subscribe(State::Pending, 0, w.fn()));
  leader.permit.finish(State::Uncacheable, entry("ignored"));
  CHECK(w.count() == 1);
  auto v = follower.fill->view(0);
  CHECK(v.state == State::Uncacheable);
  CHECK_FALSE(v.entry);  // only Done carries an entry
  CHECK_FALSE(v.head);
  CHECK_FALSE(c.in_flight("k"));
}

TEST_CASE("Uncacheable after Streaming becomes Failed: followers already streaming cannot refetch",
          "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  leader.permit.set_head(head());
  leader.permit.append(chunk("part"));
  leader.permit.finish(State::Uncacheable);
  CHECK(leader.fill->state() == State::Failed);
}

TEST_CASE("finishing with a non-terminal state ends the fill Failed", "[coalescer]") {
  for (State s : {State::Pending, State::Streaming}) {
    Coalescer c;
    auto leader = c.join("k", kManyWaiters, kNow);
    leader.permit.set_head(head());
    leader.permit.finish(s, entry("x"));
    CHECK(leader.fill->state() == State::Failed);
    CHECK_FALSE(leader.fill->view(0).entry);
    CHECK_FALSE(c.in_flight("k"));
  }
}

TEST_CASE("a second finish has no effect: the first terminal state is kept", "[coalescer]") {
  struct Row {
    const char* name;
    State first;
    State second;
  };
  const std::vector<Row> rows = {
      {"Failed then Done stays Failed (a cut-short fill never turns complete)", State::Failed, State::Done},
      {"Done then Failed stays Done", State::Done, State::Failed},
      {"Uncacheable then Done stays Uncacheable", State::Uncacheable, State::Done},
      {"Done then Uncacheable stays Done", State::Done, State::Uncacheable},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      Coalescer c;
      auto leader = c.join("k", kManyWaiters, kNow);
      auto follower = c.join("k", kManyWaiters, kNow);
      if (r.first != State::Uncacheable) leader.permit.set_head(head());
      Waker w;
      REQUIRE(follower.fill->subscribe(leader.fill->state(), 0, w.fn()));
      auto first_entry = entry("first");
      leader.permit.finish(r.first, first_entry);
      leader.permit.finish(r.second, entry("second"));
      CHECK(follower.fill->state() == r.first);
      CHECK(follower.fill->view(0).entry == (r.first == State::Done ? first_entry : nullptr));
      CHECK(w.count() == 1);
      // A new fill for the key is not touched by the old permit's second finish.
      auto next = c.join("k", kManyWaiters, kNow);
      CHECK(next.role == Role::Leader);
      leader.permit.finish(State::Failed);
      CHECK(next.fill->state() == State::Pending);
      CHECK(c.in_flight("k"));
    }
  }
}

TEST_CASE("a permit dropped unfinished ends the fill Failed and releases the key", "[coalescer]") {
  Coalescer c;
  std::shared_ptr<Fill> old_fill;
  Waker w;
  auto follower = c.join("k", kManyWaiters, kNow);  // a different key: not this one
  {
    auto leader = c.join("k2", kManyWaiters, kNow);
    auto f = c.join("k2", kManyWaiters, kNow);
    old_fill = f.fill;
    leader.permit.set_head(head());
    REQUIRE(old_fill->subscribe(State::Streaming, 0, w.fn()));
    // The leader's exchange ends (client gone, error...) without finishing.
  }
  CHECK(w.count() == 1);
  CHECK(old_fill->state() == State::Failed);
  CHECK_FALSE(c.in_flight("k2"));
  auto next = c.join("k2", kManyWaiters, kNow);
  CHECK(next.role == Role::Leader);  // one of the waiters leads the retry
  CHECK(next.fill != old_fill);
  CHECK(c.in_flight("k"));  // other keys are untouched
}

TEST_CASE("a moved-from permit does nothing; the moved-to one owns the fill", "[coalescer]") {
  Coalescer c;
  auto ticket = c.join("k", kManyWaiters, kNow);
  const auto fill = ticket.fill;
  FetchPermit moved = std::move(ticket.permit);
  CHECK_FALSE(ticket.permit);
  CHECK(moved);
  CHECK(moved.fill() == fill);

  ticket.permit.set_head(head());
  ticket.permit.finish(State::Done, entry("x"));
  CHECK(fill->state() == State::Pending);
  CHECK(c.in_flight("k"));
  { FetchPermit gone = std::move(ticket.permit); }  // destroying a moved-from permit does nothing either
  CHECK(fill->state() == State::Pending);
  CHECK(c.in_flight("k"));

  moved.set_head(head());
  CHECK(fill->state() == State::Streaming);
  moved.finish(State::Done, entry("x"));
  CHECK(fill->state() == State::Done);
  CHECK_FALSE(c.in_flight("k"));
}

TEST_CASE("move-assigning onto an unfinished permit ends that permit's fill Failed", "[coalescer]") {
  Coalescer c;
  auto a = c.join("a", kManyWaiters, kNow);
  auto b = c.join("b", kManyWaiters, kNow);
  a.permit = std::move(b.permit);
  CHECK(a.fill->state() == State::Failed);
  CHECK_FALSE(c.in_flight("a"));
  CHECK(a.permit.fill() == b.fill);
  CHECK(b.fill->state() == State::Pending);
  CHECK(c.in_flight("b"));
  a.permit.finish(State::Uncacheable);
  CHECK(b.fill->state() == State::Uncacheable);
  CHECK_FALSE(c.in_flight("b"));
}

TEST_CASE("the key is released before followers wake: a woken follower's join leads a new fill",
          "[coalescer]") {
  for (State end : {State::Failed, State::Uncacheable, State::Done}) {
    DYNAMIC_SECTION("finish " << static_cast<int>(end)) {
      Coalescer c;
      auto leader = c.join("k", kManyWaiters, kNow);
      auto follower = c.join("k", kManyWaiters, kNow);
      Coalescer::Ticket retry;
      bool in_flight_when_woken = true;
      REQUIRE(follower.fill->subscribe(State::Pending, 0, [&] {
        in_flight_when_woken = c.in_flight("k");
        retry = c.join("k", kManyWaiters, kNow);  // must not deadlock and must not follow the ended fill
      }));
      leader.permit.finish(end, end == State::Done ? entry("x") : nullptr);
      CHECK_FALSE(in_flight_when_woken);
      CHECK(retry.role == Role::Leader);
      CHECK(retry.fill != follower.fill);
      CHECK(retry.fill->state() == State::Pending);
    }
  }
  SECTION("a dropped permit too") {
    Coalescer c;
    auto follower_fill = std::shared_ptr<Fill>();
    Coalescer::Ticket retry;
    {
      auto leader = c.join("k", kManyWaiters, kNow);
      auto follower = c.join("k", kManyWaiters, kNow);
      follower_fill = follower.fill;
      REQUIRE(follower.fill->subscribe(State::Pending, 0, [&] { retry = c.join("k", kManyWaiters, kNow); }));
    }
    CHECK(retry.role == Role::Leader);
    CHECK(retry.fill != follower_fill);
  }
}

TEST_CASE("a follower that left is skipped: its callback holds only a weak reference", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  auto stays = c.join("k", kManyWaiters, kNow);
  auto leaves = c.join("k", kManyWaiters, kNow);
  Waker w;
  int calls_after_leaving = 0;
  auto gone = std::make_shared<int>(0);  // the leaving follower's state (its timer, in the proxy)
  REQUIRE(leaves.fill->subscribe(State::Pending, 0, [weak = std::weak_ptr<int>(gone), &calls_after_leaving] {
    if (auto alive = weak.lock()) ++*alive;
    else ++calls_after_leaving;
  }));
  REQUIRE(stays.fill->subscribe(State::Pending, 0, w.fn()));
  REQUIRE(stays.fill->subscribe(State::Pending, 0, Fill::Waker{}));  // an empty callback is skipped too
  gone.reset();
  leaves = {};  // the client went away
  leader.permit.set_head(head());
  CHECK(calls_after_leaving == 1);  // called, found nobody, did nothing
  CHECK(w.count() == 1);
  leader.permit.finish(State::Done, entry("x"));
  CHECK(stays.fill->state() == State::Done);
}

TEST_CASE("subscribe returns false, and registers nothing, when the fill already moved", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  const auto& fill = leader.fill;
  Waker w;
  leader.permit.set_head(head());
  CHECK_FALSE(fill->subscribe(State::Pending, 0, w.fn()));  // state moved: look again
  leader.permit.append(chunk("a"));
  CHECK_FALSE(fill->subscribe(State::Streaming, 0, w.fn()));  // chunk count moved
  CHECK_FALSE(fill->subscribe(State::Streaming, 2, w.fn()));  // a count that never was
  CHECK(fill->subscribe(State::Streaming, 1, w.fn()));
  leader.permit.finish(State::Done, entry("a"));
  CHECK(w.count() == 1);  // only the one registration fired
  CHECK_FALSE(fill->subscribe(State::Streaming, 1, w.fn()));  // it ended since
}

TEST_CASE("hit-for-miss makes joins Alone until it expires", "[coalescer]") {
  Coalescer c;
  using std::chrono::milliseconds;
  c.mark_hit_for_miss("k", kNow + core::Seconds(10));
  CHECK(c.join("k", kManyWaiters, kNow).role == Role::Alone);
  CHECK(c.join("k", kManyWaiters, kNow + milliseconds(9999)).role == Role::Alone);
  CHECK(c.join("other", kManyWaiters, kNow).role == Role::Leader);
  CHECK_FALSE(c.in_flight("k"));
  auto after = c.join("k", kManyWaiters, kNow + core::Seconds(10));
  CHECK(after.role == Role::Leader);  // expired at `until`: coalescing resumes
  after.permit.finish(State::Failed);
  // Expired marks are forgotten, not just skipped.
  CHECK(c.join("k", kManyWaiters, kNow).role == Role::Leader);
}

TEST_CASE("hit-for-miss wins over a fill in flight, and clear_hit_for_miss lifts it", "[coalescer]") {
  Coalescer c;
  auto leader = c.join("k", kManyWaiters, kNow);
  c.mark_hit_for_miss("k", kNow + core::Seconds(10));
  CHECK(c.join("k", kManyWaiters, kNow).role == Role::Alone);
  c.clear_hit_for_miss("k");
  auto follower = c.join("k", kManyWaiters, kNow);
  CHECK(follower.role == Role::Follower);
  CHECK(follower.fill == leader.fill);
}

TEST_CASE("detach_if stops new joins on the detached fill; its followers keep following", "[coalescer]") {
  Coalescer c;
  auto a = c.join("http://h/a", kManyWaiters, kNow);
  auto b = c.join("http://h/b", kManyWaiters, kNow);
  auto follower = c.join("http://h/a", kManyWaiters, kNow);
  REQUIRE(follower.role == Role::Follower);

  CHECK(c.detach_if([](const Fill& f) { return f.key() == "http://h/a"; }) == 1);
  CHECK_FALSE(c.in_flight("http://h/a"));
  CHECK(c.in_flight("http://h/b"));

  // A request after the invalidation does not join the old fill.
  auto fresh = c.join("http://h/a", kManyWaiters, kNow);
  CHECK(fresh.role == Role::Leader);
  CHECK(fresh.fill != a.fill);

  // The detached fill still serves the follower that joined before.
  Waker w;
  REQUIRE(follower.fill->subscribe(State::Pending, 0, w.fn()));
  a.permit.set_head(head());
  a.permit.append(chunk("old"));
  a.permit.finish(State::Done, entry("old"));
  CHECK(w.count() == 1);
  CHECK(follower.fill->state() == State::Done);
  CHECK(joined(follower.fill->view(0)) == "old");
  // Finishing the detached fill does not release the new one under the same key.
  CHECK(c.in_flight("http://h/a"));
  CHECK(c.join("http://h/a", kManyWaiters, kNow).fill == fresh.fill);

  CHECK(c.detach_if([](const Fill&) { return false; }) == 0);
  CHECK(c.detach_if([](const Fill&) { return true; }) == 2);
  CHECK(c.size() == 0);
}

TEST_CASE("concurrent joins and finishes on shared and distinct keys (TSan)", "[coalescer][threads]") {
  // Each thread loops: join one of a few keys; a leader streams a head and three
  // chunks and finishes Done, Failed or Uncacheable, or drops its permit; a
  // follower waits for the end by subscribing (and looking again whenever
  // subscribe says something moved). Every registered callback must fire
  // exactly once, every follower must see a terminal state, and a Done fill
  // must hold every chunk its leader appended.
  constexpr int kThreads = 4;
  constexpr int kIterations = 400;
  const std::vector<std::string> keys = {"k0", "k1", "k2", "shared"};
  Coalescer c;
  std::atomic<int> subscribed{0}, woken{0}, led{0}, followed{0}, alone{0}, bad{0};

  auto worker = [&](int id) {
    std::mt19937 rng(static_cast<unsigned>(id) * 7919u + 1);
    for (int i = 0; i < kIterations; ++i) {
      const std::string& key = keys[rng() % keys.size()];
      auto t = c.join(key, 8, kNow);
      if (t.role == Role::Leader) {
        ++led;
        const unsigned end = rng() % 4;
        if (end == 2) {
          t.permit.finish(State::Uncacheable);
          continue;
        }
        t.permit.set_head(head());
        for (int k = 0; k < 3; ++k) t.permit.append(chunk(std::string(1, static_cast<char>('a' + k))));
        if (end == 0) t.permit.finish(State::Done, entry("abc"));
        if (end == 1) t.permit.finish(State::Failed);
        // end == 3: the permit is dropped unfinished at the end of the scope
      } else if (t.role == Role::Follower) {
        ++followed;
        for (;;) {
          auto v = t.fill->view(0);
          if (Fill::terminal(v.state)) {
            if (v.state == State::Done && (joined(v) != "abc" || !v.entry)) ++bad;
            if (v.state == State::Uncacheable && v.head) ++bad;
            break;
          }
          auto flag = std::make_shared<std::atomic<bool>>(false);
          if (!t.fill->subscribe(v.state, v.chunks.size(), [flag, &woken] {
                ++woken;
                flag->store(true);
                flag->notify_one();
              }))
            continue;
          ++subscribed;
          flag->wait(false);
        }
      } else {
        ++alone;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();

  CHECK(bad == 0);
  CHECK(subscribed == woken);
  CHECK(c.size() == 0);
  CHECK(led + followed + alone == kThreads * kIterations);
  CHECK(led > 0);
}
