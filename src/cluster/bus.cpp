#include "cluster/bus.h"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <vector>

namespace cachalot::cluster {

namespace {

using namespace std::chrono_literals;

constexpr auto kTick = 100ms;               // watchdog and reconnect check
constexpr int kBlockMs = 2000;              // XREAD BLOCK: an idle reader asks again every 2 s
constexpr std::size_t kMaxInFlight = 256;   // XADDs sent and not yet acknowledged
constexpr auto kWarnEvery = 10s;            // repeated resync warnings are rate-limited

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string_view text(const redisReply& r) {
  bool has_text = r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS || r.type == REDIS_REPLY_ERROR;
  return has_text && r.str ? std::string_view(r.str, r.len) : std::string_view();
}

bool is_error(const redisReply& r) { return r.type == REDIS_REPLY_ERROR; }

std::optional<int64_t> integer(const redisReply& r) {
  if (r.type == REDIS_REPLY_INTEGER) return r.integer;
  std::string_view s = text(r);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

// XINFO STREAM's reply (RESP2: name, value, name, value...). nullopt: not understood.
std::optional<StreamInfo> parse_stream_info(const redisReply& r) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements % 2) return std::nullopt;
  StreamInfo info;
  bool have_length = false, have_last = false;
  for (std::size_t i = 0; i + 1 < r.elements; i += 2) {
    std::string_view name = text(*r.element[i]);
    const redisReply& v = *r.element[i + 1];
    if (name == "length") {
      auto n = integer(v);
      if (!n) return std::nullopt;
      info.length = static_cast<uint64_t>(*n);
      have_length = true;
    } else if (name == "last-generated-id") {
      auto id = StreamId::parse(text(v));
      if (!id) return std::nullopt;
      info.last_generated = *id;
      have_last = true;
    } else if (name == "entries-added") {
      if (auto n = integer(v)) info.entries_added = static_cast<uint64_t>(*n);
    } else if (name == "first-entry" && v.type == REDIS_REPLY_ARRAY && v.elements >= 1) {
      auto id = StreamId::parse(text(*v.element[0]));
      if (!id) return std::nullopt;
      info.first_entry = *id;
    }
  }
  if (!have_length || !have_last) return std::nullopt;
  return info;
}

std::string format_duration_ms(config::Duration d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

Bus::Bus(asio::io_context& loop, config::ClusterConfig cfg, metrics::ClusterMetrics& metrics, ApplyFn apply)
    : loop_(loop),
      cfg_(std::move(cfg)),
      m_(metrics),
      apply_(std::move(apply)),
      incarnation_(new_incarnation()),
      ticker_(loop),
      resolver_(loop),
      jitter_(static_cast<uint32_t>(std::hash<std::string>{}(incarnation_))) {
  status_.node = cfg_.node;
  status_.incarnation = incarnation_;
  status_.stream = cfg_.stream;
  status_.redis = cfg_.redis.text;
  status_.since_ms = wall_ms();
}

Bus::~Bus() {
  // The loop has stopped (the App joins the workers first): nothing runs concurrently.
  std::size_t unsent = std::count_if(queue_.begin(), queue_.end(),
                                     [](const Event& e) { return e.kind == Event::Kind::Purge; });
  if (unsent) spdlog::warn("cluster: {} invalidations were not published: Redis was unreachable at shutdown", unsent);
  ++generation_;
  state_ = State::Down;
  for (auto* c : {&reader_, &writer_})
    if (*c) (*c)->close();
  for (auto& c : retired_) c->close();
  m_.connected.store(0, std::memory_order_relaxed);
}

void Bus::start() {
  m_.enabled.store(true, std::memory_order_relaxed);
  spdlog::info("cluster: node {} (incarnation {}), stream {} on {}", cfg_.node, incarnation_, cfg_.stream,
               cfg_.redis.text);
  asio::post(loop_, [this] {
    connect();
    tick();
  });
}

void Bus::publish(const cache::Purge& p) {
  Event e;
  e.kind = Event::Kind::Purge;
  e.purge = p;
  e.time_ms = wall_ms();  // when it was applied here, for the readers' lag
  asio::post(loop_, [this, e = std::move(e)]() mutable { enqueue(std::move(e)); });
}

// ---------------------------------------------------------------- connection

void Bus::tick() {
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    auto now = Clock::now();
    if (state_ == State::Down) {
      if (now >= retry_at_) connect();
    } else {
      // An idle reader waits in XREAD BLOCK; anything else answers within the timeout.
      Clock::duration reader_limit = cfg_.timeout;
      if (state_ == State::Up) reader_limit += std::chrono::milliseconds(kBlockMs);
      if (reader_ && reader_->stalled(now, reader_limit))
        fault("no answer from Redis within " + format_duration_ms(cfg_.timeout) + " (reader)");
      else if (writer_ && writer_->stalled(now, cfg_.timeout))
        fault("no answer from Redis within " + format_duration_ms(cfg_.timeout) + " (writer)");
    }
    tick();
  });
}

