// Metrics: Prometheus counters, gauges and histograms with `cachalot_` names.
//
// Each worker thread writes only its own WorkerMetrics (relaxed atomics, no
// sharing of cache lines between workers on the hit path); a scrape sums them.
// Every label is an enum, so every series exists from the start and the names
// are the ones Cache-Status and the logs use. Nothing here locks on the
// request path: route counters are indexed by a route id assigned when a
// config snapshot is built (RouteIds), not looked up by name per request.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cache/snapshot.h"
#include "cache/storable.h"

namespace cachalot::metrics {

// How a request was answered; the `result` label and the Cache-Status summary.
enum class Result : uint8_t {
  Hit,          // fresh entry served without contacting the origin
  Stale,        // stale entry served (stale-while-revalidate or max-stale)
  StaleError,   // stale entry served because the origin failed (stale-if-error)
  StaleDisconnect,  // stale entry served because the origin could not be reached (RFC 9111 §4.2.4)
  Revalidated,  // entry validated with the origin (304) and served
  Miss,         // fetched from the origin (stored or not) for a cacheable request
  Coalesced,    // answered from another request's fetch
  Pass,         // not a cache candidate (method, bypass route, Range...)
  Error,        // proxy-generated error (bad request, 502, 504...)
  Purge,        // PURGE method request
  kCount
};
std::string_view to_string(Result r) noexcept;

enum class UpstreamErrorKind : uint8_t { Connect, ConnectTimeout, Reset, Timeout, BadResponse, Write, Tls, kCount };
std::string_view to_string(UpstreamErrorKind k) noexcept;

enum class PurgeKind : uint8_t { Url, Prefix, Tag, All, Route, Method, Partition, kCount };
std::string_view to_string(PurgeKind k) noexcept;

// Why entries left the store other than by purge.
enum class EvictionReason : uint8_t {
  Memory,       // the eviction policy made room within cache.max_memory
  VariantCap,   // more than cache.max_variants variants of one URL
  VaryChanged,  // the origin changed a URL's Vary list: the old variants went
  Partition,    // "partition-budget": a partition's oldest entries, to keep it within partition_max_bytes
  kCount
};
std::string_view to_string(EvictionReason r) noexcept;

// cachalot_store_decisions_total{reason}: every cache::StoreReason, plus the
// outcomes of revalidation that are not storable() verdicts.
enum class StoreDecisionExtra : uint8_t {
  Revalidated,  // a 304 freshened the stored entry
  Unshared,     // a 304 made the stored response unstorable: the entry was removed
  Invalidated,  // an invalidation issued while the fill was in flight voided it
  HeadUpdated,      // a HEAD response updated the stored GET response (RFC 9111 §4.3.5)
  HeadMarkedStale,  // a HEAD response that differs made the stored GET response stale (§4.3.5)
  kCount
};
std::string_view to_string(StoreDecisionExtra d) noexcept;
inline constexpr std::size_t kStoreReasons = static_cast<std::size_t>(cache::StoreReason::kCount);

// Fixed-bucket histogram (seconds).
struct Histogram {
  static constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,    0.25,  0.5,    1.0,   2.5,   5.0,   10.0};
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets{};  // last = +Inf
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_us{0};
  void observe(double seconds) noexcept;
};

// The invalidation bus (src/cluster). One writer: the bus's loop; relaxed
// atomics so a scrape on the admin thread reads them without locks.
enum class ClusterCounter : uint8_t {
  Published,   // local events Redis acknowledged (XADD)
  Applied,     // remote invalidations applied here
  Own,         // this node's own events read back from the stream (skipped)
  Duplicate,   // a remote event seen before (a republish after a lost reply; skipped)
  Invalid,     // entries this node cannot read (newer version, malformed): each one resyncs
  Dropped,     // local events dropped because the queue was full (the other nodes resync)
  Reconnects,  // times the bus got its connection back after losing it
  kCount
};
std::string_view to_string(ClusterCounter c) noexcept;

// Why a node soft-purged everything (a resync): events it should have applied are gone.
enum class ResyncReason : uint8_t {
  Trimmed,     // its last id is older than the stream's first entry (away longer than max_events)
  Gap,         // a sender's sequence skipped numbers (its queue overflowed, or Redis lost entries)
  Unreadable,  // an entry it cannot read: it may have been an invalidation
  kCount
};
std::string_view to_string(ResyncReason r) noexcept;

