#include "cluster/l2_client.h"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "cache/l2_record.h"

namespace cachalot::cluster {

namespace {

using namespace std::chrono_literals;

constexpr auto kTick = 100ms;
constexpr auto kBackoffMin = 100ms;
constexpr auto kBackoffMax = 5000ms;
constexpr std::size_t kMaxPending = 1024;        // commands waiting for a reply: more is "busy"
constexpr std::size_t kMaxMarkerQueue = 10000;   // invalidations waiting for Redis
constexpr std::size_t kMaxMarkersInFlight = 64;

// KEYS[1] the record hash, KEYS[2] the markers, KEYS[3] the key's lock;
// ARGV[1] the lock's PX ("0": do not lock), ARGV[2] its token, then the
// marker fields of the key (cache::l2::lookup_fields). Returns {status,
// lock[, record, ms since the store]}: status 0 absent, 1 found, 2 voided
// (deleted); lock 0 not asked, 1 acquired, 2 held by another request.
constexpr const char* kLookup = R"lua(
local function unusable(status)
  if ARGV[1] == '0' then return {status, 0} end
  if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) then return {status, 1} end
  return {status, 2}
end
local r = redis.call('HMGET', KEYS[1], 'rec', 'fill', 'stored', 'tags')
if not r[1] then return unusable(0) end
local fill = tonumber(r[2]) or 0
local f = {}
for i = 3, #ARGV do f[#f + 1] = ARGV[i] end
if r[4] then
  for tag in string.gmatch(r[4], '[^\n]+') do f[#f + 1] = 't ' .. tag end
end
if #f > 0 then
  local m = redis.call('HMGET', KEYS[2], unpack(f))
  for i = 1, #m do
    if m[i] and tonumber(m[i]) >= fill then
      redis.call('DEL', KEYS[1])
      return unusable(2)
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {1, 0, r[1], now - (tonumber(r[3]) or now)}
)lua";

// KEYS[1] the record hash, KEYS[2] the key's lock; ARGV record, age (ms
// since the origin request was sent, margin included), tags, PX, the fill
// channel, the lock token ("" without one).
constexpr const char* kStore = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'fill', now - tonumber(ARGV[2]), 'stored', now, 'tags', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[6] ~= '' and redis.call('GET', KEYS[2]) == ARGV[6] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[5], '1')
return 1
)lua";

// KEYS[1] the key's lock; ARGV the token, the fill channel.
constexpr const char* kRelease = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], '0')
return 1
)lua";

// KEYS[1] the markers; ARGV marker fields. Returns the time written.
constexpr const char* kInvalidate = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV do
  if ARGV[i] == 'a' then
    local vals = redis.call('HVALS', KEYS[1])
    for j = 1, #vals do
      local v = tonumber(vals[j])
      if v and v > now then now = v end
    end
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'a', now)
  else
    local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or 0) or 0
    if now > old then redis.call('HSET', KEYS[1], ARGV[i], now) end
  end
end
return now
)lua";

std::string sha1_hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

std::string_view text(const redisReply& r) {
  bool has_text = r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS || r.type == REDIS_REPLY_ERROR;
  return has_text && r.str ? std::string_view(r.str, r.len) : std::string_view();
}

// The lookup script's reply.
proxy::L2Reply parse_lookup(const redisReply& r) {
  using S = proxy::L2Reply::Status;
  proxy::L2Reply out;
  const bool head = r.type == REDIS_REPLY_ARRAY && r.elements >= 2 && r.element[0]->type == REDIS_REPLY_INTEGER &&
                    r.element[1]->type == REDIS_REPLY_INTEGER;
  const long long status = head ? r.element[0]->integer : -1, lock = head ? r.element[1]->integer : -1;
  out.lock = lock == 1 ? proxy::L2Reply::Lock::Acquired
                       : lock == 2 ? proxy::L2Reply::Lock::Held : proxy::L2Reply::Lock::NotAsked;
  if (status == 0 || status == 2) {
    out.status = status == 0 ? S::Absent : S::Invalidated;
    return out;
  }
  if (status == 1 && r.elements == 4 && r.element[2]->type == REDIS_REPLY_STRING &&
      r.element[3]->type == REDIS_REPLY_INTEGER) {
    out.status = S::Found;
    out.record.assign(r.element[2]->str, r.element[2]->len);
    out.since_store_ms = r.element[3]->integer;
    return out;
  }
  out.status = S::Error;
  out.error = metrics::L2Error::Reply;
  out.lock = proxy::L2Reply::Lock::NotAsked;
  return out;
}

