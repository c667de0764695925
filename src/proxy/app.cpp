#include "proxy/app.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>

#include "cache/key.h"
#include "cache/partition.h"
#include "net/tls.h"
#include "proxy/access_log.h"
#include "proxy/session.h"

namespace cachalot::proxy {

using asio::awaitable;
using asio::use_awaitable;

namespace {

cache::StoreOptions store_options(const config::Config& cfg) {
  cache::StoreOptions o;
  o.max_bytes = cfg.cache.max_memory;
  o.shards = cfg.cache.shards;
  o.max_variants = cfg.cache.max_variants;
  return o;
}

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

Worker::Worker(App& a, std::size_t i) : app(a), id(i), metrics(a.metrics().worker(i)) {}

const std::shared_ptr<const Runtime>& Worker::runtime() {
  uint64_t v = app.runtime_version();
  if (v != runtime_version_) {
    runtime_ = app.runtime();
    runtime_version_ = v;
  }
  return runtime_;
}

void Worker::sync_pool(const std::shared_ptr<const config::Config>& cfg) {
  if (pool_config_ == cfg) return;
  pool_config_ = cfg;
  std::shared_ptr<asio::ssl::context> tls;
  {
    std::lock_guard lk(app.tls_mu_);
    tls = app.tls_.upstream;
  }
  pool->set_options(app.upstream_options(*cfg, std::move(tls)));
}

Worker::~Worker() {
  pool.reset();
  acceptors.clear();
  watchdogs.shutdown();
  // ioc is destroyed next, with any session frames still in it; their
  // watchdogs unregister from `watchdogs`, which is destroyed last.
}

App::App(std::shared_ptr<const config::Config> cfg)
    : metrics_(cfg->server.workers),
      runtime_(std::make_shared<const Runtime>(cfg, metrics_.routes())),
      store_(std::make_unique<cache::Store>(store_options(*cfg))),
      purger_(*this, *store_, coalescer_, invalidations_),
      tls_(make_tls(*cfg)) {
  for (std::size_t i = 0; i < cfg->server.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i));
    Worker& w = *workers_.back();
    w.pool = std::make_unique<net::UpstreamPool>(w.ioc, w.watchdogs, upstream_options(*cfg, tls_.upstream));
    w.watchdogs.start(w.ioc);
  }
  metrics_.add_gauge("cachalot_cache_objects", "Stored responses (variants).",
                     [this] { return static_cast<double>(store_->stats().objects); });
  metrics_.add_gauge("cachalot_cache_bytes", "Bytes charged against cache.max_memory.",
                     [this] { return static_cast<double>(store_->stats().bytes); });
  metrics_.add_gauge("cachalot_cache_max_bytes", "cache.max_memory.",
                     [this] { return static_cast<double>(config()->cache.max_memory); });
  // What the process really holds, beside what the store charges: RSS from
  // /proc/self/statm, and glibc malloc's view (mallinfo2 walks the free
  // lists under each arena's lock: cheap at scrape intervals, not per request).
  metrics_.add_gauge("cachalot_resident_memory_bytes", "Resident set size of the process.",
                     [] { return static_cast<double>(resident_bytes()); });
  metrics_.add_gauge("cachalot_heap_allocated_bytes", "Bytes malloc has handed out and not had back (all arenas, mmapped chunks included).",
                     [] { const struct mallinfo2 m = mallinfo2(); return static_cast<double>(m.uordblks + m.hblkhd); });
  metrics_.add_gauge("cachalot_heap_free_bytes", "Bytes malloc holds free inside its arenas (fragmentation and unreturned memory).",
                     [] { return static_cast<double>(mallinfo2().fordblks); });
  metrics_.add_gauge("cachalot_cache_evicted_objects", "Entries evicted for memory since start.",
                     [this] { return static_cast<double>(store_->stats().evictions); });
  metrics_.add_gauge("cachalot_coalescer_in_flight", "Keys with an origin fetch others can join.",
                     [this] { return static_cast<double>(coalescer_.size()); });
}

App::~App() {
  for (auto& w : workers_) {
    w->ioc.stop();
    if (w->thread.joinable()) w->thread.join();
  }
  purger_.set_publisher(nullptr);
  publisher_.reset();  // before the io_contexts it runs on
  purger_.set_l2(nullptr);
  for (auto& w : workers_) w->l2 = nullptr;
  l2_.clear();  // likewise
}

