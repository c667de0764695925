#include "proxy/session.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>
#include <random>

#include "cache/cache_control.h"
#include "cache/conditional.h"
#include "cache/evaluate.h"
#include "cache/invalidation.h"
#include "cache/key.h"
#include "cache/storable.h"
#include "cache/validation.h"
#include "cache/vary.h"
#include "core/clock.h"
#include "http/date.h"
#include "http/hop_by_hop.h"
#include "proxy/access_log.h"
#include "proxy/app.h"

namespace cachalot::proxy {

using asio::awaitable;
using asio::use_awaitable;
using core::Clock;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kReadBuffer = 16 * 1024;

void append_num(std::string& out, int64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  out.append(b, r.ptr);
}

void append_status_line(std::string& out, int status, std::string_view reason) {
  out.append("HTTP/1.1 ");
  append_num(out, status);
  out.push_back(' ');
  if (reason.empty()) reason = http::reason_phrase(status);
  out.append(reason);
  out.append("\r\n");
}

bool status_has_no_body(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

// Per-thread Date value, formatted at most once a second.
std::string_view date_now() {
  thread_local int64_t last = -1;
  thread_local char buf[29];
  int64_t now = core::to_unix_seconds(Clock::now());
  if (now != last) {
    http::format_http_date(now, buf);
    last = now;
  }
  return {buf, 29};
}

metrics::UpstreamErrorKind kind_of(net::UpstreamError e) {
  switch (e) {
    case net::UpstreamError::ConnectRefused: return metrics::UpstreamErrorKind::Connect;
    case net::UpstreamError::ConnectTimeout: return metrics::UpstreamErrorKind::ConnectTimeout;
    case net::UpstreamError::Reset: return metrics::UpstreamErrorKind::Reset;
    case net::UpstreamError::Timeout: return metrics::UpstreamErrorKind::Timeout;
    case net::UpstreamError::BadResponse: return metrics::UpstreamErrorKind::BadResponse;
    case net::UpstreamError::Tls: return metrics::UpstreamErrorKind::Tls;
    default: return metrics::UpstreamErrorKind::Write;
  }
}

cache::FreshnessOptions freshness_options(const config::Config& cfg, const config::Route* route) {
  cache::FreshnessOptions o;
  o.heuristic_fraction = cfg.cache.heuristic_fraction;
  o.heuristic_max = std::chrono::duration_cast<core::Seconds>(cfg.cache.heuristic_max);
  o.grace_sie = std::chrono::duration_cast<core::Seconds>(cfg.cache.stale_if_error);
  o.keep = std::chrono::duration_cast<core::Seconds>(cfg.cache.keep);
  if (route) {
    o.default_ttl = std::chrono::duration_cast<core::Seconds>(route->default_ttl);
    o.min_ttl = std::chrono::duration_cast<core::Seconds>(route->min_ttl);
    o.max_ttl = std::chrono::duration_cast<core::Seconds>(route->max_ttl);
    o.default_swr = std::chrono::duration_cast<core::Seconds>(route->stale_while_revalidate);
    o.default_sie = std::chrono::duration_cast<core::Seconds>(route->stale_if_error);
  }
  return o;
}

// The largest body we store: the configured limit, but never more than one
// shard's budget (the store charges each shard max_memory / shards).
uint64_t max_object(const config::Config& cfg) {
  return std::min<uint64_t>(cfg.cache.max_object_size, cfg.cache.max_memory / std::max<uint32_t>(1, cfg.cache.shards));
}

cache::KeyOptions key_options(const config::Route* route) {
  cache::KeyOptions k;
  if (route) {
    k.sort_query = route->key.sort_query;
    k.ignore_params = route->key.ignore_params;
    k.headers = route->key.headers;
  }
  return k;
}

// The variant key of a request for a stored Vary (same encoding as cache::variant_key).
std::string vary_key(const std::vector<std::string>& names, const http::HeaderMap& req) {
  std::string key;
  for (const auto& name : names) {
    if (!key.empty()) key.push_back('\n');
    cache::append_field_entry(key, name, req);
  }
  return key;
}

// Tags from the configured response fields: Surrogate-Key is space-separated,
// Cache-Tag comma-separated; we accept both separators in every field.
std::vector<std::string> parse_tags(const http::HeaderMap& h, const std::vector<std::string>& fields) {
  std::vector<std::string> tags;
  for (const auto& name : fields) {
    for (auto f : h) {
      if (!http::iequals(f.name, name)) continue;
      std::string_view v = f.value;
      std::size_t i = 0;
      while (i < v.size()) {
        while (i < v.size() && (v[i] == ' ' || v[i] == ',' || v[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < v.size() && v[j] != ' ' && v[j] != ',' && v[j] != '\t') ++j;
        if (j > i) tags.emplace_back(v.substr(i, j - i));
        i = j;
      }
    }
  }
  return tags;
}

}  // namespace

// What one fetch from the origin is for.
struct Session::FetchPlan {
  std::string key;                            // primary key ("" when the response may not be stored)
  const config::Route* route = nullptr;
  bool may_store = false;                     // request allows storing the response
  bool conditional = false;                   // revalidate `stale` with its validators
  std::shared_ptr<const cache::Entry> stale;  // entry being revalidated / stale-if-error fallback
  std::shared_ptr<Fill> fill;                 // followers wait on this (leader only)
  bool pass = false;                          // forward as is (request body, no cache)
};

Session::Session(Worker& w, asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
    : w_(w),
      app_(w.app),
      socket_(std::move(socket)),
      watchdog_(w.watchdogs,
                [this] {
                  asio::error_code ec;
                  socket_->cancel(ec);
                }),
      parser_(http::Parser::Kind::Request, {}),
      buf_(kReadBuffer),
      req_(&parser_.request()) {
  asio::error_code ec;
  auto ep = socket_->remote_endpoint(ec);
  if (!ec) {
    auto a = ep.address();
    client_ip_ = a.is_v6() && a.to_v6().is_v4_mapped()
                     ? asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string()
                     : a.to_string();
  }
  socket_->set_option(asio::ip::tcp::no_delay(true), ec);
  if (tls) {
    tls_ctx_ = std::move(tls);
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(*socket_, *tls_ctx_);
  }
  w_.sessions.push_back(this);
  w_.metrics.client_connections.fetch_add(1, std::memory_order_relaxed);
  w_.metrics.client_connections_total.fetch_add(1, std::memory_order_relaxed);
}

Session::Session(Worker& w, const http::RequestHead& req)
    : w_(w),
      app_(w.app),
      watchdog_(w.watchdogs, nullptr),
      parser_(http::Parser::Kind::Request, {}),
      background_req_(std::make_unique<http::RequestHead>(req)),
      req_(background_req_.get()) {
  client_gone_ = true;
  ++w_.background_refreshes;
}

Session::~Session() {
  if (socket_) {
    auto& v = w_.sessions;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (v[i] == this) {
        v[i] = v.back();
        v.pop_back();
        break;
      }
    w_.metrics.client_connections.fetch_sub(1, std::memory_order_relaxed);
  } else {
    --w_.background_refreshes;
  }
}

void Session::close_if_idle() {
  if (idle_ && socket_ && rpos_ == rend_) {
    asio::error_code ec;
    socket_->cancel(ec);
    close_after_ = true;
  }
}

// ---------------------------------------------------------------- reading

awaitable<Session::ReadStatus> Session::fill_buffer(std::chrono::milliseconds timeout) {
  if (rpos_ == rend_) rpos_ = rend_ = 0;
  if (rend_ == buf_.size()) {
    std::memmove(buf_.data(), buf_.data() + rpos_, rend_ - rpos_);
    rend_ -= rpos_;
    rpos_ = 0;
  }
  watchdog_.arm(timeout);
  asio::error_code ec;
  auto space = asio::buffer(buf_.data() + rend_, buf_.size() - rend_);
  std::size_t n = tls_ ? co_await tls_->async_read_some(space, asio::redirect_error(use_awaitable, ec))
                       : co_await socket_->async_read_some(space, asio::redirect_error(use_awaitable, ec));
  watchdog_.disarm();
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    eof_ = true;
    co_return ReadStatus::Closed;
  }
  if (ec) co_return watchdog_.expired() ? ReadStatus::Timeout : ReadStatus::Error;
  rend_ += n;
  co_return ReadStatus::Ok;
}

awaitable<Session::ReadStatus> Session::read_head() {
  const auto& t = cfg_->server.timeouts;
  // client_idle bounds the wait for a request's first byte; client_header
  // bounds the whole head from that byte on, however it is split (slowloris).
  std::optional<std::chrono::steady_clock::time_point> head_deadline;
  for (;;) {
    if (rpos_ < rend_) {
      idle_ = false;
      if (!head_deadline) head_deadline = std::chrono::steady_clock::now() + t.client_header;
      rpos_ += parser_.execute(buf_.data() + rpos_, rend_ - rpos_);
      if (parser_.error() != http::ParseError::None) co_return ReadStatus::Bad;
      if (parser_.head_complete()) co_return ReadStatus::Ok;
    }
    if (eof_ || close_after_) co_return ReadStatus::Closed;
    auto wait = t.client_idle;
    if (head_deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*head_deadline - std::chrono::steady_clock::now());
      // Checked here too: a trickling client keeps reads completing, so the
      // ticker may never find a read pending when the deadline passes.
      if (left.count() <= 0) co_return ReadStatus::Timeout;
      wait = left;
    }
    ReadStatus st = co_await fill_buffer(wait);
    if (st != ReadStatus::Ok) co_return st;
  }
}

awaitable<Session::ReadStatus> Session::read_request_body() {
  parser_.body().clear();
  for (;;) {
    if (parser_.message_complete()) co_return ReadStatus::Ok;
    if (rpos_ < rend_) {
      rpos_ += parser_.execute(buf_.data() + rpos_, rend_ - rpos_);
      if (parser_.error() != http::ParseError::None) co_return ReadStatus::Bad;
      if (!parser_.body().empty() || parser_.message_complete()) co_return ReadStatus::Ok;
    }
    if (eof_) co_return ReadStatus::Closed;
    ReadStatus st = co_await fill_buffer(cfg_->server.timeouts.client_body);
    if (st != ReadStatus::Ok) co_return st;
  }
}

// ---------------------------------------------------------------- writing

// One gathered write to the client, bounded by server.timeouts.send.
template <class Buffers>
awaitable<bool> Session::send_buffers(const Buffers& buffers) {
  if (client_gone_ || !socket_) co_return false;
  watchdog_.arm(cfg_->server.timeouts.send);
  asio::error_code ec;
  std::size_t n = tls_ ? co_await asio::async_write(*tls_, buffers, asio::redirect_error(use_awaitable, ec))
                       : co_await asio::async_write(*socket_, buffers, asio::redirect_error(use_awaitable, ec));
  watchdog_.disarm();
  bytes_sent_ += n;
  if (ec) {
    client_gone_ = true;
    close_after_ = true;
    co_return false;
  }
  co_return true;
}

awaitable<bool> Session::send(const std::vector<asio::const_buffer>& buffers) { return send_buffers(buffers); }

template <std::size_t N>
awaitable<bool> Session::send(const std::array<asio::const_buffer, N>& buffers) {
  return send_buffers(buffers);
}

awaitable<bool> Session::send(std::string_view s) {
  std::array<asio::const_buffer, 1> b{asio::buffer(s)};
  co_return co_await send(b);
}

void Session::append_cache_status(std::string& out, std::string_view value) const {
  out.append("Cache-Status: cachalot; ");
  out.append(value);
  out.append("\r\n");
}

awaitable<void> Session::send_error(int status, std::string_view detail, bool close) {
  status_ = status;
  if (result_ != metrics::Result::StaleError) result_ = metrics::Result::Error;
  if (close) close_after_ = true;
  if (!socket_ || head_sent_) {
    close_after_ = true;
    co_return;
  }
  std::string body;
  body.append(http::reason_phrase(status));
  if (!detail.empty()) {
    body.append(": ");
    body.append(detail);
  }
  body.push_back('\n');
  out_.clear();
  append_status_line(out_, status, {});
  out_.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  append_num(out_, static_cast<int64_t>(body.size()));
  out_.append("\r\nCache-Control: no-store\r\nDate: ");
  out_.append(date_now());
  out_.append("\r\n");
  if (cache_status_.empty()) cache_status_ = "fwd=bypass; detail=" + std::string(detail.empty() ? "error" : detail);
  append_cache_status(out_, cache_status_);
  if (close_after_ || !req_->keep_alive) out_.append("Connection: close\r\n");
  out_.append("\r\n");
  head_sent_ = true;
  std::vector<asio::const_buffer> b{asio::buffer(out_)};
  if (req_->method != http::Method::Head) b.push_back(asio::buffer(body));
  co_await send(b);
}

// ---------------------------------------------------------------- session loop

awaitable<void> Session::run() {
  auto self = shared_from_this();
  if (tls_) {
    cfg_ = app_.config();
    watchdog_.arm(cfg_->server.timeouts.client_header);
    asio::error_code ec;
    co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    watchdog_.disarm();
    if (ec) {
      spdlog::debug("TLS handshake with {} failed: {}", client_ip_, ec.message());
      socket_->close(ec);
      co_return;
    }
  }
  for (;;) {
    cfg_ = w_.config();
    const auto& lim = cfg_->server.limits;
    parser_.set_limits({static_cast<std::size_t>(lim.max_header_bytes), static_cast<std::size_t>(lim.max_uri_length),
                        lim.max_body_size});
    idle_ = true;
    if (app_.draining() && rpos_ == rend_) break;
    ReadStatus st = co_await read_head();
    cfg_ = w_.config();  // a reload while we waited applies to this request
    idle_ = false;
    started_ = std::chrono::steady_clock::now();
    status_ = 0;
    bytes_sent_ = 0;
    head_sent_ = false;
    result_ = metrics::Result::Pass;
    route_name_ = {};
    cache_status_.clear();
    if (st == ReadStatus::Closed || st == ReadStatus::Error) break;
    if (st == ReadStatus::Timeout) {
      // A partial request that stalls gets 408; an idle keep-alive connection just closes.
      if (parser_.in_message()) {
        co_await send_error(408, "request-timeout", true);
        finish_request();
      }
      break;
    }
    if (st == ReadStatus::Bad) {
      w_.metrics.bad_requests.fetch_add(1, std::memory_order_relaxed);
      int code = 400;
      switch (parser_.error()) {
        case http::ParseError::HeaderTooLarge: code = 431; break;
        case http::ParseError::UriTooLong: code = 414; break;
        case http::ParseError::BodyTooLarge: code = 413; break;
        case http::ParseError::Unsupported: code = 501; break;
        default: break;
      }
      cache_status_ = "fwd=bypass; detail=" + std::string(http::to_string(parser_.error()));
      co_await send_error(code, http::to_string(parser_.error()), true);
      finish_request();
      break;
    }
    co_await handle();
    finish_request();
    if (close_after_ || !req_->keep_alive || client_gone_) break;
    // Discard an unread request body (e.g. an answer sent before reading it).
    while (!parser_.message_complete()) {
      ReadStatus b = co_await read_request_body();
      if (b != ReadStatus::Ok) {
        close_after_ = true;
        break;
      }
    }
    if (close_after_) break;
    parser_.next_message();
  }

  watchdog_.disarm();
  if (socket_ && socket_->is_open()) {
    asio::error_code ec;
    socket_->shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    socket_->close(ec);
  }
}

void Session::finish_request() {
  auto dur = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  w_.metrics.count(result_, status_);
  if (!route_name_.empty()) w_.metrics.count_route(app_.metrics().routes().id(route_name_), result_);
  w_.metrics.request_duration.observe(dur);
  access_log(*cfg_, client_ip_, *req_, status_, bytes_sent_, dur, cache_status_);
}

// ---------------------------------------------------------------- dispatch

awaitable<void> Session::handle() {
  http::RequestHead& req = *req_;
  // Absolute-form (RFC 9112 §3.2.2): the target's authority replaces Host, and
  // the origin receives origin-form.
  if (req.target.size() > 7 && req.target[0] != '/') {
    std::string_view t = req.target;
    std::size_t scheme_end = t.find("://");
    if (scheme_end != std::string_view::npos &&
        (http::iequals(t.substr(0, scheme_end), "http") || http::iequals(t.substr(0, scheme_end), "https"))) {
      std::string_view rest = t.substr(scheme_end + 3);
      std::size_t path_start = rest.find_first_of("/?");
      std::string authority(rest.substr(0, path_start));
      std::string path = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
      if (!path.empty() && path[0] == '?') path.insert(0, "/");
      if (!authority.empty()) req.headers.set("Host", authority);
      req.target = std::move(path);
    }
  }
  const config::Route* route = cfg_->match_route(req.path());
  route_name_ = route ? std::string_view(route->name) : std::string_view();
  if (req.method == http::Method::Purge) {
    co_await handle_purge(route);
    co_return;
  }
  bool cacheable = (req.method == http::Method::Get || req.method == http::Method::Head) &&
                   !(route && route->bypass) && !req.headers.has("range") &&
                   parser_.content_length() <= 0 && !parser_.chunked();
  if (cacheable) {
    co_await handle_cacheable(route);
    co_return;
  }
  FetchPlan plan;
  plan.route = route;
  plan.pass = true;
  cache_status_ = route && route->bypass ? "fwd=bypass; detail=route" : "fwd=method";
  if (req.headers.has("range") && route && !route->bypass) cache_status_ = "fwd=bypass; detail=range";
  result_ = metrics::Result::Pass;
  co_await fetch(plan);
}

std::string_view Session::host_for_key() const {
  auto h = req_->headers.get("host");
  if (h && !h->empty()) return *h;
  return cfg_->upstream.url.host;
}

awaitable<void> Session::handle_cacheable(const config::Route* route) {
  http::RequestHead& req = *req_;
  auto now = Clock::now();
  std::string key = cache::primary_key("http", host_for_key(), req.target, req.headers, key_options(route));
  auto rcc = cache::parse_request_cache_control(req);
  bool authorized = req.headers.has("authorization");
  uint64_t generation = route ? app_.route_generation(route->name) : 0;

  bool vary_miss = false;
  // Variants of one URL nearly always share their Vary list: compute this
  // request's variant key once per distinct list, not once per variant.
  const std::vector<std::string>* keyed_names = nullptr;
  std::string request_variant;
  std::shared_ptr<const cache::Entry> entry = app_.store().find(key, [&](const cache::Entry& e) {
    if (e.vary_names.empty()) return true;
    if (!keyed_names || *keyed_names != e.vary_names) {
      request_variant = vary_key(e.vary_names, req.headers);
      keyed_names = &e.vary_names;
    }
    bool ok = request_variant == e.variant_key;
    if (!ok) vary_miss = true;
    return ok;
  });
  if (entry && (entry->route_generation != generation || now >= entry->drop_after)) {
    app_.store().erase_entry(entry);
    entry.reset();
  }
  if (entry && authorized && !cache::may_serve_to_authorized(entry->cc)) entry.reset();

  std::string_view miss_reason = vary_miss && !entry ? "vary-miss" : "uri-miss";
  std::string_view detail;
  if (entry) {
    auto ev = cache::evaluate(entry->freshness, rcc, now);
    switch (ev.decision) {
      case cache::Decision::Hit: {
        int64_t ttl = entry->freshness.ttl(now);
        cache_status_.assign("hit; ttl=");
        append_num(cache_status_, ttl);
        // Refresh-ahead: hot entries are refreshed shortly before they expire
        // (probabilistic early expiration: the closer to expiry, the likelier).
        if (route && route->refresh_ahead && entry->freshness.lifetime.count() > 0) {
          // Milliseconds: whole-second TTLs would never trigger for short lifetimes.
          const auto& f = entry->freshness;
          auto expires = f.response_time + std::chrono::duration_cast<core::Duration>(f.lifetime - f.corrected_initial_age);
          double left_ms = static_cast<double>((expires - now).count());
          double window_ms = std::max(1000.0, static_cast<double>(f.lifetime.count()) * 100.0);  // 10% of lifetime
          if (left_ms < window_ms) {
            thread_local std::minstd_rand rng{std::random_device{}()};
            double p = 1.0 - std::max(0.0, left_ms) / window_ms;
            if (std::uniform_real_distribution<double>(0, 1)(rng) < p) start_background_refresh(key, entry);
          }
        }
        co_await serve_entry(entry, metrics::Result::Hit, cache_status_);
        co_return;
      }
      case cache::Decision::HitStale: {
        cache_status_ = "hit; ttl=" + std::to_string(entry->freshness.ttl(now)) + "; detail=" +
                        std::string(cache::to_string(ev.reason));
        if (ev.reason == cache::LookupReason::StaleWhileRevalidate) start_background_refresh(key, entry);
        co_await serve_entry(entry, metrics::Result::Stale, cache_status_);
        co_return;
      }
      case cache::Decision::Revalidate:
      case cache::Decision::Miss:
        miss_reason = cache::fwd_value(ev.reason);
        detail = cache::to_string(ev.reason);
        break;
    }
  }

  if (rcc.only_if_cached) {
    cache_status_ = "fwd=miss; detail=only-if-cached";
    co_await send_error(504, "only-if-cached", false);
    co_return;
  }

  FetchPlan plan;
  plan.route = route;
  plan.key = key;
  plan.may_store = !rcc.no_store && req.method == http::Method::Get;
  plan.stale = entry;
  plan.conditional = entry && (!entry->etag.empty() || !entry->last_modified.empty());
  cache_status_ = "fwd=" + std::string(miss_reason);
  if (!detail.empty() && detail != miss_reason) cache_status_ += "; detail=" + std::string(detail);
  result_ = plan.conditional ? metrics::Result::Revalidated : metrics::Result::Miss;

  const auto& cc = cfg_->cache.coalesce;
  bool coalesce = cc.enabled && !authorized && req.method == http::Method::Get && plan.may_store;
  for (int attempt = 0; coalesce && attempt < 3; ++attempt) {
    auto ticket = app_.coalescer().join(key, cc.max_waiters, now);
    if (ticket.role == Coalescer::Role::Leader) {
      plan.fill = ticket.fill;
      co_await fetch(plan);
      app_.coalescer().release(key, ticket.fill);
      co_return;
    }
    if (ticket.role == Coalescer::Role::Alone) break;
    w_.metrics.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
    if (co_await follow(ticket.fill, key)) co_return;
    if (client_gone_ || head_sent_) co_return;
    // The leader's response was not shareable with us, or it failed: try again / alone.
    auto v = ticket.fill->view(SIZE_MAX);
    if (v.state == Fill::State::Uncacheable || v.state == Fill::State::Streaming || v.state == Fill::State::Pending)
      break;
    now = Clock::now();
    // The retry may already have been fetched and stored by the next leader.
    auto stored = app_.store().find(key, [&](const cache::Entry& e) {
      return e.vary_names.empty() || vary_key(e.vary_names, req.headers) == e.variant_key;
    });
    if (stored && stored->route_generation == generation && !(authorized && !cache::may_serve_to_authorized(stored->cc)) &&
        cache::evaluate(stored->freshness, rcc, now).decision == cache::Decision::Hit) {
      cache_status_ = "fwd=uri-miss; collapsed; ttl=" + std::to_string(stored->freshness.ttl(now));
      co_await serve_entry(stored, metrics::Result::Coalesced, cache_status_);
      co_return;
    }
  }
  co_await fetch(plan);
}

// ---------------------------------------------------------------- serving from cache

awaitable<void> Session::serve_entry(const std::shared_ptr<const cache::Entry>& e, metrics::Result result,
                                     std::string_view cache_status) {
  result_ = result;
  auto now = Clock::now();
  int64_t age = e->freshness.current_age(now).count();
  tail_.clear();
  auto cond = cache::evaluate_conditional(*req_, e->etag, e->last_modified, e->date);
  bool not_modified = cond == cache::ConditionalResult::NotModified && e->status == 200;
  std::array<asio::const_buffer, 3> bufs;
  if (not_modified) {
    // RFC 9110 §15.4.5: a 304 carries the fields a 200 would have for caching.
    status_ = 304;
    out_.clear();
    out_.append("HTTP/1.1 304 Not Modified\r\n");
    http::HeaderMap h;
    cache::copy_304_fields(e->headers, h);
    h.serialize(out_);
    out_.append("Via: 1.1 cachalot\r\n");
    bufs[0] = asio::buffer(out_);
  } else {
    status_ = e->status;
    bufs[0] = asio::buffer(e->head_block);
  }
  tail_.append("Age: ");
  append_num(tail_, age);
  tail_.append("\r\n");
  append_cache_status(tail_, cache_status);
  if (close_after_ || !req_->keep_alive || app_.draining()) {
    tail_.append("Connection: close\r\n");
    close_after_ = true;
  } else if (req_->version_minor == 0) {
    tail_.append("Connection: keep-alive\r\n");
  }
  tail_.append("\r\n");
  bufs[1] = asio::buffer(tail_);
  if (!not_modified && req_->method != http::Method::Head && !e->body.empty()) {
    bufs[2] = asio::buffer(e->body);
    w_.metrics.bytes_from_cache.fetch_add(e->body.size(), std::memory_order_relaxed);
  }
  head_sent_ = true;
  co_await send(bufs);
}

void Session::start_background_refresh(const std::string& key, const std::shared_ptr<const cache::Entry>& entry) {
  if (w_.background_refreshes >= cfg_->cache.max_background_refreshes) return;
  // A stale entry is hit many times while its refresh runs: while it runs, ask
  // the shared coalescer about that entry at most every 250 ms from this worker.
  auto now_steady = std::chrono::steady_clock::now();
  for (auto& [seen, at] : w_.recent_refreshes)
    if (seen == entry.get() && now_steady - at < std::chrono::milliseconds(250)) return;
  w_.recent_refreshes[w_.recent_refresh_next++ % w_.recent_refreshes.size()] = {entry.get(), now_steady};
  auto ticket = app_.coalescer().join(key, 0, Clock::now());
  if (ticket.role != Coalescer::Role::Leader) return;  // someone is already fetching it
  w_.metrics.background_refreshes.fetch_add(1, std::memory_order_relaxed);
  auto bg = std::make_shared<Session>(w_, *req_);
  asio::co_spawn(w_.ioc, bg->refresh(cfg_, key, entry, ticket.fill), asio::detached);
}

awaitable<void> Session::refresh(std::shared_ptr<const config::Config> cfg, std::string key,
                                 std::shared_ptr<const cache::Entry> stale, std::shared_ptr<Fill> fill) {
  auto self = shared_from_this();
  cfg_ = std::move(cfg);
  started_ = std::chrono::steady_clock::now();
  FetchPlan plan;
  plan.key = key;
  plan.route = cfg_->match_route(req_->path());
  plan.may_store = true;
  plan.stale = stale;
  plan.conditional = !stale->etag.empty() || !stale->last_modified.empty();
  plan.fill = fill;
  req_->method = http::Method::Get;
  req_->method_name = "GET";
  co_await fetch(plan);
  app_.coalescer().release(key, fill);
  // The throttle in start_background_refresh covers only the refresh in flight:
  // after a failed one, the next stale hit tries again (RFC 5861 §3).
  for (auto& recent : w_.recent_refreshes)
    if (recent.first == stale.get()) recent.first = nullptr;
}

// ---------------------------------------------------------------- following another fetch

awaitable<bool> Session::follow(const std::shared_ptr<Fill>& fill, std::string_view) {
  auto deadline = std::chrono::steady_clock::now() + cfg_->cache.coalesce.timeout;
  std::size_t sent_chunks = 0;
  bool chunked = false;
  for (;;) {
    auto v = fill->view(sent_chunks);
    switch (v.state) {
      case Fill::State::Pending:
        if (!co_await fill->wait_change(v.state, sent_chunks, deadline)) co_return false;  // timed out
        continue;
      case Fill::State::Uncacheable:
        co_return false;
      case Fill::State::Failed:
        if (head_sent_) close_after_ = true;  // cut short: the client sees a truncated body
        co_return head_sent_;
      case Fill::State::Done:
        if (!head_sent_ && v.entry) {
          const auto& e = v.entry;
          if (!e->vary_names.empty() && vary_key(e->vary_names, req_->headers) != e->variant_key)
            co_return false;
          result_ = metrics::Result::Coalesced;
          cache_status_ = "fwd=uri-miss; collapsed; ttl=" + std::to_string(e->freshness.ttl(Clock::now()));
          co_await serve_entry(e, metrics::Result::Coalesced, cache_status_);
          co_return true;
        }
        [[fallthrough]];
      case Fill::State::Streaming: {
        if (!v.head) co_return false;
        if (!head_sent_) {
          const auto& h = *v.head;
          if (!h.vary_names.empty() && vary_key(h.vary_names, req_->headers) != h.variant_key)
            co_return false;
          result_ = metrics::Result::Coalesced;
          status_ = h.status;
          cache_status_ = "fwd=uri-miss; collapsed";
          if (h.proto && cache::evaluate_conditional(*req_, h.etag, h.last_modified, h.proto->date) ==
                             cache::ConditionalResult::NotModified && h.status == 200) {
            // Answer the conditional from the head alone (RFC 9110 §13.1).
            co_await serve_entry(h.proto, metrics::Result::Coalesced, cache_status_);
            co_return true;
          }
          out_.clear();
          out_.append(h.head_block);
          chunked = h.content_length < 0;
          if (chunked) {
            if (req_->version_minor == 0)
              close_after_ = true;
            else
              out_.append("Transfer-Encoding: chunked\r\n");
          }
          append_cache_status(out_, cache_status_);
          if (close_after_ || !req_->keep_alive) {
            out_.append("Connection: close\r\n");
            close_after_ = true;
          }
          out_.append("\r\n");
          head_sent_ = true;
          if (req_->method == http::Method::Head) {
            co_await send(out_);
            close_after_ = close_after_ || chunked;
            co_return true;
          }
          if (!co_await send(out_)) co_return true;
          chunked = chunked && req_->version_minor >= 1;
        }
        if (!v.chunks.empty()) {
          bufs_.clear();
          chunk_heads_.resize(v.chunks.size());
          for (std::size_t i = 0; i < v.chunks.size(); ++i) {
            if (v.chunks[i]->empty()) continue;
            if (chunked) {
              chunk_heads_[i].clear();
              char hex[20];
              auto r = std::to_chars(hex, hex + sizeof hex, v.chunks[i]->size(), 16);
              chunk_heads_[i].append(hex, r.ptr);
              chunk_heads_[i].append("\r\n");
              bufs_.push_back(asio::buffer(chunk_heads_[i]));
            }
            bufs_.push_back(asio::buffer(*v.chunks[i]));
            if (chunked) bufs_.push_back(asio::buffer("\r\n", 2));
          }
          sent_chunks += v.chunks.size();
          if (!bufs_.empty() && !co_await send(bufs_)) co_return true;
        }
        if (v.state == Fill::State::Done) {
          if (chunked) co_await send(std::string_view("0\r\n\r\n"));
          co_return true;
        }
        if (!co_await fill->wait_change(v.state, sent_chunks, std::chrono::steady_clock::now() +
                                                                     cfg_->upstream.timeouts.idle)) {
          close_after_ = true;
          co_return true;
        }
        continue;
      }
    }
  }
}

// ---------------------------------------------------------------- fetching from the origin

void Session::finish_fill(FetchPlan& plan, Fill::State state, std::shared_ptr<const cache::Entry> entry) {
  if (!plan.fill) return;
  app_.coalescer().release(plan.key, plan.fill);
  plan.fill->finish(state, std::move(entry));
}

awaitable<bool> Session::send_request_body(net::UpstreamConn& up) {
  // Body bytes already parsed with the head are in parser_.body().
  bool chunked = parser_.chunked();
  std::vector<asio::const_buffer> b;
  std::string size_line;
  for (;;) {
    if (!parser_.body().empty()) {
      b.clear();
      std::size_t total = 0;
      for (auto s : parser_.body()) total += s.size();
      if (chunked) {
        size_line.clear();
        char hex[20];
        auto r = std::to_chars(hex, hex + sizeof hex, total, 16);
        size_line.append(hex, r.ptr);
        size_line.append("\r\n");
        b.push_back(asio::buffer(size_line));
      }
      for (auto s : parser_.body()) b.push_back(asio::buffer(s.data(), s.size()));
      if (chunked) b.push_back(asio::buffer("\r\n", 2));
      if (co_await up.write(b, cfg_->upstream.timeouts.idle) != net::UpstreamError::None) co_return false;
      parser_.body().clear();
    }
    if (parser_.message_complete()) break;
    ReadStatus st = co_await read_request_body();
    if (st != ReadStatus::Ok) co_return false;
  }
  if (chunked) {
    b.clear();
    b.push_back(asio::buffer("0\r\n\r\n", 5));
    if (co_await up.write(b, cfg_->upstream.timeouts.idle) != net::UpstreamError::None) co_return false;
  }
  co_return true;
}

awaitable<void> Session::fetch(FetchPlan& plan) {
  http::RequestHead& req = *req_;
  w_.sync_pool(cfg_);
  auto& pool = *w_.pool;
  const auto& ut = cfg_->upstream.timeouts;
  bool has_body = plan.pass && (parser_.content_length() > 0 || parser_.chunked()) && socket_;
  bool expect_continue = false;
  if (auto ex = req.headers.get("expect"); ex && http::iequals(*ex, "100-continue")) expect_continue = true;

  // ---- the request head for the origin
  std::string& head = upstream_head_;  // reused across requests: no allocation in steady state
  head.clear();
  head.append(req.method_name.empty() ? http::to_string(req.method) : std::string_view(req.method_name));
  head.push_back(' ');
  head.append(req.target);
  head.append(" HTTP/1.1\r\n");
  {
    // One pass over the client's fields: end-to-end only (RFC 9110 §7.6.1),
    // minus what we set ourselves below.
    const bool pass = plan.pass;
    http::serialize_end_to_end(req.headers, head, [pass](std::string_view n) {
      if (http::iequals(n, "expect") || http::iequals(n, "content-length") || http::iequals(n, "x-forwarded-for"))
        return true;
      // A cache fill fetches the full response and answers the client's conditionals itself.
      return !pass && (http::iequals(n, "if-none-match") || http::iequals(n, "if-modified-since") ||
                       http::iequals(n, "if-match") || http::iequals(n, "if-unmodified-since") ||
                       http::iequals(n, "if-range"));
    });
    if (!req.headers.has("host")) head.append("Host: ").append(cfg_->upstream.url.host).append("\r\n");
    if (plan.conditional && plan.stale) {
      http::HeaderMap v;
      cache::add_validators(v, plan.stale->etag, plan.stale->last_modified);
      v.serialize(head);
    }
  }
  // Via names the protocol version this hop received (RFC 9110 §7.6.3).
  head.append(req.version_minor == 0 ? "Via: 1.0 cachalot\r\n" : "Via: 1.1 cachalot\r\n");
  if (!client_ip_.empty()) {
    auto xff = req.headers.get_combined("x-forwarded-for");
    head.append("X-Forwarded-For: ");
    if (!xff.empty()) {
      head.append(xff);
      head.append(", ");
    }
    head.append(client_ip_);
    head.append("\r\n");
  }
  if (has_body || (plan.pass && parser_.content_length() == 0 && socket_)) {
    if (parser_.chunked()) {
      head.append("Transfer-Encoding: chunked\r\n");
    } else {
      head.append("Content-Length: ");
      append_num(head, parser_.content_length());
      head.append("\r\n");
    }
  }
  head.append("\r\n");
  if (expect_continue && has_body && socket_ && !head_sent_) {
    // RFC 9110 §10.1.1: we read the body ourselves, so tell the client to send it.
    co_await send(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
  }

  // ---- a fetch slot: upstream.max_concurrent_misses bounds what one worker sends the origin at once
  if (uint32_t cap = cfg_->upstream.max_concurrent_misses; cap > 0 && w_.fetches_in_flight >= cap) {
    auto timer = std::make_shared<asio::steady_timer>(w_.ioc);
    auto deadline = std::chrono::steady_clock::now() + ut.first_byte;
    timer->expires_at(deadline);
    while (w_.fetches_in_flight >= cap && std::chrono::steady_clock::now() < deadline) {
      w_.fetch_waiters.push_back(timer);
      asio::error_code ec;
      co_await timer->async_wait(asio::redirect_error(use_awaitable, ec));
    }
    if (w_.fetches_in_flight >= cap) {
      if (plan.fill) finish_fill(plan, Fill::State::Failed);
      cache_status_ += "; detail=origin-busy";
      co_await send_error(503, "origin-busy", false);
      co_return;
    }
  }
  ++w_.fetches_in_flight;
  struct SlotRelease {
    Worker& w;
    ~SlotRelease() {
      --w.fetches_in_flight;
      while (!w.fetch_waiters.empty()) {
        auto t = w.fetch_waiters.front().lock();
        w.fetch_waiters.pop_front();
        if (t) {
          t->cancel();
          break;
        }
      }
    }
  } slot_release{w_};

  // ---- connect and send (one retry on a pooled connection the origin closed meanwhile)
  std::shared_ptr<net::UpstreamConn> up;
  net::UpstreamError err = net::UpstreamError::None;
  auto t_sent = std::chrono::steady_clock::now();
  auto request_time = Clock::now();
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A request with a body cannot be retried, so its pooled connection is probed first.
    up = co_await pool.acquire(err, attempt == 0, has_body);
    if (!up) break;
    w_.metrics.upstream_connections.fetch_add(1, std::memory_order_relaxed);
    up->parser.set_expect_no_body(req.method == http::Method::Head);
    w_.metrics.upstream_requests.fetch_add(1, std::memory_order_relaxed);
    request_time = Clock::now();
    t_sent = std::chrono::steady_clock::now();
    err = co_await up->write(std::string_view(head), ut.idle);
    if (err == net::UpstreamError::None && has_body) {
      if (!co_await send_request_body(*up)) {
        up->close();
        pool.release(std::move(up));
        w_.metrics.upstream_connections.fetch_sub(1, std::memory_order_relaxed);
        if (parser_.error() == http::ParseError::BodyTooLarge) {
          co_await send_error(413, "body-too-large", true);
        } else if (parser_.error() != http::ParseError::None) {
          co_await send_error(400, http::to_string(parser_.error()), true);
        } else {
          close_after_ = true;
          status_ = 0;
        }
        if (plan.fill) finish_fill(plan, Fill::State::Failed);
        co_return;
      }
    }
    if (err == net::UpstreamError::None) err = co_await up->read_head(ut.first_byte);
    // Interim responses (103 Early Hints...) are relayed to HTTP/1.1 clients (RFC 9110 §15.2).
    while (err == net::UpstreamError::None && up->parser.response().status < 200 && up->parser.response().status != 101) {
      const auto& interim = up->parser.response();
      if (socket_ && !client_gone_ && req.version_minor >= 1 && interim.status != 100) {
        out_.clear();
        append_status_line(out_, interim.status, interim.reason);
        http::HeaderMap h = interim.headers;
        http::strip_hop_by_hop(h);
        h.serialize(out_);
        out_.append("\r\n");
        co_await send(out_);
      }
      up->parser.next_message();
      up->parser.set_expect_no_body(req.method == http::Method::Head);
      err = co_await up->read_head(ut.first_byte);
    }
    if (err == net::UpstreamError::None) break;
    // RFC 9112 §9.3.1: an idempotent request on a pooled connection the origin
    // closed meanwhile is retried once on a new one, if nothing came back.
    bool idempotent = http::is_safe(req.method) || req.method == http::Method::Put || req.method == http::Method::Delete;
    bool retry = up->reused && !has_body && idempotent &&
                 (err == net::UpstreamError::Reset || err == net::UpstreamError::WriteFailed) && up->rend == 0;
    up->close();
    pool.release(std::move(up));
    w_.metrics.upstream_connections.fetch_sub(1, std::memory_order_relaxed);
    if (!retry) break;
  }
  auto release_up = [&](bool reusable) {
    if (!up) return;
    if (!reusable) up->close();
    pool.release(std::move(up));
    w_.metrics.upstream_connections.fetch_sub(1, std::memory_order_relaxed);
  };

  auto now = Clock::now();
  auto rcc = cache::parse_request_cache_control(req);
  auto stale_usable_on_error = [&] {
    return plan.stale && !plan.pass &&
           cache::can_serve_stale_on_error(plan.stale->freshness, rcc, now,
                                           std::chrono::duration_cast<core::Seconds>(cfg_->cache.stale_if_error));
  };

  if (err != net::UpstreamError::None) {
    w_.metrics.upstream_errors[static_cast<size_t>(kind_of(err))].fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("upstream {} for {} {}: {}", cfg_->upstream.url.text, http::to_string(req.method), req.target,
                 net::to_string(err));
    release_up(false);
    if (plan.fill) finish_fill(plan, Fill::State::Failed);
    if (stale_usable_on_error()) {
      cache_status_ = "fwd=stale; fwd-status=0; ttl=" + std::to_string(plan.stale->freshness.ttl(now)) +
                      "; detail=stale-if-error-" + std::string(net::to_string(err));
      co_await serve_entry(plan.stale, metrics::Result::StaleError, cache_status_);
      co_return;
    }
    cache_status_ += "; detail=upstream-" + std::string(net::to_string(err));
    co_await send_error(net::is_timeout(err) ? 504 : 502, std::string("upstream ") + std::string(net::to_string(err)),
                        false);
    co_return;
  }

  http::ResponseHead& resp = up->parser.response();
  auto response_time = Clock::now();

  // ---- 304 to our conditional request: freshen the stored entry (RFC 9111 §4.3.3, §4.3.4)
  if (plan.conditional && plan.stale && resp.status == 304 &&
      !cache::response_304_matches(plan.stale->headers, resp.headers)) {
    // §4.3.4: a 304 naming another validator says nothing about our entry:
    // fetch the full response instead (the entry stays as a stale-if-error fallback).
    release_up(up->reusable());
    plan.conditional = false;
    co_await fetch(plan);
    co_return;
  }
  if (plan.conditional && plan.stale && resp.status == 304) {
    auto merged = std::make_shared<cache::Entry>(*plan.stale);
    merged->headers = cache::merge_304(plan.stale->headers, resp.headers);
    release_up(up->reusable());  // `resp` is not used past this point
    // RFC 9110 §6.6.1: a response from a cache carries Date; the 304 may lack one.
    if (!merged->headers.has("date"))
      merged->headers.add("Date", http::format_http_date(core::to_unix_seconds(response_time)));
    auto cc = cache::parse_response_cache_control(merged->headers.get_combined("cache-control"));
    http::ResponseHead fake;
    fake.status = merged->status;
    fake.headers = merged->headers;
    merged->cc = cc;
    merged->freshness = cache::compute_freshness(req, fake, cc, request_time, response_time,
                                                 freshness_options(*cfg_, plan.route));
    merged->stored_at = response_time;
    cache::finalize_entry(*merged);
    std::shared_ptr<const cache::Entry> published = merged;
    if (!app_.store().replace_if_same(plan.stale, published)) app_.store().publish(published);
    if (plan.fill) finish_fill(plan, Fill::State::Done, published);
    w_.metrics.upstream_duration.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_sent).count());
    w_.metrics.store_decision(metrics::StoreDecisionExtra::Revalidated);
    if (socket_ && !client_gone_) {
      cache_status_ = "fwd=stale; fwd-status=304; ttl=" + std::to_string(published->freshness.ttl(response_time));
      co_await serve_entry(published, metrics::Result::Revalidated, cache_status_);
    }
    co_return;
  }
  // ---- a 304 we did not ask for (our request carried no validators) is an origin fault
  if (!plan.pass && !plan.conditional && resp.status == 304) {
    release_up(false);
    finish_fill(plan, Fill::State::Failed);
    w_.metrics.upstream_errors[static_cast<size_t>(metrics::UpstreamErrorKind::BadResponse)].fetch_add(1, std::memory_order_relaxed);
    if (stale_usable_on_error()) {
      cache_status_ = "fwd=stale; fwd-status=304; ttl=" + std::to_string(plan.stale->freshness.ttl(now)) +
                      "; detail=stale-if-error-unsolicited-304";
      co_await serve_entry(plan.stale, metrics::Result::StaleError, cache_status_);
      co_return;
    }
    cache_status_ += "; fwd-status=304; detail=unsolicited-304";
    co_await send_error(502, "upstream sent 304 to an unconditional request", false);
    co_return;
  }
  // ---- origin error with a stale entry that may stand in (RFC 5861 §4)
  if (resp.status >= 500 && stale_usable_on_error()) {
    int origin_status = resp.status;  // `resp` lives in the connection released next
    release_up(false);
    if (plan.fill) finish_fill(plan, Fill::State::Failed);
    cache_status_ = "fwd=stale; fwd-status=" + std::to_string(origin_status) +
                    "; ttl=" + std::to_string(plan.stale->freshness.ttl(now)) + "; detail=stale-if-error";
    co_await serve_entry(plan.stale, metrics::Result::StaleError, cache_status_);
    co_return;
  }

