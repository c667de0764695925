// Responder: writes one response to the client: a stored entry, an error,
// a response relayed from the origin as it arrives, or another request's
// fill (coalescing). It decides nothing about caching; the Exchange tells it
// what to write and reads back what was written (Outcome).
//
// "Is there a client?" is asked here and nowhere else: a background refresh
// has a Responder without a connection, whose writes go nowhere.
//
// Buffers live in the Session (ResponseBuffers) and are reused from request
// to request, so the hit path allocates nothing: a hit is one gathered write
// of the entry's pre-serialised head, a small per-request tail (Age,
// Cache-Status, Connection) and the body.
#pragma once

#include <array>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <asio.hpp>

#include "cache/coalescer.h"
#include "cache/entry.h"
#include "http/message.h"
#include "http/range.h"
#include "metrics/metrics.h"

namespace cachalot::proxy {

class ClientConnection;

// What the exchange did: read by the access log, the metrics and Cache-Status.
struct Outcome {
  metrics::Result result = metrics::Result::Pass;
  int status = 0;            // status sent to the client (0: none)
  std::string cache_status;  // the Cache-Status value after "cachalot; "
  bool close = false;        // the connection closes after this response
  uint32_t route_id = metrics::kNoRoute;  // the matched route's metric id
  void reset() {
    route_id = metrics::kNoRoute;
    result = metrics::Result::Pass;
    status = 0;
    cache_status.clear();
    close = false;
  }
};

struct ResponseBuffers {
  std::string head, tail;
  std::string request_head;  // the request head sent to the origin
  std::vector<asio::const_buffer> gather;
  std::array<asio::const_buffer, 1> one;  // outlives the write it is handed to
  std::vector<std::string> chunk_heads;
};

class Responder {
 public:
  // `withheld`: response fields clients never get (cache.drop_targeted_cache_control,
  // RFC 9213 §3), or null. Stored entries already keep them out of their head block.
  Responder(ClientConnection* conn, const http::RequestHead& req, Outcome& out, ResponseBuffers& buffers,
            std::chrono::milliseconds send_timeout, bool draining, const std::vector<std::string>* withheld = nullptr);

  // The request carries a bytes Range that entry() answers (the Exchange
  // looked once; a hit does not look again).
  void set_range(bool r) noexcept { range_ = r; }

  // A client that can still receive this response.
  bool connected() const noexcept;
  bool head_sent() const noexcept { return head_sent_; }
  // The client asked to close, or we must (HTTP/1.0 without keep-alive, drain).
  bool closing() const noexcept;

  // ---- whole responses
  // A stored entry, or 304 when the client's conditional matches it
  // (RFC 9111 §4.3.2), or, for a GET with Range, 206/416 from a stored 200
  // (RFC 9110 §14, If-Range §13.1.5). `extra` fields (e.g. the revalidating client's own
  // Set-Cookie) go to this response only.
  asio::awaitable<void> entry(const cache::Entry& e, metrics::Result result, const http::HeaderMap* extra = nullptr);
  // A proxy-generated error with a short text body.
  asio::awaitable<void> error(int status, std::string_view detail, bool close);
  // A small JSON answer (the PURGE method).
  asio::awaitable<void> json(int status, std::string_view body);
  // An interim response relayed to an HTTP/1.1 client (RFC 9110 §15.2).
  asio::awaitable<void> interim(const http::ResponseHead& r);
  asio::awaitable<void> continue_100();

  // ---- a response relayed from the origin
  // Prepares the head; it is written with the first body bytes (one write for
  // a small response). The withheld fields are left out. `client_304`: the origin's 200 answers the client's
  // own conditional, so the client gets a 304 (RFC 9110 §13.2.2).
  void stream_head(const http::ResponseHead& resp, bool chunked, bool client_304);
  // One piece of body (and the chunked terminator with the last one). False
  // once the client is gone.
  asio::awaitable<bool> stream_body(const std::vector<std::string_view>& spans, bool last);
  // The end: the head if no body followed, the terminator if not yet sent.
  asio::awaitable<void> stream_end();
  // The origin failed mid-response: a clean error if nothing was sent yet,
  // else the connection closes (the client sees a truncated body).
  asio::awaitable<void> stream_abort(int status, std::string_view detail);

  // ---- another request's fill
  enum class FollowResult : uint8_t {
    Served,    // answered (completely, or cut short with the connection closing)
    Retry,     // not answered: the fill was not shareable with us or failed before its head
    TimedOut,  // the fill's head did not come within the wait
  };
  asio::awaitable<FollowResult> follow(const std::shared_ptr<cache::Fill>& fill, std::chrono::milliseconds wait,
                                       std::chrono::milliseconds idle);

 private:
  void append_connection(std::string& out);
  asio::awaitable<void> partial(const cache::Entry& e, const http::ResolvedRanges& r, const http::HeaderMap* extra,
                                core::TimePoint now);
  template <class Buffers>
  asio::awaitable<bool> send(const Buffers& b);
  asio::awaitable<bool> send(std::string_view s);

  ClientConnection* conn_;
  const http::RequestHead& req_;
  Outcome& out_;
  ResponseBuffers& buf_;
  std::chrono::milliseconds send_timeout_;
  bool draining_;
  const std::vector<std::string>* withheld_;
  bool range_ = false;
  bool head_sent_ = false;
  bool head_pending_ = false;  // stream_head() prepared a head not yet written
  bool chunked_ = false;
  bool no_body_ = false;
  bool terminator_sent_ = false;
};

// Waits until `fill` moves past (state, chunks) or `deadline` passes; false on timeout.
asio::awaitable<bool> wait_for_fill(cache::Fill& fill, cache::Fill::State state, std::size_t chunks,
                                    std::chrono::steady_clock::time_point deadline);

}  // namespace cachalot::proxy
