// Session: one client connection, and the exchanges it carries.
//
// A session is a coroutine (run()) whose frame owns the connection; a second
// coroutine, the watchdog, enforces the per-phase deadlines. Requests are read
// and answered strictly in order (pipelined requests wait in the read buffer).
// Each request is one exchange: lookup -> serve | fetch | revalidate. A
// background refresh is a Session without a client: the same fetch path,
// whose writes go nowhere.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "metrics/metrics.h"
#include "cache/entry.h"
#include "config/config.h"
#include "http/parser.h"
#include "net/upstream.h"
#include "net/watchdog.h"
#include "proxy/coalescer.h"

namespace cachalot::cache {
struct RequestCacheControl;
}

namespace cachalot::proxy {

struct Worker;
class App;

class Session : public std::enable_shared_from_this<Session> {
 public:
  // A client session.
  Session(Worker& w, asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls = nullptr);
  // A background refresh (no client): revalidates `stale` for `req`.
  Session(Worker& w, const http::RequestHead& req);
  ~Session();

  asio::awaitable<void> run();
  asio::awaitable<void> refresh(std::shared_ptr<const config::Config> cfg, std::string key,
                                std::shared_ptr<const cache::Entry> stale, std::shared_ptr<Fill> fill);
  // Drain: closes the connection if it is between requests.
  void close_if_idle();

 private:
  enum class ReadStatus { Ok, Closed, Timeout, Error, Bad };
  struct FetchPlan;

  asio::awaitable<ReadStatus> read_head();
  asio::awaitable<ReadStatus> read_request_body();
  asio::awaitable<ReadStatus> fill_buffer(std::chrono::milliseconds timeout);
  asio::awaitable<bool> send(const std::vector<asio::const_buffer>& buffers);
  // Fixed-size gathers avoid the copy of a vector inside the write operation.
  template <std::size_t N>
  asio::awaitable<bool> send(const std::array<asio::const_buffer, N>& buffers);
  template <class Buffers>
  asio::awaitable<bool> send_buffers(const Buffers& buffers);
  asio::awaitable<bool> send(std::string_view s);

  asio::awaitable<void> handle();
  asio::awaitable<void> handle_cacheable(const config::Route* route);
  asio::awaitable<void> handle_purge(const config::Route* route);
  asio::awaitable<void> fetch(FetchPlan& plan);
  // Ends the leader's fill: new requests stop joining it first, then its followers wake.
  void finish_fill(FetchPlan& plan, Fill::State state, std::shared_ptr<const cache::Entry> entry = nullptr);
  asio::awaitable<bool> follow(const std::shared_ptr<Fill>& fill, std::string_view key_variant_hint);
  asio::awaitable<void> serve_entry(const std::shared_ptr<const cache::Entry>& e, metrics::Result result,
                                    std::string_view status_detail);
  asio::awaitable<void> send_error(int status, std::string_view detail, bool close);
  asio::awaitable<bool> send_request_body(net::UpstreamConn& up);
  void start_background_refresh(const std::string& key, const std::shared_ptr<const cache::Entry>& entry);
  void finish_request();
  void append_cache_status(std::string& out, std::string_view fwd_or_hit) const;
  std::string_view host_for_key() const;

  Worker& w_;
  App& app_;
  std::optional<asio::ip::tcp::socket> socket_;
  std::shared_ptr<asio::ssl::context> tls_ctx_;                      // keeps the context alive
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;  // TLS listeners
  net::Watchdog watchdog_;
  http::Parser parser_;
  std::vector<char> buf_;
  std::size_t rpos_ = 0, rend_ = 0;
  bool eof_ = false;
  std::string client_ip_;
  std::unique_ptr<http::RequestHead> background_req_;  // declared before req_, which may point to it
  http::RequestHead* req_;                             // parser_.request() or background_req_
  std::shared_ptr<const config::Config> cfg_;  // snapshot for the current request
  bool idle_ = true;       // between requests (drain may close it)
  bool close_after_ = false;
  bool client_gone_ = false;
  bool head_sent_ = false;

  // Per-request results for metrics and the access log.
  std::chrono::steady_clock::time_point started_;
  int status_ = 0;
  uint64_t bytes_sent_ = 0;
  metrics::Result result_ = metrics::Result::Pass;
  std::string_view route_name_;  // the matched route (a view into cfg_), for per-route metrics
  std::string cache_status_;  // the value after "cachalot; "
  std::string out_;           // head serialization, reused
  std::string tail_;
  std::string upstream_head_;  // the request head sent to the origin, reused
  std::vector<asio::const_buffer> bufs_;
  std::vector<std::string> chunk_heads_;
};

}  // namespace cachalot::proxy