void App::set_l2(std::vector<std::shared_ptr<L2Tier>> tiers, L2Invalidator* invalidator) {
  l2_ = std::move(tiers);
  for (std::size_t i = 0; i < workers_.size() && i < l2_.size(); ++i) {
    workers_[i]->l2 = l2_[i].get();
    workers_[i]->l2_weak = l2_[i];
  }
  purger_.set_l2(invalidator);
}

void App::set_publisher(std::unique_ptr<InvalidationPublisher> p) {
  publisher_ = std::move(p);
  purger_.set_publisher(publisher_.get());
}

App::TlsContexts App::make_tls(const config::Config& cfg) {
  TlsContexts t;
  for (const auto& l : cfg.server.listen)
    if (l.tls) t.listeners.emplace_back(l.text, net::make_server_tls(l.cert_file, l.key_file));
  if (cfg.upstream.url.tls()) t.upstream = net::make_client_tls(cfg.upstream.tls.verify, cfg.upstream.tls.ca_file);
  return t;
}

std::shared_ptr<asio::ssl::context> App::listener_tls(const std::string& listener) const {
  std::lock_guard lk(tls_mu_);
  for (const auto& [name, ctx] : tls_.listeners)
    if (name == listener) return ctx;
  return nullptr;
}

net::UpstreamOptions App::upstream_options(const config::Config& cfg,
                                           std::shared_ptr<asio::ssl::context> client_tls) const {
  net::UpstreamOptions o;
  o.tls = std::move(client_tls);
  o.sni = cfg.upstream.tls.sni;
  o.verify = cfg.upstream.tls.verify;
  o.host = cfg.upstream.url.host;
  o.port = cfg.upstream.url.port;
  o.connect_timeout = cfg.upstream.timeouts.connect;
  o.first_byte_timeout = cfg.upstream.timeouts.first_byte;
  o.idle_timeout = cfg.upstream.timeouts.idle;
  o.pool_idle = cfg.upstream.timeouts.pool_idle;
  o.max_idle = cfg.upstream.pool.max_idle_per_worker;
  return o;
}

void App::bind_listeners(const config::Config& cfg) {
  // Each worker gets its own SO_REUSEPORT acceptor per address: the kernel
  // spreads connections across workers without a shared accept lock.
  for (auto& w : workers_) {
    for (const auto& l : cfg.server.listen) {
      bool have = false;
      for (const auto& n : w->acceptor_names) have = have || n == l.text;
      if (have) continue;
      asio::ip::tcp::endpoint ep(asio::ip::make_address(l.host), l.port);
      auto acc = std::make_unique<asio::ip::tcp::acceptor>(w->ioc);
      acc->open(ep.protocol());
      acc->set_option(asio::socket_base::reuse_address(true));
      int one = 1;
      ::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      if (ep.address().is_v6()) acc->set_option(asio::ip::v6_only(true));
      asio::error_code ec;
      acc->bind(ep, ec);
      if (ec) throw std::system_error(ec, "cannot listen on " + l.text);
      acc->listen(asio::socket_base::max_listen_connections);
      w->acceptor_names.push_back(l.text);
      w->acceptors.push_back(std::move(acc));
      accept_loop(*w, *w->acceptors.back(), l.text);
    }
  }
}

void App::accept_loop(Worker& w, asio::ip::tcp::acceptor& acc, std::string listener) {
  asio::co_spawn(
      w.ioc,
      [&w, &acc, listener]() -> awaitable<void> {
        for (;;) {
          asio::error_code ec;
          asio::ip::tcp::socket s = co_await acc.async_accept(asio::redirect_error(use_awaitable, ec));
          if (ec) {
            if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
            // EMFILE and friends: back off briefly instead of spinning.
            spdlog::warn("accept failed: {}", ec.message());
            asio::steady_timer t(w.ioc, std::chrono::milliseconds(50));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
          }
          if (w.sessions.size() >= w.app.config()->server.limits.max_connections) {
            s.close(ec);
            continue;
          }
          auto session = std::make_shared<Session>(w, std::move(s), w.app.listener_tls(listener));
          asio::co_spawn(w.ioc, [session]() -> awaitable<void> { co_await session->run(); }, asio::detached);
        }
      },
      asio::detached);
}

