#include "proxy/responder.h"

#include <array>

#include "cache/conditional.h"
#include "cache/vary.h"
#include "http/hop_by_hop.h"
#include "http/range.h"
#include "proxy/client_connection.h"
#include "proxy/wire.h"

namespace cachalot::proxy {

using namespace std::string_view_literals;

using asio::awaitable;

Responder::Responder(ClientConnection* conn, const http::RequestHead& req, Outcome& out, ResponseBuffers& buffers,
                     std::chrono::milliseconds send_timeout, bool draining, const std::vector<std::string>* withheld)
    : conn_(conn),
      req_(req),
      out_(out),
      buf_(buffers),
      send_timeout_(send_timeout),
      draining_(draining),
      withheld_(withheld && !withheld->empty() ? withheld : nullptr) {}

bool Responder::connected() const noexcept { return conn_ && !conn_->gone(); }

bool Responder::closing() const noexcept { return out_.close || !req_.keep_alive || draining_; }

namespace {
// What a write to nobody (a background refresh) or to a client that left returns.
awaitable<bool> not_sent() { co_return false; }
}  // namespace

// Not coroutines: they hand back the connection's write, so a response costs
// one coroutine frame for the write, not three. A failed write marks the
// client gone (ClientConnection::gone()), which the session checks.
template <class Buffers>
awaitable<bool> Responder::send(const Buffers& b) {
  if (!connected()) return not_sent();
  return conn_->send(b, send_timeout_);
}

awaitable<bool> Responder::send(std::string_view s) {
  if (!connected()) return not_sent();
  buf_.one[0] = asio::buffer(s);
  return conn_->send(buf_.one, send_timeout_);
}

void Responder::append_connection(std::string& out) {
  if (closing()) {
    out.append("Connection: close\r\n"sv);
    out_.close = true;
  } else if (req_.version_minor == 0) {
    out.append("Connection: keep-alive\r\n"sv);
  }
}

// ---------------------------------------------------------------- whole responses

awaitable<void> Responder::entry(const cache::Entry& e, metrics::Result result, const http::HeaderMap* extra) {
  out_.result = result;
  auto now = core::Clock::now();
  auto cond = cache::evaluate_conditional(req_, e.etag(), e.last_modified(), e.date());
  const bool not_modified = cond == cache::ConditionalResult::NotModified && e.status() == 200;
  std::array<asio::const_buffer, 3> bufs;
  if (not_modified) {
    // RFC 9110 §15.4.5: a 304 carries the fields a 200 would have for caching.
    out_.status = 304;
    buf_.head.clear();
    buf_.head.append("HTTP/1.1 304 Not Modified\r\n"sv);
    http::HeaderMap h;
    cache::copy_304_fields(e.downstream_fields(), h);
    h.serialize(buf_.head);
    bufs[0] = asio::buffer(buf_.head);
  } else {
    out_.status = e.status();
    bufs[0] = asio::buffer(e.head_block());
  }
  // RFC 9110 §14: a GET's Range is answered from a stored 200 (after the
  // client's own conditionals, §13.2.2), unless If-Range says otherwise.
  if (range_ && !not_modified && e.status() == 200 && req_.method == http::Method::Get) [[unlikely]] {
    if (auto range = req_.headers.get("range")) {
      if (cache::if_range_allows(req_, e.etag(), e.last_modified(), e.date())) {
        auto r = http::resolve_ranges(*range, e.body().size());
        if (r.verdict != http::RangeVerdict::Ignore) {
          co_await partial(e, r, extra, now);
          co_return;
        }
      }
    }
  }
  auto& tail = buf_.tail;
  tail.clear();
  if (extra) extra->serialize(tail);
  tail.append(std::string_view("Via: 1.1 cachalot\r\n"));
  if (!not_modified && !wire::status_has_no_body(e.status())) {
    tail.append(std::string_view("Content-Length: "));
    wire::append_num(tail, static_cast<int64_t>(e.body().size()));
    tail.append(std::string_view("\r\n"));
  }
  // Byte ranges of a stored 200 are served from the cache (RFC 9110 §14.3).
  if (!not_modified && e.status() == 200) tail.append(std::string_view("Accept-Ranges: bytes\r\n"));
  tail.append(std::string_view("Age: "));
  wire::append_num(tail, e.current_age(now).count());
  tail.append(std::string_view("\r\n"));
  wire::append_cache_status(tail, out_.cache_status);
  append_connection(tail);
  tail.append(std::string_view("\r\n"));
  bufs[1] = asio::buffer(tail);
  if (!not_modified && req_.method != http::Method::Head) bufs[2] = asio::buffer(e.body());
  head_sent_ = true;
  co_await send(bufs);
}

namespace {
// The stored fields without Content-Type (a multipart/byteranges response
// carries it in each part, RFC 9110 §14.6), and that Content-Type.
void fields_without_content_type(std::string_view block, std::string& out, std::string& content_type) {
  while (!block.empty()) {
    const std::size_t eol = block.find("\r\n");
    const std::size_t len = eol == std::string_view::npos ? block.size() : eol + 2;
    const std::string_view line = block.substr(0, len);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && http::iequals(line.substr(0, colon), "content-type")) {
      if (content_type.empty()) content_type = http::trim_ows(line.substr(colon + 1, line.size() - colon - 3));
    } else {
      out.append(line);
    }
    block.remove_prefix(len);
  }
}

void append_content_range(std::string& out, const http::ByteRange& r, std::size_t length) {
  out.append("Content-Range: bytes "sv);
  wire::append_num(out, static_cast<int64_t>(r.first));
  out.push_back('-');
  wire::append_num(out, static_cast<int64_t>(r.last));
  out.push_back('/');
  wire::append_num(out, static_cast<int64_t>(length));
  out.append("\r\n"sv);
}
}  // namespace