  // ---- may we store it?
  std::shared_ptr<cache::Entry> entry;
  cache::ResponseCacheControl resp_cc;
  cache::StoreReason store_reason_enum = cache::StoreReason::Bypass;
  std::string_view store_reason = "bypass";
  if (!plan.pass) {
    resp_cc = cache::parse_response_cache_control(resp.headers.get_combined("cache-control"));
    cache::StorableOptions so;
    so.allow_set_cookie_strip = plan.route && plan.route->set_cookie == config::SetCookiePolicy::Strip;
    so.has_default_ttl = plan.route && plan.route->default_ttl.count() > 0;
    auto verdict = cache::storable(req, rcc, resp, resp_cc, so);
    store_reason_enum = verdict.reason;
    store_reason = cache::to_string(verdict.reason);
    bool store = verdict.store && plan.may_store;
    if (store && up->parser.content_length() > static_cast<int64_t>(max_object(*cfg_))) {
      store = false;
      store_reason_enum = cache::StoreReason::TooLarge;
      store_reason = "too-large";
    }
    if (!plan.may_store && verdict.store) {
      store_reason_enum = cache::StoreReason::RequestNoStore;
      store_reason = "request-no-store";
    }
    if (store) {
      entry = std::make_shared<cache::Entry>();
      entry->primary_key = plan.key;
      auto vary = cache::parse_vary(resp.headers);
      entry->vary_names = vary.names;
      entry->variant_key = cache::variant_key(vary, req.headers);
      entry->status = resp.status;
      entry->headers = resp.headers;
      http::strip_hop_by_hop(entry->headers);
      entry->headers.remove("content-length");
      entry->headers.remove("age");
      if (verdict.strip_set_cookie) entry->headers.remove("set-cookie");
      for (const auto& f : resp_cc.no_cache_fields) entry->headers.remove(f);
      for (const auto& f : resp_cc.private_fields) entry->headers.remove(f);
      if (!entry->headers.has("date")) entry->headers.add("Date", http::format_http_date(core::to_unix_seconds(response_time)));
      entry->cc = resp_cc;
      entry->freshness =
          cache::compute_freshness(req, resp, resp_cc, request_time, response_time, freshness_options(*cfg_, plan.route));
      entry->stored_at = response_time;
      entry->tags = parse_tags(resp.headers, cfg_->cache.tag_headers);
      if (plan.route) {
        entry->route = plan.route->name;
        entry->route_generation = app_.route_generation(plan.route->name);
      }
      if (up->parser.content_length() > 0) entry->body.reserve(static_cast<std::size_t>(up->parser.content_length()));
    } else if (plan.fill) {
      finish_fill(plan, Fill::State::Uncacheable);
      // Hit-for-miss only when the response is not shareable by nature; an
      // error status says nothing about the next response.
      auto r = verdict.reason;
      bool not_shareable = r == cache::StoreReason::NoStore || r == cache::StoreReason::Private ||
                           r == cache::StoreReason::SetCookie || r == cache::StoreReason::VaryStar ||
                           r == cache::StoreReason::Authorization;
      if (not_shareable && plan.may_store)
        app_.coalescer().mark_hit_for_miss(plan.key, response_time + cfg_->cache.coalesce.hit_for_miss);
    }
    w_.metrics.store_decision(store ? cache::StoreReason::Stored : store_reason_enum);
  }
  bool is_head = req.method == http::Method::Head;
  bool no_body = status_has_no_body(resp.status) || is_head;

