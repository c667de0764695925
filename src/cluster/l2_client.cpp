#include "cluster/l2_client.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>

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

// KEYS[1] the record hash, KEYS[2] the markers; ARGV the marker fields of
// the key (cache::l2::lookup_fields). Returns nil (absent), {0} (voided,
// deleted) or {1, record, ms since the store}.
constexpr const char* kLookup = R"lua(
local r = redis.call('HMGET', KEYS[1], 'rec', 'fill', 'stored', 'tags')
if not r[1] then return false end
local fill = tonumber(r[2]) or 0
local f = ARGV
if r[4] and #r[4] > 0 then
  f = {}
  for i = 1, #ARGV do f[i] = ARGV[i] end
  for tag in string.gmatch(r[4], '[^\n]+') do f[#f + 1] = 't ' .. tag end
end
if #f > 0 then
  local m = redis.call('HMGET', KEYS[2], unpack(f))
  for i = 1, #m do
    if m[i] and tonumber(m[i]) >= fill then
      redis.call('DEL', KEYS[1])
      return {0}
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {1, r[1], now - (tonumber(r[3]) or now)}
)lua";

// KEYS[1] the record hash; ARGV record, age (ms since the origin request was
// sent, margin included), tags, PX.
constexpr const char* kStore = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'fill', now - tonumber(ARGV[2]), 'stored', now, 'tags', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
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
  proxy::L2Reply out;
  if (r.type == REDIS_REPLY_NIL) return out;  // Absent
  if (r.type == REDIS_REPLY_ARRAY && r.elements >= 1 && r.element[0]->type == REDIS_REPLY_INTEGER) {
    if (r.element[0]->integer == 0) {
      out.status = proxy::L2Reply::Status::Invalidated;
      return out;
    }
    if (r.elements == 3 && r.element[1]->type == REDIS_REPLY_STRING && r.element[2]->type == REDIS_REPLY_INTEGER) {
      out.status = proxy::L2Reply::Status::Found;
      out.record.assign(r.element[1]->str, r.element[1]->len);
      out.since_store_ms = r.element[2]->integer;
      return out;
    }
  }
  out.status = proxy::L2Reply::Status::Error;
  out.error = metrics::L2Error::Reply;
  return out;
}

// One lookup: whichever comes first, the reply or the timer, completes it.
struct LookupOp {
  explicit LookupOp(asio::io_context& ioc) : timer(ioc) {}
  proxy::L2Tier::LookupFn done;
  asio::steady_timer timer;
};

}  // namespace

const char* L2Client::lookup_script() noexcept { return kLookup; }
const char* L2Client::store_script() noexcept { return kStore; }
const char* L2Client::invalidate_script() noexcept { return kInvalidate; }

L2Client::L2Client(asio::io_context& loop, config::L2Config cfg, metrics::L2Metrics& metrics, std::string name)
    : loop_(loop),
      cfg_(std::move(cfg)),
      m_(metrics),
      name_(std::move(name)),
      lookup_sha_(sha1_hex(kLookup)),
      store_sha_(sha1_hex(kStore)),
      invalidate_sha_(sha1_hex(kInvalidate)),
      marks_key_(cache::l2::marks_key(cfg_.prefix)),
      ticker_(loop),
      resolver_(loop) {}

