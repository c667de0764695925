// L2Tier: the shared L2 store as the exchange sees it (cache.l2). proxy/
// knows only this interface; cluster/l2_client.* implements it over Redis.
//
// One per worker, on that worker's io_context: everything is called on that
// loop only. Nothing blocks and nothing fails a request: a
// lookup that Redis does not answer within cache.l2.timeout completes as an
// error, and the exchange goes to the origin.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
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
  // Fleet-wide coalescing (cache.l2.coalesce_wait): asked for with a lookup
  // that finds nothing usable.
  enum class Lock : uint8_t {
    NotAsked,  // no lock was asked for (or a record was found)
    Acquired,  // this request fills the key for the fleet: release() or store() with the token
    Held,      // another request holds it: wait_fill(), then look again
  };
  Status status = Status::Absent;
  Lock lock = Lock::NotAsked;
  metrics::L2Error error = metrics::L2Error::Reply;
  std::string record;
  int64_t since_store_ms = 0;
};

struct L2Lookup {
  std::string primary_key;
  std::vector<std::string> fields;  // marker fields (cache::l2::lookup_fields)
  int64_t lock_ms = 0;              // > 0: when nothing is usable, take the key's lock for this long
  std::string lock_token;           // the lock's value (unique to this request)
};

class L2Tier {
 public:
  virtual ~L2Tier() = default;
  using LookupFn = std::function<void(L2Reply)>;
  using WaitFn = std::function<void(bool filled)>;
  // Looks the key up and checks the record against the markers (and its own
  // tags' markers) in one script. `done` is called exactly once, posted
  // (never from inside this call), within cache.l2.timeout.
  virtual void lookup(L2Lookup q, LookupFn done) = 0;
  // Stores a record (fire and forget): its origin request was sent `age_ms`
  // ago; Redis drops it after `ttl_ms`. Releases the key's lock when
  // `lock_token` holds it, and announces the fill to waiting nodes.
  virtual void store(std::string primary_key, std::string record, std::string tags, int64_t age_ms, int64_t ttl_ms,
                     std::string lock_token) = 0;
  // Gives the key's lock up without a record (the fill failed or is not
  // shared): the waiting nodes go to the origin themselves.
  virtual void release(std::string primary_key, std::string lock_token) = 0;
  // `done(true)` once a fill (or release) of the key is announced after
  // `since`, `done(false)` after `bound` or at once without a subscription.
  virtual void wait_fill(std::string primary_key, std::chrono::steady_clock::time_point since,
                         std::chrono::milliseconds bound, WaitFn done) = 0;
  // A lock value no other request of the fleet uses.
  virtual std::string new_token() = 0;
};

// This request fills the key for the fleet (it holds the L2 lock): the lock
// is given back when this is destroyed, unless the fill took it to store().
struct L2Lead {
  std::weak_ptr<L2Tier> l2;  // weak: a request may outlive the tier at shutdown
  std::string primary_key;
  std::string token;
  L2Lead(std::weak_ptr<L2Tier> t, std::string key, std::string tok)
      : l2(std::move(t)), primary_key(std::move(key)), token(std::move(tok)) {}
  ~L2Lead() {
    if (auto t = l2.lock(); t && !token.empty()) t->release(primary_key, token);
  }
  L2Lead(const L2Lead&) = delete;
  L2Lead& operator=(const L2Lead&) = delete;
  std::string take() { return std::exchange(token, {}); }
};

// co_await-able lookup and wait. LookupFn / WaitFn are std::functions
// (copyable); an awaitable's handler is move-only, so it is shared.
template <class Token>
auto async_l2_lookup(L2Tier& l2, L2Lookup q, Token&& token) {
  return asio::async_initiate<Token, void(L2Reply)>(
      [&l2](auto handler, L2Lookup query) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        l2.lookup(std::move(query), [h](L2Reply r) { (*h)(std::move(r)); });
      },
      token, std::move(q));
}

template <class Token>
auto async_l2_wait(L2Tier& l2, std::string key, std::chrono::steady_clock::time_point since,
                   std::chrono::milliseconds bound, Token&& token) {
  return asio::async_initiate<Token, void(bool)>(
      [&l2, since, bound](auto handler, std::string k) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        l2.wait_fill(std::move(k), since, bound, [h](bool filled) { (*h)(filled); });
      },
      token, std::move(key));
}

}  // namespace cachalot::proxy