void Bus::connect() {
  state_ = State::Connecting;
  const uint64_t gen = ++generation_;
  const config::RedisAddress& a = cfg_.redis;
  if (auto literal = RedisConnection::literal_target(a)) return open_connections(*literal, gen);
  RedisConnection::Target target;
  target.port = a.port;
  // A name: Asio resolves it off this loop (getaddrinfo would block it).
  resolver_.async_resolve(a.host, std::to_string(a.port),
                          [this, gen, target](const asio::error_code& ec,
                                              asio::ip::tcp::resolver::results_type results) mutable {
                            if (!current(gen)) return;
                            if (ec || results.empty())
                              return fault("cannot resolve " + cfg_.redis.host + ": " + ec.message());
                            // One address per attempt, in turn: a name with an IPv6 and
                            // an IPv4 address reaches whichever one Redis listens on.
                            auto it = results.begin();
                            std::advance(it, static_cast<std::ptrdiff_t>(attempt_ % results.size()));
                            target.host = it->endpoint().address().to_string();
                            open_connections(target, gen);
                          });
}

void Bus::open_connections(const RedisConnection::Target& target, uint64_t gen) {
  std::string error;
  auto connected = [this, gen] { on_connected(gen); };
  auto closed = [this, gen](const std::string& why) {
    if (current(gen)) fault(why);
  };
  reader_ = RedisConnection::open(loop_, target, connected, closed, error);
  if (reader_) writer_ = RedisConnection::open(loop_, target, connected, closed, error);
  if (!reader_ || !writer_) fault(error);
}

void Bus::on_connected(uint64_t gen) {
  if (!current(gen) || state_ != State::Connecting) return;
  if (!reader_ || !writer_ || !reader_->connected() || !writer_->connected()) return;  // wait for both
  state_ = State::Resuming;
  setup(*reader_, "reader", gen);
  setup(*writer_, "writer", gen);
  // The writer starts at once: what queued while Redis was away, then a
  // hello with the last number assigned (a reader that lost the tail of this
  // node's events sees the jump). Older unsent hellos are stale.
  std::erase_if(queue_, [](const Event& e) { return e.kind == Event::Kind::Hello; });
  Event hello;
  hello.kind = Event::Kind::Hello;
  hello.node = cfg_.node;
  hello.incarnation = incarnation_;
  hello.seq = seq_;
  hello.time_ms = wall_ms();
  queue_.push_back(std::move(hello));
  in_flight_ = 0;
  writer_ready_ = true;
  pump();
  resume(gen);
}

void Bus::setup(RedisConnection& conn, std::string_view role, uint64_t gen) {
  // The name is for CLIENT LIST.
  conn.setup(cfg_.redis, "cachalot:" + cfg_.node + ":" + std::string(role), [this, gen](std::string why) {
    if (current(gen)) fault(why);
  });
}

