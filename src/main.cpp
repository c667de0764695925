// cachalot: a caching reverse proxy for HTTP APIs.
//
// main: arguments, config, build the app, run, drain on SIGTERM, reload on SIGHUP.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <asio.hpp>

#ifdef CACHALOT_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "admin/admin_server.h"
#include "admin/control.h"
#include "cluster/bus.h"
#include "cluster/l2_client.h"
#include "config/config.h"
#include "proxy/app.h"

namespace {

// The admin API's view of the proxy (admin/ and proxy/ do not include each other).
class AppControl final : public cachalot::admin::Control {
 public:
  AppControl(cachalot::proxy::App& app, const cachalot::cluster::Bus* bus) : app_(app), bus_(bus) {}
  std::shared_ptr<const cachalot::config::Config> config() const override { return app_.config(); }
  bool draining() const override { return app_.draining(); }
  std::string metrics_text() const override { return app_.metrics().render(); }
  std::string reload() override { return app_.reload_from_file(); }
  cachalot::cache::PurgeOutcome purge(const cachalot::cache::Purge& p) override { return app_.purge(p); }
  cachalot::admin::Inspection inspect(std::string_view target, const std::optional<std::string>& host) const override {
    auto [key, variants] = app_.inspect(target, host);
    return {std::move(key), std::move(variants)};
  }
  std::optional<cachalot::cluster::BusStatus> cluster() const override {
    if (!bus_) return std::nullopt;
    return bus_->status();
  }

 private:
  cachalot::proxy::App& app_;
  const cachalot::cluster::Bus* bus_;  // null without a cluster: section; owned by the App
};

// The invalidation bus, when the config has a cluster: section: it runs on
// worker 0's io_context (see cluster/bus.h for why) and applies the other
// nodes' invalidations through the same Purger, as Source::Remote (not
// published again). The App owns it. Returns null without a cluster: section:
// then nothing talks to Redis.
cachalot::cluster::Bus* attach_cluster(cachalot::proxy::App& app, const cachalot::config::Config& cfg) {
  if (!cfg.cluster) return nullptr;
  auto apply = [&app](const cachalot::cache::Purge& p) {
    auto out = app.purger().apply(p, *app.runtime(), cachalot::proxy::Purger::Source::Remote);
    if (!out.error.empty()) spdlog::debug("cluster: remote {} purge not applied here: {}", to_string(p.kind), out.error);
  };
  auto bus = std::make_unique<cachalot::cluster::Bus>(app.workers().front()->ioc, *cfg.cluster,
                                                      app.metrics().cluster(), std::move(apply));
  auto* raw = bus.get();
  app.set_publisher(std::move(bus));
  raw->start();
  return raw;
}

// The shared L2 store, when the config has a cache.l2 section: one Redis
// connection per worker, on that worker's io_context; worker 0's also writes
// the markers of local invalidations.
void attach_l2(cachalot::proxy::App& app, const cachalot::config::Config& cfg) {
  if (!cfg.cache.l2) return;
  std::vector<std::shared_ptr<cachalot::proxy::L2Tier>> tiers;
  std::vector<cachalot::cluster::L2Client*> clients;
  for (auto& w : app.workers()) {
    auto c = std::make_shared<cachalot::cluster::L2Client>(w->ioc, *cfg.cache.l2, app.metrics().l2(),
                                                           "w" + std::to_string(w->id));
    clients.push_back(c.get());
    tiers.push_back(std::move(c));
  }
  app.set_l2(std::move(tiers), clients.front());
  for (auto* c : clients) c->start();
}

constexpr const char* kUsage = R"(Usage: cachalot [OPTIONS]

A caching reverse proxy for HTTP APIs (RFC 9111 shared cache).

Options:
  --config FILE         run with this configuration file
  --check-config FILE   validate FILE, print any errors (file:line:col: key: message), exit 0 or 1
  --version             print the version and exit
  --help                print this help and exit

Signals: SIGTERM/SIGINT drain in-flight requests, write the cache snapshot
(cache.snapshot.path, if set) and exit 0; SIGHUP reloads FILE (an invalid file
is logged and the running configuration is kept).
)";

