// Bus: the invalidation bus. Publishes this node's invalidations to a Redis
// stream (XADD MAXLEN ~) and applies the other nodes' (XREAD BLOCK), so a
// fleet purges as one cache.
//
// Where it runs: on worker 0's io_context. That loop always exists (the
// admin listener can be disabled, the main thread's loop stops when the
// drain begins) and runs until the process exits, and the bus's work is
// small: one XADD per local invalidation, and per remote one what an admin
// purge costs (a URL: microseconds; everything: a walk of the store, as on
// the admin thread). No thread of its own, and nothing blocks: hiredis runs
// non-blocking on the loop (cluster/redis_connection.h); a Redis host name
// is resolved by Asio's asynchronous resolver.
//
// Two connections, reader and writer: an XREAD BLOCK holds up every command
// queued behind it on its connection, and publishing must not wait for it.
//
// States: Down (waiting out the backoff) -> Connecting (both connections;
// AUTH, SELECT, CLIENT SETNAME) -> Resuming (reader: TIME on the first
// connect, then XINFO STREAM to decide where to continue and whether to
// resync) -> Up (reading). Any fault (a refused or lost connection, an error
// reply, a command or connect slower than cluster.timeout) closes both, and
// the bus retries after an exponential, capped, jittered backoff.
//
// Nothing is lost silently:
//   - local events wait in a bounded queue until Redis acknowledges them;
//     those in flight when a connection drops are sent again (a reader skips
//     the duplicate by its sequence number). A full queue drops the event
//     but not its sequence number, so the readers see the gap.
//   - a reader continues from the last id it read. If entries after it were
//     trimmed away (it was away longer than max_events), if a sender's
//     sequence jumps (its queue overflowed, or a Redis that restarted empty
//     lost entries), or if an entry cannot be read, the reader soft-purges
//     everything (a resync), logs why and counts it.
//   - a new process starts reading at the Redis time it started at: its
//     cache was empty before, so earlier events void nothing (see
//     "Running a fleet" in README.md), and later ones are not missed even if
//     Redis was unreachable at start-up.
//
// Threads: publish() and status() may be called from any thread; everything
// else runs on the loop. The App owns the Bus and destroys it after the
// workers' threads are joined.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <asio.hpp>

#include "cluster/event.h"
#include "cluster/redis_connection.h"
#include "cluster/status.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "proxy/purger.h"

namespace cachalot::cluster {

class Bus final : public proxy::InvalidationPublisher {
 public:
  // Applies a remote invalidation on this node (Purger::apply, Source::Remote).
  using ApplyFn = std::function<void(const cache::Purge&)>;

  Bus(asio::io_context& loop, config::ClusterConfig cfg, metrics::ClusterMetrics& metrics, ApplyFn apply);
  ~Bus() override;

  // Starts connecting once the loop runs.
  void start();
  // Any thread: queues a local invalidation for the other nodes.
  void publish(const cache::Purge& p) override;
  // Any thread: a snapshot for GET /cluster.
  BusStatus status() const;

 private:
  using Clock = std::chrono::steady_clock;
  enum class State : uint8_t { Down, Connecting, Resuming, Up };

  void tick();
  void connect();
  void open_connections(const RedisConnection::Target& target, uint64_t gen);
  void on_connected(uint64_t gen);
  void setup(RedisConnection& conn, std::string_view role, uint64_t gen);
  void fault(const std::string& why);
  bool current(uint64_t gen) const { return gen == generation_ && state_ != State::Down; }

  // reader
  void resume(uint64_t gen);
  void check_stream(uint64_t gen);
  void read(uint64_t gen);
  void on_entry(StreamId id, const Event* e, const std::string& unreadable_why);
  void resync(metrics::ResyncReason reason, const std::string& why, StreamId covered_until);

  // writer
  void enqueue(Event e);
  void pump();

  void set_status(bool connected);
  void note_error(const std::string& why);

  asio::io_context& loop_;
  const config::ClusterConfig cfg_;
  metrics::ClusterMetrics& m_;
  ApplyFn apply_;
  const std::string incarnation_;
  const Clock::time_point started_ = Clock::now();
  asio::steady_timer ticker_;
  asio::ip::tcp::resolver resolver_;
  std::minstd_rand jitter_;

  State state_ = State::Down;
  uint64_t generation_ = 0;  // bumped on every fault: callbacks of older connections are ignored
  std::shared_ptr<RedisConnection> reader_, writer_;
  std::vector<std::shared_ptr<RedisConnection>> retired_;  // faulted, closed on the next turn of the loop
  Clock::time_point retry_at_{};
  config::Duration backoff_{0};
  bool ever_up_ = false;
  uint64_t attempt_ = 0;      // failed attempts so far: picks the next resolved address
  bool warned_down_ = false;  // the first failure of an outage is a warning, retries are debug

  // reader
  bool have_start_ = false;   // last_ holds a start point (the first TIME reply) or a read id
  bool read_before_ = false;  // last_ is an entry this node read
  StreamId last_;
  StreamId covered_until_;    // a sequence gap at or before this id is covered by a resync
  SenderTracker senders_;
  Clock::time_point last_resync_warning_{};

  // writer
  std::deque<Event> queue_;   // local events not yet acknowledged; the first in_flight_ are sent
  std::size_t in_flight_ = 0;
  uint64_t seq_ = 0;          // the last sequence number assigned
  bool writer_ready_ = false;
  bool warned_drop_ = false;  // one warning per outage

  mutable std::mutex status_mu_;
  BusStatus status_;          // the parts the loop owns, copied under status_mu_
};

}  // namespace cachalot::cluster