void App::start() {
  auto cfg = config();
  configure_access_log(*cfg);
  snapshotter_.load();  // before any listener: no request sees a half-loaded cache
  bind_listeners(*cfg);
  for (auto& w : workers_) {
    Worker* wp = w.get();
    wp->thread = std::thread([wp] {
      auto guard = asio::make_work_guard(wp->ioc);
      try {
        wp->ioc.run();
      } catch (const std::exception& e) {
        spdlog::critical("worker {} stopped: {}", wp->id, e.what());
        std::abort();
      }
    });
  }
  for (const auto& l : cfg->server.listen)
    spdlog::info("listening on {} ({} workers), origin {}", l.text, workers_.size(), cfg->upstream.url.text);
  snapshotter_.start_periodic();
}

void App::write_final_snapshot() {
  snapshotter_.stop_periodic();
  snapshotter_.write("shutdown");
}

void App::begin_drain() {
  if (draining_.exchange(true)) return;
  for (auto& w : workers_) {
    Worker* wp = w.get();
    asio::post(wp->ioc, [wp] {
      for (auto& a : wp->acceptors) {
        asio::error_code ec;
        a->close(ec);
      }
      // Copy: closing may end sessions, which unregister themselves.
      auto sessions = wp->sessions;
      for (Session* s : sessions) s->close_if_idle();
    });
  }
}