void Bus::fault(const std::string& why) {
  if (state_ == State::Down) return;
  ++attempt_;
  const bool was_up = state_ == State::Up;
  state_ = State::Down;
  ++generation_;
  writer_ready_ = false;
  in_flight_ = 0;  // unacknowledged events are sent again on the next connection
  note_error(why);
  if (was_up)
    spdlog::warn("cluster: lost Redis at {}: {}; invalidations queue here (up to {}) until it is back",
                 cfg_.redis.text, why, cfg_.queue_limit);
  else if (!warned_down_)
    spdlog::warn("cluster: cannot reach Redis at {}: {}; retrying (up to every {})", cfg_.redis.text, why,
                 format_duration_ms(cfg_.backoff_max));
  else
    spdlog::debug("cluster: Redis at {} still unreachable: {}", cfg_.redis.text, why);
  warned_down_ = true;
  // Closed from the loop, never from inside a hiredis callback (this may be one).
  for (auto* c : {&reader_, &writer_})
    if (*c) retired_.push_back(std::move(*c));
  asio::post(loop_, [this] {
    for (auto& c : retired_) c->close();
    retired_.clear();
  });
  resolver_.cancel();
  backoff_ = next_backoff(backoff_, cfg_);
  double factor = std::uniform_real_distribution<double>(0.8, 1.2)(jitter_);  // a fleet does not retry in step
  retry_at_ = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(backoff_.count() * factor));
  set_status(false);
}

// ---------------------------------------------------------------- reader

void Bus::resume(uint64_t gen) {
  if (have_start_) return check_stream(gen);
  // The first connect: read from the Redis time this process started at (the
  // stream's ids are Redis' clock), so events published while it was still
  // connecting are not missed.
  std::string_view argv[] = {"TIME"};
  reader_->command(argv, [this, gen](const redisReply& r) {
    if (!current(gen)) return;
    int64_t now_ms = 0;
    if (r.type == REDIS_REPLY_ARRAY && r.elements == 2) {
      auto sec = integer(*r.element[0]), usec = integer(*r.element[1]);
      if (sec && usec) now_ms = *sec * 1000 + *usec / 1000;
    }
    if (now_ms == 0) now_ms = wall_ms() - 1000;  // TIME refused (a proxy): this clock, with a margin
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
    last_ = StreamId{static_cast<uint64_t>(std::max<int64_t>(0, now_ms - elapsed - 1)), 0};
    have_start_ = true;
    check_stream(gen);
  });
}

void Bus::check_stream(uint64_t gen) {
  std::string_view argv[] = {"XINFO", "STREAM", cfg_.stream};
  reader_->command(argv, [this, gen](const redisReply& r) {
    if (!current(gen)) return;
    std::optional<StreamInfo> info;
    if (is_error(r)) {
      if (text(r).find("no such key") == std::string_view::npos)
        return fault("XINFO STREAM: " + std::string(text(r)));
    } else if (!(info = parse_stream_info(r))) {
      return fault("XINFO STREAM: a reply this node does not understand");
    }
    ResumePlan plan = plan_resume(last_, read_before_, info);
    if (plan.resync)
      resync(metrics::ResyncReason::Trimmed,
             fmt::format("entries after {} were trimmed from the stream (its first entry is {}, max_events {})",
                         last_.to_string(), info->first_entry.to_string(), cfg_.max_events),
             info->last_generated);
    last_ = plan.read_from;
    state_ = State::Up;
    backoff_ = config::Duration(0);
    warned_down_ = warned_drop_ = false;
    if (ever_up_) m_.inc(metrics::ClusterCounter::Reconnects);
    auto queued = std::count_if(queue_.begin(), queue_.end(), [](const Event& e) { return e.kind == Event::Kind::Purge; });
    spdlog::info("cluster: connected to Redis at {}; reading {} after {}; {} local events still to publish",
                 cfg_.redis.text, cfg_.stream, last_.to_string(), queued);
    ever_up_ = true;
    set_status(true);
    read(gen);
  });
}

