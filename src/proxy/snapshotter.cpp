#include "proxy/snapshotter.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "cache/key.h"
#include "cache/snapshot.h"
#include "core/clock.h"
#include "proxy/app.h"

namespace cachalot::proxy {

namespace snap = cache::snapshot;
using Skip = snap::Skip;
using LoadStatus = metrics::SnapshotMetrics::LoadStatus;

namespace {

std::string errno_text() { return std::strerror(errno); }

// For log lines: "812 B", "4.2 KiB", "310.5 MiB", "1.2 GiB".
std::string human_size(uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  if (n < (1u << 20)) return fmt::format("{:.1f} KiB", n / 1024.0);
  if (n < (1u << 30)) return fmt::format("{:.1f} MiB", n / 1048576.0);
  return fmt::format("{:.1f} GiB", n / 1073741824.0);
}

core::TimePoint wall_now() { return std::chrono::time_point_cast<core::Duration>(std::chrono::system_clock::now()); }

uint64_t micros_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
}

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// The file, read in large blocks (records are small; a body may be large).
class FileSource final : public snap::ByteSource {
 public:
  FileSource(int fd, uint64_t size) : fd_(fd), size_(size), buf_(4 << 20) {}
  uint64_t size() const noexcept override { return size_; }
  std::string error() const override { return error_; }
  std::string_view take(std::size_t n) override {
    if (end_ - begin_ < n) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (n > buf_.size()) buf_.resize(n);
      while (end_ < n && error_.empty()) {
        const ssize_t r = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
        if (r < 0) {
          if (errno == EINTR) continue;
          error_ = errno_text();
          break;
        }
        if (r == 0) break;
        end_ += static_cast<std::size_t>(r);
      }
    }
    const std::size_t k = std::min(n, end_ - begin_);
    std::string_view v(buf_.data() + begin_, k);
    begin_ += k;
    return v;
  }

 private:
  int fd_;
  uint64_t size_;
  std::vector<char> buf_;
  std::size_t begin_ = 0, end_ = 0;
  std::string error_;
};

// write() all of it.
bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool pwrite_all(int fd, const std::string& s, off_t at) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t w = ::pwrite(fd, s.data() + done, s.size() - done, at + static_cast<off_t>(done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  return true;
}

// The generation an entry of `route` must carry to be valid (Exchange::still_valid).
uint64_t expected_generation(const App& app, std::string_view route) {
  return route.empty() ? 0 : app.route_generation(route);
}

}  // namespace

// ---------------------------------------------------------------- load

void Snapshotter::load() {
  auto& m = app_.metrics().snapshot();
  const std::string path = app_.config()->cache.snapshot.path;
  if (path.empty()) {
    m.load_status.store(static_cast<uint8_t>(LoadStatus::Disabled));
    return;
  }
  try {
    load_file(path);
  } catch (const std::exception& e) {  // bad_alloc, most likely: start cold rather than not at all
    spdlog::error("snapshot {} ignored: {}; starting with what was loaded so far", path, e.what());
    m.load_status.store(static_cast<uint8_t>(LoadStatus::Rejected));
  }
}

