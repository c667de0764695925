#include "net/upstream.h"

#include <sys/socket.h>

#include <cstring>

namespace cachalot::net {

using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;

std::string_view to_string(UpstreamError e) noexcept {
  switch (e) {
    case UpstreamError::None: return "none";
    case UpstreamError::ConnectRefused: return "connect";
    case UpstreamError::ConnectTimeout: return "connect-timeout";
    case UpstreamError::Reset: return "reset";
    case UpstreamError::Timeout: return "timeout";
    case UpstreamError::BadResponse: return "bad-response";
    case UpstreamError::WriteFailed: return "write";
    case UpstreamError::Tls: return "tls";
  }
  return "none";
}

awaitable<UpstreamError> UpstreamConn::fill(std::chrono::milliseconds timeout, bool yield_first) {
  IoStatus st = co_await stream.fill(timeout, yield_first);
  // The origin closing ends an EOF-delimited body; the callers decide.
  if (st == IoStatus::Ok || st == IoStatus::Eof) co_return UpstreamError::None;
  co_return st == IoStatus::Timeout ? UpstreamError::Timeout : UpstreamError::Reset;
}

awaitable<UpstreamError> UpstreamConn::read_head(std::chrono::milliseconds first_byte_timeout) {
  // Nothing of the answer read yet: it cannot have come so soon after the
  // request, so the first read goes round the event loop first.
  bool first = stream.empty();
  for (;;) {
    if (!stream.empty()) {
      stream.parse(parser);
      if (parser.error() != http::ParseError::None) co_return UpstreamError::BadResponse;
      if (parser.head_complete()) {
        // An interim (1xx) response is returned too: the caller relays or drops
        // it, calls parser.next_message() and reads again.
        head_body_pending = true;
        co_return UpstreamError::None;
      }
    }
    if (stream.eof()) co_return UpstreamError::Reset;
    UpstreamError e = co_await fill(first_byte_timeout, first);
    if (e != UpstreamError::None) co_return e;
    first = false;
  }
}

awaitable<UpstreamError> UpstreamConn::read_body(std::chrono::milliseconds idle_timeout) {
  if (head_body_pending) {
    head_body_pending = false;
    if (!parser.body().empty() || parser.message_complete()) co_return UpstreamError::None;
  }
  parser.body().clear();
  for (;;) {
    if (parser.message_complete()) co_return UpstreamError::None;
    if (!stream.empty()) {
      stream.parse(parser);
      if (parser.error() != http::ParseError::None) co_return UpstreamError::BadResponse;
      if (!parser.body().empty() || parser.message_complete()) co_return UpstreamError::None;
    }
    if (stream.eof()) {
      // The origin closed: that ends an EOF-delimited body, or cuts the response short.
      if (parser.finish()) co_return UpstreamError::None;
      co_return UpstreamError::Reset;
    }
    UpstreamError e = co_await fill(idle_timeout);
    if (e != UpstreamError::None) co_return e;
  }
}

bool UpstreamConn::reusable() const noexcept {
  return parser.message_complete() && parser.response().keep_alive && !stream.eof() && stream.empty() &&
         stream.socket().is_open() && !stream.watchdog().expired();
}

UpstreamPool::UpstreamPool(asio::io_context& ioc, WatchdogSet& watchdogs, UpstreamOptions opts)
    : ioc_(ioc), watchdogs_(watchdogs), opts_(std::move(opts)) {}

UpstreamPool::~UpstreamPool() { close_all(); }

void UpstreamPool::close_all() {
  for (auto& c : idle_) c->close();
  idle_.clear();
}

void UpstreamPool::set_options(UpstreamOptions opts) {
  bool target_changed = opts.host != opts_.host || opts.port != opts_.port || opts.tls != opts_.tls;
  opts_ = std::move(opts);
  if (target_changed) {
    ++generation_;
    endpoints_.clear();
    close_all();
  }
}

awaitable<void> UpstreamPool::resolve_if_needed(UpstreamError& err) {
  if (!endpoints_.empty()) co_return;
  asio::ip::tcp::resolver resolver(ioc_);
  asio::error_code ec;
  auto results = co_await resolver.async_resolve(opts_.host, std::to_string(opts_.port),
                                                 asio::redirect_error(use_awaitable, ec));
  if (ec) {
    err = UpstreamError::ConnectRefused;
    co_return;
  }
  for (const auto& r : results) endpoints_.push_back(r.endpoint());
  if (endpoints_.empty()) err = UpstreamError::ConnectRefused;
}

// True if the origin has closed, reset, or sent unsolicited bytes on an idle connection.
static bool idle_connection_dead(asio::ip::tcp::socket& s) {
  char b;
  ssize_t n = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;                                        // FIN
  if (n < 0) return !(errno == EAGAIN || errno == EWOULDBLOCK);   // reset or error
  return true;                                                    // stray bytes: unusable
}

awaitable<std::shared_ptr<UpstreamConn>> UpstreamPool::acquire(UpstreamError& err, bool allow_reuse) {
  err = UpstreamError::None;
  while (allow_reuse && !idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    if (!c->stream.socket().is_open() || c->stream.watchdog().expired() || idle_connection_dead(c->stream.socket())) {
      c->close();
      continue;
    }
    c->reused = true;
    c->parser.next_message();
    c->head_body_pending = false;
    ++active_;
    co_return c;
  }
  co_await resolve_if_needed(err);
  if (err != UpstreamError::None) co_return nullptr;

  auto c = std::make_shared<UpstreamConn>(ioc_.get_executor(), watchdogs_, opts_.limits);
  c->generation = generation_;
  ++active_;
  auto& wd = c->stream.watchdog();
  wd.arm(opts_.connect_timeout);
  asio::error_code ec;
  co_await asio::async_connect(c->stream.socket(), endpoints_, asio::redirect_error(use_awaitable, ec));
  wd.disarm();
  if (ec) {
    err = wd.expired() ? UpstreamError::ConnectTimeout : UpstreamError::ConnectRefused;
    c->close();
    --active_;
    co_return nullptr;
  }
  c->stream.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  if (opts_.tls) {
    const std::string& name = opts_.sni.empty() ? opts_.host : opts_.sni;
    c->stream.use_tls(*opts_.tls);
    auto* tls = c->stream.tls();
    // RFC 6066 §3: SNI carries host names only, never IP literals.
    asio::error_code ip_ec;
    (void)asio::ip::make_address(name, ip_ec);
    if (ip_ec) SSL_set_tlsext_host_name(tls->native_handle(), name.c_str());
    if (opts_.verify) tls->set_verify_callback(asio::ssl::host_name_verification(name));
    wd.arm(opts_.connect_timeout);
    co_await tls->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
    wd.disarm();
    if (ec) {
      err = wd.expired() ? UpstreamError::ConnectTimeout : UpstreamError::Tls;
      c->close();
      --active_;
      co_return nullptr;
    }
  }
  co_return c;
}

void UpstreamPool::release(std::shared_ptr<UpstreamConn> c) {
  if (!c) return;
  --active_;
  if (c->reusable() && idle_.size() < opts_.max_idle && c->generation == generation_) {
    c->reused = true;
    c->parser.next_message();
    c->stream.watchdog().arm(opts_.pool_idle);
    idle_.push_back(std::move(c));
    return;
  }
  c->close();
}

}  // namespace cachalot::net