void Bus::read(uint64_t gen) {
  std::string count = std::to_string(cfg_.read_batch), block = std::to_string(kBlockMs), from = last_.to_string();
  std::string_view argv[] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", cfg_.stream, from};
  reader_->command(argv, [this, gen](const redisReply& r) {
    if (!current(gen)) return;
    if (is_error(r)) return fault("XREAD: " + std::string(text(r)));
    // nil: BLOCK timed out. Else [[stream, [[id, [field, value, ...]], ...]]].
    if (r.type == REDIS_REPLY_ARRAY) {
      std::vector<std::pair<std::string_view, std::string_view>> fields;
      for (std::size_t s = 0; s < r.elements; ++s) {
        const redisReply& stream = *r.element[s];
        if (stream.type != REDIS_REPLY_ARRAY || stream.elements != 2) continue;
        const redisReply& entries = *stream.element[1];
        for (std::size_t i = 0; entries.type == REDIS_REPLY_ARRAY && i < entries.elements; ++i) {
          const redisReply& entry = *entries.element[i];
          if (entry.type != REDIS_REPLY_ARRAY || entry.elements != 2) continue;
          auto id = StreamId::parse(text(*entry.element[0]));
          if (!id) return fault("XREAD: an entry id this node does not understand");
          fields.clear();
          const redisReply& kv = *entry.element[1];
          for (std::size_t f = 0; kv.type == REDIS_REPLY_ARRAY && f + 1 < kv.elements; f += 2)
            fields.emplace_back(text(*kv.element[f]), text(*kv.element[f + 1]));
          Decoded d = decode(fields);
          on_entry(*id, d.event ? &*d.event : nullptr, d.error);
          last_ = *id;
          read_before_ = true;
        }
      }
      std::lock_guard lk(status_mu_);
      status_.last_id = last_.to_string();
    }
    read(gen);
  });
}

void Bus::on_entry(StreamId id, const Event* e, const std::string& unreadable_why) {
  using C = metrics::ClusterCounter;
  if (!e) {
    m_.inc(C::Invalid);
    if (id > covered_until_)
      resync(metrics::ResyncReason::Unreadable, fmt::format("cannot read stream entry {}: {}", id.to_string(),
                                                            unreadable_why), id);
    return;
  }
  if (e->node == cfg_.node && e->incarnation == incarnation_) {
    m_.inc(C::Own);  // applied here when it was published
    return;
  }
  switch (senders_.see(*e)) {
    case SenderTracker::Verdict::Duplicate: m_.inc(C::Duplicate); return;
    case SenderTracker::Verdict::Gap:
      // Covered if a resync already happened after this entry was added.
      if (id > covered_until_)
        resync(metrics::ResyncReason::Gap,
               fmt::format("events from node {} were lost (its sequence jumped to {})", e->node, e->seq), id);
      break;
    case SenderTracker::Verdict::First:
    case SenderTracker::Verdict::Next: break;
  }
  if (e->kind == Event::Kind::Hello) return;
  apply_(e->purge);
  m_.inc(C::Applied);
  int64_t lag_ms = std::max<int64_t>(0, wall_ms() - e->time_ms);  // clocks of two hosts: never negative
  m_.lag.observe(static_cast<double>(lag_ms) / 1000.0);
  m_.lag_last_us.store(lag_ms * 1000, std::memory_order_relaxed);
}