void notify(const char* state) {
#ifdef CACHALOT_HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

int check_config(const std::string& path, bool quiet_ok) {
  auto result = cachalot::config::load_config_file(path);
  if (auto* errs = std::get_if<std::vector<cachalot::config::ConfigError>>(&result)) {
    for (const auto& e : *errs) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  if (!quiet_ok) std::printf("%s: configuration OK\n", path.c_str());
  return 0;
}

}  // namespace

// glibc malloc's per-thread cache keeps 7 free chunks per size class by
// default. A worker with 50 misses in flight frees and reallocates its
// per-request chunks in bursts larger than that: the extra ones go back to
// the bins, are split and coalesced with their neighbours, and the slivers
// left between long-lived entries are memory no entry can use (5% of RSS per
// small object, measured; with 128 chunks per class it is under 0.1%).
// The tunable is read once, before main, only from the environment: the
// process re-executes itself once with it added. An operator's own
// glibc.malloc.tcache_count wins; a failed exec just runs on as we are.
static void tune_malloc_or_reexec(char** argv) {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  static constexpr const char* kTunable = "glibc.malloc.tcache_count=128";
  // Under valgrind an exec would leave the tool behind (it does not follow
  // children unless told to), and its allocator is not glibc's anyway.
  if (const char* pre = std::getenv("LD_PRELOAD"); pre != nullptr && std::strstr(pre, "vgpreload") != nullptr) return;
  const char* env = std::getenv("GLIBC_TUNABLES");
  const bool had = env != nullptr;
  const std::string current = had ? env : "";
  if (current.find("glibc.malloc.tcache_count") != std::string::npos) return;
  const std::string value = current.empty() ? kTunable : current + ":" + kTunable;
  if (setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: no /proc, or no exec. Leave the environment as it was.
  if (had)
    setenv("GLIBC_TUNABLES", current.c_str(), 1);
  else
    unsetenv("GLIBC_TUNABLES");
#else
  (void)argv;
#endif
}

int main(int argc, char** argv) {
  tune_malloc_or_reexec(argv);
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version" || a == "-V") {
      std::printf("cachalot %s\n", CACHALOT_VERSION);
      return 0;
    }
    if (a == "--check-config" || a == "-t") {
      if (i + 1 >= argc) {
        std::fputs("cachalot: --check-config needs a FILE\n", stderr);
        return 2;
      }
      return check_config(argv[i + 1], false);
    }
    if (a == "--config" || a == "-c") {
      if (i + 1 >= argc) {
        std::fputs("cachalot: --config needs a FILE\n", stderr);
        return 2;
      }
      config_path = argv[++i];
      continue;
    }
    std::fprintf(stderr, "cachalot: unknown argument '%s'\n%s", a.c_str(), kUsage);
    return 2;
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "cachalot: --config FILE is required\n%s", kUsage);
    return 2;
  }

  // Bodies above 128 KiB get their own mappings and return to the kernel when
  // evicted, so RSS tracks the cache's byte accounting instead of heap
  // fragmentation (glibc would otherwise raise the threshold dynamically).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  auto logger = spdlog::stderr_color_mt("cachalot");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");

  auto loaded = cachalot::config::load_config_file(config_path);
  if (auto* errs = std::get_if<std::vector<cachalot::config::ConfigError>>(&loaded)) {
    for (const auto& e : *errs) spdlog::error("{}", e.to_string());
    return 1;
  }
  auto cfg = std::get<std::shared_ptr<const cachalot::config::Config>>(loaded);
  spdlog::set_level(static_cast<spdlog::level::level_enum>(static_cast<int>(cfg->log.level)));

  // Signals are handled on the main thread; workers never see them.
  asio::io_context main_ioc(1);
  asio::signal_set signals(main_ioc, SIGTERM, SIGINT, SIGHUP);
  std::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<cachalot::proxy::App> app;
  std::unique_ptr<AppControl> control;
  std::unique_ptr<cachalot::admin::AdminServer> admin;
  try {
    app = std::make_unique<cachalot::proxy::App>(cfg);
    auto* bus = attach_cluster(*app, *cfg);
    attach_l2(*app, *cfg);
    app->start();
    control = std::make_unique<AppControl>(*app, bus);
    admin = std::make_unique<cachalot::admin::AdminServer>(*control);
    admin->start();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  notify("READY=1");
  spdlog::info("cachalot {} ready", CACHALOT_VERSION);
#if CACHALOT_TEST_CLOCK
  // A test build: anyone who can reach the admin API can move the cache's clock.
  spdlog::warn("test clock compiled in (CACHALOT_TEST_CLOCK): POST /test/clock on the admin listener moves time; "
               "this build is for tests only");
#endif

  bool stopping = false;
  std::function<void()> wait_signal;
  wait_signal = [&] {
    signals.async_wait([&](const asio::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        notify("RELOADING=1");
        spdlog::info("SIGHUP: reloading {}", config_path);
        auto err = app->reload_from_file();
        if (!err.empty()) spdlog::error("reload failed, keeping the running configuration:\n{}", err);
        notify("READY=1");
        wait_signal();
        return;
      }
      spdlog::info("{}: draining (up to {} ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                   app->config()->server.timeouts.drain.count());
      notify("STOPPING=1");
      stopping = true;
      app->begin_drain();
      main_ioc.stop();
    });
  };
  wait_signal();
  main_ioc.run();
  int rc = 0;
  if (stopping) rc = app->run();
  admin->stop();  // no purge can slip in between the snapshot and the exit
  if (stopping) app->write_final_snapshot();
  app.reset();
  spdlog::info("stopped");
  return rc;
}
