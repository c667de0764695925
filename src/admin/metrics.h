// Metrics: Prometheus counters, gauges and histograms with `cachalot_` names.
//
// Each worker thread writes only its own WorkerMetrics (relaxed atomics, no
// sharing of cache lines between workers on the hit path); the admin listener
// sums them when scraped. Labels are fixed enums so every series exists from
// the start and the names match Cache-Status and the logs.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cachalot::admin {

// How a request was answered; the `result` label and the Cache-Status summary.
enum class Result : uint8_t {
  Hit,          // fresh entry served without contacting the origin
  Stale,        // stale entry served (stale-while-revalidate or max-stale)
  StaleError,   // stale entry served because the origin failed (stale-if-error)
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

enum class PurgeKind : uint8_t { Url, Prefix, Tag, All, Route, Method, kCount };
std::string_view to_string(PurgeKind k) noexcept;

// Fixed-bucket histogram (seconds).
struct Histogram {
  static constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,    0.25,  0.5,    1.0,   2.5,   5.0,   10.0};
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets{};  // last = +Inf
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_us{0};
  void observe(double seconds) noexcept;
};

struct alignas(64) WorkerMetrics {
  // Requests by result and status class: [result][class], class 0 = no response sent, 1..5 = 1xx..5xx.
  std::array<std::array<std::atomic<uint64_t>, 6>, static_cast<size_t>(Result::kCount)> requests{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(UpstreamErrorKind::kCount)> upstream_errors{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(PurgeKind::kCount)> purges{};
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
  // Requests by route and result (routes are few: a linear scan under a
  // per-worker mutex that only a scrape contends for).
  std::mutex route_mu;
  std::vector<std::pair<std::string, std::array<uint64_t, static_cast<size_t>(Result::kCount)>>> by_route;
  void count_route(std::string_view route, Result r) {
    std::lock_guard lk(route_mu);
    for (auto& [name, counts] : by_route)
      if (name == route) {
        ++counts[static_cast<size_t>(r)];
        return;
      }
    by_route.emplace_back(std::string(route), std::array<uint64_t, static_cast<size_t>(Result::kCount)>{});
    ++by_route.back().second[static_cast<size_t>(r)];
  }
  Histogram request_duration;
  Histogram upstream_duration;  // misses: request sent -> response complete

  void count(Result r, int status) noexcept {
    int c = status / 100;
    if (c < 1 || c > 5) c = 0;
    requests[static_cast<size_t>(r)][static_cast<size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  }
};

// Named counters that the store and policy layers produce (verdict names are
// strings owned by those layers): why stored / not stored, evictions by reason.
class LabeledCounters {
 public:
  void add(std::string_view label, uint64_t n = 1);
  std::vector<std::pair<std::string, uint64_t>> snapshot() const;

 private:
  mutable std::atomic_flag lock_ = ATOMIC_FLAG_INIT;
  std::vector<std::pair<std::string, uint64_t>> values_;
};

class Metrics {
 public:
  explicit Metrics(std::size_t workers);
  WorkerMetrics& worker(std::size_t i) noexcept { return *workers_[i]; }
  std::size_t workers() const noexcept { return workers_.size(); }
  LabeledCounters store_verdicts;   // cachalot_store_decisions_total{reason}
  LabeledCounters evictions;        // cachalot_cache_evictions_total{reason}

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
};

}  // namespace cachalot::admin
