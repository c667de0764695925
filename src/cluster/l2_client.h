// L2Client: one worker's connection to the shared L2 store (cache.l2).
//
// Runs on its worker's io_context, over two RedisConnections (hiredis
// async, driven by Asio: nothing blocks): one for commands, one subscribed
// (PSUBSCRIBE <prefix>f:*) to fill announcements. Four Lua scripts, loaded
// on every connect (SCRIPT LOAD, queued ahead of anything else) and called
// by SHA:
//   lookup      HMGET the record hash; HMGET the markers for the key's URL,
//               every prefix of its path, its route, "all", and the record's
//               tags; a marker >= the record's fill time voids it (DEL, and
//               "invalidated"); else the record and Redis' time since the
//               store. With nothing usable and a lock asked for (fleet-wide
//               coalescing), SET <prefix>l:<key> token NX PX: acquired or held
//   store       HSET rec / fill (Redis TIME - age) / stored / tags, PEXPIRE;
//               release the lock if the token holds it; PUBLISH <prefix>f:<key>
//   release     the lock, if the token holds it; PUBLISH (waiters go to the origin)
//   invalidate  HSET each marker field to Redis TIME (never lowering one);
//               "a" (all) replaces every other marker by one "a" at the
//               highest time seen, so the hash does not keep every URL ever
//               purged once everything was
// Every time is Redis' clock (TIME), so the nodes' clocks never meet: a
// record's fill time is Redis' time at the store minus the time this node
// measured (steady clock) since it sent the origin request, minus
// cache.l2.fill_margin (the store command's own trip to Redis).
//
// Never blocks or fails a request: a lookup completes within cache.l2.timeout
// (a timer), at once as "down" without a connection, or as "busy" when too
// many commands wait. A connection that stops answering for max(1 s, 10 x
// timeout) is closed and reopened; a lost one is retried after a capped
// backoff (100 ms doubling to 5 s).
//
// Markers (worker 0's client writes them, for invalidations applied on any
// thread): queued (bounded) until Redis acknowledges them and sent again
// after a reconnect (writing a marker twice is harmless). If the queue
// overflows, the next connection writes "all" instead: every L2 record
// filled before it becomes unservable, which is safe. Each invalidation
// has two callbacks: `written` when Redis has its markers (the Purger then
// lets this node's lookups of matching keys through again), `forward` as
// soon as they are written or known to wait (no connection, or no answer
// within cache.l2.timeout): the Purger publishes the bus event then, so a
// node that applies it finds the markers in Redis already.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "cluster/redis_connection.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "proxy/l2_tier.h"
#include "proxy/purger.h"

namespace cachalot::cluster {

class L2Client final : public proxy::L2Tier, public proxy::L2Invalidator {
 public:
  // `name` tells this connection apart in CLIENT LIST ("cachalot:l2:<name>").
  L2Client(asio::io_context& loop, config::L2Config cfg, metrics::L2Metrics& metrics, std::string name);
  ~L2Client() override;
  L2Client(const L2Client&) = delete;
  L2Client& operator=(const L2Client&) = delete;

  // Starts connecting once the loop runs.
  void start();
  void lookup(proxy::L2Lookup q, LookupFn done) override;
  void store(std::string primary_key, std::string record, std::string tags, int64_t age_ms, int64_t ttl_ms,
             std::string lock_token) override;
  void release(std::string primary_key, std::string lock_token) override;
  void wait_fill(std::string primary_key, std::chrono::steady_clock::time_point since, std::chrono::milliseconds bound,
                 WaitFn done) override;
  std::string new_token() override;
  // Any thread.
  void invalidate(std::vector<std::string> marker_fields, std::function<void()> written,
                  std::function<void()> forward) override;

  // The scripts (for the tests and the README).
  static const char* lookup_script() noexcept;
  static const char* store_script() noexcept;
  static const char* invalidate_script() noexcept;
  static const char* release_script() noexcept;

 private:
  using Clock = std::chrono::steady_clock;
  void tick();
  void connect();
  void open(const RedisConnection::Target& target, uint64_t gen);
  void on_connected(uint64_t gen);
  void fault(const std::string& why);
  void scripts_gone(const redisReply& r);
  void pump_markers();
  // Calls the `forward` of queued jobs: all of them (in_flight_too), or
  // those not sent yet and those sent before `sent_before`.
  void forward_waiting(bool in_flight_too, Clock::time_point sent_before);
  bool usable() const noexcept;
  void on_message(const redisReply& r);
  struct Waiter;
  void finish_waiters(const std::string& key, bool filled);

  asio::io_context& loop_;
  const config::L2Config cfg_;
  metrics::L2Metrics& m_;
  const std::string name_;
  const std::string lookup_sha_, store_sha_, invalidate_sha_, release_sha_;
  const std::string token_base_;  // unique to this client: lock tokens are token_base_ + a counter
  uint64_t tokens_ = 0;
  const std::string marks_key_;
  asio::steady_timer ticker_;
  asio::ip::tcp::resolver resolver_;

  std::shared_ptr<RedisConnection> conn_;
  std::shared_ptr<RedisConnection> sub_;  // subscribed to fill announcements
  bool subscribed_ = false;               // the PSUBSCRIBE was confirmed
  std::vector<std::shared_ptr<RedisConnection>> retired_;  // faulted, closed on the next tick
  bool up_ = false;
  bool counted_up_ = false;  // counted in m_.connected
  uint64_t generation_ = 0;  // bumped on every fault: replies of older connections are ignored
  Clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};
  bool warned_down_ = false;

  // waits for a fill (fleet-wide coalescing), on the loop
  std::unordered_map<std::string, std::vector<std::shared_ptr<Waiter>>> waiters_;
  // fills announced lately (a wait for one announced since the lookup was sent does not wait)
  std::unordered_map<std::string, Clock::time_point> recent_fills_;

  // markers (any thread queues, under mu_; the loop sends)
  std::mutex mu_;
  struct MarkerJob {
    std::vector<std::string> fields;
    std::vector<std::function<void()>> written;  // once Redis acknowledged them (or an "all" covering them)
    std::function<void()> forward;               // once, when written or known to wait (see invalidate())
    Clock::time_point sent{};
  };
  std::deque<MarkerJob> markers_;  // not yet acknowledged; the first markers_in_flight_ are sent
  std::size_t markers_in_flight_ = 0;
  bool markers_lost_ = false;  // the queue overflowed: write "all" next
  std::vector<std::function<void()>> lost_written_;  // the overflowed jobs': called when that "all" is written
};

}  // namespace cachalot::cluster
