// snapshot_bench: the CPU cost of the snapshot format (cache/snapshot.h)
// without the daemon or the disk: N small entries shaped like the demo
// origin's /bench/64 responses are encoded, decoded, rebuilt with
// build_entry() and published into a Store, each phase timed.
//
//   build/bench/snapshot_bench [N=1000000] [body bytes=64] [FILE]
// With FILE, the snapshot is also written there (origin http://127.0.0.1:9000),
// for timing a daemon's load of it.
//
// bench/snapshot.sh measures the real thing (SIGTERM -> file -> restart).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cache/snapshot.h"
#include "cache/store.h"

using namespace cachalot;
namespace snap = cachalot::cache::snapshot;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  const std::size_t body = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  const auto now = std::chrono::time_point_cast<core::Duration>(std::chrono::system_clock::now());

  auto t0 = Clock::now();
  cache::Store store(cache::StoreOptions{64ull << 30, 16, 16, cache::EvictionPolicy::Sieve});
  {
    cache::EntryDraft d;
    d.status = 200;
    d.headers.add("Content-Type", "application/json");
    d.headers.add("Cache-Control", "public, max-age=3600");
    d.headers.add("ETag", "\"b64-5f3a9c\"");
    d.headers.add("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT");
    d.headers.add("Date", "Tue, 02 Dec 2025 01:00:00 GMT");
    d.headers.add("X-Origin-Requests", "123456");
    d.body.assign(body, 'x');
    d.freshness.request_time = now;
    d.freshness.response_time = now;
    d.freshness.lifetime = core::Seconds(3600);
    d.freshness.keep = core::Seconds(3600);
    for (std::size_t i = 0; i < n; ++i) {
      d.primary_key = "http://127.0.0.1:8080/bench/64?k=" + std::to_string(i);
      d.freshness.response_time = now + core::Duration(i / 1000);
      store.publish(cache::build_entry(d));
    }
  }
  std::printf("fill     %8.0f ms  %zu entries, %.1f MiB charged\n", ms_since(t0), n,
              store.stats().bytes / 1048576.0);

  t0 = Clock::now();
  std::vector<cache::EntryRef> entries = store.entries();
  {  // as the daemon's writer sorts: by a copy of the time
    std::vector<std::pair<int64_t, uint32_t>> order;
    order.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i)
      order.emplace_back(-entries[i]->stored_at().time_since_epoch().count(), static_cast<uint32_t>(i));
    std::sort(order.begin(), order.end());
    std::vector<cache::EntryRef> sorted;
    sorted.reserve(entries.size());
    for (const auto& [_, i] : order) sorted.push_back(std::move(entries[i]));
    entries.swap(sorted);
  }
  const double collect_ms = ms_since(t0);
  // As the daemon writes: records appended to a 1 MiB buffer, flushed (here:
  // dropped) when full. The file for the load below is built apart, untimed.
  t0 = Clock::now();
  std::string buf;
  std::size_t bytes = 0;
  for (const auto& e : entries) {
    snap::append_record(buf, *e);
    if (buf.size() >= (1u << 20)) {
      bytes += buf.size();
      buf.clear();
    }
  }
  bytes += buf.size();
  const double encode_ms = ms_since(t0);
  std::printf("write    %8.0f ms  collect+sort %.0f ms, encode %.0f ms, %.1f MiB (%zu B/entry)\n",
              collect_ms + encode_ms, collect_ms, encode_ms, bytes / 1048576.0, bytes / n);

  snap::Header h;
  h.origin = "http://127.0.0.1:9000";
  h.count = n;
  h.file_bytes = snap::encode_header(h).size() + bytes;
  std::string file = snap::encode_header(h);
  file.reserve(h.file_bytes);
  for (auto& e : entries) {
    snap::append_record(file, *e);
    e.reset();
  }
  entries.clear();
  if (argc > 3) {
    std::FILE* f = std::fopen(argv[3], "wb");
    if (!f || std::fwrite(file.data(), 1, file.size(), f) != file.size() || std::fclose(f) != 0) {
      std::perror(argv[3]);
      return 1;
    }
  }

  t0 = Clock::now();
  snap::Reader reader{std::string_view(file)};
  if (auto err = reader.open(); !err.empty()) {
    std::fprintf(stderr, "open: %s\n", err.c_str());
    return 1;
  }
  cache::EntryDraft d;
  std::vector<cache::EntryRef> kept;
  kept.reserve(n);
  double decode_ms = 0, build_ms = 0;
  for (;;) {
    auto t = Clock::now();
    auto r = reader.next(d);
    decode_ms += ms_since(t);
    if (r != snap::Reader::Result::Record) {
      if (r == snap::Reader::Result::Error) std::fprintf(stderr, "read: %s\n", reader.error().c_str());
      break;
    }
    t = Clock::now();
    kept.push_back(cache::build_entry(d));
    build_ms += ms_since(t);
  }
  const double read_ms = ms_since(t0);
  t0 = Clock::now();
  cache::Store fresh(cache::StoreOptions{64ull << 30, 16, 16, cache::EvictionPolicy::Sieve});
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) fresh.publish(std::move(*it));
  kept.clear();
  const double publish_ms = ms_since(t0);
  std::printf("load     %8.0f ms  decode %.0f ms, build_entry %.0f ms, publish %.0f ms; %llu entries\n",
              read_ms + publish_ms, decode_ms, build_ms, publish_ms,
              static_cast<unsigned long long>(fresh.stats().objects));
  return fresh.stats().objects == n ? 0 : 1;
}