// 206 with one range or multipart/byteranges (RFC 9110 §14.6, §15.3.7), or
// 416 with the length (§15.5.17). The 206 carries the fields a 200 would
// (Date, ETag, Cache-Control, Vary...: §15.3.7).
awaitable<void> Responder::partial(const cache::Entry& e, const http::ResolvedRanges& r, const http::HeaderMap* extra,
                                   core::TimePoint now) {
  const std::string_view body = e.body();
  auto& h = buf_.head;
  h.clear();
  auto& parts = buf_.chunk_heads;
  parts.clear();
  std::string boundary;
  if (r.verdict == http::RangeVerdict::Unsatisfiable) {
    out_.status = 416;
    wire::append_status_line(h, 416, {});
    h.append("Content-Range: bytes */"sv);
    wire::append_num(h, static_cast<int64_t>(body.size()));
    h.append("\r\nContent-Length: 0\r\nDate: "sv);
    h.append(wire::date_now());
    h.append("\r\n"sv);
  } else if (r.ranges.size() == 1) {
    out_.status = 206;
    wire::append_status_line(h, 206, {});
    h.append(e.fields_block());
    h.append("Via: 1.1 cachalot\r\n"sv);
    append_content_range(h, r.ranges[0], body.size());
    h.append("Content-Length: "sv);
    wire::append_num(h, static_cast<int64_t>(r.ranges[0].size()));
    h.append("\r\n"sv);
  } else {
    out_.status = 206;
    wire::append_status_line(h, 206, {});
    std::string content_type;
    fields_without_content_type(e.fields_block(), h, content_type);
    // A boundary that no part's bytes contain (RFC 2046 §5.1.1 leaves the
    // choice to us): a fixed prefix and a counter, checked against the body.
    boundary = "CACHALOT_BYTERANGES_0";
    for (int n = 1; body.find(boundary) != std::string_view::npos; ++n) boundary = "CACHALOT_BYTERANGES_" + std::to_string(n);
    std::size_t total = 0;
    for (std::size_t i = 0; i < r.ranges.size(); ++i) {
      std::string p;
      p.append(i == 0 ? "--" : "\r\n--").append(boundary).append("\r\n"sv);
      if (!content_type.empty()) p.append("Content-Type: "sv).append(content_type).append("\r\n"sv);
      append_content_range(p, r.ranges[i], body.size());
      p.append("\r\n"sv);
      total += p.size() + r.ranges[i].size();
      parts.push_back(std::move(p));
    }
    parts.push_back("\r\n--" + boundary + "--\r\n");
    total += parts.back().size();
    h.append("Via: 1.1 cachalot\r\nContent-Type: multipart/byteranges; boundary="sv).append(boundary).append("\r\n"sv);
    h.append("Content-Length: "sv);
    wire::append_num(h, static_cast<int64_t>(total));
    h.append("\r\n"sv);
  }
  if (extra) extra->serialize(h);
  h.append("Accept-Ranges: bytes\r\nAge: "sv);
  wire::append_num(h, e.current_age(now).count());
  h.append("\r\n"sv);
  wire::append_cache_status(h, out_.cache_status);
  append_connection(h);
  h.append("\r\n"sv);
  auto& g = buf_.gather;
  g.clear();
  g.push_back(asio::buffer(h));
  if (out_.status == 206 && r.ranges.size() == 1) {
    g.push_back(asio::buffer(body.substr(r.ranges[0].first, r.ranges[0].size())));
  } else if (out_.status == 206) {
    for (std::size_t i = 0; i < r.ranges.size(); ++i) {
      g.push_back(asio::buffer(parts[i]));
      g.push_back(asio::buffer(body.substr(r.ranges[i].first, r.ranges[i].size())));
    }
    g.push_back(asio::buffer(parts.back()));
  }
  head_sent_ = true;
  co_await send(g);
}