  // ---- the response head for the client (and for followers)
  bool chunked_out = false;
  int64_t clen = up->parser.content_length();
  if (!no_body && clen < 0) {
    if (req.version_minor >= 1)
      chunked_out = true;
    else
      close_after_ = true;  // HTTP/1.0: the end of the body is the end of the connection
  }
  if (entry) {
    cache_status_ += "; fwd-status=" + std::to_string(resp.status) + "; stored; ttl=" +
                     std::to_string(entry->freshness.ttl(response_time));
    if (plan.fill) {
      auto fh = std::make_shared<Fill::Head>();
      append_status_line(fh->head_block, resp.status, resp.reason);
      entry->headers.serialize(fh->head_block);
      fh->head_block.append("Via: 1.1 cachalot\r\n");
      if (clen >= 0) {
        fh->head_block.append("Content-Length: ");
        append_num(fh->head_block, clen);
        fh->head_block.append("\r\n");
      }
      fh->content_length = clen;
      fh->status = resp.status;
      fh->variant_key = entry->variant_key;
      fh->vary_names = entry->vary_names;
      auto proto = std::make_shared<cache::Entry>(*entry);
      cache::finalize_entry(*proto);
      fh->etag = proto->etag;
      fh->last_modified = proto->last_modified;
      fh->proto = proto;
      plan.fill->set_head(fh);
    }
  } else if (!plan.pass) {
    cache_status_ += "; fwd-status=" + std::to_string(resp.status) + "; detail=" + std::string(store_reason);
  } else {
    cache_status_.append("; fwd-status=");
    append_num(cache_status_, resp.status);
  }
  status_ = resp.status;