int App::run() {
  // Called after begin_drain(): wait for in-flight requests, up to the drain timeout.
  auto deadline = std::chrono::steady_clock::now() + config()->server.timeouts.drain;
  for (;;) {
    std::size_t live = 0;
    for (auto& w : workers_) {
      std::promise<std::size_t> p;
      auto f = p.get_future();
      asio::post(w->ioc, [&p, wp = w.get()] {
        auto sessions = wp->sessions;
        for (Session* s : sessions) s->close_if_idle();
        p.set_value(wp->sessions.size() + wp->background_refreshes);
      });
      if (f.wait_for(std::chrono::seconds(1)) == std::future_status::ready) live += f.get();
      else live += 1;
    }
    if (live == 0 || std::chrono::steady_clock::now() >= deadline) {
      if (live) spdlog::warn("drain timeout: {} connections still open", live);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers_) w->ioc.stop();
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  return 0;
}

std::string App::reload(std::shared_ptr<const config::Config> cfg) {
  std::lock_guard lk(reload_mu_);
  auto old = config();
  if (cfg->server.workers != old->server.workers)
    spdlog::warn("server.workers changed from {} to {}: takes effect on restart", old->server.workers,
                 cfg->server.workers);
  if (cfg->cluster != old->cluster) spdlog::warn("cluster: changed: takes effect on restart");
  if (cfg->cache.l2 != old->cache.l2) spdlog::warn("cache.l2: changed: takes effect on restart");
  TlsContexts tls;
  try {
    tls = make_tls(*cfg);  // re-reads certificates and keys
    configure_access_log(*cfg);
  } catch (const std::exception& e) {
    return e.what();
  }
  // New listeners first (a bind failure keeps the old config), then drop removed ones.
  try {
    bind_listeners(*cfg);
  } catch (const std::exception& e) {
    return e.what();
  }
  {
    std::lock_guard lk(tls_mu_);
    tls_ = tls;
  }
  for (auto& w : workers_) {
    Worker* wp = w.get();
    std::vector<std::string> keep;
    for (const auto& l : cfg->server.listen) keep.push_back(l.text);
    asio::post(wp->ioc, [wp, keep] {
      for (std::size_t i = 0; i < wp->acceptors.size();) {
        bool wanted = std::find(keep.begin(), keep.end(), wp->acceptor_names[i]) != keep.end();
        if (wanted) {
          ++i;
          continue;
        }
        asio::error_code ec;
        wp->acceptors[i]->close(ec);
        // The accept loop holds a reference: keep the closed acceptor alive until shutdown.
        wp->acceptor_names[i] = "(closed)";
        ++i;
      }
    });
  }
  store_->set_limits(cfg->cache.max_memory, cfg->cache.max_variants);
  spdlog::set_level(static_cast<spdlog::level::level_enum>(static_cast<int>(cfg->log.level)));
  runtime_.store(std::make_shared<const Runtime>(cfg, metrics_.routes()), std::memory_order_release);
  runtime_version_.fetch_add(1, std::memory_order_acq_rel);
  spdlog::info("configuration reloaded from {}", cfg->source_path);
  return {};
}

std::string App::reload_from_file() {
  auto path = config()->source_path;
  auto result = config::load_config_file(path);
  if (auto* errs = std::get_if<std::vector<config::ConfigError>>(&result)) {
    std::string msg;
    for (const auto& e : *errs) {
      if (!msg.empty()) msg += "\n";
      msg += e.to_string();
    }
    return msg;
  }
  return reload(std::get<std::shared_ptr<const config::Config>>(result));
}

void App::note_host(std::string_view host) {
  std::lock_guard lk(hosts_mu_);
  if (std::find(hosts_.begin(), hosts_.end(), host) != hosts_.end()) return;
  if (hosts_.size() >= 4096) return;  // a bound against Host-header floods; purge with host= beyond it
  hosts_.emplace_back(host);
}

std::vector<std::string> App::hosts() const {
  std::lock_guard lk(hosts_mu_);
  return hosts_;
}

uint64_t App::route_generation(std::string_view route) const {
  return generations_[XXH3_64bits(route.data(), route.size()) % kGenerationSlots].load(std::memory_order_acquire);
}

uint64_t App::bump_route_generation(std::string_view route) {
  return generations_[XXH3_64bits(route.data(), route.size()) % kGenerationSlots].fetch_add(1, std::memory_order_acq_rel) + 1;
}

std::size_t App::enforce_partition_budget(std::string_view claim, uint64_t budget, const cache::Entry* kept) {
  std::lock_guard lk(partition_mu_);
  auto victims = cache::partition_victims(store_->tagged(cache::partition_tag(claim)), kept, budget);
  std::size_t n = 0;
  for (const auto& v : victims) n += store_->erase_entry(v) ? 1 : 0;
  return n;
}

cache::PurgeOutcome App::purge(const cache::Purge& p) {
  auto out = purger_.apply(p, *runtime());
  if (out.error.empty()) {
    metrics::PurgeKind kind = metrics::PurgeKind::Url;
    switch (p.kind) {
      case cache::Purge::Kind::Url: kind = metrics::PurgeKind::Url; break;
      case cache::Purge::Kind::Prefix: kind = metrics::PurgeKind::Prefix; break;
      case cache::Purge::Kind::Tag: kind = metrics::PurgeKind::Tag; break;
      case cache::Purge::Kind::All: kind = metrics::PurgeKind::All; break;
      case cache::Purge::Kind::Route: kind = metrics::PurgeKind::Route; break;
      case cache::Purge::Kind::Partition: kind = metrics::PurgeKind::Partition; break;
    }
    metrics_.extra().purge(kind);
  }
  return out;
}

std::pair<std::string, std::vector<cache::EntryRef>> App::inspect(
    std::string_view target, const std::optional<std::string>& host) const {
  std::vector<std::string> hs = host ? std::vector<std::string>{*host} : hosts();
  auto rt = runtime();
  // Keyed as a request for `target` would be: the route's query options apply.
  std::string plain(cache::key_path(cache::primary_key("http", "h", target, http::HeaderMap{}, {})));
  const auto& policy = rt->policy_for(std::string_view(plain).substr(0, plain.find('?')));
  cache::KeyOptions opts = policy.key;
  opts.headers.clear();  // variants split by key headers share this prefix
  std::string k;
  std::vector<cache::EntryRef> vs;
  for (const auto& h : hs) {
    for (std::string_view scheme : {"http", "https"}) {
      k = cache::primary_key(scheme, cache::normalized_authority(scheme, h), target, http::HeaderMap{}, opts);
      vs = store_->variants(k);
      if (!vs.empty()) return {std::move(k), std::move(vs)};
    }
  }
  return {std::move(k), std::move(vs)};
}

}  // namespace cachalot::proxy
