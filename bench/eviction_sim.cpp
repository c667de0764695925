// eviction_sim: SIEVE against LRU in the real Store, on a deterministic trace.
//
// Universe of 100k keys requested with Zipf(alpha) popularity; the store holds
// 10% of them (every entry has the same charge, so capacity is exactly 10,000
// entries). Each request is find_variant(); a miss publishes the key's entry
// (prebuilt, so the timing covers the store, not entry construction). The
// "+scans" workloads add periodic bursts of one-shot keys (a crawler): every
// 100k requests, 10k never-repeated keys, one cache's worth.
//
// Prints hit ratios, ns and instructions per request (find + publish on a
// miss, one thread), then the cost of a pure hit and the number of heap
// allocations it makes (counted by replacing operator new in this program;
// expected: 0). The timings include the loop's own cache misses on the
// trace and the prebuilt entries' keys.
// Fixed seeds: the hit ratios are identical from run to run; the timings are
// not. Build with optimizations (Release / RelWithDebInfo).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cache/store.h"

#ifdef __linux__
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// Counting allocations needs a replaced operator new; it pairs with the
// replaced deletes below, which GCC cannot see when it inlines them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using cachalot::cache::EntryDraft;
using cachalot::cache::EntryRef;
using cachalot::cache::EvictionPolicy;
using cachalot::cache::Store;
using cachalot::cache::StoreOptions;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kKeys = 100'000;
constexpr uint32_t kCapacity = kKeys / 10;
constexpr uint32_t kRequests = 1'000'000;
constexpr uint32_t kScanEvery = 100'000;
constexpr uint32_t kScanLength = kCapacity;
constexpr std::size_t kBody = 256;

EntryRef make_entry(char kind, uint32_t i) {
  char key[64];
  std::snprintf(key, sizeof key, "http://sim.test:80/%c/%08u", kind, i);  // equal lengths, equal charges
  EntryDraft d;
  d.primary_key = key;
  d.body.assign(kBody, 'b');
  d.headers.add("content-type", "text/plain");
  return cachalot::cache::build_entry(d);
}

