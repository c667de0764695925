// Snapshotter: warm restarts (cache.snapshot). The file I/O, the store and
// the logging around the pure format in cache/snapshot.h.
//
// Load (App::start(), before any listener is bound, so no request can see a
// half-loaded cache): the file is mapped read-only and read record by record;
// each record is rebuilt with build_entry(), its times moved by the downtime
// (snapshot::load_shift), and kept unless it is expired (past every stale and
// keep window), or its shard's budget is full (stop once cache.max_memory is).
// Records are written newest first, so what a smaller budget keeps is the
// newest. Only when the whole file has checked out are the kept entries
// published, oldest first (so the eviction queue ages them as it would have),
// through the InvalidationLog like any fill, with the current generation of
// their route, and with their host noted for purges by path. A refused file
// (cache/snapshot.h lists what that means) loads nothing: the cache starts
// cold. Nothing here throws to the caller.
//
// Write (SIGTERM after the drain, and every cache.snapshot.interval): the
// store's entries minus the expired ones and those whose route was purged
// since they were stored (a route purge only bumps a generation; the entries
// linger until a request notices), newest first, to "<path>.tmp" in the same
// directory, fsync, rename over <path>, fsync of the directory. The temporary
// file is flock()ed: one writer at a time, also across processes sharing the
// path. A failed write leaves the previous snapshot in place.
//
// Not covered: an invalidation issued while the daemon is down (or after the
// last write before a crash) is unknown to the snapshot; its entries come
// back. Purge again after the restart, or delete the file before starting.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace cachalot::proxy {

class App;

class Snapshotter {
 public:
  explicit Snapshotter(App& app) : app_(app) {}
  ~Snapshotter() { stop_periodic(); }
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  // Loads cache.snapshot.path into the (empty) store. Logs and counts what
  // it did; never throws.
  void load();
  // Writes the store to cache.snapshot.path. `why` is for the log line
  // ("shutdown", "periodic"). True when written (false when off or failed).
  bool write(const char* why);

  // A thread that writes every cache.snapshot.interval (read from the
  // current config, so a reload can change or stop it).
  void start_periodic();
  void stop_periodic();

 private:
  void periodic_loop();
  void load_file(const std::string& path);
  bool write_file(const std::string& path, const char* why);

  App& app_;
  std::mutex write_mu_;  // one write at a time in this process
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cachalot::proxy