// One lookup: whichever comes first, the reply or the timer, completes it.
struct LookupOp {
  explicit LookupOp(asio::io_context& ioc) : timer(ioc) {}
  proxy::L2Tier::LookupFn done;
  asio::steady_timer timer;
};

std::string token_base() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}-", rd(), rd());
}

}  // namespace

struct L2Client::Waiter {
  explicit Waiter(asio::io_context& ioc) : timer(ioc) {}
  WaitFn done;
  asio::steady_timer timer;
};

const char* L2Client::lookup_script() noexcept { return kLookup; }
const char* L2Client::store_script() noexcept { return kStore; }
const char* L2Client::invalidate_script() noexcept { return kInvalidate; }
const char* L2Client::release_script() noexcept { return kRelease; }

L2Client::L2Client(asio::io_context& loop, config::L2Config cfg, metrics::L2Metrics& metrics, std::string name)
    : loop_(loop),
      cfg_(std::move(cfg)),
      m_(metrics),
      name_(std::move(name)),
      lookup_sha_(sha1_hex(kLookup)),
      store_sha_(sha1_hex(kStore)),
      invalidate_sha_(sha1_hex(kInvalidate)),
      release_sha_(sha1_hex(kRelease)),
      token_base_(token_base()),
      marks_key_(cache::l2::marks_key(cfg_.prefix)),
      ticker_(loop),
      resolver_(loop) {}

L2Client::~L2Client() {
  // The loop has stopped (the App joins the workers first): nothing runs concurrently.
  ++generation_;
  if (conn_) conn_->close();
  if (sub_) sub_->close();
  for (auto& c : retired_) c->close();
  if (counted_up_) m_.connected.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard lk(mu_);
  if (!markers_.empty())
    spdlog::warn("cache.l2: {} invalidations were not written to Redis (unreachable at shutdown): L2 records "
                 "they match stay servable until they expire",
                 markers_.size());
}

void L2Client::start() {
  m_.enabled.store(true, std::memory_order_relaxed);
  asio::post(loop_, [this] {
    connect();
    tick();
  });
}

bool L2Client::usable() const noexcept { return up_ && conn_ && conn_->connected(); }

std::string L2Client::new_token() { return token_base_ + std::to_string(++tokens_); }

// ---------------------------------------------------------------- connection

void L2Client::tick() {
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    retired_.clear();  // closed here, never from inside a hiredis callback
    const auto now = Clock::now();
    forward_waiting(false, now - cfg_.timeout);  // markers Redis is slow to take: the bus does not wait
    if (!conn_) {
      if (now >= retry_at_) connect();
    } else if (!up_ && sub_ && sub_->stalled(now, std::max<Clock::duration>(1s, 10 * cfg_.timeout))) {
      fault("no connection to Redis within " + std::to_string(std::max<int64_t>(1000, 10 * cfg_.timeout.count())) +
            " ms");
    } else if (conn_->stalled(now, std::max<Clock::duration>(1s, 10 * cfg_.timeout))) {
      fault("no answer from Redis within " + std::to_string(std::max<int64_t>(1000, 10 * cfg_.timeout.count())) +
            " ms");
    }
    tick();
  });
}

void L2Client::connect() {
  const uint64_t gen = ++generation_;
  if (auto literal = RedisConnection::literal_target(cfg_.redis)) return open(*literal, gen);
  RedisConnection::Target target;
  target.port = cfg_.redis.port;
  // Sentinel connection while resolving: a second tick must not start another connect.
  resolver_.async_resolve(cfg_.redis.host, std::to_string(cfg_.redis.port),
                          [this, gen, target](const asio::error_code& ec,
                                              asio::ip::tcp::resolver::results_type results) mutable {
                            if (gen != generation_) return;
                            if (ec || results.empty()) {
                              retry_at_ = Clock::now() + kBackoffMax;
                              return fault("cannot resolve " + cfg_.redis.host + ": " + ec.message());
                            }
                            target.host = results.begin()->endpoint().address().to_string();
                            open(target, gen);
                          });
  retry_at_ = Clock::now() + kBackoffMax;  // a resolve that never answers is retried
}

void L2Client::open(const RedisConnection::Target& target, uint64_t gen) {
  std::string error;
  auto connected = [this, gen] { on_connected(gen); };
  auto closed = [this, gen](const std::string& why) {
    if (gen == generation_) fault(why);
  };
  conn_ = RedisConnection::open(loop_, target, connected, closed, error);
  if (conn_) sub_ = RedisConnection::open(loop_, target, connected, closed, error);
  if (!conn_ || !sub_) fault(error);
}

