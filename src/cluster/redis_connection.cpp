#include "cluster/redis_connection.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <vector>

namespace cachalot::cluster {

namespace {

RedisConnection* self_of(const redisAsyncContext* ac) { return static_cast<RedisConnection*>(ac->data); }

}  // namespace

RedisConnection::RedisConnection(Private, asio::io_context& ioc) : ioc_(ioc), fd_(ioc) {}

RedisConnection::~RedisConnection() { close(); }

std::shared_ptr<RedisConnection> RedisConnection::open(asio::io_context& ioc, const Target& target,
                                                       ConnectedFn on_connected, ClosedFn on_closed,
                                                       std::string& error) {
  redisAsyncContext* ac = target.unix_socket ? redisAsyncConnectUnix(target.path.c_str())
                                             : redisAsyncConnect(target.host.c_str(), target.port);
  if (!ac) {
    error = "cannot allocate a Redis context";
    return nullptr;
  }
  if (ac->err) {
    error = ac->errstr;
    redisAsyncFree(ac);
    return nullptr;
  }
  auto conn = std::make_shared<RedisConnection>(Private{}, ioc);
  conn->ctx_ = ac;
  conn->on_connected_ = std::move(on_connected);
  conn->on_closed_ = std::move(on_closed);
  conn->progress_ = Clock::now();
  asio::error_code ec;
  conn->fd_.assign(ac->c.fd, ec);
  if (ec) {
    error = "cannot watch the Redis socket: " + ec.message();
    conn->ctx_ = nullptr;
    redisAsyncFree(ac);  // no hooks installed yet: nothing calls back
    return nullptr;
  }
  ac->data = conn.get();
  ac->ev.data = conn.get();
  ac->ev.addRead = [](void* p) { static_cast<RedisConnection*>(p)->add_read(); };
  ac->ev.delRead = [](void* p) { static_cast<RedisConnection*>(p)->want_read_ = false; };
  ac->ev.addWrite = [](void* p) { static_cast<RedisConnection*>(p)->add_write(); };
  ac->ev.delWrite = [](void* p) { static_cast<RedisConnection*>(p)->want_write_ = false; };
  ac->ev.cleanup = [](void* p) { static_cast<RedisConnection*>(p)->cleanup(); };
  // hiredis learns that the connect finished from the first write readiness:
  // setting the callback asks for it (addWrite).
  redisAsyncSetConnectCallback(ac, &RedisConnection::on_connect);
  return conn;
}

void RedisConnection::on_connect(const redisAsyncContext* ac, int status) {
  RedisConnection* self = self_of(ac);
  if (status != REDIS_OK) return;  // hiredis frees the context next: cleanup() reports why
  self->connected_ = true;
  self->progress_ = Clock::now();
  if (ac->c.connection_type == REDIS_CONN_TCP)  // a dead peer on a silent link
    redisEnableKeepAlive(const_cast<redisContext*>(&ac->c));
  asio::post(self->ioc_, [weak = self->weak_from_this()] {
    if (auto s = weak.lock(); s && s->ctx_ && s->on_connected_) s->on_connected_();
  });
}

void RedisConnection::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  std::unique_ptr<ReplyFn> fn(static_cast<ReplyFn*>(privdata));
  if (!reply) return;  // the context is being freed: the reply will never come
  RedisConnection* self = self_of(ac);
  if (self->pending_) --self->pending_;
  self->progress_ = Clock::now();
  (*fn)(*static_cast<const redisReply*>(reply));
}

void RedisConnection::on_message(redisAsyncContext* ac, void* reply, void* privdata) {
  if (!reply) return;  // the context is being freed
  RedisConnection* self = self_of(ac);
  self->progress_ = Clock::now();
  (*static_cast<ReplyFn*>(privdata))(*static_cast<const redisReply*>(reply));
}

bool RedisConnection::send(std::span<const std::string_view> argv, void (*cb)(redisAsyncContext*, void*, void*),
                           void* privdata) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (std::string_view a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return redisAsyncCommandArgv(ctx_, cb, privdata, static_cast<int>(args.size()), args.data(), lens.data()) ==
         REDIS_OK;
}