awaitable<void> Responder::error(int status, std::string_view detail, bool close) {
  out_.status = status;
  if (out_.result != metrics::Result::StaleError && out_.result != metrics::Result::StaleDisconnect)
    out_.result = metrics::Result::Error;
  if (close) out_.close = true;
  if (head_sent_) {
    // Too late for a clean answer: the client sees the connection close.
    out_.close = true;
    co_return;
  }
  std::string body(http::reason_phrase(status));
  if (!detail.empty()) body.append(": "sv).append(detail);
  body.push_back('\n');
  auto& h = buf_.head;
  h.clear();
  wire::append_status_line(h, status, {});
  h.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: "sv);
  wire::append_num(h, static_cast<int64_t>(body.size()));
  h.append("\r\nCache-Control: no-store\r\nDate: "sv);
  h.append(wire::date_now());
  h.append("\r\n"sv);
  if (out_.cache_status.empty()) out_.cache_status = "fwd=bypass; detail=" + std::string(detail.empty() ? "error" : detail);
  wire::append_cache_status(h, out_.cache_status);
  append_connection(h);
  h.append("\r\n"sv);
  head_sent_ = true;
  std::array<asio::const_buffer, 2> b{asio::buffer(h), asio::buffer(body)};
  if (req_.method == http::Method::Head) b[1] = asio::const_buffer();
  co_await send(b);
}

awaitable<void> Responder::json(int status, std::string_view body) {
  out_.status = status;
  auto& h = buf_.head;
  h.clear();
  wire::append_status_line(h, status, {});
  h.append("Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: "sv);
  wire::append_num(h, static_cast<int64_t>(body.size()));
  h.append("\r\n"sv);
  wire::append_cache_status(h, out_.cache_status);
  append_connection(h);
  h.append("\r\n"sv);
  head_sent_ = true;
  std::array<asio::const_buffer, 2> b{asio::buffer(h), asio::buffer(body)};
  co_await send(b);
}

awaitable<void> Responder::interim(const http::ResponseHead& r) {
  if (!connected() || req_.version_minor < 1 || r.status == 100 || head_sent_) co_return;
  auto& h = buf_.head;
  h.clear();
  wire::append_status_line(h, r.status, r.reason);
  http::serialize_end_to_end(r.headers, h, [](std::string_view) { return false; });
  h.append("\r\n"sv);
  co_await send(std::string_view(h));
}

