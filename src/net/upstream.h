// Upstream connections and the per-worker keep-alive pool.
//
// Each worker owns one UpstreamPool (no locks: a pool is only touched from its
// worker's io_context). A connection is either checked out by exactly one
// exchange or idle in the pool; an idle connection's watchdog closes it after
// pool_idle, and acquire() skips connections the origin has closed.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "http/parser.h"
#include "net/stream.h"
#include "net/watchdog.h"

namespace cachalot::net {

// Why talking to the origin failed; each has a metric label.
enum class UpstreamError : uint8_t {
  None,
  ConnectRefused,   // connect() failed (refused, unreachable)
  ConnectTimeout,   // connect() took longer than upstream.timeouts.connect
  Reset,            // the connection was reset or closed before the response ended
  Timeout,          // first byte or idle timeout while reading the response
  BadResponse,      // the origin sent bytes that are not HTTP/1.1
  WriteFailed,      // sending the request failed
  Tls,              // the TLS handshake with an https:// origin failed (e.g. certificate not trusted)
};
std::string_view to_string(UpstreamError e) noexcept;
// Timeouts map to 504, everything else to 502.
inline bool is_timeout(UpstreamError e) noexcept {
  return e == UpstreamError::ConnectTimeout || e == UpstreamError::Timeout;
}
// RFC 9111 §4.2.4 "disconnected": the origin could not be reached, or closed
// or reset the connection before a response head (refused, connect timeout,
// reset, write failed). Not a first-byte timeout (the origin is there, only
// slow), nor a bad response or a TLS failure (something answered).
inline bool is_disconnection(UpstreamError e) noexcept {
  return e == UpstreamError::ConnectRefused || e == UpstreamError::ConnectTimeout || e == UpstreamError::Reset ||
         e == UpstreamError::WriteFailed;
}

struct UpstreamOptions {
  std::string host;  // for DNS and the Host default
  uint16_t port = 80;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds first_byte_timeout{30000};
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds pool_idle{60000};
  std::size_t max_idle = 64;
  http::ParserLimits limits{64 * 1024, 64 * 1024, UINT64_MAX};
  std::shared_ptr<asio::ssl::context> tls;  // set for https:// origins
  std::string sni;                          // server name to send and verify (default: host)
  bool verify = true;
};

class UpstreamConn {
 public:
  UpstreamConn(const asio::any_io_executor& ex, WatchdogSet& watchdogs, const http::ParserLimits& limits)
      : stream(asio::ip::tcp::socket(ex), watchdogs, Stream::OnExpire::Close),
        parser(http::Parser::Kind::Response, limits) {}

  Stream stream;
  http::Parser parser;
  bool reused = false;             // came from the pool (may have been closed by the origin)
  bool head_body_pending = false;  // read_head() left body bytes in parser.body() for read_body()
  uint64_t generation = 0;         // the pool's target generation when it connected

  // Sends `buffers`; the send is bounded by `timeout`.
  template <class Buffers>
  asio::awaitable<UpstreamError> write(const Buffers& buffers, std::chrono::milliseconds timeout) {
    const bool ok = co_await stream.write(buffers, timeout);
    if (ok) co_return UpstreamError::None;
    co_return stream.watchdog().expired() ? UpstreamError::Timeout : UpstreamError::WriteFailed;
  }
  asio::awaitable<UpstreamError> write(std::string_view bytes, std::chrono::milliseconds timeout) {
    std::array<asio::const_buffer, 1> b{asio::buffer(bytes)};
    co_return co_await write(b, timeout);
  }
  // Reads until a response head is complete. It may be an interim 1xx
  // response (complete by itself): relay or drop it, call
  // parser.next_message() and read_head() again for the final one.
  asio::awaitable<UpstreamError> read_head(std::chrono::milliseconds first_byte_timeout);
  // Reads the next piece of body into parser.body() (first the bytes that
  // came with the head). Returns None with parser.message_complete() at the
  // end of the body; parser.body() may be non-empty then too.
  asio::awaitable<UpstreamError> read_body(std::chrono::milliseconds idle_timeout);
  // Nothing came back on this connection yet (a retry is safe).
  bool nothing_received() const noexcept { return stream.empty() && !parser.in_message() && !parser.head_complete(); }
  // The response ended cleanly, nothing follows it, and the connection may be reused.
  bool reusable() const noexcept;
  void close() noexcept { stream.close(); }

 private:
  asio::awaitable<UpstreamError> fill(std::chrono::milliseconds timeout, bool yield_first = false);
};

class UpstreamPool {
 public:
  UpstreamPool(asio::io_context& ioc, WatchdogSet& watchdogs, UpstreamOptions opts);
  ~UpstreamPool();

  // A connected socket: pooled if one is idle, else a new one. A pooled
  // connection is probed first (one non-blocking recv): one the origin has
  // closed, or that holds bytes nobody asked for, is dropped, never reused
  // (stray bytes would become another client's response).
  asio::awaitable<std::shared_ptr<UpstreamConn>> acquire(UpstreamError& err, bool allow_reuse = true);
  // Gives a connection back; it is pooled only if its response ended cleanly.
  void release(std::shared_ptr<UpstreamConn> c);
  void set_options(UpstreamOptions opts);
  const UpstreamOptions& options() const noexcept { return opts_; }
  std::size_t active() const noexcept { return active_; }
  std::size_t idle() const noexcept { return idle_.size(); }
  void close_all();

 private:
  asio::awaitable<void> resolve_if_needed(UpstreamError& err);
  asio::io_context& ioc_;
  WatchdogSet& watchdogs_;
  UpstreamOptions opts_;
  std::vector<asio::ip::tcp::endpoint> endpoints_;
  std::vector<std::shared_ptr<UpstreamConn>> idle_;
  std::size_t active_ = 0;  // checked out or connecting
  uint64_t generation_ = 0; // bumped when the origin changes: older connections are not reused
};

}  // namespace cachalot::net
