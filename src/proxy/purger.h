// Purger: every invalidation goes through here, whoever asked for it: the
// admin API (URL, prefix, tag, all, route; soft or hard), the PURGE method,
// the responses to unsafe methods (RFC 9111 §4.4), and later remote nodes.
//
// Order, for each invalidation:
//   1. record it in the InvalidationLog (a sequence number): fills whose
//      origin request was sent before it will not publish what it matches
//      (a soft purge: they publish it stale);
//   2. detach matching fills from the Coalescer: a request arriving after
//      the invalidation must not be answered from such a fill;
//   3. purge the store (remove, or mark stale).
// So an invalidation voids every response whose origin request was sent
// before it, whether that response is stored, arriving, or not yet answered.
#pragma once

#include <string>
#include <string_view>

#include "cache/coalescer.h"
#include "cache/invalidation_log.h"
#include "cache/purge.h"
#include "cache/store.h"
#include "http/message.h"

namespace cachalot::proxy {

class App;
class Runtime;

class Purger {
 public:
  Purger(App& app, cache::Store& store, cache::Coalescer& coalescer, cache::InvalidationLog& log)
      : app_(app), store_(store), coalescer_(coalescer), log_(log) {}

  // Applies one invalidation. Url values are keyed with their route's key
  // options (sort_query, ignore_params) from `rt`; every variant goes,
  // including those split by the route's key headers. Not counted in the
  // metrics: the caller counts by its own kind.
  cache::PurgeOutcome apply(const cache::Purge& p, const Runtime& rt);

  // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the
  // target URI and same-origin Location / Content-Location.
  void after_unsafe(const http::RequestHead& req, int status, const http::HeaderMap& resp_headers,
                    std::string_view authority, const Runtime& rt);

 private:
  App& app_;
  cache::Store& store_;
  cache::Coalescer& coalescer_;
  cache::InvalidationLog& log_;
};

}  // namespace cachalot::proxy
