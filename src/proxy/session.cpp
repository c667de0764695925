#include "proxy/session.h"

#include <spdlog/spdlog.h>

#include "proxy/access_log.h"
#include "proxy/app.h"
#include "proxy/exchange.h"

namespace cachalot::proxy {

using asio::awaitable;
using ReadStatus = ClientConnection::ReadStatus;

Session::Session(Worker& w, asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
    : w_(w), conn_(std::move(socket), w.watchdogs, std::move(tls)) {
  w_.sessions.push_back(this);
  w_.metrics.client_connections.fetch_add(1, std::memory_order_relaxed);
  w_.metrics.client_connections_total.fetch_add(1, std::memory_order_relaxed);
}

Session::~Session() {
  auto& v = w_.sessions;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] == this) {
      v[i] = v.back();
      v.pop_back();
      break;
    }
  w_.metrics.client_connections.fetch_sub(1, std::memory_order_relaxed);
}

void Session::close_if_idle() {
  if (idle_ && !conn_.has_unread()) {
    closing_ = true;
    conn_.cancel();
  }
}

void Session::finish_request(const Runtime& rt) {
  auto dur = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  w_.metrics.count(out_.result, out_.status);
  w_.metrics.count_route(out_.route_id, out_.result);
  w_.metrics.request_duration.observe(dur);
  access_log(rt.config(), conn_.peer().ip, conn_.parser().request(), out_.status, conn_.bytes_sent(), dur,
             out_.cache_status);
}

awaitable<void> Session::reject(const Runtime& rt) {
  auto& parser = conn_.parser();
  w_.metrics.bad_requests.fetch_add(1, std::memory_order_relaxed);
  int code = 400;
  switch (parser.error()) {
    case http::ParseError::HeaderTooLarge: code = 431; break;
    case http::ParseError::UriTooLong: code = 414; break;
    case http::ParseError::BodyTooLarge: code = 413; break;
    case http::ParseError::Unsupported: code = 501; break;
    default: break;
  }
  out_.cache_status = "fwd=bypass; detail=" + std::string(http::to_string(parser.error()));
  Responder r(&conn_, parser.request(), out_, buffers_, rt.config().server.timeouts.send, true);
  co_await r.error(code, http::to_string(parser.error()), true);
}

awaitable<bool> Session::skip_body(const Runtime& rt) {
  auto& parser = conn_.parser();
  while (!parser.message_complete()) {
    const ReadStatus st = co_await conn_.read_body(rt.config().server.timeouts.client_body);
    if (st != ReadStatus::Ok) co_return false;
  }
  co_return true;
}

awaitable<void> Session::run() {
  auto self = shared_from_this();
  auto& parser = conn_.parser();
  std::shared_ptr<const Runtime> rt = w_.runtime();
  if (!co_await conn_.handshake(rt->config().server.timeouts.client_header)) {
    spdlog::debug("TLS handshake with {} failed", conn_.peer().ip);
    conn_.shutdown();
    co_return;
  }
  for (bool answered = false;; answered = true) {
    rt = w_.runtime();
    const auto& lim = rt->config().server.limits;
    parser.set_limits({static_cast<std::size_t>(lim.max_header_bytes), static_cast<std::size_t>(lim.max_uri_length),
                       lim.max_body_size});
    idle_ = true;
    if ((w_.app.draining() || closing_) && !conn_.has_unread()) break;
    ReadStatus st = co_await conn_.read_head(rt->config().server.timeouts, answered);
    idle_ = false;
    rt = w_.runtime();  // a reload while we waited applies to this request
    started_ = std::chrono::steady_clock::now();
    out_.reset();
    conn_.reset_bytes_sent();
    if (st == ReadStatus::Closed || st == ReadStatus::Error) break;
    if (st == ReadStatus::Timeout) {
      // A partial request that stalls gets 408; an idle keep-alive connection just closes.
      if (parser.in_message()) {
        out_.cache_status = "fwd=bypass; detail=request-timeout";
        Responder r(&conn_, parser.request(), out_, buffers_, rt->config().server.timeouts.send, true);
        co_await r.error(408, "request-timeout", true);
        finish_request(*rt);
      }
      break;
    }
    if (st == ReadStatus::Bad) {
      co_await reject(*rt);
      finish_request(*rt);
      break;
    }
    {
      Exchange x(w_, rt, parser.request(), &conn_, fwd_, out_, buffers_);
      co_await x.run();
    }
    finish_request(*rt);
    if (out_.close || conn_.gone() || !parser.request().keep_alive) break;
    // Discard an unread request body (e.g. an answer sent before reading it).
    if (!parser.message_complete() && !co_await skip_body(*rt)) break;
    parser.next_message();
  }
  conn_.shutdown();
}

}  // namespace cachalot::proxy