  // A client conditional we stripped is answered from the full response (RFC 9110 §13.2.2).
  bool client_304 = false;
  if (!plan.pass && resp.status == 200 && socket_) {
    auto etag = resp.headers.get("etag");
    auto lm = resp.headers.get("last-modified");
    client_304 = cache::evaluate_conditional(req, etag ? *etag : std::string_view{}, lm ? *lm : std::string_view{},
                                             std::nullopt) == cache::ConditionalResult::NotModified;
  }

  if (socket_ && !client_gone_) {
    out_.clear();
    if (client_304) {
      status_ = 304;
      out_.append("HTTP/1.1 304 Not Modified\r\n");
      http::HeaderMap h;
      cache::copy_304_fields(resp.headers, h);
      h.serialize(out_);
    } else {
      append_status_line(out_, resp.status, resp.reason);
      http::serialize_end_to_end(resp.headers, out_, [](std::string_view) { return false; });
      if (chunked_out) out_.append("Transfer-Encoding: chunked\r\n");
    }
    if (!resp.headers.has("date")) {
      // RFC 9110 §6.6.1: an origin without a clock sends none; we have one.
      out_.append("Date: ");
      out_.append(date_now());
      out_.append("\r\n");
    }
    out_.append("Via: 1.1 cachalot\r\n");
    append_cache_status(out_, cache_status_);
    if (close_after_ || !req.keep_alive || app_.draining()) {
      out_.append("Connection: close\r\n");
      close_after_ = true;
    } else if (req.version_minor == 0) {
      out_.append("Connection: keep-alive\r\n");
    }
    out_.append("\r\n");
    head_sent_ = true;
  }
  bool to_client = socket_ && !client_gone_ && !client_304 && !is_head;
  chunked_out = chunked_out && !client_304;
  // The head goes out with the first body bytes (one write for a small
  // response); without a body to follow, it goes now.
  bool head_pending = to_client && !no_body;
  if (socket_ && !client_gone_ && !head_pending) co_await send(out_);