void Snapshotter::load_file(const std::string& path) {
  auto& m = app_.metrics().snapshot();
  const auto cfg = app_.config();
  if (::access(dir_of(path).c_str(), W_OK | X_OK) != 0)
    spdlog::warn("snapshot {}: directory {} is not writable ({}): the snapshot on SIGTERM will fail", path,
                 dir_of(path), errno_text());

  const auto t0 = std::chrono::steady_clock::now();
  auto reject = [&](const std::string& problem) {
    spdlog::error("snapshot {} ignored: {}; starting with an empty cache", path, problem);
    m.load_status.store(static_cast<uint8_t>(LoadStatus::Rejected));
    m.load_duration_us.store(micros_since(t0));
  };

  // Like a fill whose origin request is "sent" now: an invalidation recorded
  // while the file is read (the admin API is not up yet, but a remote node
  // may be) voids what it matches when it is published.
  cache::InvalidationLog::Ticket ticket = app_.invalidations().enter();

  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0) {
    if (errno == ENOENT) {
      spdlog::info("snapshot {}: no file yet, starting with an empty cache", path);
      m.load_status.store(static_cast<uint8_t>(LoadStatus::Missing));
      return;
    }
    return reject("cannot open: " + errno_text());
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) return reject("cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) return reject("not a regular file");
  ::posix_fadvise(fd.fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  FileSource source(fd.fd, static_cast<uint64_t>(st.st_size));
  snap::Reader reader(source);
  if (std::string err = reader.open(); !err.empty()) return reject(err);
  const snap::Header& h = reader.header();
  // Entries filled from another origin would answer for this one.
  if (h.origin != cfg->upstream.url.text)
    return reject(fmt::format("written for origin {}, this configuration's is {}", h.origin, cfg->upstream.url.text));

  const core::TimePoint now = core::Clock::now();
  const core::Duration shift = snap::load_shift(h, now, wall_now());
  const core::Duration down = snap::downtime(h, wall_now());

  cache::Store& store = app_.store();
  const uint64_t max_bytes = cfg->cache.max_memory;
  const uint64_t shard_budget = store.shard_budget();
  std::vector<uint64_t> shard_bytes(store.shard_count(), 0);
  uint64_t total_bytes = 0;
  std::array<uint64_t, metrics::SnapshotMetrics::kSkips> skipped{};
  std::vector<cache::EntryRef> kept;
  kept.reserve(static_cast<std::size_t>(std::min<uint64_t>({h.count, h.file_bytes / snap::kFrameBytes, 1u << 24})));

  cache::EntryDraft d;
  bool full = false;
  for (bool done = false; !done && !full;) {
    switch (reader.next(d)) {
      case snap::Reader::Result::Error: return reject(reader.error());
      case snap::Reader::Result::End: done = true; break;
      case snap::Reader::Result::Skipped: ++skipped[static_cast<std::size_t>(reader.skip_reason())]; break;
      case snap::Reader::Result::Record: {
        d.freshness = snap::shifted(d.freshness, shift);
        if (now >= cache::drop_after(d.freshness)) {
          ++skipped[static_cast<std::size_t>(Skip::Expired)];
          break;
        }
        // Generations count from 0 in every process: the writer left out
        // entries of purged generations, the rest are current.
        d.route_generation = expected_generation(app_, d.route);
        cache::EntryRef e = cache::build_entry(d);
        const uint64_t charge = e->charge();
        if (total_bytes + charge > max_bytes) {
          full = true;  // the budget is full: the rest (older) is not read
          ++skipped[static_cast<std::size_t>(Skip::Budget)];
          break;
        }
        uint64_t& in_shard = shard_bytes[store.shard_index(e->primary_key())];
        if (in_shard + charge > shard_budget) {
          ++skipped[static_cast<std::size_t>(Skip::Budget)];
          break;
        }
        in_shard += charge;
        total_bytes += charge;
        kept.push_back(std::move(e));
        break;
      }
    }
  }
  if (full) skipped[static_cast<std::size_t>(Skip::Budget)] += h.count - reader.records_read();

  // The file checked out: publish, oldest first, like fills.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_set<std::string, Hash, std::equal_to<>> hosts;  // noted already (few: one per Host)
  uint64_t loaded = 0, loaded_bytes = 0;
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
    cache::EntryRef& e = *it;
    bool stored = false;
    const auto verdict = app_.invalidations().publish(ticket, *e, [&](cache::InvalidationLog::Verdict v) {
      cache::EntryRef p = v == cache::InvalidationLog::Verdict::Stale ? cache::mark_stale(*e, now) : e;
      stored = store.publish(std::move(p)).stored();
    });
    if (verdict == cache::InvalidationLog::Verdict::Drop || !stored) {
      ++skipped[static_cast<std::size_t>(verdict == cache::InvalidationLog::Verdict::Drop ? Skip::Invalidated
                                                                                          : Skip::Budget)];
      continue;
    }
    ++loaded;
    loaded_bytes += e->charge();
    if (std::string_view host = cache::key_authority(e->primary_key()); !host.empty() && !hosts.contains(host)) {
      hosts.emplace(host);
      app_.note_host(host);
    }
    e.reset();  // the store holds it now
  }
  kept.clear();

  const uint64_t us = micros_since(t0);
  m.load_status.store(static_cast<uint8_t>(LoadStatus::Loaded));
  m.loaded_objects.store(loaded);
  m.loaded_bytes.store(loaded_bytes);
  for (std::size_t i = 0; i < skipped.size(); ++i) m.load_skipped[i].store(skipped[i]);
  m.load_duration_us.store(us);
  spdlog::info(
      "snapshot {}: loaded {} of {} entries ({}) in {} ms, down for {} s; skipped: {} expired, {} over budget, "
      "{} corrupt, {} malformed, {} invalidated",
      path, loaded, h.count, human_size(loaded_bytes), us / 1000, down.count() / 1000,
      skipped[static_cast<std::size_t>(Skip::Expired)], skipped[static_cast<std::size_t>(Skip::Budget)],
      skipped[static_cast<std::size_t>(Skip::Corrupt)], skipped[static_cast<std::size_t>(Skip::Malformed)],
      skipped[static_cast<std::size_t>(Skip::Invalidated)]);
}

// ---------------------------------------------------------------- write

bool Snapshotter::write(const char* why) {
  const std::string path = app_.config()->cache.snapshot.path;
  if (path.empty()) return false;
  std::lock_guard serialize(write_mu_);
  try {
    return write_file(path, why);
  } catch (const std::exception& e) {
    // The temporary file stays (it may be another writer's): the next write truncates it.
    spdlog::error("snapshot {}: writing failed: {}; the previous snapshot (if any) is kept", path, e.what());
    app_.metrics().snapshot().writes_failed.fetch_add(1);
    return false;
  }
}

