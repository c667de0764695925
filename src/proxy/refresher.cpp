#include "proxy/refresher.h"

#include "core/clock.h"
#include "proxy/app.h"
#include "proxy/exchange.h"

namespace cachalot::proxy {

namespace {

// Everything one background refresh owns, kept alive by its coroutine.
struct Refresh {
  Refresh(Worker& w, std::shared_ptr<const Runtime> rt, const http::RequestHead& r, const ForwardedRequest& f)
      : worker(w), req(r), fwd(f), exchange(w, std::move(rt), req, fwd, out, buffers) {
    ++worker.background_refreshes;
  }
  ~Refresh() { --worker.background_refreshes; }
  Worker& worker;
  http::RequestHead req;
  ForwardedRequest fwd;
  Outcome out;
  ResponseBuffers buffers;
  Exchange exchange;
};

}  // namespace

void Refresher::start(Worker& w, const std::shared_ptr<const Runtime>& rt, const http::RequestHead& req,
                      const ForwardedRequest& fwd, const cache::EntryRef& stale) {
  const std::string& key = fwd.key();
  if (w.background_refreshes >= rt->config().cache.max_background_refreshes) return;
  // A stale entry is hit many times while its refresh runs: ask the shared
  // coalescer about one entry at most every 250 ms from this worker.
  auto now = std::chrono::steady_clock::now();
  for (auto& [seen, at] : w.recent_refreshes)
    if (seen == stale.get() && now - at < std::chrono::milliseconds(250)) return;
  w.recent_refreshes[w.recent_refresh_next++ % w.recent_refreshes.size()] = {stale.get(), now};
  auto ticket = w.app.coalescer().join(key, 0, core::Clock::now());
  if (ticket.role != cache::Coalescer::Role::Leader) return;  // someone is already fetching it
  w.metrics.background_refreshes.fetch_add(1, std::memory_order_relaxed);
  auto job = std::make_shared<Refresh>(w, rt, req, fwd);
  asio::co_spawn(
      w.ioc,
      [job, stale, permit = std::move(ticket.permit)]() mutable -> asio::awaitable<void> {
        co_await job->exchange.revalidate(stale, std::move(permit));
        // The throttle covers only the refresh in flight: after a failed one,
        // the next stale hit tries again (RFC 5861 §3).
        for (auto& recent : job->worker.recent_refreshes)
          if (recent.first == stale.get()) recent.first = nullptr;
      },
      asio::detached);
}

}  // namespace cachalot::proxy
