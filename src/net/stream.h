// Stream: a TCP connection (optionally TLS) with a read buffer and one
// watchdog; the buffered read loop that client and origin connections share.
//
// fill() reads what the peer has sent after the unread bytes (compacting the
// buffer when it is full at the end), bounded by a timeout on the watchdog;
// parse() feeds the unread bytes to an http::Parser and consumes what it
// took. write() is one gathered write bounded by a timeout. A Stream lives on
// one io_context thread and is never moved (its watchdog points back at it).
#pragma once

#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "http/parser.h"
#include "net/watchdog.h"

namespace cachalot::net {

enum class IoStatus : uint8_t {
  Ok,       // bytes were read / written
  Eof,      // the peer closed (TLS without close_notify counts as a close)
  Timeout,  // the watchdog fired
  Error,    // reset, refused, cancelled...
};

class Stream {
 public:
  using tcp = asio::ip::tcp;
  // What the watchdog does when a deadline passes: cancel the pending
  // operation (the owner decides what then), or close the socket.
  enum class OnExpire : uint8_t { Cancel, Close };

  Stream(tcp::socket socket, WatchdogSet& watchdogs, OnExpire on_expire, std::size_t buffer_size = 16 * 1024)
      : socket_(std::move(socket)),
        watchdog_(watchdogs,
                  [this, on_expire] {
                    asio::error_code ec;
                    if (on_expire == OnExpire::Cancel)
                      socket_.cancel(ec);
                    else
                      socket_.close(ec);
                  }),
        buf_(buffer_size) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  tcp::socket& socket() noexcept { return socket_; }
  const tcp::socket& socket() const noexcept { return socket_; }
  Watchdog& watchdog() noexcept { return watchdog_; }
  const Watchdog& watchdog() const noexcept { return watchdog_; }
  void use_tls(asio::ssl::context& ctx) { tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, ctx); }
  asio::ssl::stream<tcp::socket&>* tls() noexcept { return tls_.get(); }

  // Unread bytes.
  const char* data() const noexcept { return buf_.data() + rpos_; }
  std::size_t size() const noexcept { return rend_ - rpos_; }
  bool empty() const noexcept { return rpos_ == rend_; }
  void consume(std::size_t n) noexcept { rpos_ += n; }
  bool eof() const noexcept { return eof_; }
  // Feeds the unread bytes to `p` (it stops at a message end), consuming what it took.
  void parse(http::Parser& p) { consume(p.execute(data(), size())); }

