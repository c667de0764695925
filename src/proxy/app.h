// App: process-wide state shared by the workers, and the workers themselves.
//
// Threads: one io_context per worker thread. Shared state is either
// immutable (the Runtime snapshot of the config, swapped whole on reload),
// internally synchronized (Store, Coalescer, InvalidationLog), or per-worker
// (UpstreamPool, WorkerMetrics). A connection lives on one worker for its
// whole life, so per-connection state needs no locks.
#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "auth/jwt.h"
#include "cache/coalescer.h"
#include "cache/invalidation_log.h"
#include "cache/purge.h"
#include "cache/store.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "net/upstream.h"
#include "proxy/l2_tier.h"
#include "proxy/purger.h"
#include "proxy/runtime.h"
#include "proxy/snapshotter.h"

namespace cachalot::proxy {

class Session;
class App;

struct Worker {
  Worker(App& app, std::size_t id);
  ~Worker();
  App& app;
  std::size_t id;
  net::WatchdogSet watchdogs;  // declared before ioc: outlives the sessions the ioc destroys
  // One thread runs it and only that thread touches its sockets and timers;
  // other threads only post to it. So the reactor needs no locks (the
  // scheduler, which posts go through, keeps its own).
  asio::io_context ioc{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::unique_ptr<net::UpstreamPool> pool;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors;
  std::vector<std::string> acceptor_names;  // ListenerConfig::text of each acceptor
  std::vector<Session*> sessions;           // live sessions on this worker (for drain)
  std::size_t background_refreshes = 0;     // in flight on this worker
  std::size_t fetches_in_flight = 0;        // origin fetches (misses, passes, refreshes) on this worker
  // Entries this worker recently asked to refresh (pointer identity only; never dereferenced).
  std::array<std::pair<const void*, std::chrono::steady_clock::time_point>, 8> recent_refreshes{};
  std::size_t recent_refresh_next = 0;
  // Requests waiting for a fetch slot (upstream.max_concurrent_misses); woken in order.
  std::deque<std::weak_ptr<asio::steady_timer>> fetch_waiters;
  std::thread thread;
  metrics::WorkerMetrics& metrics;
  // Partition tokens this worker verified (a user's next request skips the signature check).
  auth::VerifiedTokens tokens;
  L2Tier* l2 = nullptr;  // this worker's connection to the shared L2 store (cache.l2); null: none
  std::weak_ptr<L2Tier> l2_weak;  // the same, for what may outlive it (an L2Lead at shutdown)

  // The current runtime snapshot, refreshed only when a reload bumped the
  // version: one relaxed load per request instead of an atomic shared_ptr load.
  const std::shared_ptr<const Runtime>& runtime();
  // Points the upstream pool at `cfg`'s origin before a fetch: the request's
  // own config snapshot decides, so no request uses a stale origin after a reload.
  void sync_pool(const std::shared_ptr<const config::Config>& cfg);

 private:
  std::shared_ptr<const config::Config> pool_config_;
  std::shared_ptr<const Runtime> runtime_;
  uint64_t runtime_version_ = UINT64_MAX;
};

class App {
 public:
  explicit App(std::shared_ptr<const config::Config> cfg);
  ~App();

  // Loads the cache snapshot (cache.snapshot.path), then binds listeners
  // (throws std::system_error naming the address on failure) and starts the
  // workers and the periodic snapshots.
  void start();
  // Blocks until stop() completes; returns the exit code.
  int run();
  // Stops accepting, lets in-flight requests finish within the drain timeout, then stops.
  void begin_drain();
  // Applies a new config; returns "" or an error message (the old config is kept on error).
  std::string reload(std::shared_ptr<const config::Config> cfg);
  // Re-reads the config file it was started with.
  std::string reload_from_file();
  // After run(): stops the periodic snapshots and writes the last one.
  void write_final_snapshot();

