// Refresher: background revalidation (stale-while-revalidate, refresh-ahead).
//
// A refresh is an Exchange with no client: it holds the fill's FetchPermit
// (so at most one refresh per key runs, fleet-wide within this process, and
// requests that miss meanwhile follow it) and runs the same OriginFetch as a
// client's miss, through the same admission gate and invalidation log.
#pragma once

#include <memory>
#include <string>

#include "cache/entry.h"
#include "http/message.h"
#include "proxy/forwarded_request.h"
#include "proxy/runtime.h"

namespace cachalot::proxy {

struct Worker;

class Refresher {
 public:
  // Starts a refresh of `stale` for the prepared request `req` / `fwd`, unless
  // one is already running for the key, this worker asked about this entry
  // less than 250 ms ago, or cache.max_background_refreshes are running.
  static void start(Worker& w, const std::shared_ptr<const Runtime>& rt, const http::RequestHead& req,
                    const ForwardedRequest& fwd, const cache::EntryRef& stale);
};

}  // namespace cachalot::proxy
