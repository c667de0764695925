#include "metrics/metrics.h"

#include "cache/l2_record.h"

#include <fmt/format.h>

#include <algorithm>

namespace cachalot::metrics {

std::string_view to_string(Result r) noexcept {
  switch (r) {
    case Result::Hit: return "hit";
    case Result::Stale: return "stale";
    case Result::StaleError: return "stale-error";
    case Result::StaleDisconnect: return "stale-disconnect";
    case Result::Revalidated: return "revalidated";
    case Result::Miss: return "miss";
    case Result::Coalesced: return "coalesced";
    case Result::Pass: return "pass";
    case Result::Error: return "error";
    case Result::Purge: return "purge";
    case Result::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(UpstreamErrorKind k) noexcept {
  switch (k) {
    case UpstreamErrorKind::Connect: return "connect";
    case UpstreamErrorKind::ConnectTimeout: return "connect-timeout";
    case UpstreamErrorKind::Reset: return "reset";
    case UpstreamErrorKind::Timeout: return "timeout";
    case UpstreamErrorKind::BadResponse: return "bad-response";
    case UpstreamErrorKind::Write: return "write";
    case UpstreamErrorKind::Tls: return "tls";
    case UpstreamErrorKind::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(PurgeKind k) noexcept {
  switch (k) {
    case PurgeKind::Url: return "url";
    case PurgeKind::Prefix: return "prefix";
    case PurgeKind::Tag: return "tag";
    case PurgeKind::All: return "all";
    case PurgeKind::Route: return "route";
    case PurgeKind::Method: return "method";
    case PurgeKind::Partition: return "partition";
    case PurgeKind::kCount: break;
  }
  return "unknown";
}

void Histogram::observe(double s) noexcept {
  std::size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  sum_us.fetch_add(static_cast<uint64_t>(s * 1e6), std::memory_order_relaxed);
}

std::string_view to_string(PartitionOutcome o) noexcept {
  switch (o) {
    case PartitionOutcome::Hit: return "hit";
    case PartitionOutcome::NoToken: return "no-token";
    case PartitionOutcome::InvalidToken: return "invalid-token";
    case PartitionOutcome::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(EvictionReason r) noexcept {
  switch (r) {
    case EvictionReason::Memory: return "memory";
    case EvictionReason::VariantCap: return "variant-cap";
    case EvictionReason::VaryChanged: return "vary-changed";
    case EvictionReason::Partition: return "partition-budget";
    case EvictionReason::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(StoreDecisionExtra d) noexcept {
  switch (d) {
    case StoreDecisionExtra::Revalidated: return "revalidated";
    case StoreDecisionExtra::Unshared: return "unshared";
    case StoreDecisionExtra::Invalidated: return "invalidated";
    case StoreDecisionExtra::HeadUpdated: return "head-update";
    case StoreDecisionExtra::HeadMarkedStale: return "head-mark-stale";
    case StoreDecisionExtra::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(ClusterCounter c) noexcept {
  switch (c) {
    case ClusterCounter::Published: return "published";
    case ClusterCounter::Applied: return "applied";
    case ClusterCounter::Own: return "own";
    case ClusterCounter::Duplicate: return "duplicate";
    case ClusterCounter::Invalid: return "invalid";
    case ClusterCounter::Dropped: return "dropped";
    case ClusterCounter::Reconnects: return "reconnects";
    case ClusterCounter::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(L2Miss m) noexcept {
  switch (m) {
    case L2Miss::Absent: return "absent";
    case L2Miss::Stale: return "stale";
    case L2Miss::Vary: return "vary";
    case L2Miss::Refused: return "refused";
    case L2Miss::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(L2Error e) noexcept {
  switch (e) {
    case L2Error::Timeout: return "timeout";
    case L2Error::Down: return "down";
    case L2Error::Busy: return "busy";
    case L2Error::Reply: return "reply";
    case L2Error::Corrupt: return "corrupt";
    case L2Error::Pending: return "pending";
    case L2Error::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(SnapshotMetrics::LoadStatus s) noexcept {
  switch (s) {
    case SnapshotMetrics::LoadStatus::Disabled: return "disabled";
    case SnapshotMetrics::LoadStatus::Missing: return "missing";
    case SnapshotMetrics::LoadStatus::Rejected: return "rejected";
    case SnapshotMetrics::LoadStatus::Loaded: return "loaded";
    case SnapshotMetrics::LoadStatus::kCount: break;
  }
  return "unknown";
}

std::string_view to_string(ResyncReason r) noexcept {
  switch (r) {
    case ResyncReason::Trimmed: return "trimmed";
    case ResyncReason::Gap: return "gap";
    case ResyncReason::Unreadable: return "unreadable";
    case ResyncReason::kCount: break;
  }
  return "unknown";
}

uint64_t ClusterMetrics::resync_count() const noexcept {
  uint64_t n = 0;
  for (const auto& r : resyncs) n += r.load(std::memory_order_relaxed);
  return n;
}

uint32_t RouteIds::id(std::string_view name) {
  std::lock_guard lk(mu_);
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<uint32_t>(i);
  if (names_.size() + 1 >= kMaxRoutes) {
    if (names_.size() + 1 == kMaxRoutes) names_.emplace_back("other");
    return static_cast<uint32_t>(kMaxRoutes - 1);
  }
  names_.emplace_back(name);
  return static_cast<uint32_t>(names_.size() - 1);
}

std::vector<std::string> RouteIds::names() const {
  std::lock_guard lk(mu_);
  return names_;
}

Metrics::Metrics(std::size_t workers) {
  for (std::size_t i = 0; i < workers + 1; ++i) workers_.push_back(std::make_unique<WorkerMetrics>());
}

void Metrics::add_gauge(std::string name, std::string help, std::function<double()> read) {
  gauges_.push_back({std::move(name), std::move(help), std::move(read)});
}

namespace {

template <class F>
uint64_t sum(const std::vector<std::unique_ptr<WorkerMetrics>>& ws, F f) {
  uint64_t s = 0;
  for (const auto& w : ws) s += f(*w).load(std::memory_order_relaxed);
  return s;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Buckets, sum and count of the histograms `parts` (one per worker, or just one).
void histogram_parts(std::string& out, std::string_view name, std::string_view help,
                     const std::vector<const Histogram*>& parts) {
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
    for (const Histogram* h : parts) cumulative += h->buckets[i].load(std::memory_order_relaxed);
    if (i < Histogram::kBounds.size())
      fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\"}} {}\n", name, Histogram::kBounds[i], cumulative);
    else
      fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  }
  uint64_t count = 0, sum_us = 0;
  for (const Histogram* h : parts) {
    count += h->count.load(std::memory_order_relaxed);
    sum_us += h->sum_us.load(std::memory_order_relaxed);
  }
  fmt::format_to(std::back_inserter(out), "{}_sum {}\n{}_count {}\n", name, static_cast<double>(sum_us) / 1e6, name,
                 count);
}

void histogram(std::string& out, const std::vector<std::unique_ptr<WorkerMetrics>>& ws, std::string_view name,
               std::string_view help, Histogram WorkerMetrics::*h) {
  std::vector<const Histogram*> parts;
  for (const auto& w : ws) parts.push_back(&((*w).*h));
  histogram_parts(out, name, help, parts);
}

// cachalot_cluster_*: only for a node with a cluster: section.
void render_cluster(std::string& out, const ClusterMetrics& c) {
  if (!c.enabled.load(std::memory_order_relaxed)) return;
  auto one = [&out](std::string_view name, std::string_view type, std::string_view help, auto value) {
    header(out, name, type, help);
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  };
  using C = ClusterCounter;
  one("cachalot_cluster_connected", "gauge", "1 while the invalidation bus is connected to Redis and reading.",
      c.connected.load(std::memory_order_relaxed));
  one("cachalot_cluster_events_published_total", "counter", "Local invalidations Redis acknowledged.", c.get(C::Published));
  one("cachalot_cluster_events_applied_total", "counter", "Other nodes' invalidations applied here.", c.get(C::Applied));
  header(out, "cachalot_cluster_events_skipped_total", "counter", "Stream entries read but not applied, by reason.");
  for (C k : {C::Own, C::Duplicate, C::Invalid})
    fmt::format_to(std::back_inserter(out), "cachalot_cluster_events_skipped_total{{reason=\"{}\"}} {}\n", to_string(k),
                   c.get(k));
  one("cachalot_cluster_events_queued", "gauge", "Local invalidations waiting for Redis.",
      c.queued.load(std::memory_order_relaxed));
  one("cachalot_cluster_events_dropped_total", "counter", "Local invalidations dropped: the queue was full.",
      c.get(C::Dropped));
  one("cachalot_cluster_reconnects_total", "counter", "Times the bus got its Redis connection back.",
      c.get(C::Reconnects));
  header(out, "cachalot_cluster_resyncs_total", "counter", "Soft purges of everything because events were lost, by reason.");
  for (std::size_t r = 0; r < static_cast<size_t>(ResyncReason::kCount); ++r)
    fmt::format_to(std::back_inserter(out), "cachalot_cluster_resyncs_total{{reason=\"{}\"}} {}\n",
                   to_string(static_cast<ResyncReason>(r)), c.resyncs[r].load(std::memory_order_relaxed));
  one("cachalot_cluster_lag_last_seconds", "gauge", "Age of the last applied event (now - its publish time).",
      static_cast<double>(c.lag_last_us.load(std::memory_order_relaxed)) / 1e6);
  histogram_parts(out, "cachalot_cluster_lag_seconds", "Age of applied events (now - publish time).", {&c.lag});
}

static_assert(std::tuple_size_v<decltype(L2Metrics::skipped)> >= static_cast<size_t>(cache::l2::Refusal::kCount));

// cachalot_l2_*: only with a cache.l2 section.
void render_l2(std::string& out, const L2Metrics& m) {
  if (!m.enabled.load(std::memory_order_relaxed)) return;
  auto get = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  auto one = [&out](std::string_view name, std::string_view type, std::string_view help, auto value) {
    header(out, name, type, help);
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  };
  one("cachalot_l2_connected", "gauge", "Worker connections to the L2 Redis that are up.", get(m.connected));
  one("cachalot_l2_hits_total", "counter", "Local misses answered from L2.", get(m.hits));
  header(out, "cachalot_l2_misses_total", "counter", "L2 lookups that found nothing usable, by reason.");
  for (std::size_t i = 0; i < m.misses.size(); ++i)
    fmt::format_to(std::back_inserter(out), "cachalot_l2_misses_total{{reason=\"{}\"}} {}\n",
                   to_string(static_cast<L2Miss>(i)), get(m.misses[i]));
  one("cachalot_l2_invalidated_total", "counter", "L2 records an invalidation marker voided at lookup.",
      get(m.invalidated));
  header(out, "cachalot_l2_errors_total", "counter", "L2 lookups (answered by the origin instead) and stores that failed or were not sent, by kind.");
  for (std::size_t i = 0; i < m.errors.size(); ++i)
    fmt::format_to(std::back_inserter(out), "cachalot_l2_errors_total{{kind=\"{}\"}} {}\n",
                   to_string(static_cast<L2Error>(i)), get(m.errors[i]));
  one("cachalot_l2_stores_total", "counter", "Records stored in L2 (acknowledged by Redis).", get(m.stores));
  header(out, "cachalot_l2_skipped_total", "counter", "Stored locally but kept out of L2, by reason.");
  for (std::size_t i = 1; i < static_cast<size_t>(cache::l2::Refusal::kCount); ++i)
    fmt::format_to(std::back_inserter(out), "cachalot_l2_skipped_total{{reason=\"{}\"}} {}\n",
                   cache::l2::to_string(static_cast<cache::l2::Refusal>(i)), get(m.skipped[i]));
  one("cachalot_l2_markers_total", "counter", "Invalidations whose L2 markers Redis acknowledged.", get(m.markers));
  header(out, "cachalot_l2_waits_total", "counter",
         "Lookups that waited for another node's fill of the key (fleet-wide coalescing), by result.");
  fmt::format_to(std::back_inserter(out), "cachalot_l2_waits_total{{result=\"announced\"}} {}\n", get(m.waits_filled));
  fmt::format_to(std::back_inserter(out), "cachalot_l2_waits_total{{result=\"timeout\"}} {}\n",
                 get(m.waits_timed_out));
}

}  // namespace

std::string Metrics::render() const {
  std::string out;
  out.reserve(8192);
  const auto& ws = workers_;

  header(out, "cachalot_requests_total", "counter",
         "Requests by how they were answered (the Cache-Status names) and status class.");
  static constexpr std::string_view kClass[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (std::size_t r = 0; r < static_cast<size_t>(Result::kCount); ++r)
    for (std::size_t c = 0; c < 6; ++c) {
      uint64_t v = sum(ws, [r, c](WorkerMetrics& w) -> auto& { return w.requests[r][c]; });
      // Every result appears (with 2xx) so dashboards see the series from the start.
      if (v == 0 && c != 2) continue;
      fmt::format_to(std::back_inserter(out), "cachalot_requests_total{{result=\"{}\",class=\"{}\"}} {}\n",
                     to_string(static_cast<Result>(r)), kClass[c], v);
    }

  header(out, "cachalot_route_requests_total", "counter", "Requests that matched a route, by route and result.");
  {
    auto names = routes_.names();
    for (std::size_t id = 0; id < names.size(); ++id)
      for (std::size_t r = 0; r < WorkerMetrics::kResults; ++r) {
        uint64_t v = sum(ws, [id, r](WorkerMetrics& w) -> auto& { return w.by_route[id][r]; });
        if (v)
          fmt::format_to(std::back_inserter(out), "cachalot_route_requests_total{{route=\"{}\",result=\"{}\"}} {}\n",
                         names[id], to_string(static_cast<Result>(r)), v);
      }
  }

  {
    // Two families from one table: each family's samples follow its own header.
    auto names = routes_.names();
    std::string hits, rejected;
    constexpr auto kHit = static_cast<std::size_t>(PartitionOutcome::Hit);
    for (std::size_t id = 0; id < names.size(); ++id)
      for (std::size_t o = 0; o < static_cast<std::size_t>(PartitionOutcome::kCount); ++o) {
        uint64_t v = sum(ws, [id, o](WorkerMetrics& w) -> auto& { return w.partitions[id][o]; });
        if (!v) continue;
        if (o == kHit)
          fmt::format_to(std::back_inserter(hits), "cachalot_partition_hits_total{{route=\"{}\"}} {}\n", names[id], v);
        else
          fmt::format_to(std::back_inserter(rejected),
                         "cachalot_partition_rejected_total{{route=\"{}\",reason=\"{}\"}} {}\n", names[id],
                         to_string(static_cast<PartitionOutcome>(o)), v);
      }
    header(out, "cachalot_partition_hits_total", "counter",
           "Requests served from their own partition (route partition:), by route.");
    out += hits;
    header(out, "cachalot_partition_rejected_total", "counter",
           "Requests on a partitioned route without a valid bearer token (forwarded, never stored), by route and reason.");
    out += rejected;
  }

  header(out, "cachalot_upstream_errors_total", "counter", "Failures talking to the origin, by kind.");
  for (std::size_t k = 0; k < static_cast<size_t>(UpstreamErrorKind::kCount); ++k)
    fmt::format_to(std::back_inserter(out), "cachalot_upstream_errors_total{{kind=\"{}\"}} {}\n",
                   to_string(static_cast<UpstreamErrorKind>(k)),
                   sum(ws, [k](WorkerMetrics& w) -> auto& { return w.upstream_errors[k]; }));

  header(out, "cachalot_purges_total", "counter", "Purge requests by kind.");
  for (std::size_t k = 0; k < static_cast<size_t>(PurgeKind::kCount); ++k)
    fmt::format_to(std::back_inserter(out), "cachalot_purges_total{{kind=\"{}\"}} {}\n",
                   to_string(static_cast<PurgeKind>(k)), sum(ws, [k](WorkerMetrics& w) -> auto& { return w.purges[k]; }));

  auto simple = [&](std::string_view name, std::string_view type, std::string_view help,
                    std::atomic<uint64_t> WorkerMetrics::*m) {
    header(out, name, type, help);
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, sum(ws, [m](WorkerMetrics& w) -> auto& { return w.*m; }));
  };
  simple("cachalot_client_connections", "gauge", "Open client connections.", &WorkerMetrics::client_connections);
  simple("cachalot_client_connections_total", "counter", "Client connections accepted.",
         &WorkerMetrics::client_connections_total);
  simple("cachalot_upstream_connections", "gauge", "Upstream connections in use.", &WorkerMetrics::upstream_connections);
  simple("cachalot_upstream_idle_connections", "gauge", "Idle pooled upstream connections.",
         &WorkerMetrics::upstream_idle);
  simple("cachalot_upstream_requests_total", "counter", "Requests sent to the origin.", &WorkerMetrics::upstream_requests);
  simple("cachalot_cache_served_bytes_total", "counter", "Body bytes served from the cache.",
         &WorkerMetrics::bytes_from_cache);
  simple("cachalot_origin_served_bytes_total", "counter", "Body bytes relayed from the origin.",
         &WorkerMetrics::bytes_from_origin);
  simple("cachalot_background_refreshes_total", "counter", "Background revalidations started.",
         &WorkerMetrics::background_refreshes);
  simple("cachalot_coalesced_waits_total", "counter", "Requests that waited for another request's fetch.",
         &WorkerMetrics::coalesced_waits);
  simple("cachalot_bad_requests_total", "counter", "Malformed or over-limit requests rejected.",
         &WorkerMetrics::bad_requests);

  header(out, "cachalot_store_decisions_total", "counter", "Why responses were stored or not.");
  for (std::size_t k = 0; k < kStoreReasons; ++k)
    fmt::format_to(std::back_inserter(out), "cachalot_store_decisions_total{{reason=\"{}\"}} {}\n",
                   cache::to_string(static_cast<cache::StoreReason>(k)),
                   sum(ws, [k](WorkerMetrics& w) -> auto& { return w.store_decisions[k]; }));
  for (std::size_t k = 0; k < static_cast<size_t>(StoreDecisionExtra::kCount); ++k)
    fmt::format_to(std::back_inserter(out), "cachalot_store_decisions_total{{reason=\"{}\"}} {}\n",
                   to_string(static_cast<StoreDecisionExtra>(k)),
                   sum(ws, [k](WorkerMetrics& w) -> auto& { return w.store_extra[k]; }));
  header(out, "cachalot_cache_evictions_total", "counter", "Entries removed from the cache, by reason.");
  for (std::size_t k = 0; k < static_cast<size_t>(EvictionReason::kCount); ++k)
    fmt::format_to(std::back_inserter(out), "cachalot_cache_evictions_total{{reason=\"{}\"}} {}\n",
                   to_string(static_cast<EvictionReason>(k)),
                   sum(ws, [k](WorkerMetrics& w) -> auto& { return w.evictions[k]; }));

  for (const auto& g : gauges_) {
    header(out, g.name, "gauge", g.help);
    fmt::format_to(std::back_inserter(out), "{} {}\n", g.name, g.read());
  }

  {
    const SnapshotMetrics& m = snapshot_;
    auto get = [](const auto& a) { return a.load(std::memory_order_relaxed); };
    header(out, "cachalot_snapshot_load_status", "gauge",
           "How the cache.snapshot file was used at start (1 for the one that happened).");
    const auto status = get(m.load_status);
    for (std::size_t i = 0; i < static_cast<size_t>(SnapshotMetrics::LoadStatus::kCount); ++i)
      fmt::format_to(std::back_inserter(out), "cachalot_snapshot_load_status{{status=\"{}\"}} {}\n",
                     to_string(static_cast<SnapshotMetrics::LoadStatus>(i)), status == i ? 1 : 0);
    header(out, "cachalot_snapshot_loaded_objects", "gauge", "Entries loaded from the snapshot at start.");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_loaded_objects {}\n", get(m.loaded_objects));
    header(out, "cachalot_snapshot_loaded_bytes", "gauge", "Bytes (charged) loaded from the snapshot at start.");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_loaded_bytes {}\n", get(m.loaded_bytes));
    header(out, "cachalot_snapshot_skipped_total", "counter",
           "Snapshot records not loaded at start (phase=load) and entries left out of writes (phase=write), by reason.");
    for (std::size_t k = 0; k < SnapshotMetrics::kSkips; ++k) {
      const auto reason = cache::snapshot::to_string(static_cast<cache::snapshot::Skip>(k));
      fmt::format_to(std::back_inserter(out), "cachalot_snapshot_skipped_total{{phase=\"load\",reason=\"{}\"}} {}\n",
                     reason, get(m.load_skipped[k]));
      fmt::format_to(std::back_inserter(out), "cachalot_snapshot_skipped_total{{phase=\"write\",reason=\"{}\"}} {}\n",
                     reason, get(m.write_skipped[k]));
    }
    header(out, "cachalot_snapshot_load_duration_seconds", "gauge", "Time the start spent loading the snapshot.");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_load_duration_seconds {}\n",
                   static_cast<double>(get(m.load_duration_us)) / 1e6);
    header(out, "cachalot_snapshot_writes_total", "counter", "Snapshot writes, by result.");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_writes_total{{result=\"ok\"}} {}\n", get(m.writes_ok));
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_writes_total{{result=\"error\"}} {}\n",
                   get(m.writes_failed));
    header(out, "cachalot_snapshot_written_objects", "gauge", "Entries in the last snapshot written.");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_written_objects {}\n", get(m.written_objects));
    header(out, "cachalot_snapshot_written_bytes", "gauge", "Size of the last snapshot file written.");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_written_bytes {}\n", get(m.written_bytes));
    header(out, "cachalot_snapshot_write_duration_seconds", "gauge", "Time the last snapshot write took.");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_write_duration_seconds {}\n",
                   static_cast<double>(get(m.write_duration_us)) / 1e6);
    header(out, "cachalot_snapshot_last_write_timestamp_seconds", "gauge",
           "Unix time of the last successful snapshot write (0: none yet).");
    fmt::format_to(std::back_inserter(out), "cachalot_snapshot_last_write_timestamp_seconds {}\n",
                   get(m.last_write_unix));
  }

  histogram(out, ws, "cachalot_request_duration_seconds", "Time from request head to response end.",
            &WorkerMetrics::request_duration);
  histogram(out, ws, "cachalot_upstream_duration_seconds", "Origin fetch time for misses and revalidations.",
            &WorkerMetrics::upstream_duration);
  render_cluster(out, cluster_);
  render_l2(out, l2_);
  return out;
}

}  // namespace cachalot::metrics
