// Purger: every invalidation goes through here, whoever asked for it: the
// admin API (URL, prefix, tag, all, route, partition; soft or hard), the PURGE method,
// the responses to unsafe methods (RFC 9111 §4.4), and remote nodes (the
// cluster bus, src/cluster).
//
// Order, for each invalidation:
//   1. record it in the InvalidationLog (a sequence number): fills whose
//      origin request was sent before it will not publish what it matches
//      (a soft purge: they publish it stale);
//   2. detach matching fills from the Coalescer: a request arriving after
//      the invalidation must not be answered from such a fill;
//   3. purge the store (remove, or mark stale).
// So an invalidation voids every response whose origin request was sent
// before it, whether that response is stored, arriving, or not yet answered.
// Then, for a local invalidation only:
//   4. write its markers to the shared L2 store (cache.l2), hard or soft
//      alike: the L2 records it matches become unservable on every node
//      (only the node that applied it locally writes them). Until Redis
//      has them, this node's L2 lookups of keys it may match go to the
//      origin (l2_may_look_up; the rule is pending from before step 1);
//   5. hand it to the publisher (if any), which tells the other nodes; they
//      apply it through their own Purger as Source::Remote, which does not
//      publish again. With L2, once the markers are written (or known to
//      wait: Redis away or slower than cache.l2.timeout), so that a node
//      that applies the event finds them in Redis.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cache/coalescer.h"
#include "cache/invalidation_log.h"
#include "cache/purge.h"
#include "cache/store.h"
#include "http/message.h"

namespace cachalot::proxy {

class App;
class Runtime;

// Where local invalidations go besides this node: the cluster bus
// (src/cluster) publishes them to the other nodes. proxy/ knows only this
// interface, not Redis. publish() is called on whichever thread applied the
// invalidation (a worker, the admin thread) and must not block.
class InvalidationPublisher {
 public:
  virtual ~InvalidationPublisher() = default;
  virtual void publish(const cache::Purge& p) = 0;
};

// Where local invalidations go in the shared L2 store (cache.l2): marker
// fields (cache/l2_record.h marker_fields()) written to Redis, so that every
// node stops serving the L2 records they match. Any thread; must not block.
class L2Invalidator {
 public:
  virtual ~L2Invalidator() = default;
  // `written` is called once Redis has the markers; `forward` exactly once,
  // when they are written or known to wait (Redis unreachable or slower than
  // cache.l2.timeout). Both may run on another thread than the caller's.
  virtual void invalidate(std::vector<std::string> marker_fields, std::function<void()> written,
                          std::function<void()> forward) = 0;
};

class Purger {
 public:
  enum class Source : uint8_t {
    Local,   // asked for on this node: applied, then published
    Remote,  // another node's, read from the bus: applied only
  };

  Purger(App& app, cache::Store& store, cache::Coalescer& coalescer, cache::InvalidationLog& log)
      : app_(app), store_(store), coalescer_(coalescer), log_(log) {}

  // Applies one invalidation. Url values are keyed with their route's key
  // options (sort_query, ignore_params) from `rt`; every variant goes,
  // including those split by the route's key headers. Not counted in the
  // metrics: the caller counts by its own kind.
  cache::PurgeOutcome apply(const cache::Purge& p, const Runtime& rt, Source source = Source::Local);

  // Set once, before the workers start (App::set_publisher); null: none.
  void set_publisher(InvalidationPublisher* p) noexcept { publisher_.store(p, std::memory_order_release); }
  // Set once, before the workers start (App::set_l2); null: no L2.
  void set_l2(L2Invalidator* l2) noexcept { l2_.store(l2, std::memory_order_release); }

  // False while a local invalidation that may match `primary_key` has L2
  // markers Redis has not acknowledged: an L2 lookup sent now could still
  // find the record it voids, so it goes to the origin instead.
  bool l2_may_look_up(std::string_view primary_key) const;

  // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the
  // target URI and same-origin Location / Content-Location.
  void after_unsafe(const http::RequestHead& req, int status, const http::HeaderMap& resp_headers,
                    std::string_view authority, const Runtime& rt);

 private:
  App& app_;
  cache::Store& store_;
  cache::Coalescer& coalescer_;
  cache::InvalidationLog& log_;
  std::atomic<InvalidationPublisher*> publisher_{nullptr};
  std::atomic<L2Invalidator*> l2_{nullptr};
  // Local invalidations whose markers are not in Redis yet, by id. Bounded:
  // past kMaxL2Pending, one All rule (id 0) stands for the rest until Redis
  // has their markers (the L2 client writes an "all" marker then too).
  static constexpr std::size_t kMaxL2Pending = 10000;
  mutable std::mutex l2_pending_mu_;
  std::map<uint64_t, cache::InvalidationLog::Rule> l2_pending_;
  uint64_t l2_pending_next_ = 1;
};

}  // namespace cachalot::proxy
