// Event: one invalidation as it travels through the Redis stream, and the
// bookkeeping a reader needs to know that it lost none. Pure: no Asio, no
// hiredis (the unit tests cover all of it).
//
// Wire format: a stream entry's fields, all strings (version 1):
//   v      "1"                 the format; an entry a reader cannot read makes it resync
//   node   "cache-a"           the publisher's cluster.node
//   inc    16 hex digits       the publisher's incarnation, random per process start
//   seq    "42"                per incarnation, from 1 and without gaps: a gap means lost events
//   kind   url | prefix | tag | all | route | partition | hello
//   host   "" or an authority  url and prefix only; "" = every host
//   value  the path, prefix, tag, route name or partition claim; "" for all and hello
//   soft   "0" | "1"           mark stale instead of removing
//   ts     ms since the epoch  the publisher's wall clock when it applied it (for the lag metric)
//
// hello is not an invalidation: each node publishes one on every (re)connect,
// after its queued events, with seq = the last number it assigned (not a new
// one). A reader that missed that node's last events (dropped from its queue,
// or lost with a Redis that restarted empty) sees the jump and resyncs
// without waiting for the node's next invalidation.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/purge.h"
#include "config/config.h"

namespace cachalot::cluster {

inline constexpr int kEventVersion = 1;

// A stream entry id, "<ms>-<seq>" (Redis orders entries by it).
struct StreamId {
  uint64_t ms = 0;
  uint64_t seq = 0;
  static std::optional<StreamId> parse(std::string_view text);
  std::string to_string() const;
  auto operator<=>(const StreamId&) const = default;
};

struct Event {
  enum class Kind : uint8_t {
    Purge,  // an invalidation: `purge`
    Hello,  // a (re)connect announcement: seq is the sender's last assigned number
  };
  Kind kind = Kind::Purge;
  cache::Purge purge;
  std::string node;
  std::string incarnation;
  uint64_t seq = 0;
  int64_t time_ms = 0;
};

// Field names and values, in the order XADD gets them.
std::vector<std::pair<std::string_view, std::string>> encode(const Event& e);

struct Decoded {
  std::optional<Event> event;  // nullopt: unreadable
  std::string error;           // why, when unreadable
};
// `fields`: name, value pairs as read from the stream entry.
Decoded decode(std::span<const std::pair<std::string_view, std::string_view>> fields);

// A random incarnation id: 16 lowercase hex digits.
std::string new_incarnation();

// Per sender (node, incarnation): the last sequence number seen, so a reader
// can tell a duplicate (a republish after a lost XADD reply) from the next
// event and from a gap. Bounded: beyond kMaxSenders the least recently seen
// sender is forgotten (its next event is then taken as a first one).
class SenderTracker {
 public:
  static constexpr std::size_t kMaxSenders = 1024;
  enum class Verdict : uint8_t {
    First,      // a sender not seen before: nothing to compare with
    Next,       // the next number (for a hello: the number already seen)
    Duplicate,  // seen before: skip it
    Gap,        // numbers were skipped: events from this sender were lost
  };
  Verdict see(const Event& e);
  // After a resync everything earlier is covered: start afresh.
  void clear() { senders_.clear(); }
  std::size_t size() const { return senders_.size(); }

 private:
  struct Sender {
    std::string node, incarnation;
    uint64_t last = 0;
    uint64_t used = 0;  // tick of the last event: the least recent is evicted
  };
  std::vector<Sender> senders_;  // tens of nodes: a linear scan is cheapest
  uint64_t tick_ = 0;
};

// What XINFO STREAM says about the stream.
struct StreamInfo {
  uint64_t length = 0;
  StreamId first_entry;                  // meaningful when length > 0
  StreamId last_generated;               // the newest id ever added
  std::optional<uint64_t> entries_added; // Redis >= 7: entries ever added (none removed if == length)
};

// Where a (re)connecting reader continues, and whether it must resync first.
struct ResumePlan {
  StreamId read_from;   // XREAD from here (exclusive)
  bool resync = false;  // entries after `last` may have been trimmed before this node read them
};
// `last`: the id of the last entry read when `read_before`, else the Redis
// time this process started at; `info`: nullopt when the stream does not exist.
ResumePlan plan_resume(StreamId last, bool read_before, const std::optional<StreamInfo>& info);

// The reconnect delay after `current` (zero: the first attempt): doubled, capped.
config::Duration next_backoff(config::Duration current, const config::ClusterConfig& cfg);

}  // namespace cachalot::cluster