  // ---- the body: origin -> client, cache entry and followers, in lockstep (pull-based back-pressure)
  bool complete = no_body;
  bool terminator_sent = false;
  if (!no_body) {
    for (;;) {
      err = co_await up->read_body(ut.idle);
      if (err != net::UpstreamError::None) break;
      auto& spans = up->parser.body();
      std::size_t total = 0;
      for (auto s : spans) total += s.size();
      if (total > 0) {
        w_.metrics.bytes_from_origin.fetch_add(total, std::memory_order_relaxed);
        if (entry) {
          if (entry->body.size() + total > max_object(*cfg_)) {
            // Too large to keep: stream the rest without storing.
            entry.reset();
            w_.metrics.store_decision(cache::StoreReason::TooLarge);
            if (plan.fill) finish_fill(plan, Fill::State::Uncacheable);
          } else {
            for (auto s : spans) entry->body.append(s);
          }
        }
        if (entry && plan.fill) {
          auto chunk = std::make_shared<std::string>();
          chunk->reserve(total);
          for (auto s : spans) chunk->append(s);
          plan.fill->append(std::move(chunk));
        }
        if (to_client) {
          char hex[20];
          std::size_t hex_len = 0;
          if (chunked_out) {
            auto r = std::to_chars(hex, hex + sizeof hex - 2, total, 16);
            *r.ptr++ = '\r';
            *r.ptr++ = '\n';
            hex_len = static_cast<std::size_t>(r.ptr - hex);
          }
          // The last piece carries the chunked terminator in the same write.
          bool last = up->parser.message_complete();
          std::string_view head_part = head_pending ? std::string_view(out_) : std::string_view();
          std::string_view tail_part = chunked_out ? (last ? std::string_view("\r\n0\r\n\r\n", 7) : std::string_view("\r\n", 2))
                                                   : std::string_view();
          bool ok;
          if (spans.size() == 1) {
            // The common case: one span, a fixed-size gather (no vector copy in the write op).
            std::array<asio::const_buffer, 4> b{asio::buffer(head_part.data(), head_part.size()), asio::buffer(hex, hex_len),
                                                asio::buffer(spans[0].data(), spans[0].size()),
                                                asio::buffer(tail_part.data(), tail_part.size())};
            ok = co_await send(b);
          } else {
            bufs_.clear();
            if (head_pending) bufs_.push_back(asio::buffer(out_));
            if (chunked_out) bufs_.push_back(asio::buffer(hex, hex_len));
            for (auto sp : spans) bufs_.push_back(asio::buffer(sp.data(), sp.size()));
            if (chunked_out) bufs_.push_back(asio::buffer(tail_part.data(), tail_part.size()));
            ok = co_await send(bufs_);
          }
          head_pending = false;
          if (last && chunked_out) terminator_sent = true;
          if (!ok) to_client = false;
        }
        // A client that left only matters when nobody else needs this body.
        if (!to_client && !entry && socket_) break;
      }
      if (up->parser.message_complete()) {
        complete = true;
        break;
      }
    }
  }
  w_.metrics.upstream_duration.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t_sent).count());

  if (!complete) {
    // Cut short: nothing is stored, the client's response is truncated (connection closed).
    if (err != net::UpstreamError::None)
      w_.metrics.upstream_errors[static_cast<size_t>(kind_of(err))].fetch_add(1, std::memory_order_relaxed);
    release_up(false);
    if (plan.fill) finish_fill(plan, Fill::State::Failed);
    if (entry) w_.metrics.store_decision(cache::StoreReason::Incomplete);
    if (head_pending && !client_gone_) {
      // Nothing reached the client yet: it gets a clean error instead of a cut body.
      head_sent_ = false;
      cache_status_ += "; detail=upstream-" + std::string(net::to_string(err));
      co_await send_error(net::is_timeout(err) ? 504 : 502, std::string("upstream ") + std::string(net::to_string(err)), true);
    }
    close_after_ = true;
    co_return;
  }
  if (head_pending) {
    // An empty body: the head, and the chunked terminator if any, in one write.
    if (chunked_out) out_.append("0\r\n\r\n");
    co_await send(out_);
  } else if (to_client && chunked_out && !terminator_sent) {
    co_await send(std::string_view("0\r\n\r\n"));
  }

  if (entry) {
    cache::finalize_entry(*entry);
    std::shared_ptr<const cache::Entry> published = entry;
    app_.note_host(http::to_lower(host_for_key()));
    auto pr = app_.store().publish(published);
    w_.metrics.evicted(metrics::EvictionReason::Memory, pr.evicted.count);
    w_.metrics.evicted(metrics::EvictionReason::VariantCap, pr.variant_cap.count);
    w_.metrics.evicted(metrics::EvictionReason::VaryChanged, pr.vary_changed.count);
    if (!pr.stored()) w_.metrics.store_decision(cache::StoreReason::TooLarge);
    if (plan.fill) finish_fill(plan, Fill::State::Done, published);
  } else if (plan.fill) {
    finish_fill(plan, Fill::State::Uncacheable);
  }

  // ---- unsafe methods invalidate what they changed (RFC 9111 §4.4)
  if (plan.pass && !http::is_safe(req.method) && cache::invalidates(req.method, resp.status)) {
    for (const auto& target : cache::invalidation_targets(req.target, resp.headers, host_for_key()))
      app_.purge_url(host_for_key(), target, nullptr);
  }
  release_up(up->reusable());  // last: `resp` lives in the connection
}