bool RedisConnection::command(std::span<const std::string_view> argv, ReplyFn fn) {
  if (!ctx_) return false;
  auto* cb = new ReplyFn(std::move(fn));
  if (!send(argv, &RedisConnection::on_reply, cb)) {
    delete cb;
    return false;
  }
  if (pending_++ == 0) progress_ = Clock::now();
  return true;
}

bool RedisConnection::subscribe(std::span<const std::string_view> argv, ReplyFn fn) {
  if (!ctx_) return false;
  auto cb = std::make_unique<ReplyFn>(std::move(fn));
  if (!send(argv, &RedisConnection::on_message, cb.get())) return false;
  subscriptions_.push_back(std::move(cb));
  return true;
}

std::optional<RedisConnection::Target> RedisConnection::literal_target(const config::RedisAddress& a) {
  Target target;
  if (a.unix_socket) {
    target.unix_socket = true;
    target.path = a.path;
    return target;
  }
  target.port = a.port;
  asio::error_code ec;
  (void)asio::ip::make_address(a.host, ec);
  if (ec) return std::nullopt;
  target.host = a.host;
  return target;
}

void RedisConnection::setup(const config::RedisAddress& a, std::string_view name,
                            std::function<void(std::string)> on_error) {
  auto required = [on_error](std::string what) {
    return [on_error, what = std::move(what)](const redisReply& r) {
      if (r.type == REDIS_REPLY_ERROR) on_error(what + ": " + std::string(r.str ? r.str : "", r.str ? r.len : 0));
    };
  };
  if (!a.password.empty()) {
    if (a.user.empty()) {
      std::string_view argv[] = {"AUTH", a.password};
      command(argv, required("AUTH"));
    } else {
      std::string_view argv[] = {"AUTH", a.user, a.password};
      command(argv, required("AUTH"));
    }
  }
  if (a.db != 0) {
    std::string db = std::to_string(a.db);
    std::string_view argv[] = {"SELECT", db};
    command(argv, required("SELECT " + db));
  }
  std::string_view argv[] = {"CLIENT", "SETNAME", name};
  command(argv, [](const redisReply&) {});
}

void RedisConnection::close() {
  closed_by_us_ = true;
  if (ctx_) redisAsyncFree(ctx_);  // calls cleanup() (or, inside a reply callback, right after it)
}

bool RedisConnection::stalled(Clock::time_point now, Clock::duration limit) const noexcept {
  if (!ctx_) return false;
  return (!connected_ || pending_ > 0) && now - progress_ > limit;
}

void RedisConnection::add_read() {
  want_read_ = true;
  if (!reading_) arm(true);
}

void RedisConnection::add_write() {
  want_write_ = true;
  if (!writing_) arm(false);
}

void RedisConnection::arm(bool read) {
  (read ? reading_ : writing_) = true;
  auto kind = read ? asio::posix::descriptor_base::wait_read : asio::posix::descriptor_base::wait_write;
  fd_.async_wait(kind, [self = shared_from_this(), read](const asio::error_code& ec) {
    (read ? self->reading_ : self->writing_) = false;
    if (ec || !self->ctx_) return;
    if (read ? self->want_read_ : self->want_write_) {
      if (read)
        redisAsyncHandleRead(self->ctx_);  // may free the context: cleanup() clears ctx_
      else
        redisAsyncHandleWrite(self->ctx_);
    }
    // hiredis asks again (addRead / addWrite) when it wants more; it may
    // have done so from inside the call above, while this wait was finishing.
    if (!self->ctx_) return;
    if (read && self->want_read_ && !self->reading_) self->arm(true);
    if (!read && self->want_write_ && !self->writing_) self->arm(false);
  });
}

void RedisConnection::cleanup() {
  std::string why = ctx_ && ctx_->err ? ctx_->errstr : "connection closed by Redis";
  ctx_ = nullptr;
  connected_ = false;
  want_read_ = want_write_ = false;
  asio::error_code ec;
  if (fd_.is_open()) fd_.release();  // cancels the waits; hiredis closes the fd itself
  if (closed_by_us_ || !on_closed_) return;
  asio::post(ioc_, [weak = weak_from_this(), why = std::move(why)] {
    if (auto s = weak.lock(); s && s->on_closed_) s->on_closed_(why);
  });
}

}  // namespace cachalot::cluster
