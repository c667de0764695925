// Admin listener: health, metrics, reload, purge, cache inspection and the
// cluster bus' state.
//
// Runs on its own thread and io_context so a slow scrape or a large purge
// never delays the proxy's workers. Answers are JSON (metrics: Prometheus
// text). Every request passes admin/guard.h first: a Host this listener
// answers to (DNS rebinding), no cross-site state change (CSRF), and, if
// admin.token is set, "Authorization: Bearer T". Pipelined requests are
// answered in order. Test builds (CACHALOT_TEST_CLOCK) add POST /test/clock.
#pragma once

#include <memory>
#include <thread>

#include <asio.hpp>

#include "admin/control.h"

namespace cachalot::admin {

class AdminServer {
 public:
  explicit AdminServer(Control& app);
  ~AdminServer();
  // Binds the admin address (throws std::system_error naming it) and starts the thread.
  void start();
  void stop();

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket s);
  Control& app_;
  asio::io_context ioc_{1};
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::thread thread_;
};

}  // namespace cachalot::admin