void Bus::resync(metrics::ResyncReason reason, const std::string& why, StreamId covered_until) {
  auto now = Clock::now();
  if (now - last_resync_warning_ >= kWarnEvery) {
    spdlog::warn("cluster: {}: soft-purging everything (resync)", why);
    last_resync_warning_ = now;
  } else {
    spdlog::debug("cluster: {}: soft-purging everything (resync)", why);
  }
  // A soft purge of everything voids whatever the lost events would have,
  // and more: stored entries revalidate (stale-while-revalidate still applies).
  cache::Purge all;
  all.kind = cache::Purge::Kind::All;
  all.soft = true;
  apply_(all);
  m_.resync(reason);
  covered_until_ = std::max(covered_until_, covered_until);
}

// ---------------------------------------------------------------- writer

void Bus::enqueue(Event e) {
  e.node = cfg_.node;
  e.incarnation = incarnation_;
  e.seq = ++seq_;  // assigned here, on the loop, so the stream holds them in order
  if (queue_.size() >= cfg_.queue_limit) {
    // Its number stays used: the readers see the gap and resync.
    m_.inc(metrics::ClusterCounter::Dropped);
    if (!warned_drop_)
      spdlog::warn("cluster: {} invalidations queued for Redis: dropping new ones (the other nodes will resync)",
                   queue_.size());
    warned_drop_ = true;
  } else {
    queue_.push_back(std::move(e));
    pump();
  }
  m_.queued.store(queue_.size(), std::memory_order_relaxed);
  std::lock_guard lk(status_mu_);
  status_.last_seq = seq_;
}

void Bus::pump() {
  if (!writer_ready_ || !writer_) return;
  const uint64_t gen = generation_;
  const std::string max_events = std::to_string(cfg_.max_events);
  std::vector<std::string_view> argv;
  while (in_flight_ < queue_.size() && in_flight_ < kMaxInFlight) {
    auto fields = encode(queue_[in_flight_]);
    argv.assign({"XADD", cfg_.stream, "MAXLEN", "~", max_events, "*"});
    for (const auto& [name, value] : fields) {
      argv.push_back(name);
      argv.push_back(value);
    }
    bool sent = writer_->command(argv, [this, gen](const redisReply& r) {
      if (!current(gen)) return;
      if (is_error(r)) return fault("XADD: " + std::string(text(r)));
      if (in_flight_ == 0 || queue_.empty()) return;
      if (queue_.front().kind == Event::Kind::Purge) m_.inc(metrics::ClusterCounter::Published);
      queue_.pop_front();
      --in_flight_;
      m_.queued.store(queue_.size(), std::memory_order_relaxed);
      pump();
    });
    if (!sent) return;  // the connection is going: its closed callback reports why
    ++in_flight_;
  }
}

// ---------------------------------------------------------------- status

void Bus::note_error(const std::string& why) {
  std::lock_guard lk(status_mu_);
  status_.last_error = why;
  status_.last_error_ms = wall_ms();
}

void Bus::set_status(bool connected) {
  m_.connected.store(connected ? 1 : 0, std::memory_order_relaxed);
  std::lock_guard lk(status_mu_);
  if (status_.connected != connected) status_.since_ms = wall_ms();
  status_.connected = connected;
  status_.last_id = have_start_ ? last_.to_string() : "";
  status_.last_seq = seq_;
}

BusStatus Bus::status() const {
  BusStatus s;
  {
    std::lock_guard lk(status_mu_);
    s = status_;
  }
  using C = metrics::ClusterCounter;
  s.queued = m_.queued.load(std::memory_order_relaxed);
  s.published = m_.get(C::Published);
  s.applied = m_.get(C::Applied);
  s.own = m_.get(C::Own);
  s.duplicates = m_.get(C::Duplicate);
  s.invalid = m_.get(C::Invalid);
  s.dropped = m_.get(C::Dropped);
  s.reconnects = m_.get(C::Reconnects);
  s.resyncs = m_.resync_count();
  s.lag_last_seconds = static_cast<double>(m_.lag_last_us.load(std::memory_order_relaxed)) / 1e6;
  return s;
}

}  // namespace cachalot::cluster