L2Client::~L2Client() {
  // The loop has stopped (the App joins the workers first): nothing runs concurrently.
  ++generation_;
  if (conn_) conn_->close();
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

// ---------------------------------------------------------------- connection

void L2Client::tick() {
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    retired_.clear();  // closed here, never from inside a hiredis callback
    const auto now = Clock::now();
    if (!conn_) {
      if (now >= retry_at_) connect();
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
  conn_ = RedisConnection::open(
      loop_, target, [this, gen] { on_connected(gen); },
      [this, gen](const std::string& why) {
        if (gen == generation_) fault(why);
      },
      error);
  if (!conn_) fault(error);
}

void L2Client::on_connected(uint64_t gen) {
  if (gen != generation_ || !conn_ || !conn_->connected()) return;
  conn_->setup(cfg_.redis, "cachalot:l2:" + name_, [this, gen](std::string why) {
    if (gen == generation_) fault(why);
  });
  for (const char* script : {kLookup, kStore, kInvalidate}) {
    std::string_view argv[] = {"SCRIPT", "LOAD", script};
    conn_->command(argv, [this, gen](const redisReply& r) {
      if (gen == generation_ && r.type == REDIS_REPLY_ERROR) fault("SCRIPT LOAD: " + std::string(text(r)));
    });
  }
  // Commands are answered in order: anything sent from here runs after the scripts are loaded.
  up_ = true;
  if (!counted_up_) m_.connected.fetch_add(1, std::memory_order_relaxed);
  counted_up_ = true;
  backoff_ = std::chrono::milliseconds(0);
  if (warned_down_) spdlog::info("cache.l2: connected to Redis at {} again", cfg_.redis.text);
  warned_down_ = false;
  pump_markers();
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
  if (!warned_down_)
    spdlog::warn("cache.l2: Redis at {} unusable: {}; lookups go to the origin until it is back", cfg_.redis.text,
                 why);
  else
    spdlog::debug("cache.l2: Redis at {} still unusable: {}", cfg_.redis.text, why);
  warned_down_ = true;
  if (conn_) retired_.push_back(std::move(conn_));
  backoff_ = backoff_.count() == 0 ? std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffMin)
                                   : std::min<std::chrono::milliseconds>(2 * backoff_, kBackoffMax);
  retry_at_ = Clock::now() + backoff_;
}

// ---------------------------------------------------------------- lookups and stores

void L2Client::lookup(std::string key, std::vector<std::string> fields, LookupFn done) {
  auto fail = [&](metrics::L2Error e) {
    proxy::L2Reply r;
    r.status = proxy::L2Reply::Status::Error;
    r.error = e;
    asio::post(loop_, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  };
  if (!usable()) return fail(metrics::L2Error::Down);
  if (conn_->pending() >= kMaxPending) return fail(metrics::L2Error::Busy);
  auto op = std::make_shared<LookupOp>(loop_);
  std::vector<std::string_view> argv;
  argv.reserve(5 + fields.size());
  argv.insert(argv.end(), {"EVALSHA", lookup_sha_, "2", key, marks_key_});
  for (const auto& f : fields) argv.push_back(f);
  const bool sent = conn_->command(argv, [this, op](const redisReply& r) {
    if (!op->done) return;  // timed out already
    op->timer.cancel();
    proxy::L2Reply reply = parse_lookup(r);
    if (reply.status == proxy::L2Reply::Status::Error)
      spdlog::debug("cache.l2: lookup reply not understood: {}", text(r));
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

void L2Client::store(std::string key, std::string record, std::string tags, int64_t age_ms, int64_t ttl_ms) {
  if (!usable()) return m_.error(metrics::L2Error::Down);
  if (conn_->pending() >= kMaxPending) return m_.error(metrics::L2Error::Busy);
  const std::string age = std::to_string(std::max<int64_t>(0, age_ms));
  const std::string px = std::to_string(std::max<int64_t>(1, ttl_ms));
  std::string_view argv[] = {"EVALSHA", store_sha_, "1", key, record, age, tags, px};
  conn_->command(argv, [this](const redisReply& r) {
    if (r.type == REDIS_REPLY_ERROR) {
      m_.error(metrics::L2Error::Reply);
      spdlog::debug("cache.l2: store refused: {}", text(r));
      return;
    }
    metrics::L2Metrics::inc(m_.stores);
  });
}

// ---------------------------------------------------------------- markers

void L2Client::invalidate(std::vector<std::string> marker_fields) {
  {
    std::lock_guard lk(mu_);
    if (markers_.size() >= kMaxMarkerQueue) {
      if (!markers_lost_)
        spdlog::warn("cache.l2: {} invalidations wait for Redis; when it is back every L2 record filled before "
                     "then is voided (an \"all\" marker)",
                     markers_.size());
      markers_lost_ = true;
      return;
    }
    markers_.push_back(std::move(marker_fields));
  }
  asio::post(loop_, [this] { pump_markers(); });
}

void L2Client::pump_markers() {
  if (!usable()) return;
  std::lock_guard lk(mu_);
  if (markers_lost_ && markers_in_flight_ == 0) {
    // Some invalidations were dropped: void everything filled before now instead.
    markers_.clear();
    markers_.push_back({"a"});
    markers_lost_ = false;
  }
  const uint64_t gen = generation_;
  while (markers_in_flight_ < markers_.size() && markers_in_flight_ < kMaxMarkersInFlight) {
    const auto& fields = markers_[markers_in_flight_++];
    std::vector<std::string_view> argv{"EVALSHA", invalidate_sha_, "1", marks_key_};
    for (const auto& f : fields) argv.push_back(f);
    conn_->command(argv, [this, gen](const redisReply& r) {
      if (gen != generation_) return;
      if (r.type == REDIS_REPLY_ERROR) {
        spdlog::warn("cache.l2: an invalidation's markers were refused: {}", text(r));
        m_.error(metrics::L2Error::Reply);
      } else {
        metrics::L2Metrics::inc(m_.markers);
      }
      {
        std::lock_guard lk2(mu_);
        if (markers_in_flight_ > 0 && !markers_.empty()) {
          markers_.pop_front();  // replies come in order: the oldest one sent
          --markers_in_flight_;
        }
      }
      pump_markers();
    });
  }
}

}  // namespace cachalot::cluster