struct ClusterMetrics {
  std::atomic<bool> enabled{false};  // rendered only for a node with a cluster: section
  std::array<std::atomic<uint64_t>, static_cast<size_t>(ClusterCounter::kCount)> counters{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(ResyncReason::kCount)> resyncs{};
  std::atomic<uint64_t> queued{0};     // gauge: local events waiting for Redis
  std::atomic<uint64_t> connected{0};  // gauge: 1 while both connections are up and reading
  std::atomic<int64_t> lag_last_us{0}; // gauge: now - event time of the last applied event
  Histogram lag;                       // now - event time (publisher's wall clock), applied events

  void inc(ClusterCounter c, uint64_t n = 1) noexcept {
    counters[static_cast<size_t>(c)].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t get(ClusterCounter c) const noexcept { return counters[static_cast<size_t>(c)].load(std::memory_order_relaxed); }
  void resync(ResyncReason r) noexcept { resyncs[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t resync_count() const noexcept;
};

// The shared L2 store (cache.l2, src/cluster/l2_client.h). Written by every
// worker (relaxed atomics: a miss path costs one increment), read by scrapes.
enum class L2Miss : uint8_t {
  Absent,   // "absent": no record for the key
  Stale,    // "stale": the record is past its lifetime (and not inside stale-while-revalidate)
  Vary,     // "vary": the record is another variant (its Vary values differ from this request's)
  Refused,  // "refused": the admission gate refused it for this request
  kCount
};
std::string_view to_string(L2Miss m) noexcept;
enum class L2Error : uint8_t {
  Timeout,  // "timeout": no reply within cache.l2.timeout (the origin answered)
  Down,     // "down": no connection to Redis (reconnecting)
  Busy,     // "busy": too many commands waiting on the connection
  Reply,    // "reply": an error reply or one not understood
  Corrupt,  // "corrupt": a record that does not decode (wrong magic, version, checksum)
  Pending,  // "pending": a local invalidation that may match has markers Redis does not have yet
  kCount
};
std::string_view to_string(L2Error e) noexcept;

struct L2Metrics {
  std::atomic<bool> enabled{false};  // rendered only with a cache.l2 section
  std::atomic<uint64_t> hits{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(L2Miss::kCount)> misses{};
  std::atomic<uint64_t> invalidated{0};  // records a marker voided at lookup (deleted)
  std::array<std::atomic<uint64_t>, static_cast<size_t>(L2Error::kCount)> errors{};
  std::atomic<uint64_t> stores{0};       // records Redis acknowledged
  std::array<std::atomic<uint64_t>, 8> skipped{};  // by cache::l2::Refusal (index), stored locally only
  std::atomic<uint64_t> markers{0};      // invalidations whose markers Redis acknowledged
  // fleet-wide coalescing: lookups that found another node filling the key and waited
  std::atomic<uint64_t> waits_filled{0};     // ... until its fill (or give-up) was announced
  std::atomic<uint64_t> waits_timed_out{0};  // ... for cache.l2.coalesce_wait, in vain
  std::atomic<int64_t> connected{0};     // gauge: worker connections up

  static void inc(std::atomic<uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }
  void miss(L2Miss m) noexcept { inc(misses[static_cast<size_t>(m)]); }
  void error(L2Error e) noexcept { inc(errors[static_cast<size_t>(e)]); }
};

// Route ids for per-route counters: a route name gets the same id for the
// life of the process (reloads keep it). Ids are handed out when a config
// snapshot is built; past kMaxRoutes names, routes share the last id
// ("other"), so a config churning route names cannot grow memory.
class RouteIds {
 public:
  static constexpr std::size_t kMaxRoutes = 256;
  uint32_t id(std::string_view name);
  std::vector<std::string> names() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> names_;
};

inline constexpr uint32_t kNoRoute = UINT32_MAX;

// What a partitioned route (route partition:) did with a request's token.
enum class PartitionOutcome : uint8_t {
  Hit,           // served from the request's partition (fresh or stale)
  NoToken,       // "no-token": no bearer token; forwarded, nothing stored or served
  InvalidToken,  // "invalid-token": it did not verify (signature, exp, iss, aud, claim...); same
  kCount
};
std::string_view to_string(PartitionOutcome o) noexcept;

struct alignas(64) WorkerMetrics {
  static constexpr std::size_t kResults = static_cast<std::size_t>(Result::kCount);
  // Requests by result and status class: [result][class], class 0 = no response sent, 1..5 = 1xx..5xx.
  std::array<std::array<std::atomic<uint64_t>, 6>, kResults> requests{};
  std::array<std::array<std::atomic<uint64_t>, kResults>, RouteIds::kMaxRoutes> by_route{};
  std::array<std::array<std::atomic<uint64_t>, static_cast<size_t>(PartitionOutcome::kCount)>, RouteIds::kMaxRoutes>
      partitions{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(UpstreamErrorKind::kCount)> upstream_errors{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(PurgeKind::kCount)> purges{};
  std::array<std::atomic<uint64_t>, kStoreReasons> store_decisions{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(StoreDecisionExtra::kCount)> store_extra{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(EvictionReason::kCount)> evictions{};
  std::atomic<uint64_t> client_connections{0};      // gauge
  std::atomic<uint64_t> client_connections_total{0};
  std::atomic<uint64_t> upstream_connections{0};    // gauge (checked out)
  std::atomic<uint64_t> upstream_idle{0};           // gauge
  std::atomic<uint64_t> upstream_requests{0};
  std::atomic<uint64_t> bytes_from_cache{0};
  std::atomic<uint64_t> bytes_from_origin{0};
  std::atomic<uint64_t> background_refreshes{0};
  std::atomic<uint64_t> coalesced_waits{0};
  std::atomic<uint64_t> bad_requests{0};
  Histogram request_duration;
  Histogram upstream_duration;  // misses: request sent -> response complete

  static void inc(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept { c.fetch_add(n, std::memory_order_relaxed); }
  void count(Result r, int status) noexcept {
    int c = status / 100;
    if (c < 1 || c > 5) c = 0;
    inc(requests[static_cast<size_t>(r)][static_cast<size_t>(c)]);
  }
  void count_route(uint32_t route_id, Result r) noexcept {
    if (route_id < RouteIds::kMaxRoutes) inc(by_route[route_id][static_cast<size_t>(r)]);
  }
  void partition(uint32_t route_id, PartitionOutcome o) noexcept {
    if (route_id < RouteIds::kMaxRoutes) inc(partitions[route_id][static_cast<size_t>(o)]);
  }
  void upstream_error(UpstreamErrorKind k) noexcept { inc(upstream_errors[static_cast<size_t>(k)]); }
  void purge(PurgeKind k) noexcept { inc(purges[static_cast<size_t>(k)]); }
  void store_decision(cache::StoreReason r) noexcept { inc(store_decisions[static_cast<size_t>(r)]); }
  void store_decision(StoreDecisionExtra d) noexcept { inc(store_extra[static_cast<size_t>(d)]); }
  void evicted(EvictionReason r, uint64_t n) noexcept {
    if (n) inc(evictions[static_cast<size_t>(r)], n);
  }
};

// Warm restarts (cache.snapshot): the load at start and the writes. Rare
// events, written by the thread doing them; read by scrapes.
struct SnapshotMetrics {
  enum class LoadStatus : uint8_t {
    Disabled,  // cache.snapshot.path is ""
    Missing,   // no file (first start, or it was removed)
    Rejected,  // the file was damaged or foreign: the cache started cold
    Loaded,    // the file was read (loaded_objects may still be 0)
    kCount
  };
  static constexpr std::size_t kSkips = static_cast<std::size_t>(cache::snapshot::Skip::kCount);
  std::atomic<uint8_t> load_status{static_cast<uint8_t>(LoadStatus::Disabled)};
  std::atomic<uint64_t> loaded_objects{0}, loaded_bytes{0};
  std::array<std::atomic<uint64_t>, kSkips> load_skipped{};   // records not loaded, by reason
  std::array<std::atomic<uint64_t>, kSkips> write_skipped{};  // entries left out of writes (expired, invalidated)
  std::atomic<uint64_t> load_duration_us{0};
  std::atomic<uint64_t> writes_ok{0}, writes_failed{0};
  std::atomic<uint64_t> written_objects{0}, written_bytes{0};  // the last successful write
  std::atomic<uint64_t> write_duration_us{0};                   // the last successful write
  std::atomic<int64_t> last_write_unix{0};                      // 0 = none yet
};
std::string_view to_string(SnapshotMetrics::LoadStatus s) noexcept;

class Metrics {
 public:
  // `workers` proxy workers, plus one more slot for the admin thread and other
  // writers outside the workers (extra()).
  explicit Metrics(std::size_t workers);
  WorkerMetrics& worker(std::size_t i) noexcept { return *workers_[i]; }
  WorkerMetrics& extra() noexcept { return *workers_.back(); }
  RouteIds& routes() noexcept { return routes_; }
  ClusterMetrics& cluster() noexcept { return cluster_; }
  const ClusterMetrics& cluster() const noexcept { return cluster_; }
  L2Metrics& l2() noexcept { return l2_; }
  const L2Metrics& l2() const noexcept { return l2_; }
  SnapshotMetrics& snapshot() noexcept { return snapshot_; }
  const SnapshotMetrics& snapshot() const noexcept { return snapshot_; }

  // Gauges read at scrape time (store objects/bytes...).
  struct Gauge {
    std::string name, help;
    std::function<double()> read;
  };
  void add_gauge(std::string name, std::string help, std::function<double()> read);

  std::string render() const;  // Prometheus text exposition format 0.0.4

 private:
  std::vector<std::unique_ptr<WorkerMetrics>> workers_;
  std::vector<Gauge> gauges_;
  RouteIds routes_;
  ClusterMetrics cluster_;
  L2Metrics l2_;
  SnapshotMetrics snapshot_;
};

}  // namespace cachalot::metrics
