// L2Tier: the shared L2 store as the exchange sees it (cache.l2). proxy/
// knows only this interface; cluster/l2_client.* implements it over Redis.
//
// One per worker, on that worker's io_context: lookup() and store() are
// called on that loop only. Nothing blocks and nothing fails a request: a
// lookup that Redis does not answer within cache.l2.timeout completes as an
// error, and the exchange goes to the origin.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "metrics/metrics.h"

namespace cachalot::proxy {

struct L2Reply {
  enum class Status : uint8_t {
    Found,        // `record` holds the record; `since_store_ms` is Redis' time since it was stored
    Absent,       // no record for the key
    Invalidated,  // a marker at or after its fill time voided it (the script deleted it)
    Error,        // `error` says why; the origin answers
  };
  Status status = Status::Absent;
  metrics::L2Error error = metrics::L2Error::Reply;
  std::string record;
  int64_t since_store_ms = 0;
};

class L2Tier {
 public:
  virtual ~L2Tier() = default;
  using LookupFn = std::function<void(L2Reply)>;
  // Looks `key` up and checks the record against the markers `fields` (and
  // its own tags' markers) in one script. `done` is called exactly once,
  // posted (never from inside this call), within cache.l2.timeout.
  virtual void lookup(std::string key, std::vector<std::string> fields, LookupFn done) = 0;
  // Stores a record (fire and forget): its origin request was sent `age_ms`
  // ago; Redis drops it after `ttl_ms`.
  virtual void store(std::string key, std::string record, std::string tags, int64_t age_ms, int64_t ttl_ms) = 0;
};

// co_await-able lookup.
template <class Token>
auto async_l2_lookup(L2Tier& l2, std::string key, std::vector<std::string> fields, Token&& token) {
  return asio::async_initiate<Token, void(L2Reply)>(
      [&l2](auto handler, std::string k, std::vector<std::string> f) {
        // LookupFn is a std::function (copyable); the handler is move-only.
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        l2.lookup(std::move(k), std::move(f), [h](L2Reply r) { (*h)(std::move(r)); });
      },
      token, std::move(key), std::move(fields));
}

}  // namespace cachalot::proxy