bool Snapshotter::write_file(const std::string& path, const char* why) {
  const auto cfg = app_.config();
  auto& m = app_.metrics().snapshot();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string tmp = path + ".tmp";
  bool locked = false;
  // Takes errno first: the arguments are already built, nothing ran in between.
  auto failed = [&](const char* what, const std::string& file) {
    const int err = errno;
    spdlog::error("snapshot {}: {} {} failed: {}; the previous snapshot (if any) is kept", path, what, file,
                  std::strerror(err));
    if (locked) ::unlink(tmp.c_str());
    m.writes_failed.fetch_add(1);
    return false;
  };

  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (fd.fd < 0) return failed("creating", tmp);
  if (::flock(fd.fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      spdlog::warn("snapshot {}: {} is locked by another writer; not written", path, tmp);
      m.writes_failed.fetch_add(1);
      return false;
    }
    return failed("locking", tmp);
  }
  locked = true;
  if (::ftruncate(fd.fd, 0) != 0) return failed("truncating", tmp);

  snap::Header h;
  h.written_clock_ms = core::Clock::now().time_since_epoch().count();
  h.written_wall_ms = wall_now().time_since_epoch().count();
  h.origin = cfg->upstream.url.text;
  const core::TimePoint now = core::Clock::now();

  // The entries worth keeping, newest first (sorted by a copy of the time:
  // comparing through the entries would miss the cache at every step).
  std::vector<cache::EntryRef> entries = app_.store().entries();
  std::array<uint64_t, metrics::SnapshotMetrics::kSkips> skipped{};
  std::vector<std::pair<int64_t, uint32_t>> order;  // (-stored_at ms, index)
  order.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const cache::Entry& e = *entries[i];
    if (now >= e.drop_after()) {
      ++skipped[static_cast<std::size_t>(Skip::Expired)];
      entries[i].reset();
    } else if (!e.route_generation_is(expected_generation(app_, e.route()))) {
      ++skipped[static_cast<std::size_t>(Skip::Invalidated)];
      entries[i].reset();
    } else {
      order.emplace_back(-e.stored_at().time_since_epoch().count(), static_cast<uint32_t>(i));
    }
  }
  std::sort(order.begin(), order.end());

  std::string buf = snap::encode_header(h);  // a placeholder: size and count are known at the end
  const std::size_t header_bytes = buf.size();
  uint64_t file_bytes = 0;
  constexpr std::size_t kFlushAt = 1 << 20;
  for (const auto& [_, i] : order) {
    cache::EntryRef& e = entries[i];
    snap::append_record(buf, *e);
    e.reset();  // an entry evicted meanwhile is freed now, not after the whole write
    if (buf.size() >= kFlushAt) {
      if (!write_all(fd.fd, buf.data(), buf.size())) return failed("writing", tmp);
      file_bytes += buf.size();
      buf.clear();
    }
  }
  if (!write_all(fd.fd, buf.data(), buf.size())) return failed("writing", tmp);
  file_bytes += buf.size();
  h.file_bytes = file_bytes;
  h.count = order.size();
  const std::string header = snap::encode_header(h);
  if (header.size() != header_bytes || !pwrite_all(fd.fd, header, 0)) return failed("writing", tmp);
  if (::fsync(fd.fd) != 0) return failed("fsync of", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failed("renaming", tmp);
  // The rename itself is durable once the directory is.
  if (Fd dir(::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dir.fd >= 0) ::fsync(dir.fd);

  const uint64_t us = micros_since(t0);
  m.writes_ok.fetch_add(1);
  m.written_objects.store(h.count);
  m.written_bytes.store(file_bytes);
  m.write_duration_us.store(us);
  m.last_write_unix.store(core::to_unix_seconds(wall_now()));
  for (std::size_t i = 0; i < skipped.size(); ++i) m.write_skipped[i].fetch_add(skipped[i]);
  spdlog::info("snapshot {} ({}): wrote {} entries ({}) in {} ms; left out {} expired, {} invalidated", path, why,
               h.count, human_size(file_bytes), us / 1000, skipped[static_cast<std::size_t>(Skip::Expired)],
               skipped[static_cast<std::size_t>(Skip::Invalidated)]);
  return true;
}

// ---------------------------------------------------------------- periodic

void Snapshotter::start_periodic() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { periodic_loop(); });
}

void Snapshotter::stop_periodic() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Snapshotter::periodic_loop() {
  auto last = std::chrono::steady_clock::now();
  std::unique_lock lk(mu_);
  for (;;) {
    // Woken every second to pick up a reloaded interval.
    if (cv_.wait_for(lk, std::chrono::seconds(1), [this] { return stop_; })) return;
    const auto cfg = app_.config();
    const auto interval = cfg->cache.snapshot.interval;
    if (cfg->cache.snapshot.path.empty() || interval.count() == 0) {
      last = std::chrono::steady_clock::now();
      continue;
    }
    if (std::chrono::steady_clock::now() - last < interval) continue;
    lk.unlock();
    write("periodic");
    lk.lock();
    last = std::chrono::steady_clock::now();
  }
}

}  // namespace cachalot::proxy
