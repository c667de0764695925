// RedisConnection: one hiredis async context, driven by an Asio io_context.
//
// hiredis speaks the protocol; Asio says when the socket is ready. The
// context's fd is wrapped in a posix::stream_descriptor that never closes it
// (hiredis owns the fd), and hiredis' event hooks become waits on it:
//   addRead / addWrite   start an async_wait(read | write) unless one is pending
//   delRead / delWrite   drop the wish; a wait that completes afterwards does nothing
//   cleanup              hiredis is freeing the context: release the fd (which
//                        cancels the waits) and forget the context
// A completed wait calls redisAsyncHandleRead / Write. Those run reply
// callbacks and may free the context (EOF, a protocol error), so the context
// is looked at again after each call before a wait is re-armed.
//
// Threads: one. Everything, hooks and callbacks included, runs on the
// io_context's thread; nothing blocks (the connect is non-blocking and the
// address is an IP literal or a Unix socket path: names are resolved by the
// caller, asynchronously).
//
// Lifetime: owned by shared_ptr; pending waits hold a reference. close()
// frees the context at once; replies still pending are dropped, never
// delivered. When the connection ends by itself (refused, reset, EOF),
// on_closed is posted, never called from inside hiredis.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <asio.hpp>

#include "config/address.h"

struct redisAsyncContext;
struct redisReply;

namespace cachalot::cluster {

class RedisConnection : public std::enable_shared_from_this<RedisConnection> {
 public:
  using Clock = std::chrono::steady_clock;
  using ReplyFn = std::function<void(const redisReply& reply)>;  // may be an error reply
  using ConnectedFn = std::function<void()>;
  using ClosedFn = std::function<void(const std::string& why)>;

  struct Target {
    bool unix_socket = false;
    std::string host;  // an IP literal (TCP)
    uint16_t port = 0;
    std::string path;  // unix_socket
  };

  // Starts a non-blocking connect. nullptr (and `error`) when hiredis cannot
  // even start one (no such socket path, out of file descriptors).
  static std::shared_ptr<RedisConnection> open(asio::io_context& ioc, const Target& target, ConnectedFn on_connected,
                                               ClosedFn on_closed, std::string& error);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // The target for an address that needs no name lookup (a Unix socket or an
  // IP literal); nullopt for a host name, which the caller resolves first
  // (asynchronously: getaddrinfo would block the loop).
  static std::optional<Target> literal_target(const config::RedisAddress& a);
  // Queues AUTH (when the address has a password), SELECT (db != 0) and
  // CLIENT SETNAME `name`, ahead of any later command. `on_error` gets
  // "AUTH: <reply>" or "SELECT <db>: <reply>" for an error reply to those;
  // CLIENT may be refused by a proxy in front of Redis: not an error.
  void setup(const config::RedisAddress& a, std::string_view name, std::function<void(std::string)> on_error);

  // Queues one command (binary-safe arguments); `fn` gets its reply. False
  // when the connection is gone.
  bool command(std::span<const std::string_view> argv, ReplyFn fn);
  // Pub/sub (SUBSCRIBE, PSUBSCRIBE): `fn` gets the subscription's
  // confirmation and then every message, for the life of the connection (it
  // is kept here: hiredis calls it again and again). A connection that
  // subscribed takes no other commands. Not counted in pending().
  bool subscribe(std::span<const std::string_view> argv, ReplyFn fn);
  // Frees the context now. on_closed is not called; pending replies are dropped.
  void close();

  bool connected() const noexcept { return connected_; }
  bool open() const noexcept { return ctx_ != nullptr; }
  // Commands sent whose replies have not come yet.
  std::size_t pending() const noexcept { return pending_; }
  // True if it has waited longer than `limit` for the connect or for a reply.
  bool stalled(Clock::time_point now, Clock::duration limit) const noexcept;

  // Tag type: construct through open().
  struct Private {};
  RedisConnection(Private, asio::io_context& ioc);

 private:
  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_message(redisAsyncContext* ac, void* reply, void* privdata);
  bool send(std::span<const std::string_view> argv, void (*cb)(redisAsyncContext*, void*, void*), void* privdata);
  void add_read();
  void add_write();
  void arm(bool read);
  void cleanup();

  asio::io_context& ioc_;
  asio::posix::stream_descriptor fd_;
  redisAsyncContext* ctx_ = nullptr;
  ConnectedFn on_connected_;
  ClosedFn on_closed_;
  bool want_read_ = false, want_write_ = false;
  bool reading_ = false, writing_ = false;  // a wait of that kind is pending
  bool connected_ = false;
  bool closed_by_us_ = false;
  std::size_t pending_ = 0;
  std::vector<std::unique_ptr<ReplyFn>> subscriptions_;  // their callbacks, alive as long as the context
  Clock::time_point progress_;  // the connect's start, the last reply, or the send that ended an idle spell
};

}  // namespace cachalot::cluster