void L2Client::on_connected(uint64_t gen) {
  if (gen != generation_ || up_ || !conn_ || !sub_ || !conn_->connected() || !sub_->connected()) return;  // both
  auto required = [this, gen](std::string why) {
    if (gen == generation_) fault(why);
  };
  conn_->setup(cfg_.redis, "cachalot:l2:" + name_, required);
  sub_->setup(cfg_.redis, "cachalot:l2:" + name_ + ":fills", required);
  for (const char* script : {kLookup, kStore, kInvalidate, kRelease}) {
    std::string_view argv[] = {"SCRIPT", "LOAD", script};
    conn_->command(argv, [this, gen](const redisReply& r) {
      if (gen == generation_ && r.type == REDIS_REPLY_ERROR) fault("SCRIPT LOAD: " + std::string(text(r)));
    });
  }
  const std::string pattern = cfg_.prefix + "f:*";
  std::string_view argv[] = {"PSUBSCRIBE", pattern};
  sub_->subscribe(argv, [this, gen](const redisReply& r) {
    if (gen == generation_) on_message(r);
  });
  // Commands are answered in order: anything sent from here runs after the scripts are loaded.
  up_ = true;
  if (!counted_up_) m_.connected.fetch_add(1, std::memory_order_relaxed);
  counted_up_ = true;
  backoff_ = std::chrono::milliseconds(0);
  if (warned_down_) spdlog::info("cache.l2: connected to Redis at {} again", cfg_.redis.text);
  warned_down_ = false;
  pump_markers();
}

void L2Client::scripts_gone(const redisReply& r) {
  // SCRIPT FLUSH (or a failover to a server without them): reconnect, which loads them again.
  if (r.type == REDIS_REPLY_ERROR && text(r).starts_with("NOSCRIPT") && up_) fault("the scripts are gone (NOSCRIPT)");
}

void L2Client::fault(const std::string& why) {
  ++generation_;
  up_ = false;
  if (counted_up_) m_.connected.fetch_sub(1, std::memory_order_relaxed);
  counted_up_ = false;
  {
    std::lock_guard lk(mu_);
    markers_in_flight_ = 0;  // sent again on the next connection
  }
  forward_waiting(true, Clock::time_point::max());  // the bus does not wait for the reconnect
  if (!warned_down_)
    spdlog::warn("cache.l2: Redis at {} unusable: {}; lookups go to the origin until it is back", cfg_.redis.text,
                 why);
  else
    spdlog::debug("cache.l2: Redis at {} still unusable: {}", cfg_.redis.text, why);
  warned_down_ = true;
  if (conn_) retired_.push_back(std::move(conn_));
  if (sub_) retired_.push_back(std::move(sub_));
  subscribed_ = false;
  // Nobody announces fills while the subscription is down: the waits end now (their requests go to the origin).
  std::vector<std::string> keys;
  for (const auto& [key, ws] : waiters_) keys.push_back(key);
  for (const auto& key : keys) finish_waiters(key, false);
  backoff_ = backoff_.count() == 0 ? std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffMin)
                                   : std::min<std::chrono::milliseconds>(2 * backoff_, kBackoffMax);
  retry_at_ = Clock::now() + backoff_;
}

// ---------------------------------------------------------------- lookups and stores

