#include "proxy/client_connection.h"

namespace cachalot::proxy {

using asio::awaitable;

ClientConnection::ClientConnection(asio::ip::tcp::socket socket, net::WatchdogSet& watchdogs,
                                   std::shared_ptr<asio::ssl::context> tls)
    : tls_ctx_(std::move(tls)),
      stream_(std::move(socket), watchdogs, net::Stream::OnExpire::Cancel),
      parser_(http::Parser::Kind::Request, {}) {
  asio::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) {
    auto a = ep.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped()) a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    peer_.ip = a.to_string();
    if (a.is_v4()) {
      auto b = a.to_v4().to_bytes();
      peer_.address.assign(b.begin(), b.end());
    } else {
      auto b = a.to_v6().to_bytes();
      peer_.address.assign(b.begin(), b.end());
    }
  }
  stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  if (tls_ctx_) stream_.use_tls(*tls_ctx_);
}

awaitable<bool> ClientConnection::handshake(std::chrono::milliseconds timeout) {
  auto* tls = stream_.tls();
  if (!tls) co_return true;
  stream_.watchdog().arm(timeout);
  asio::error_code ec;
  co_await tls->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
  stream_.watchdog().disarm();
  co_return !ec;
}

awaitable<ClientConnection::ReadStatus> ClientConnection::read_head(const config::ServerTimeouts& t, bool after_answer) {
  std::optional<std::chrono::steady_clock::time_point> head_deadline;
  for (;;) {
    if (!stream_.empty()) {
      if (!head_deadline) head_deadline = std::chrono::steady_clock::now() + t.client_header;
      stream_.parse(parser_);
      if (parser_.error() != http::ParseError::None) co_return ReadStatus::Bad;
      if (parser_.head_complete()) co_return ReadStatus::Ok;
    }
    if (stream_.eof()) co_return ReadStatus::Closed;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(t.client_idle);
    if (head_deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*head_deadline - std::chrono::steady_clock::now());
      // Checked here too: a trickling client keeps reads completing, so the
      // ticker may never find a read pending when the deadline passes.
      if (left.count() <= 0) co_return ReadStatus::Timeout;
      wait = left;
    }
    // (The awaited value goes into a variable first: GCC 12 miscompiles a
    // co_await inside a switch condition.)
    // The next request on a kept-alive connection, right after our answer:
    // it cannot be there yet, so the read goes round the event loop first.
    const net::IoStatus io = co_await stream_.fill(wait, after_answer && !head_deadline);
    switch (io) {
      case net::IoStatus::Ok: break;
      case net::IoStatus::Eof: if (stream_.empty()) co_return ReadStatus::Closed; break;
      case net::IoStatus::Timeout: co_return ReadStatus::Timeout;
      case net::IoStatus::Error: co_return ReadStatus::Error;
    }
  }
}

awaitable<ClientConnection::ReadStatus> ClientConnection::read_body(std::chrono::milliseconds timeout) {
  parser_.body().clear();
  for (;;) {
    if (parser_.message_complete()) co_return ReadStatus::Ok;
    if (!stream_.empty()) {
      stream_.parse(parser_);
      if (parser_.error() != http::ParseError::None) co_return ReadStatus::Bad;
      if (!parser_.body().empty() || parser_.message_complete()) co_return ReadStatus::Ok;
    }
    if (stream_.eof()) co_return ReadStatus::Closed;
    const net::IoStatus io = co_await stream_.fill(timeout);
    switch (io) {
      case net::IoStatus::Ok: break;
      case net::IoStatus::Eof: if (stream_.empty()) co_return ReadStatus::Closed; break;
      case net::IoStatus::Timeout: co_return ReadStatus::Timeout;
      case net::IoStatus::Error: co_return ReadStatus::Error;
    }
  }
}

void ClientConnection::cancel() noexcept {
  asio::error_code ec;
  stream_.socket().cancel(ec);
}

void ClientConnection::shutdown() noexcept {
  stream_.watchdog().disarm();
  auto& s = stream_.socket();
  if (!s.is_open()) return;
  asio::error_code ec;
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  s.close(ec);
}

}  // namespace cachalot::proxy