// Ranks 0..n-1 with P(rank k) proportional to 1 / (k+1)^alpha, by inverse CDF.
class Zipf {
 public:
  Zipf(uint32_t n, double alpha) : cdf_(n) {
    double sum = 0;
    for (uint32_t k = 0; k < n; ++k) cdf_[k] = (sum += 1.0 / std::pow(k + 1.0, alpha));
    for (double& c : cdf_) c /= sum;
  }
  uint32_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    return it == cdf_.end() ? static_cast<uint32_t>(cdf_.size() - 1) : static_cast<uint32_t>(it - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

// Request i asks for key trace[i]: < kKeys a Zipf key, otherwise a one-shot key.
std::vector<uint32_t> make_trace(double alpha, bool scans, uint64_t seed) {
  Zipf zipf(kKeys, alpha);
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> trace;
  trace.reserve(kRequests);
  uint32_t next_one_shot = kKeys;
  while (trace.size() < kRequests) {
    if (scans && trace.size() % kScanEvery == kScanEvery - kScanLength)
      for (uint32_t j = 0; j < kScanLength && trace.size() < kRequests; ++j) trace.push_back(next_one_shot++);
    else
      trace.push_back(zipf(rng));
  }
  return trace;
}

// User-space instructions retired by this thread (perf_event_open): unlike
// time, stable on a noisy machine. Reads as -1 where perf events are not
// allowed (kernel.perf_event_paranoid, containers).
class InstructionCounter {
 public:
#ifdef __linux__
  InstructionCounter() {
    perf_event_attr attr{};
    attr.type = PERF_TYPE_HARDWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_HW_INSTRUCTIONS;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    fd_ = static_cast<int>(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
  }
  ~InstructionCounter() {
    if (fd_ >= 0) close(fd_);
  }
  void start() {
    if (fd_ < 0) return;
    ioctl(fd_, PERF_EVENT_IOC_RESET, 0);
    ioctl(fd_, PERF_EVENT_IOC_ENABLE, 0);
  }
  double stop_per(uint64_t ops) {
    uint64_t count = 0;
    if (fd_ < 0) return -1;
    ioctl(fd_, PERF_EVENT_IOC_DISABLE, 0);
    if (read(fd_, &count, sizeof count) != sizeof count) return -1;
    return static_cast<double>(count) / ops;
  }

 private:
  int fd_ = -1;
#else
  void start() {}
  double stop_per(uint64_t) { return -1; }
#endif
};

struct Result {
  double hit_ratio;
  double ns_per_request;
  double instructions_per_request;
};

Result run(const std::vector<uint32_t>& trace, const std::vector<EntryRef>& entries,
           EvictionPolicy policy, unsigned shards, uint64_t max_bytes) {
  Store store(StoreOptions{max_bytes, shards, 1, policy});
  uint64_t hits = 0;
  InstructionCounter instructions;
  instructions.start();
  const auto start = Clock::now();
  for (uint32_t id : trace) {
    const EntryRef& e = entries[id];
    if (store.find_variant(e->primary_key(), ""))
      ++hits;
    else
      store.publish(e);
  }
  const auto ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  return {static_cast<double>(hits) / trace.size(), ns / trace.size(), instructions.stop_per(trace.size())};
}

// "n/a" where the instruction counter is unavailable.
std::string per_op(double v) {
  if (v < 0) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

// The timed hit loop, out of line so that callgrind can count just this:
//   valgrind --tool=callgrind --toggle-collect='*hit_loop*' eviction_sim --hit-path sieve
// (Ir / 1,000,000 = instructions per find; this machine has no hardware counters.)
[[gnu::noinline]] uint64_t hit_loop(const Store& store, const std::vector<uint32_t>& picks,
                                    const std::vector<EntryRef>& entries) {
  uint64_t found = 0;
  for (uint32_t p : picks) found += store.find_variant(entries[p]->primary_key(), "") != nullptr;
  return found;
}

// The hit path alone: every key resident (twice the room, as shards fill
// unevenly), so nothing is evicted or published.
void hit_path(const std::vector<EntryRef>& entries, uint64_t max_bytes,
              std::string_view only_policy) {
  for (EvictionPolicy policy : {EvictionPolicy::Sieve, EvictionPolicy::Lru}) {
    if (!only_policy.empty() && only_policy != to_string(policy)) continue;
    Store store(StoreOptions{2 * max_bytes, 16, 1, policy});
    for (uint32_t i = 0; i < kCapacity; ++i) store.publish(entries[i]);
    std::mt19937_64 rng(7);
    std::vector<uint32_t> picks(1'000'000);
    for (uint32_t& p : picks) p = static_cast<uint32_t>(rng() % kCapacity);
    InstructionCounter instructions;
    const uint64_t allocations_before = g_allocations.load();
    instructions.start();
    const auto start = Clock::now();
    const uint64_t found = hit_loop(store, picks, entries);
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() / picks.size();
    const double ins = instructions.stop_per(picks.size());
    const uint64_t allocations = g_allocations.load() - allocations_before;
    std::printf("hit path (%s, 16 shards, %zu finds of %u resident keys): %.0f ns/find, %s ins/find, "
                "%llu allocations, %llu hits\n",
                std::string(to_string(policy)).c_str(), picks.size(), kCapacity, ns, per_op(ins).c_str(),
                static_cast<unsigned long long>(allocations), static_cast<unsigned long long>(found));
  }
}

}  // namespace

// eviction_sim [--hit-path [sieve|lru]]   (--hit-path: only the hit-path measurement)
int main(int argc, char** argv) {
  const bool only_hit_path = argc > 1 && std::string_view(argv[1]) == "--hit-path";
  const std::string_view only_policy = only_hit_path && argc > 2 ? argv[2] : "";
  const auto t0 = Clock::now();
  std::vector<EntryRef> entries;
  const uint32_t one_shot = only_hit_path ? 0 : kRequests / kScanEvery * kScanLength + kScanLength;
  entries.reserve(kKeys + one_shot);
  for (uint32_t i = 0; i < kKeys; ++i) entries.push_back(make_entry('k', i));
  for (uint32_t i = 0; i < one_shot; ++i) entries.push_back(make_entry('s', i));
  const uint64_t charge = entries[0]->charge();
  const uint64_t max_bytes = kCapacity * charge;
  if (only_hit_path) {
    hit_path(entries, max_bytes, only_policy);
    return 0;
  }

  std::printf("eviction_sim: %u keys, capacity %u entries (%llu bytes, charge %llu each), %u requests per run\n",
              kKeys, kCapacity, static_cast<unsigned long long>(max_bytes), static_cast<unsigned long long>(charge),
              kRequests);
  std::printf("scans: %u one-shot keys every %u requests\n\n", kScanLength, kScanEvery);
  std::printf("%-15s %6s %10s %10s %12s %10s %13s %11s\n", "workload", "shards", "sieve hit", "lru hit",
              "sieve ns/op", "lru ns/op", "sieve ins/op", "lru ins/op");

  struct Workload {
    const char* name;
    double alpha;
    bool scans;
  };
  const Workload workloads[] = {{"zipf-0.9", 0.9, false},
                                {"zipf-1.0", 1.0, false},
                                {"zipf-0.9+scans", 0.9, true},
                                {"zipf-1.0+scans", 1.0, true}};
  bool warmed_up = false;
  for (const Workload& w : workloads) {
    const std::vector<uint32_t> trace = make_trace(w.alpha, w.scans, 42);
    if (!warmed_up) {  // fault in the allocator's memory once, untimed
      run(std::vector<uint32_t>(trace.begin(), trace.begin() + kRequests / 4), entries, EvictionPolicy::Sieve, 1,
          max_bytes);
      warmed_up = true;
    }
    for (unsigned shards : {1u, 16u}) {
      if (shards == 16 && w.alpha != 0.9) continue;  // two sharded lines show what uneven shards cost
      // 16 shards: 625 entries each, placed by hash, so the busiest shards evict early.
      const Result s = run(trace, entries, EvictionPolicy::Sieve, shards, max_bytes);
      const Result l = run(trace, entries, EvictionPolicy::Lru, shards, max_bytes);
      std::printf("%-15s %6u %9.2f%% %9.2f%% %12.0f %10.0f %13s %11s\n", w.name, shards, 100 * s.hit_ratio,
                  100 * l.hit_ratio, s.ns_per_request, l.ns_per_request, per_op(s.instructions_per_request).c_str(),
                  per_op(l.instructions_per_request).c_str());
    }
  }
  std::printf("\n");
  hit_path(entries, max_bytes, "");
  std::printf("\ntotal run time %.1f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  return 0;
}
