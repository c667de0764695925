// Session: one client connection's keep-alive loop.
//
// A session is a coroutine (run()) whose frame owns the connection. Requests
// are read and answered strictly in order (pipelined requests wait in the
// read buffer); each is one Exchange. The session logs and counts each
// exchange's Outcome, discards a request body nobody read, and closes when
// the exchange, the client or a drain says so.
#pragma once

#include <chrono>
#include <memory>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "proxy/client_connection.h"
#include "proxy/responder.h"
#include "proxy/runtime.h"

namespace cachalot::proxy {

struct Worker;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Worker& w, asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls = nullptr);
  ~Session();

  asio::awaitable<void> run();
  // Drain: closes the connection if it is between requests.
  void close_if_idle();

 private:
  // A request the parser rejected: 400 / 413 / 414 / 431 / 501, then close.
  asio::awaitable<void> reject(const Runtime& rt);
  // Reads and drops what is left of the request body; false if that failed.
  asio::awaitable<bool> skip_body(const Runtime& rt);
  void finish_request(const Runtime& rt);

  Worker& w_;
  ClientConnection conn_;
  ForwardedRequest fwd_;  // reused from request to request
  Outcome out_;
  ResponseBuffers buffers_;
  bool idle_ = true;  // between requests (a drain may close it)
  bool closing_ = false;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace cachalot::proxy