// ---------------------------------------------------------------- PURGE method

awaitable<void> Session::handle_purge(const config::Route* route) {
  result_ = metrics::Result::Purge;
  asio::error_code ec;
  auto ep = socket_->remote_endpoint(ec);
  bool allowed = false;
  if (!ec) {
    auto a = ep.address();
    if (a.is_v4()) {
      auto b = a.to_v4().to_bytes();
      allowed = cfg_->server.purge_allow.contains(std::span<const uint8_t>(b.data(), b.size()));
    } else {
      auto b = a.to_v6().to_bytes();
      allowed = cfg_->server.purge_allow.contains(std::span<const uint8_t>(b.data(), b.size()));
    }
  }
  if (!allowed) {
    cache_status_ = "fwd=bypass; detail=purge-denied";
    co_await send_error(403, "purge not allowed from this address", false);
    co_return;
  }
  std::size_t n = app_.purge_url(host_for_key(), req_->target, nullptr);
  w_.metrics.purges[static_cast<size_t>(metrics::PurgeKind::Method)].fetch_add(1, std::memory_order_relaxed);
  status_ = n ? 200 : 404;
  cache_status_ = n ? "fwd=bypass; detail=purged" : "fwd=bypass; detail=not-cached";
  std::string body = "{\"purged\":" + std::to_string(n) + "}\n";
  out_.clear();
  append_status_line(out_, status_, {});
  out_.append("Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ");
  append_num(out_, static_cast<int64_t>(body.size()));
  out_.append("\r\n");
  append_cache_status(out_, cache_status_);
  if (!req_->keep_alive) out_.append("Connection: close\r\n");
  out_.append("\r\n");
  out_.append(body);
  head_sent_ = true;
  co_await send(out_);
}

}  // namespace cachalot::proxy