  // `yield_first`: the peer cannot have answered yet (a request or a
  // response just written), so a read now would most likely fail with EAGAIN
  // (asio tries one before it waits) and cost a system call for nothing.
  // Going round the event loop once first lets the worker's other
  // connections run meanwhile; on a busy worker the answer is there when the
  // read is tried (nginx gets the same from its edge-triggered ready flag).
  asio::awaitable<IoStatus> fill(std::chrono::milliseconds timeout, bool yield_first = false) {
    if (rpos_ == rend_) rpos_ = rend_ = 0;
    if (rend_ == buf_.size()) {
      std::memmove(buf_.data(), buf_.data() + rpos_, rend_ - rpos_);
      rend_ -= rpos_;
      rpos_ = 0;
    }
    watchdog_.arm(timeout);
    asio::error_code ec;
    auto space = asio::buffer(buf_.data() + rend_, buf_.size() - rend_);
    std::size_t n = yield_first ? co_await read_after_a_round(space, ec)
                    : tls_      ? co_await tls_->async_read_some(space, asio::redirect_error(asio::use_awaitable, ec))
                                : co_await socket_.async_read_some(space, asio::redirect_error(asio::use_awaitable, ec));
    watchdog_.disarm();
    rend_ += n;
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      eof_ = true;
      co_return IoStatus::Eof;
    }
    if (ec) co_return watchdog_.expired() ? IoStatus::Timeout : IoStatus::Error;
    co_return IoStatus::Ok;
  }

  // async_read_some (TLS or plain) started from a handler posted to the back of the
  // worker's queue: one awaited operation, not a post and a read (each
  // co_await costs a frame). A watchdog that expired meanwhile found no
  // operation to cancel, so the read is not started then.
  asio::awaitable<std::size_t> read_after_a_round(asio::mutable_buffer space, asio::error_code& ec) {
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    return asio::async_initiate<decltype(token), void(asio::error_code, std::size_t)>(
        [this, space](auto handler) {
          asio::post(socket_.get_executor(), [this, space, h = std::move(handler)]() mutable {
            if (watchdog_.expired()) {
              std::move(h)(asio::error_code(asio::error::operation_aborted), std::size_t{0});
              return;
            }
            if (tls_)
              tls_->async_read_some(space, std::move(h));
            else
              socket_.async_read_some(space, std::move(h));
          });
        },
        token);
  }

  // One gathered write; false when it failed (watchdog().expired() tells a
  // timeout), and every write after a failed one fails at once.
  template <class Buffers>
  asio::awaitable<bool> write(const Buffers& buffers, std::chrono::milliseconds timeout,
                              std::size_t* written = nullptr) {
    if (write_failed_) co_return false;
    asio::error_code ec;
    if (!tls_) {
      // Plain TCP: one non-blocking sendmsg first. A response that fits the
      // socket buffer (nearly every hit) is done without an async operation,
      // a trip through the scheduler and a coroutine suspension; the rest, if
      // any, is written asynchronously under the watchdog.
      const std::size_t n = write_now(buffers, ec);
      if (written) *written += n;
      if (!ec) co_return true;
      if (ec != asio::error::would_block && ec != asio::error::try_again) {
        write_failed_ = true;
        co_return false;
      }
      if (n != 0) co_return co_await write_rest(buffers, n, timeout, written);
      ec.clear();
    }
    watchdog_.arm(timeout);
    std::size_t n = tls_ ? co_await asio::async_write(*tls_, buffers, asio::redirect_error(asio::use_awaitable, ec))
                         : co_await asio::async_write(socket_, buffers, asio::redirect_error(asio::use_awaitable, ec));
    watchdog_.disarm();
    if (written) *written += n;
    if (ec) write_failed_ = true;
    co_return !write_failed_;
  }
  bool write_failed() const noexcept { return write_failed_; }

 private:
  // Writes what the socket takes now, without blocking: all of `buffers`
  // (ec clear), part or none (ec would_block), or fails (ec set).
  template <class Buffers>
  std::size_t write_now(const Buffers& buffers, asio::error_code& ec) {
    if (!non_blocking_) {
      socket_.non_blocking(true, ec);  // sync calls return would_block instead of blocking
      if (ec) return 0;
      non_blocking_ = true;
    }
    const std::size_t total = asio::buffer_size(buffers);
    std::size_t done = 0;
    while (done < total) {
      // The first call sends everything in one sendmsg; a retry only follows a short write.
      const std::size_t n = done == 0 ? socket_.write_some(buffers, ec) : write_from(buffers, done, ec);
      done += n;
      if (ec) return done;
      if (n == 0) break;
    }
    return done;
  }
  template <class Buffers>
  std::size_t write_from(const Buffers& buffers, std::size_t skip, asio::error_code& ec) {
    std::vector<asio::const_buffer> rest = tail_of(buffers, skip);
    return socket_.write_some(rest, ec);
  }
  template <class Buffers>
  static std::vector<asio::const_buffer> tail_of(const Buffers& buffers, std::size_t skip) {
    std::vector<asio::const_buffer> rest;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      asio::const_buffer b(*it);
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      rest.push_back(b + skip);
      skip = 0;
    }
    return rest;
  }
  // The part of `buffers` after the first `skip` bytes, asynchronously.
  template <class Buffers>
  asio::awaitable<bool> write_rest(const Buffers& buffers, std::size_t skip, std::chrono::milliseconds timeout,
                                   std::size_t* written) {
    std::vector<asio::const_buffer> rest = tail_of(buffers, skip);
    watchdog_.arm(timeout);
    asio::error_code ec;
    const std::size_t n = co_await asio::async_write(socket_, rest, asio::redirect_error(asio::use_awaitable, ec));
    watchdog_.disarm();
    if (written) *written += n;
    if (ec) write_failed_ = true;
    co_return !write_failed_;
  }

 public:

  // Drops the unread bytes (a connection being reset for reuse).
  void discard() noexcept { rpos_ = rend_ = 0; }
  void close() noexcept {
    asio::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    watchdog_.disarm();
  }

 private:
  tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
  Watchdog watchdog_;
  std::vector<char> buf_;
  std::size_t rpos_ = 0, rend_ = 0;
  bool eof_ = false;
  bool write_failed_ = false;
  bool non_blocking_ = false;  // the socket's user-level non-blocking mode is on
};

}  // namespace cachalot::net