  std::shared_ptr<const config::Config> config() const { return runtime()->config_ptr(); }
  std::shared_ptr<const Runtime> runtime() const { return runtime_.load(std::memory_order_acquire); }
  uint64_t runtime_version() const noexcept { return runtime_version_.load(std::memory_order_acquire); }
  cache::Store& store() noexcept { return *store_; }
  cache::Coalescer& coalescer() noexcept { return coalescer_; }
  cache::InvalidationLog& invalidations() noexcept { return invalidations_; }
  Purger& purger() noexcept { return purger_; }
  metrics::Metrics& metrics() noexcept { return metrics_; }
  const metrics::Metrics& metrics() const noexcept { return metrics_; }
  bool draining() const noexcept { return draining_.load(std::memory_order_relaxed); }
  std::vector<std::unique_ptr<Worker>>& workers() noexcept { return workers_; }

  // Hands every local invalidation to `p` as well (the cluster bus). Call
  // before start(); the App owns it and destroys it after the workers stopped.
  void set_publisher(std::unique_ptr<InvalidationPublisher> p);
  // The shared L2 store: one tier per worker (tiers[i] runs on worker i's
  // io_context), and who writes the markers of local invalidations. Call
  // before start(); the App owns the tiers and destroys them after the
  // workers' threads are joined, before their io_contexts.
  void set_l2(std::vector<std::shared_ptr<L2Tier>> tiers, L2Invalidator* invalidator);

  // Applies an invalidation from the admin API (counted by kind).
  cache::PurgeOutcome purge(const cache::Purge& p);
  // The variants stored for a URL on `host` (or the first host that has any).
  std::pair<std::string, std::vector<cache::EntryRef>> inspect(
      std::string_view target, const std::optional<std::string>& host) const;

  // Authorities (normalised host[:port]) that have stored entries: purges by path apply to each.
  void note_host(std::string_view authority);
  std::vector<std::string> hosts() const;
  // Keeps the partition of `claim` within `budget` bytes after `kept` was
  // stored into it: evicts its oldest other entries (cache/partition.h).
  // Returns how many were evicted. Serialized, so two fills of one
  // partition cannot both decide on a stale sum.
  std::size_t enforce_partition_budget(std::string_view claim, uint64_t budget, const cache::Entry* kept);
  uint64_t route_generation(std::string_view route) const;
  uint64_t bump_route_generation(std::string_view route);

 private:
  void bind_listeners(const config::Config& cfg);
  void accept_loop(Worker& w, asio::ip::tcp::acceptor& acc, std::string listener);
  net::UpstreamOptions upstream_options(const config::Config& cfg,
                                        std::shared_ptr<asio::ssl::context> client_tls) const;
  // TLS contexts for the listeners that have tls:, and for an https:// origin
  // (built before a config is applied; throws std::runtime_error naming the file).
  struct TlsContexts {
    std::vector<std::pair<std::string, std::shared_ptr<asio::ssl::context>>> listeners;
    std::shared_ptr<asio::ssl::context> upstream;
  };
  static TlsContexts make_tls(const config::Config& cfg);
  std::shared_ptr<asio::ssl::context> listener_tls(const std::string& listener) const;

  metrics::Metrics metrics_;  // before runtime_: snapshots take route ids from it
  std::atomic<std::shared_ptr<const Runtime>> runtime_;
  std::atomic<uint64_t> runtime_version_{0};
  std::unique_ptr<cache::Store> store_;
  cache::Coalescer coalescer_;
  cache::InvalidationLog invalidations_;
  Purger purger_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // After workers_: destroyed first, once the workers' threads are joined
  // (the bus runs on a worker's io_context and must go before it).
  std::unique_ptr<InvalidationPublisher> publisher_;
  std::vector<std::shared_ptr<L2Tier>> l2_;  // after workers_, like publisher_; the only owners
  Snapshotter snapshotter_{*this};  // after the store and workers: its thread stops first
  std::atomic<bool> draining_{false};
  std::mutex reload_mu_;
  // Route generations (purge by route, O(1)): one atomic per slot, slot =
  // hash(route name) % kGenerationSlots. Reads are one relaxed load on the hit
  // path; two routes that share a slot are invalidated together (safe, rare).
  static constexpr std::size_t kGenerationSlots = 4096;
  std::array<std::atomic<uint64_t>, kGenerationSlots> generations_{};
  mutable std::mutex tls_mu_;
  TlsContexts tls_;
  mutable std::mutex hosts_mu_;
  std::vector<std::string> hosts_;
  std::mutex partition_mu_;  // enforce_partition_budget
  friend struct Worker;
};

}  // namespace cachalot::proxy