awaitable<void> Responder::continue_100() {
  if (head_sent_) co_return;
  co_await send(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
}

// ---------------------------------------------------------------- relayed from the origin

void Responder::stream_head(const http::ResponseHead& resp, bool chunked, bool client_304) {
  out_.status = client_304 ? 304 : resp.status;
  no_body_ = client_304 || wire::status_has_no_body(resp.status) || req_.method == http::Method::Head;
  chunked_ = chunked && !client_304;
  auto& h = buf_.head;
  h.clear();
  if (client_304) {
    h.append("HTTP/1.1 304 Not Modified\r\n"sv);
    http::HeaderMap f;
    cache::copy_304_fields(resp.headers, f);
    f.serialize(h);
  } else {
    wire::append_status_line(h, resp.status, resp.reason);
    // RFC 9213 §3: a targeted field the operator knows is not used downstream may be removed.
    http::serialize_end_to_end(resp.headers, h, [w = withheld_](std::string_view n) {
      return w && cache::withheld_downstream(n, *w);
    });
    if (chunked_) h.append("Transfer-Encoding: chunked\r\n"sv);
  }
  if (!resp.headers.has("date")) {
    // RFC 9110 §6.6.1: an origin without a clock sends none; we have one.
    h.append("Date: "sv);
    h.append(wire::date_now());
    h.append("\r\n"sv);
  }
  h.append("Via: 1.1 cachalot\r\n"sv);
  wire::append_cache_status(h, out_.cache_status);
  append_connection(h);
  h.append("\r\n"sv);
  head_sent_ = true;
  head_pending_ = true;
}

awaitable<bool> Responder::stream_body(const std::vector<std::string_view>& spans, bool last) {
  if (!connected()) co_return false;
  if (no_body_) co_return true;
  std::size_t total = 0;
  for (auto s : spans) total += s.size();
  char hex[20];
  std::size_t hex_len = 0;
  if (chunked_ && total > 0) {
    auto r = std::to_chars(hex, hex + sizeof hex - 2, total, 16);
    *r.ptr++ = '\r';
    *r.ptr++ = '\n';
    hex_len = static_cast<std::size_t>(r.ptr - hex);
  }
  // The last piece carries the chunked terminator in the same write.
  std::string_view tail;
  if (chunked_) tail = last ? (total > 0 ? std::string_view("\r\n0\r\n\r\n", 7) : std::string_view("0\r\n\r\n", 5))
                            : (total > 0 ? std::string_view("\r\n", 2) : std::string_view());
  std::string_view head = head_pending_ ? std::string_view(buf_.head) : std::string_view();
  bool ok;
  if (spans.size() <= 1) {
    // The common case: a fixed-size gather (no vector copy inside the write operation).
    std::string_view body = spans.empty() ? std::string_view() : spans[0];
    std::array<asio::const_buffer, 4> b{asio::buffer(head.data(), head.size()), asio::buffer(hex, hex_len),
                                        asio::buffer(body.data(), body.size()), asio::buffer(tail.data(), tail.size())};
    ok = co_await send(b);
  } else {
    auto& g = buf_.gather;
    g.clear();
    if (!head.empty()) g.push_back(asio::buffer(head));
    if (hex_len) g.push_back(asio::buffer(hex, hex_len));
    for (auto s : spans) g.push_back(asio::buffer(s.data(), s.size()));
    if (!tail.empty()) g.push_back(asio::buffer(tail.data(), tail.size()));
    ok = co_await send(g);
  }
  head_pending_ = false;
  if (last && chunked_) terminator_sent_ = true;
  co_return ok;
}

awaitable<void> Responder::stream_end() {
  if (head_pending_) {
    head_pending_ = false;
    if (chunked_ && !no_body_) {
      buf_.head.append("0\r\n\r\n"sv);
      terminator_sent_ = true;
    }
    co_await send(std::string_view(buf_.head));
  } else if (chunked_ && !no_body_ && !terminator_sent_) {
    terminator_sent_ = true;
    co_await send(std::string_view("0\r\n\r\n"));
  }
}

awaitable<void> Responder::stream_abort(int status, std::string_view detail) {
  if (head_pending_) {
    // Nothing reached the client yet: it gets a clean error instead of a cut body.
    head_pending_ = false;
    head_sent_ = false;
    co_await error(status, detail, true);
    co_return;
  }
  out_.close = true;
}

// ---------------------------------------------------------------- following a fill

awaitable<bool> wait_for_fill(cache::Fill& fill, cache::Fill::State state, std::size_t chunks,
                              std::chrono::steady_clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex);
  timer->expires_at(deadline);
  std::weak_ptr<asio::steady_timer> weak = timer;
  // The fill calls this on the leader's thread: post the wake-up to ours.
  // A follower that left has dropped its timer, and is skipped.
  bool waiting = fill.subscribe(state, chunks, [weak] {
    if (auto t = weak.lock()) asio::post(t->get_executor(), [t] { t->cancel(); });
  });
  if (!waiting) co_return true;
  asio::error_code ec;
  co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return ec == asio::error::operation_aborted || std::chrono::steady_clock::now() < deadline;
}