void L2Client::lookup(proxy::L2Lookup q, LookupFn done) {
  auto fail = [&](metrics::L2Error e) {
    proxy::L2Reply r;
    r.status = proxy::L2Reply::Status::Error;
    r.error = e;
    asio::post(loop_, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  };
  if (!usable()) return fail(metrics::L2Error::Down);
  if (conn_->pending() >= kMaxPending) return fail(metrics::L2Error::Busy);
  auto op = std::make_shared<LookupOp>(loop_);
  const std::string record = cache::l2::record_key(cfg_.prefix, q.primary_key);
  const std::string lock = cache::l2::lock_key(cfg_.prefix, q.primary_key);
  // A lock only when someone could wait on it: a subscription announces fills.
  const std::string lock_ms = std::to_string(subscribed_ ? std::max<int64_t>(0, q.lock_ms) : 0);
  std::vector<std::string_view> argv;
  argv.reserve(8 + q.fields.size());
  argv.insert(argv.end(), {"EVALSHA", lookup_sha_, "3", record, marks_key_, lock, lock_ms, q.lock_token});
  for (const auto& f : q.fields) argv.push_back(f);
  const bool sent = conn_->command(argv, [this, op, token = std::move(q.lock_token), key = q.primary_key](
                                             const redisReply& r) {
    proxy::L2Reply reply = parse_lookup(r);
    if (!op->done) {
      // Timed out already: a lock taken for it would keep the fleet waiting.
      if (reply.lock == proxy::L2Reply::Lock::Acquired) release(key, token);
      return;
    }
    op->timer.cancel();
    if (reply.status == proxy::L2Reply::Status::Error) {
      spdlog::debug("cache.l2: lookup reply not understood: {}", text(r));
      scripts_gone(r);
    }
    // Posted: the exchange resumes on the loop, not inside hiredis.
    asio::post(loop_, [done = std::move(op->done), reply = std::move(reply)]() mutable { done(std::move(reply)); });
    op->done = nullptr;
  });
  if (!sent) return fail(metrics::L2Error::Down);
  op->done = std::move(done);
  op->timer.expires_after(cfg_.timeout);
  op->timer.async_wait([op](const asio::error_code& ec) {
    if (ec || !op->done) return;
    auto d = std::move(op->done);
    op->done = nullptr;
    proxy::L2Reply r;
    r.status = proxy::L2Reply::Status::Error;
    r.error = metrics::L2Error::Timeout;
    d(std::move(r));  // a timer's handler: already on the loop, outside hiredis
  });
}

void L2Client::store(std::string primary_key, std::string record, std::string tags, int64_t age_ms, int64_t ttl_ms,
                     std::string lock_token) {
  if (!usable()) return m_.error(metrics::L2Error::Down);
  if (conn_->pending() >= kMaxPending) return m_.error(metrics::L2Error::Busy);
  const std::string key = cache::l2::record_key(cfg_.prefix, primary_key);
  const std::string lock = cache::l2::lock_key(cfg_.prefix, primary_key);
  const std::string channel = cache::l2::fill_channel(cfg_.prefix, primary_key);
  const std::string age = std::to_string(std::max<int64_t>(0, age_ms));
  const std::string px = std::to_string(std::max<int64_t>(1, ttl_ms));
  std::string_view argv[] = {"EVALSHA", store_sha_, "2", key, lock, record, age, tags, px, channel, lock_token};
  conn_->command(argv, [this](const redisReply& r) {
    if (r.type == REDIS_REPLY_ERROR) {
      m_.error(metrics::L2Error::Reply);
      spdlog::debug("cache.l2: store refused: {}", text(r));
      scripts_gone(r);
      return;
    }
    metrics::L2Metrics::inc(m_.stores);
  });
}

void L2Client::release(std::string primary_key, std::string lock_token) {
  if (!usable()) return;  // the lock expires on its own (PX)
  const std::string lock = cache::l2::lock_key(cfg_.prefix, primary_key);
  const std::string channel = cache::l2::fill_channel(cfg_.prefix, primary_key);
  std::string_view argv[] = {"EVALSHA", release_sha_, "1", lock, lock_token, channel};
  conn_->command(argv, [](const redisReply&) {});
}

// ---------------------------------------------------------------- waiting for another node's fill

void L2Client::wait_fill(std::string primary_key, std::chrono::steady_clock::time_point since,
                         std::chrono::milliseconds bound, WaitFn done) {
  auto it = recent_fills_.find(primary_key);
  const bool announced = it != recent_fills_.end() && it->second >= since;
  if (!subscribed_ || announced) {
    asio::post(loop_, [done = std::move(done), announced] { done(announced); });
    return;
  }
  auto w = std::make_shared<Waiter>(loop_);
  w->done = std::move(done);
  w->timer.expires_after(bound);
  w->timer.async_wait([this, w, key = primary_key](const asio::error_code& ec) {
    if (ec || !w->done) return;
    auto d = std::move(w->done);
    w->done = nullptr;
    auto found = waiters_.find(key);
    if (found != waiters_.end()) {
      std::erase(found->second, w);
      if (found->second.empty()) waiters_.erase(found);
    }
    d(false);
  });
  waiters_[primary_key].push_back(std::move(w));
}

void L2Client::finish_waiters(const std::string& key, bool filled) {
  auto found = waiters_.find(key);
  if (found == waiters_.end()) return;
  for (auto& w : found->second) {
    if (!w->done) continue;
    w->timer.cancel();
    asio::post(loop_, [done = std::move(w->done), filled] { done(filled); });
    w->done = nullptr;
  }
  waiters_.erase(found);
}

void L2Client::on_message(const redisReply& r) {
  // ["psubscribe", pattern, count] once, then ["pmessage", pattern, channel, "1" | "0"].
  if (r.type != REDIS_REPLY_ARRAY || r.elements < 3) return;
  const std::string_view kind = text(*r.element[0]);
  if (kind == "psubscribe") {
    subscribed_ = true;
    return;
  }
  if (kind != "pmessage" || r.elements != 4) return;
  const std::string_view channel = text(*r.element[2]);
  const std::string prefix = cache::l2::fill_channel(cfg_.prefix, "");
  if (channel.substr(0, prefix.size()) != prefix) return;
  std::string key(channel.substr(prefix.size()));
  const auto now = Clock::now();
  if (recent_fills_.size() > 4096)
    std::erase_if(recent_fills_, [&](const auto& kv) { return now - kv.second > 2s; });
  if (recent_fills_.size() > 4096) recent_fills_.clear();
  recent_fills_[key] = now;
  finish_waiters(key, true);
}

// ---------------------------------------------------------------- markers

namespace {

void run_all(std::vector<std::function<void()>>& fns) {
  for (auto& f : fns)
    if (f) f();
  fns.clear();
}

}  // namespace

void L2Client::invalidate(std::vector<std::string> marker_fields, std::function<void()> written,
                          std::function<void()> forward) {
  {
    std::lock_guard lk(mu_);
    if (markers_.size() < kMaxMarkerQueue) {
      MarkerJob job;
      job.fields = std::move(marker_fields);
      job.written.push_back(std::move(written));
      job.forward = std::move(forward);
      markers_.push_back(std::move(job));
      forward = nullptr;
    } else {
      if (!markers_lost_)
        spdlog::warn("cache.l2: {} invalidations wait for Redis; when it is back every L2 record filled before "
                     "then is voided (an \"all\" marker)",
                     markers_.size());
      markers_lost_ = true;
      // Written with that "all" marker. Bounded: beyond the queue's size the
      // rest are dropped (the Purger's own overflow rule stands for them).
      if (lost_written_.size() < kMaxMarkerQueue) lost_written_.push_back(std::move(written));
    }
  }
  if (forward) forward();  // queued in vain: the bus goes now
  asio::post(loop_, [this] { pump_markers(); });
}

void L2Client::forward_waiting(bool in_flight_too, Clock::time_point sent_before) {
  std::vector<std::function<void()>> run;
  {
    std::lock_guard lk(mu_);
    for (std::size_t i = 0; i < markers_.size(); ++i) {
      MarkerJob& job = markers_[i];
      const bool sent = i < markers_in_flight_;
      if (!job.forward || (sent && !in_flight_too && job.sent >= sent_before)) continue;
      run.push_back(std::move(job.forward));
      job.forward = nullptr;
    }
  }
  run_all(run);
}

void L2Client::pump_markers() {
  if (!usable()) return forward_waiting(true, Clock::time_point::max());  // Redis away: the bus does not wait
  std::vector<std::function<void()>> run;  // called once mu_ is released
  {
  std::lock_guard lk(mu_);
  if (markers_lost_ && markers_in_flight_ == 0) {
    // Some invalidations were dropped: void everything filled before now
    // instead; the queued ones are covered by it too.
    MarkerJob all;
    all.fields = {"a"};
    all.written = std::move(lost_written_);
    lost_written_.clear();
    for (auto& job : markers_) {
      for (auto& w : job.written) all.written.push_back(std::move(w));
      if (job.forward) run.push_back(std::move(job.forward));
    }
    markers_.clear();
    markers_.push_back(std::move(all));
    markers_lost_ = false;
  }
  const uint64_t gen = generation_;
  const auto now = Clock::now();
  while (markers_in_flight_ < markers_.size() && markers_in_flight_ < kMaxMarkersInFlight) {
    MarkerJob& job = markers_[markers_in_flight_++];
    job.sent = now;
    std::vector<std::string_view> argv{"EVALSHA", invalidate_sha_, "1", marks_key_};
    for (const auto& f : job.fields) argv.push_back(f);
    conn_->command(argv, [this, gen](const redisReply& r) {
      if (gen != generation_) return;
      if (r.type == REDIS_REPLY_ERROR) {
        spdlog::warn("cache.l2: an invalidation's markers were refused: {}", text(r));
        m_.error(metrics::L2Error::Reply);
        scripts_gone(r);
      } else {
        metrics::L2Metrics::inc(m_.markers);
      }
      MarkerJob done;
      {
        std::lock_guard lk2(mu_);
        if (markers_in_flight_ == 0 || markers_.empty()) return;
        done = std::move(markers_.front());  // replies come in order: the oldest one sent
        markers_.pop_front();
        --markers_in_flight_;
      }
      if (done.forward) done.forward();
      run_all(done.written);
      pump_markers();
    });
  }
  }
  run_all(run);
}

}  // namespace cachalot::cluster
