// ClientConnection: one client's socket (TLS or not), its buffered reads,
// its writes and their deadlines. It reads and writes bytes; it decides
// nothing about HTTP beyond feeding the request parser.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "config/config.h"
#include "http/parser.h"
#include "net/stream.h"
#include "proxy/forwarded_request.h"

namespace cachalot::proxy {

class ClientConnection {
 public:
  enum class ReadStatus : uint8_t {
    Ok,       // a complete head (read_head) or some body bytes / the end (read_body)
    Closed,   // the client closed
    Timeout,  // client_idle / client_header / client_body passed
    Error,    // reset or cancelled
    Bad,      // the parser rejected the bytes (parser().error() says why)
  };

  ClientConnection(asio::ip::tcp::socket socket, net::WatchdogSet& watchdogs, std::shared_ptr<asio::ssl::context> tls);

  // TLS listeners: the server handshake, bounded by `timeout`.
  asio::awaitable<bool> handshake(std::chrono::milliseconds timeout);
  // Reads until a request head is complete: client_idle bounds the wait for
  // its first byte, client_header the whole head from that byte on (slowloris).
  // `after_answer`: the previous request on this connection was just answered.
  asio::awaitable<ReadStatus> read_head(const config::ServerTimeouts& t, bool after_answer = false);
  // The next piece of the request body into parser().body() (empty with
  // message_complete() at the end).
  asio::awaitable<ReadStatus> read_body(std::chrono::milliseconds timeout);

  // One gathered write, bounded by `timeout`. After a failed write the
  // client is gone: every later send returns false at once. (Not a
  // coroutine itself: the hit path pays for one frame, the stream's.)
  template <class Buffers>
  asio::awaitable<bool> send(const Buffers& buffers, std::chrono::milliseconds timeout) {
    return stream_.write(buffers, timeout, &bytes_sent_);
  }

  http::Parser& parser() noexcept { return parser_; }
  const Peer& peer() const noexcept { return peer_; }
  std::string_view scheme() const noexcept { return tls_ctx_ ? "https" : "http"; }
  bool gone() const noexcept { return stream_.write_failed(); }
  bool has_unread() const noexcept { return !stream_.empty(); }
  uint64_t bytes_sent() const noexcept { return bytes_sent_; }
  void reset_bytes_sent() noexcept { bytes_sent_ = 0; }
  // Drain: wakes a read waiting for the next request.
  void cancel() noexcept;
  // Sends FIN after the last response, then closes.
  void shutdown() noexcept;

 private:
  std::shared_ptr<asio::ssl::context> tls_ctx_;  // keeps the context alive
  net::Stream stream_;
  http::Parser parser_;
  Peer peer_;
  uint64_t bytes_sent_ = 0;
};

}  // namespace cachalot::proxy