awaitable<Responder::FollowResult> Responder::follow(const std::shared_ptr<cache::Fill>& fill,
                                                     std::chrono::milliseconds wait, std::chrono::milliseconds idle) {
  using State = cache::Fill::State;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::size_t sent = 0;
  bool chunked = false;
  auto same_variant = [&](const cache::Entry& e) {
    return cache::matches_variant(e, req_.headers);
  };
  for (;;) {
    auto v = fill->view(sent);
    if (v.state == State::Pending) {
      if (!co_await wait_for_fill(*fill, v.state, sent, deadline)) co_return FollowResult::TimedOut;
      continue;
    }
    if (v.state == State::Uncacheable) co_return FollowResult::Retry;
    if (v.state == State::Failed) {
      if (!head_sent_) co_return FollowResult::Retry;
      out_.close = true;  // cut short after our head: the client must see the connection end
      co_return FollowResult::Served;
    }
    if (v.state == State::Done && !head_sent_ && v.entry) {
      if (!same_variant(*v.entry)) co_return FollowResult::Retry;
      out_.cache_status = "fwd=uri-miss; collapsed; ttl=" + std::to_string(v.entry->freshness().ttl(core::Clock::now()));
      co_await entry(*v.entry, metrics::Result::Coalesced);
      co_return FollowResult::Served;
    }
    // Streaming, or Done after our head went out.
    if (!v.head) co_return FollowResult::Retry;
    if (!head_sent_) {
      const auto& h = *v.head;
      if (!same_variant(*h.proto)) co_return FollowResult::Retry;
      out_.result = metrics::Result::Coalesced;
      out_.status = h.proto->status();
      out_.cache_status = "fwd=uri-miss; collapsed";
      if (h.proto->status() == 200 &&
          cache::evaluate_conditional(req_, h.proto->etag(), h.proto->last_modified(), h.proto->date()) ==
              cache::ConditionalResult::NotModified) {
        // Answer the conditional from the head alone (RFC 9110 §13.1).
        co_await entry(*h.proto, metrics::Result::Coalesced);
        co_return FollowResult::Served;
      }
      auto& head = buf_.head;
      head.clear();
      head.append(h.head_block);
      chunked = h.content_length < 0;
      if (chunked) {
        if (req_.version_minor == 0)
          out_.close = true;  // HTTP/1.0: the end of the body is the end of the connection
        else
          head.append("Transfer-Encoding: chunked\r\n"sv);
      }
      wire::append_cache_status(head, out_.cache_status);
      append_connection(head);
      head.append("\r\n"sv);
      head_sent_ = true;
      const bool ok = co_await send(std::string_view(head));
      if (req_.method == http::Method::Head) {
        if (chunked) out_.close = true;
        co_return FollowResult::Served;
      }
      if (!ok) co_return FollowResult::Served;
      chunked = chunked && req_.version_minor >= 1;
    }
    if (!v.chunks.empty()) {
      auto& g = buf_.gather;
      g.clear();
      buf_.chunk_heads.resize(v.chunks.size());
      for (std::size_t i = 0; i < v.chunks.size(); ++i) {
        if (v.chunks[i]->empty()) continue;
        if (chunked) {
          auto& ch = buf_.chunk_heads[i];
          ch.clear();
          char hex[20];
          auto r = std::to_chars(hex, hex + sizeof hex, v.chunks[i]->size(), 16);
          ch.append(hex, r.ptr);
          ch.append("\r\n"sv);
          g.push_back(asio::buffer(ch));
        }
        g.push_back(asio::buffer(*v.chunks[i]));
        if (chunked) g.push_back(asio::buffer("\r\n", 2));
      }
      sent += v.chunks.size();
      if (!g.empty() && !co_await send(g)) co_return FollowResult::Served;
    }
    if (v.state == State::Done) {
      if (chunked) co_await send(std::string_view("0\r\n\r\n"));
      co_return FollowResult::Served;
    }
    if (!co_await wait_for_fill(*fill, v.state, sent, std::chrono::steady_clock::now() + idle)) {
      out_.close = true;
      co_return FollowResult::Served;
    }
  }
}

}  // namespace cachalot::proxy
