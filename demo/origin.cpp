// cachalot-origin: a small, fast HTTP/1.1 origin for demos, conversation
// tests by hand, and benchmarks (bench/run.sh). It only talks to our proxy and
// to load generators on loopback, so the request parser is hand-written and
// deliberately small; it is not a general-purpose server.
//
// Invariants:
//  - One io_context per thread, each with its own SO_REUSEPORT acceptor. A
//    connection lives on one thread for its whole life, so sessions need no
//    strand and no locks.
//  - Requests on a connection are answered strictly in order (pipelining).
//    A slow request (/api/slow) holds the requests behind it, as HTTP/1.1
//    requires; responses already built before it are written first.
//  - Shared bodies (bench bodies, the item list) are built once and never
//    freed or modified, so writes reference them without copying or counting.
//    Response heads go into a per-connection buffer reused across requests.
//  - Counting: every request except GET /__stats increments the global
//    counter (echoed as X-Origin-Requests) and its path's counter. Path
//    counters live per thread under a per-thread mutex that is only contended
//    while /__stats reads it.
//  - Idle connections are kept until the peer closes them: the origin is
//    meant for loopback use behind a proxy that bounds its own pool.
//  - The shop API (/api/products..., /api/categories/..., /api/dashboard,
//    bench/before-after.sh) answers after --latency-ms: one steady_timer per
//    connection, which holds at most one delayed request at a time (answers
//    stay in order), so thousands of slow requests in flight need no thread
//    each. The request is copied out of the read buffer before the wait and
//    routed (and counted) when the timer fires. Product versions are atomics
//    shared by the threads: a POST bumps one, later GETs show the new version.

#include <asio.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace origin {
namespace {

using asio::ip::tcp;
using namespace std::literals;

constexpr std::size_t kReadBufferBytes = 32 * 1024;
constexpr std::size_t kMaxHeadBytes = 16 * 1024;     // request line + fields; above it: 431
constexpr std::size_t kMaxBatch = 64;                // responses gathered into one write
constexpr std::size_t kMaxBatchBytes = 256 * 1024;   // head/inline bytes gathered into one write
constexpr std::size_t kInlineBodyMax = 4096;         // smaller bodies are copied next to their head
constexpr std::size_t kMaxBenchBytes = 64 * 1024 * 1024;
constexpr std::size_t kMaxCachedBenchSizes = 64;     // distinct /bench sizes kept built
constexpr std::size_t kMaxTrackedPaths = 10000;      // beyond this, paths count as "(other)"
constexpr long kMaxSlowMs = 60000;
constexpr long kDefaultSlowMs = 100;
constexpr std::time_t kContentEpoch = 1700000000;    // Last-Modified base: fixed so ETags and dates are stable
constexpr int kItemListSize = 20;
constexpr std::uint32_t kDefaultProducts = 10000;
constexpr std::uint32_t kMaxProducts = 10000000;
constexpr std::uint32_t kPageSize = 20;       // products per /api/products?page=N
constexpr std::uint32_t kCategories = 20;     // product id -> category (id - 1) % 20
constexpr long kMaxLatencyMs = 60000;

// Set once by the command line, before the threads start.
long g_latency_ms = 0;
std::uint32_t g_products = kDefaultProducts;
std::unique_ptr<std::atomic<std::uint32_t>[]> g_product_versions;  // [0, g_products)

// ---------------------------------------------------------------- helpers

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A strong validator derived from the representation's bytes.
std::string etag_for(std::string_view body) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(fnv1a(body)));
  return buf;
}

// IMF-fixdate, always 29 characters: "Sun, 06 Nov 1994 08:49:37 GMT".
constexpr std::size_t kHttpDateLen = 29;

void format_http_date(std::time_t t, char* out) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[kHttpDateLen + 1];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);  // "C" locale: setlocale is never called
  std::memcpy(out, buf, kHttpDateLen);
}

std::string http_date(std::time_t t) {
  std::string s(kHttpDateLen, ' ');
  format_http_date(t, s.data());
  return s;
}

bool parse_2(std::string_view s, std::size_t at, int& v) {
  if (s[at] < '0' || s[at] > '9' || s[at + 1] < '0' || s[at + 1] > '9') return false;
  v = (s[at] - '0') * 10 + (s[at + 1] - '0');
  return true;
}

// Parses IMF-fixdate only (what every current client and cache sends); other
// forms yield nullopt, which means "ignore the precondition" (RFC 9110 §13.1.3).
std::optional<std::time_t> parse_http_date(std::string_view s) {
  if (s.size() != kHttpDateLen || s[3] != ',' || s.substr(26) != "GMT") return std::nullopt;
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  std::tm tm{};
  int day = 0, hh = 0, mm = 0, ss = 0, y1 = 0, y2 = 0;
  if (!parse_2(s, 5, day) || !parse_2(s, 12, y1) || !parse_2(s, 14, y2) || !parse_2(s, 17, hh) ||
      !parse_2(s, 20, mm) || !parse_2(s, 23, ss))
    return std::nullopt;
  auto month = kMonths.find(s.substr(8, 3));
  if (month == std::string_view::npos || month % 3 != 0) return std::nullopt;
  tm.tm_mday = day;
  tm.tm_mon = static_cast<int>(month / 3);
  tm.tm_year = y1 * 100 + y2 - 1900;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  return timegm(&tm);
}

// The Date field value, formatted at most once a second per thread.
class DateCache {
 public:
  std::string_view now() {
    std::time_t t = std::time(nullptr);
    if (t != second_) {
      second_ = t;
      format_http_date(t, buf_);
    }
    return {buf_, kHttpDateLen};
  }

 private:
  std::time_t second_ = -1;
  char buf_[kHttpDateLen] = {};
};

thread_local DateCache t_date;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each trimmed, non-empty element of a comma-separated list.
template <class F>
bool for_each_list_element(std::string_view list, F&& f) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto element = trim(list.substr(0, comma));
    if (!element.empty() && f(element)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

template <class Int>
std::optional<Int> parse_uint(std::string_view s) {
  Int v{};
  if (s.empty()) return std::nullopt;
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Value of query parameter `name` ("a=1&b=2"), if present.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? ""sv : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

// ---------------------------------------------------------------- counters

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct PathCounters {
  std::mutex mu;
  std::unordered_map<std::string, std::uint64_t, StringHash, std::equal_to<>> by_path;
  std::uint64_t other = 0;  // requests for paths beyond kMaxTrackedPaths

  void count(std::string_view path) {
    std::lock_guard lock(mu);
    if (auto it = by_path.find(path); it != by_path.end()) {
      ++it->second;
    } else if (by_path.size() < kMaxTrackedPaths) {
      by_path.emplace(std::string(path), 1);
    } else {
      ++other;
    }
  }
};

std::atomic<std::uint64_t> g_total_requests{0};
std::vector<std::unique_ptr<PathCounters>> g_path_counters;  // one per worker; sized before threads start

std::string stats_json() {
  std::map<std::string, std::uint64_t> merged;
  std::uint64_t other = 0;
  for (auto& counters : g_path_counters) {
    std::lock_guard lock(counters->mu);
    for (auto& [path, n] : counters->by_path) merged[path] += n;
    other += counters->other;
  }
  std::string out = "{\"requests\":";
  append_uint(out, g_total_requests.load(std::memory_order_relaxed));
  out += ",\"paths\":{";
  bool first = true;
  for (auto& [path, n] : merged) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, path);
    out += ':';
    append_uint(out, n);
  }
  if (other > 0) {
    if (!first) out += ',';
    out += "\"(other)\":";
    append_uint(out, other);
  }
  out += "}}\n";
  return out;
}

// ---------------------------------------------------------------- content

// A pre-built representation; immutable once published.
struct Body {
  std::string bytes;
  std::string etag;
};

Body make_body(std::string bytes) {
  Body b{std::move(bytes), {}};
  b.etag = etag_for(b.bytes);
  return b;
}

// JSON-ish filler of exactly `size` bytes: {"size":N,"pad":"abc..."}\n
std::string make_bench_bytes(std::size_t size) {
  std::string prefix = "{\"size\":" + std::to_string(size) + ",\"pad\":\"";
  std::string_view suffix = "\"}\n";
  if (size < prefix.size() + suffix.size()) return std::string(size, 'x');
  std::string out;
  out.reserve(size);
  out += prefix;
  std::size_t pad = size - prefix.size() - suffix.size();
  for (std::size_t i = 0; i < pad; ++i) out += static_cast<char>('a' + i % 26);
  out += suffix;
  return out;
}

// Bench bodies by size: built on first use, kept for the life of the process.
// Each thread keeps its own index of pointers so the hot path takes no lock.
class BenchBodies {
 public:
  // Returns a body that lives forever, or nullptr when the table is full.
  const Body* get(std::size_t size) {
    for (auto& [s, body] : local_)
      if (s == size) return body;
    std::lock_guard lock(mu_);
    auto it = all_.find(size);
    if (it == all_.end()) {
      if (all_.size() >= kMaxCachedBenchSizes) return nullptr;
      it = all_.emplace(size, std::make_unique<const Body>(make_body(make_bench_bytes(size)))).first;
    }
    local_.emplace_back(size, it->second.get());
    return it->second.get();
  }

 private:
  std::mutex mu_;
  std::map<std::size_t, std::unique_ptr<const Body>> all_;
  static thread_local std::vector<std::pair<std::size_t, const Body*>> local_;
};

thread_local std::vector<std::pair<std::size_t, const Body*>> BenchBodies::local_;
BenchBodies g_bench;

// Parses "1024", "1k", "64K", "2m" (k = 1024, m = 1024*1024).
std::optional<std::size_t> parse_size(std::string_view s) {
  std::size_t mult = 1;
  if (!s.empty() && (s.back() == 'k' || s.back() == 'K')) mult = 1024, s.remove_suffix(1);
  else if (!s.empty() && (s.back() == 'm' || s.back() == 'M')) mult = 1024 * 1024, s.remove_suffix(1);
  auto n = parse_uint<std::size_t>(s);
  if (!n || *n > kMaxBenchBytes / mult) return std::nullopt;
  return *n * mult;
}

struct Item {
  std::string body;
  std::string etag;
  std::time_t updated;
};

// Items are deterministic functions of their id, so ETags survive restarts.
std::string item_json(std::uint32_t id) {
  std::time_t updated = kContentEpoch + static_cast<std::time_t>(id % 100000) * 60;
  std::uint32_t cents = (id * 7919u + 499u) % 100000u;
  char date[kHttpDateLen];
  format_http_date(updated, date);
  char buf[200];
  int n = std::snprintf(buf, sizeof buf, "{\"id\":%u,\"name\":\"item-%u\",\"price\":%u.%02u,\"updated\":\"%.*s\"}",
                        id, id, cents / 100, cents % 100, static_cast<int>(kHttpDateLen), date);
  return std::string(buf, static_cast<std::size_t>(n));
}

std::time_t item_updated(std::uint32_t id) { return kContentEpoch + static_cast<std::time_t>(id % 100000) * 60; }

struct StaticContent {
  Body item_list;
  std::time_t item_list_updated = 0;
  std::string item_list_last_modified;
  std::string content_epoch_date;  // Last-Modified of bench bodies
};

const StaticContent& content() {
  static const StaticContent c = [] {
    StaticContent s;
    std::string list = "{\"items\":[";
    for (std::uint32_t id = 1; id <= kItemListSize; ++id) {
      if (id > 1) list += ',';
      list += item_json(id);
      s.item_list_updated = std::max(s.item_list_updated, item_updated(id));
    }
    list += "]}\n";
    s.item_list = make_body(std::move(list));
    s.item_list_last_modified = http_date(s.item_list_updated);
    s.content_epoch_date = http_date(kContentEpoch);
    return s;
  }();
  return c;
}

// ---------------------------------------------------------------- shop API

// Products are functions of (id, version): deterministic, so ETags survive a
// restart until a POST changes a product.
std::uint32_t product_version(std::uint32_t id) {
  return g_product_versions[id - 1].load(std::memory_order_relaxed);
}

std::uint32_t product_category(std::uint32_t id) { return (id - 1) % kCategories; }

std::uint32_t product_cents(std::uint32_t id, std::uint32_t version) {
  return 199u + (id * 7919u + version * 104729u) % 49800u;
}

void append_product_summary(std::string& out, std::uint32_t id) {
  std::uint32_t version = product_version(id);
  std::uint32_t cents = product_cents(id, version);
  char buf[160];
  int n = std::snprintf(buf, sizeof buf, "{\"id\":%u,\"name\":\"Product %u\",\"price\":%u.%02u,\"version\":%u}", id, id,
                        cents / 100, cents % 100, version);
  out.append(buf, static_cast<std::size_t>(n));
}

// About 600 bytes: what a product page's API call returns.
void append_product(std::string& out, std::uint32_t id) {
  std::uint32_t version = product_version(id);
  std::uint32_t cents = product_cents(id, version);
  std::uint32_t stock = (id * 31u + version * 17u) % 500u;
  char buf[768];
  int n = std::snprintf(
      buf, sizeof buf,
      "{\"id\":%u,\"sku\":\"SKU-%06u\",\"name\":\"Product %u\",\"category\":\"cat-%u\",\"price\":%u.%02u,"
      "\"currency\":\"EUR\",\"stock\":%u,\"version\":%u,\"rating\":%u.%u,\"reviews\":%u,"
      "\"description\":\"Product %u is a sturdy, well-reviewed item from category %u. It ships in two to four "
      "working days and can be returned within thirty days. Dimensions and materials are listed below.\","
      "\"attributes\":{\"weight_g\":%u,\"width_mm\":%u,\"height_mm\":%u,\"colour\":\"%s\"},"
      "\"images\":[\"/img/p/%u/1.jpg\",\"/img/p/%u/2.jpg\",\"/img/p/%u/3.jpg\"]}\n",
      id, id, id, product_category(id), cents / 100, cents % 100, stock, version, 3 + id % 3, id % 10, (id * 13u) % 2000u,
      id, product_category(id), 100 + (id * 37u) % 4900u, 20 + (id * 11u) % 480u, 20 + (id * 17u) % 480u,
      (id % 4 == 0 ? "black" : id % 4 == 1 ? "white" : id % 4 == 2 ? "red" : "blue"), id, id, id);
  out.append(buf, static_cast<std::size_t>(n));
}

// A listing of `ids`: the body into `body`, its purge tags into `tags`
// (Surrogate-Key: space-separated), e.g. "products page-3 product-41 ...".
template <class Ids>
void build_listing(std::string& body, std::string& tags, std::string_view head_json, std::string_view list_tag,
                   const Ids& ids) {
  body.clear();
  body += '{';
  body += head_json;
  body += ",\"items\":[";
  tags = "products ";
  tags += list_tag;
  bool first = true;
  for (std::uint32_t id : ids) {
    if (!first) body += ',';
    first = false;
    append_product_summary(body, id);
    tags += " product-";
    append_uint(tags, id);
  }
  body += "]}\n";
}

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-' || c == '+') return 62;
  if (c == '_' || c == '/') return 63;
  return -1;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  std::string out;
  unsigned bits = 0;
  int nbits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = base64url_value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out += static_cast<char>((bits >> nbits) & 0xff);
    }
  }
  return out;
}

// The user a bearer token names: the "sub" claim of a JWT (header.payload.signature;
// the signature is not checked: this is a demo), or an opaque token itself.
// Empty when there is no usable bearer token.
std::string bearer_subject(std::string_view authorization) {
  if (authorization.size() < 7 || !iequals(authorization.substr(0, 7), "bearer ")) return {};
  std::string_view token = trim(authorization.substr(7));
  auto dot1 = token.find('.');
  if (dot1 == std::string_view::npos) {
    if (token.size() > 128) return {};
    return std::string(token);
  }
  auto dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return {};
  auto payload = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return {};
  auto key = payload->find("\"sub\"");
  if (key == std::string::npos) return {};
  auto colon = payload->find(':', key + 5);
  if (colon == std::string::npos) return {};
  auto open = payload->find('"', colon);
  if (open == std::string::npos) return {};
  auto close = payload->find('"', open + 1);
  if (close == std::string::npos || close - open - 1 > 128) return {};
  return payload->substr(open + 1, close - open - 1);
}

// The paths --latency-ms delays.
bool is_shop_path(std::string_view path) {
  return path == "/api/products" || path.starts_with("/api/products/") || path.starts_with("/api/categories/") ||
         path == "/api/dashboard";
}

// A request copied out of the read buffer, for answers routed after a delay.
struct OwnedRequest {
  std::string method, path, query, if_none_match, if_modified_since, authorization;
  std::uint64_t content_length = 0;
  bool http10 = false;
  bool keep_alive = true;
};

// ---------------------------------------------------------------- requests

struct Request {
  std::string_view method;
  std::string_view path;   // origin-form path, no query
  std::string_view query;  // after '?', may be empty
  std::string_view if_none_match;
  std::string_view if_modified_since;
  std::string_view authorization;
  std::uint64_t content_length = 0;
  bool http10 = false;
  bool keep_alive = true;
  bool has_transfer_encoding = false;
};

OwnedRequest own(const Request& r) {
  return OwnedRequest{std::string(r.method), std::string(r.path), std::string(r.query), std::string(r.if_none_match),
                      std::string(r.if_modified_since), std::string(r.authorization), r.content_length, r.http10,
                      r.keep_alive};
}

Request view(const OwnedRequest& o) {
  Request r;
  r.method = o.method;
  r.path = o.path;
  r.query = o.query;
  r.if_none_match = o.if_none_match;
  r.if_modified_since = o.if_modified_since;
  r.authorization = o.authorization;
  r.content_length = o.content_length;
  r.http10 = o.http10;
  r.keep_alive = o.keep_alive;
  return r;
}

bool is_tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Parses a request head (request line and fields, each line ending in CRLF;
// the blank line excluded). Views point into `head`.
bool parse_head(std::string_view head, Request& req) {
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  head.remove_prefix(eol + 2);

  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  req.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (req.method.empty() || !std::all_of(req.method.begin(), req.method.end(), is_tchar)) return false;
  if (version == "HTTP/1.1") {
    req.http10 = false;
  } else if (version == "HTTP/1.0") {
    req.http10 = true;
    req.keep_alive = false;
  } else {
    return false;
  }
  if (target.empty() || target.find(' ') != std::string_view::npos) return false;
  if (target.front() != '/') {
    // absolute-form ("http://host/path"): keep the path and query.
    auto scheme = target.find("://");
    if (scheme == std::string_view::npos) return false;
    auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? "/"sv : target.substr(slash);
  }
  auto q = target.find('?');
  req.path = target.substr(0, q);
  req.query = q == std::string_view::npos ? ""sv : target.substr(q + 1);

  bool seen_length = false;
  while (!head.empty()) {
    eol = head.find("\r\n");
    line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') return false;  // obs-fold (RFC 9112 §5.2)
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_tchar)) return false;  // also rejects "Name :"
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      auto n = parse_uint<std::uint64_t>(value);
      if (!n || (seen_length && *n != req.content_length)) return false;
      req.content_length = *n;
      seen_length = true;
    } else if (iequals(name, "transfer-encoding")) {
      req.has_transfer_encoding = true;
    } else if (iequals(name, "connection")) {
      for_each_list_element(value, [&](std::string_view token) {
        if (iequals(token, "close")) req.keep_alive = false;
        else if (iequals(token, "keep-alive") && req.http10) req.keep_alive = true;
        return false;
      });
    } else if (iequals(name, "if-none-match")) {
      req.if_none_match = value;
    } else if (iequals(name, "if-modified-since")) {
      req.if_modified_since = value;
    } else if (iequals(name, "authorization")) {
      req.authorization = value;
    }
  }
  // "Connection: close" wins over a keep-alive token in another field line.
  return true;
}

std::string_view opaque_tag(std::string_view etag) {
  if (etag.size() >= 2 && etag[0] == 'W' && etag[1] == '/') etag.remove_prefix(2);
  return etag;
}

// RFC 9110 §13.1.2: weak comparison for If-None-Match.
bool none_match_fails(std::string_view if_none_match, std::string_view etag) {
  if (etag.empty()) return false;
  return for_each_list_element(if_none_match, [&](std::string_view candidate) {
    return candidate == "*" || opaque_tag(candidate) == opaque_tag(etag);
  });
}

// ---------------------------------------------------------------- responses

// What to answer; views must outlive the append (static data or the session's scratch).
struct Response {
  int status = 200;
  std::string_view content_type = "application/json";
  std::string_view cache_control;
  std::string_view etag;
  std::string_view last_modified;
  std::time_t last_modified_time = -1;
  std::string_view extra_fields;   // complete "Name: value\r\n" lines
  std::string_view body;
  bool body_is_stable = false;     // body outlives the write: send by reference
  bool conditional = false;        // If-None-Match / If-Modified-Since apply (GET/HEAD 200)
};

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 401: return "Unauthorized";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    default: return "Unknown";
  }
}

// RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only without it.
bool not_modified(const Request& req, const Response& res) {
  if (!res.conditional) return false;
  if (!req.if_none_match.empty()) return none_match_fails(req.if_none_match, res.etag);
  if (!req.if_modified_since.empty() && res.last_modified_time >= 0) {
    auto since = parse_http_date(req.if_modified_since);
    return since && res.last_modified_time <= *since;
  }
  return false;
}

// What a /api/slow request needs to be answered after its timer fires.
struct SlowRequest {
  long ms = 0;
  bool head = false;
  bool http10 = false;
  bool keep_alive = true;
};

// ---------------------------------------------------------------- session

struct Worker {
  asio::io_context ctx{1};
  tcp::acceptor acceptor{ctx};
  asio::steady_timer accept_retry{ctx};
  PathCounters* counters = nullptr;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Worker& worker)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), counters_(*worker.counters),
        in_(std::make_unique<char[]>(kReadBufferBytes)) {
    out_.reserve(16 * 1024);
    external_.reserve(kMaxBatch);
    bufs_.reserve(2 * kMaxBatch + 1);
  }

  void start() { process(); }

 private:
  // Answers every complete request already buffered (up to a batch), then
  // writes, waits for a slow request's timer, or reads more.
  void process() {
    while (!slow_pending_ && !close_after_write_ && batched_ < kMaxBatch && out_.size() < kMaxBatchBytes) {
      if (discard_ > 0) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(discard_, in_end_ - in_begin_));
        in_begin_ += n;
        scan_from_ = in_begin_;
        discard_ -= n;
        if (discard_ > 0) break;
      }
      if (!handle_one()) break;
    }
    if (!out_.empty()) return start_write();
    if (close_after_write_) return lingering_close();
    if (slow_pending_) return start_slow_timer();
    start_read();
  }

  void start_read() {
    if (in_begin_ == in_end_) {
      in_begin_ = in_end_ = scan_from_ = 0;
    } else if (in_begin_ > 0) {
      std::memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      scan_from_ -= in_begin_;
      in_begin_ = 0;
    }
    socket_.async_read_some(asio::buffer(in_.get() + in_end_, kReadBufferBytes - in_end_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              if (ec) return;  // EOF or reset: the session ends with its last handler
                              self->in_end_ += n;
                              self->process();
                            });
  }

  void start_write() {
    bufs_.clear();
    std::size_t from = 0;
    for (auto& ext : external_) {
      if (ext.at > from) bufs_.emplace_back(out_.data() + from, ext.at - from);
      bufs_.push_back(ext.body);
      from = ext.at;
    }
    if (out_.size() > from) bufs_.emplace_back(out_.data() + from, out_.size() - from);
    asio::async_write(socket_, bufs_, [self = shared_from_this()](std::error_code ec, std::size_t) {
      if (ec) return;
      self->out_.clear();
      self->external_.clear();
      self->keep_alive_bodies_.clear();
      self->batched_ = 0;
      self->process();
    });
  }

  // Half-close, then drain what the client still sends so the kernel does not
  // answer unread data with a RST that could destroy our last response.
  void lingering_close() {
    std::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    timer_.expires_after(2s);
    timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->socket_.close(ec);
    });
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(in_.get(), kReadBufferBytes),
                            [self = shared_from_this()](std::error_code ec, std::size_t) {
                              if (ec) {
                                self->timer_.cancel();
                                return;
                              }
                              self->drain();
                            });
  }

  void start_slow_timer() {
    timer_.expires_after(std::chrono::milliseconds(slow_.ms));
    timer_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (ec) return;
      self->slow_pending_ = false;
      if (self->deferred_) {
        OwnedRequest owned = std::move(*self->deferred_);
        self->deferred_.reset();
        self->route(view(owned));
      } else {
        self->answer_slow();
      }
      self->process();
    });
  }

  // Parses and answers one request from the buffer; false when more bytes
  // are needed.
  bool handle_one() {
    // RFC 9112 §2.2: ignore empty lines received before a request line.
    while (in_begin_ < in_end_ && (in_[in_begin_] == '\r' || in_[in_begin_] == '\n')) ++in_begin_;
    if (scan_from_ < in_begin_) scan_from_ = in_begin_;
    const char* base = in_.get();
    const void* found = memmem(base + scan_from_, in_end_ - scan_from_, "\r\n\r\n", 4);
    if (found == nullptr) {
      if (in_end_ - in_begin_ > kMaxHeadBytes) {
        answer_error(431, "{\"error\":\"request head too large\"}\n");
        return true;
      }
      scan_from_ = in_end_ - in_begin_ >= 3 ? in_end_ - 3 : in_begin_;
      return false;
    }
    std::size_t head_end = static_cast<std::size_t>(static_cast<const char*>(found) - base) + 4;
    std::string_view head(base + in_begin_, head_end - in_begin_ - 2);
    in_begin_ = scan_from_ = head_end;
    if (head.size() > kMaxHeadBytes) {
      answer_error(431, "{\"error\":\"request head too large\"}\n");
      return true;
    }
    Request req;
    if (!parse_head(head, req)) {
      answer_error(400, "{\"error\":\"bad request\"}\n");
      return true;
    }
    if (req.has_transfer_encoding) {
      // Only Content-Length bodies are supported; without framing we must close.
      answer_error(501, "{\"error\":\"transfer-encoding not supported\"}\n");
      return true;
    }
    discard_ = req.content_length;
    if (g_latency_ms > 0 && is_shop_path(req.path)) {
      // Answered (and counted) when the timer fires; see the top of the file.
      deferred_ = own(req);
      slow_ = SlowRequest{g_latency_ms, req.method == "HEAD", req.http10, req.keep_alive};
      slow_pending_ = true;
      return true;
    }
    route(req);
    return true;
  }

  void route(const Request& req) {
    const bool get = req.method == "GET";
    const bool head = req.method == "HEAD";
    const std::string_view path = req.path;

    if (path == "/__stats" && (get || head)) {
      std::string json = stats_json();  // rare; allocation is fine here
      Response res;
      res.cache_control = "no-store";
      res.body = json;
      append(req, res, head, g_total_requests.load(std::memory_order_relaxed));
      return;
    }

    const std::uint64_t seq = g_total_requests.fetch_add(1, std::memory_order_relaxed) + 1;
    counters_.count(path);

    Response res;
    res.conditional = get || head;
    if (req.method == "POST" && path == "/api/items") {
      scratch_.clear();
      scratch_ += "{\"created\":true,\"bytes\":";
      append_uint(scratch_, req.content_length);
      scratch_ += "}\n";
      res.status = 201;
      res.cache_control = "no-store";
      res.body = scratch_;
      res.conditional = false;
      return append(req, res, false, seq);
    }
    if (req.method == "POST" && path.starts_with("/api/products/")) {
      auto id = parse_uint<std::uint32_t>(path.substr(14));
      if (id && *id >= 1 && *id <= g_products) {
        // A write: the product changes (price, stock, version); caches in
        // front must purge it (Surrogate-Key product-<id>) or revalidate.
        g_product_versions[*id - 1].fetch_add(1, std::memory_order_relaxed);
        scratch_.clear();
        append_product(scratch_, *id);
        res.cache_control = "no-store";
        res.body = scratch_;
        res.conditional = false;
        return append(req, res, false, seq);
      }
    }
    if (!get && !head) {
      res.status = 405;
      res.cache_control = "no-store";
      res.extra_fields = "Allow: GET, HEAD\r\n";
      res.body = "{\"error\":\"method not allowed\"}\n";
      res.conditional = false;
      return append(req, res, false, seq);
    }

    if (path.starts_with("/bench/")) {
      auto size = parse_size(path.substr(7));
      if (size) return answer_bench(req, head, seq, *size);
    } else if (path.starts_with("/api/items/")) {
      auto id = parse_uint<std::uint32_t>(path.substr(11));
      if (id) return answer_item(req, head, seq, *id);
    } else if (path == "/api/items") {
      const auto& c = content();
      res.cache_control = "public, max-age=10";
      res.etag = c.item_list.etag;
      res.last_modified = c.item_list_last_modified;
      res.last_modified_time = c.item_list_updated;
      res.body = c.item_list.bytes;
      res.body_is_stable = true;
      return append(req, res, head, seq);
    } else if (path == "/api/time") {
      auto now = std::chrono::system_clock::now();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
      scratch_.clear();
      scratch_ += "{\"time\":\"";
      scratch_ += t_date.now();
      scratch_ += "\",\"unix_ms\":";
      append_uint(scratch_, static_cast<std::uint64_t>(ms));
      scratch_ += "}\n";
      res.cache_control = "no-store";
      res.body = scratch_;
      return append(req, res, head, seq);
    } else if (path == "/api/user") {
      res.cache_control = "private, max-age=60";
      res.body = "{\"user\":\"demo\",\"name\":\"Demo User\",\"plan\":\"free\"}\n";
      res.body_is_stable = true;
      return append(req, res, head, seq);
    } else if (path == "/api/slow") {
      long ms = kDefaultSlowMs;
      if (auto v = query_param(req.query, "ms")) ms = std::min(parse_uint<long>(*v).value_or(kDefaultSlowMs), kMaxSlowMs);
      slow_ = SlowRequest{ms, head, req.http10, req.keep_alive};
      slow_seq_ = seq;
      slow_pending_ = true;
      return;
    } else if (path.starts_with("/api/products/") || path == "/api/products" || path.starts_with("/api/categories/") ||
               path == "/api/dashboard") {
      if (answer_shop(req, head, seq)) return;
    } else if (path == "/healthz") {
      res.content_type = "text/plain";
      res.cache_control = "no-store";
      res.body = "ok\n";
      res.body_is_stable = true;
      return append(req, res, head, seq);
    }

    res.status = 404;
    res.cache_control = "max-age=60";
    res.body = "{\"error\":\"not found\"}\n";
    res.body_is_stable = true;
    res.conditional = false;
    append(req, res, head, seq);
  }

  // GET/HEAD of the shop API; false for an unknown product, page or category (404).
  bool answer_shop(const Request& req, bool head, std::uint64_t seq) {
    const std::string_view path = req.path;
    Response res;
    res.conditional = true;
    if (path.starts_with("/api/products/")) {
      auto id = parse_uint<std::uint32_t>(path.substr(14));
      if (!id || *id < 1 || *id > g_products) return false;
      scratch_.clear();
      append_product(scratch_, *id);
      tags_ = "product-";
      append_uint(tags_, *id);
      tags_ += " category-";
      append_uint(tags_, product_category(*id));
      tags_ += " products";
      res.cache_control = "public, max-age=300, stale-while-revalidate=30";
    } else if (path == "/api/products") {
      const std::uint32_t pages = (g_products + kPageSize - 1) / kPageSize;
      std::uint32_t page = 1;
      if (auto v = query_param(req.query, "page")) page = parse_uint<std::uint32_t>(*v).value_or(0);
      if (page < 1 || page > pages) return false;
      std::vector<std::uint32_t> ids;
      for (std::uint32_t id = (page - 1) * kPageSize + 1; id <= std::min(page * kPageSize, g_products); ++id)
        ids.push_back(id);
      std::string head_json = "\"page\":" + std::to_string(page) + ",\"pages\":" + std::to_string(pages);
      build_listing(scratch_, tags_, head_json, "page-" + std::to_string(page), ids);
      res.cache_control = "public, max-age=60, stale-while-revalidate=30";
    } else if (path.starts_with("/api/categories/")) {
      // /api/categories/cat-<k> (or <k>): the category's first 20 products.
      std::string_view name = path.substr(16);
      if (name.starts_with("cat-")) name.remove_prefix(4);
      auto k = parse_uint<std::uint32_t>(name);
      if (!k || *k >= kCategories) return false;
      std::vector<std::uint32_t> ids;
      for (std::uint32_t id = *k + 1; id <= g_products && ids.size() < kPageSize; id += kCategories) ids.push_back(id);
      std::string head_json = "\"category\":\"cat-" + std::to_string(*k) + "\"";
      build_listing(scratch_, tags_, head_json, "category-" + std::to_string(*k), ids);
      res.cache_control = "public, max-age=60, stale-while-revalidate=30";
    } else {  // /api/dashboard
      std::string sub = bearer_subject(req.authorization);
      if (sub.empty()) {
        res.status = 401;
        res.cache_control = "no-store";
        res.extra_fields = "WWW-Authenticate: Bearer\r\n";
        res.body = "{\"error\":\"bearer token required\"}\n";
        res.body_is_stable = true;
        res.conditional = false;
        append(req, res, head, seq);
        return true;
      }
      // Depends on the token's subject only: one body per user.
      std::uint64_t h = fnv1a(sub);
      scratch_.clear();
      scratch_ += "{\"user\":";
      append_json_string(scratch_, sub);
      scratch_ += ",\"greeting\":\"Welcome back\",\"cart_items\":";
      append_uint(scratch_, h % 7);
      scratch_ += ",\"open_orders\":";
      append_uint(scratch_, (h >> 8) % 4);
      scratch_ += ",\"loyalty_points\":";
      append_uint(scratch_, (h >> 16) % 5000);
      scratch_ += ",\"recommended\":[";
      for (int i = 0; i < 6; ++i) {
        if (i > 0) scratch_ += ',';
        append_product_summary(scratch_, static_cast<std::uint32_t>((h >> (i * 5)) % g_products) + 1);
      }
      scratch_ += "]}\n";
      res.cache_control = "private, max-age=60";
      etag_ = etag_for(scratch_);
      res.etag = etag_;
      res.body = scratch_;
      append(req, res, head, seq);
      return true;
    }
    etag_ = etag_for(scratch_);
    res.etag = etag_;
    extra_ = "Surrogate-Key: ";
    extra_ += tags_;
    extra_ += "\r\n";
    res.extra_fields = extra_;
    res.body = scratch_;
    append(req, res, head, seq);
    return true;
  }

  void answer_bench(const Request& req, bool head, std::uint64_t seq, std::size_t size) {
    const Body* body = g_bench.get(size);
    std::shared_ptr<const Body> owned;
    if (body == nullptr) {  // too many distinct sizes: build this one for this response only
      owned = std::make_shared<const Body>(make_body(make_bench_bytes(size)));
      body = owned.get();
    }
    long max_age = 3600;
    if (auto v = query_param(req.query, "max-age")) max_age = parse_uint<long>(*v).value_or(max_age);
    cc_.clear();
    cc_ += "public, max-age=";
    append_uint(cc_, static_cast<std::uint64_t>(max_age));
    if (auto v = query_param(req.query, "swr")) {
      if (auto swr = parse_uint<long>(*v)) {
        cc_ += ", stale-while-revalidate=";
        append_uint(cc_, static_cast<std::uint64_t>(*swr));
      }
    }
    Response res;
    res.cache_control = cc_;
    res.etag = body->etag;
    res.last_modified = content().content_epoch_date;
    res.last_modified_time = kContentEpoch;
    res.body = body->bytes;
    res.body_is_stable = true;
    res.conditional = true;
    if (owned) keep_alive_bodies_.push_back(owned);
    append(req, res, head, seq);
  }

  void answer_item(const Request& req, bool head, std::uint64_t seq, std::uint32_t id) {
    scratch_ = item_json(id);
    scratch_ += '\n';
    etag_ = etag_for(scratch_);
    format_http_date(item_updated(id), last_modified_);
    Response res;
    res.cache_control = "public, max-age=30, stale-while-revalidate=30";
    res.etag = etag_;
    res.last_modified = std::string_view(last_modified_, kHttpDateLen);
    res.last_modified_time = item_updated(id);
    res.body = scratch_;
    res.conditional = true;
    append(req, res, head, seq);
  }

  void answer_slow() {
    scratch_.clear();
    scratch_ += "{\"slept_ms\":";
    append_uint(scratch_, static_cast<std::uint64_t>(slow_.ms));
    scratch_ += "}\n";
    Response res;
    res.cache_control = "public, max-age=5";
    res.body = scratch_;
    Request req;
    req.http10 = slow_.http10;
    req.keep_alive = slow_.keep_alive;
    append(req, res, slow_.head, slow_seq_);
  }

  // Errors in framing end the connection: what follows cannot be trusted.
  void answer_error(int status, std::string_view body) {
    Request req;
    req.keep_alive = false;
    Response res;
    res.status = status;
    res.cache_control = "no-store";
    res.body = body;
    res.body_is_stable = true;
    append(req, res, false, g_total_requests.load(std::memory_order_relaxed));
  }

  void append(const Request& req, const Response& res, bool head_only, std::uint64_t seq) {
    const bool is_304 = res.status == 200 && not_modified(req, res);
    const int status = is_304 ? 304 : res.status;
    out_ += "HTTP/1.1 "sv;  // RFC 9110 §2.5: our highest version, also to 1.0 clients
    append_uint(out_, static_cast<std::uint64_t>(status));
    out_ += ' ';
    out_ += reason_phrase(status);
    out_ += "\r\nDate: "sv;
    out_ += t_date.now();
    if (!is_304) {
      out_ += "\r\nContent-Type: "sv;
      out_ += res.content_type;
    }
    if (!res.cache_control.empty()) {
      out_ += "\r\nCache-Control: "sv;
      out_ += res.cache_control;
    }
    if (!res.etag.empty()) {
      out_ += "\r\nETag: "sv;
      out_ += res.etag;
    }
    if (!res.last_modified.empty()) {
      out_ += "\r\nLast-Modified: "sv;
      out_ += res.last_modified;
    }
    out_ += "\r\nX-Origin-Requests: "sv;
    append_uint(out_, seq);
    // A 304 has no content; its Content-Length would describe the selected
    // representation (RFC 9110 §8.6), so it is left out rather than sent as 0.
    if (!is_304) {
      out_ += "\r\nContent-Length: "sv;
      append_uint(out_, res.body.size());
    }
    if (!req.keep_alive) {
      out_ += "\r\nConnection: close"sv;
      close_after_write_ = true;
    } else if (req.http10) {
      out_ += "\r\nConnection: keep-alive"sv;
    }
    out_ += "\r\n"sv;
    out_ += res.extra_fields;
    out_ += "\r\n"sv;
    ++batched_;
    if (is_304 || head_only || res.body.empty()) return;
    if (res.body_is_stable && res.body.size() > kInlineBodyMax) {
      external_.push_back(External{out_.size(), asio::buffer(res.body.data(), res.body.size())});
    } else {
      out_ += res.body;
    }
  }

  // A body sent by reference, to be written after out_[0, at).
  struct External {
    std::size_t at;
    asio::const_buffer body;
  };

  tcp::socket socket_;
  asio::steady_timer timer_;  // /api/slow delay, or the lingering-close limit
  PathCounters& counters_;

  std::unique_ptr<char[]> in_;
  std::size_t in_begin_ = 0;   // first unconsumed byte
  std::size_t in_end_ = 0;     // one past the last received byte
  std::size_t scan_from_ = 0;  // where to resume searching for the end of a head
  std::uint64_t discard_ = 0;  // request body bytes still to skip

  std::string out_;  // heads and inline bodies of the batch being built or written
  std::vector<External> external_;
  std::vector<std::shared_ptr<const Body>> keep_alive_bodies_;  // one-off bodies referenced by the batch
  std::vector<asio::const_buffer> bufs_;
  std::size_t batched_ = 0;
  bool close_after_write_ = false;

  bool slow_pending_ = false;
  SlowRequest slow_;
  std::uint64_t slow_seq_ = 0;

  std::string scratch_;  // dynamic bodies; copied into out_ before it changes
  std::string cc_;       // dynamic Cache-Control value
  std::string etag_;
  std::string tags_;   // Surrogate-Key value of a shop response
  std::string extra_;  // extra header lines of a shop response
  std::optional<OwnedRequest> deferred_;  // a shop request waiting out --latency-ms
  char last_modified_[kHttpDateLen] = {};
};

// ---------------------------------------------------------------- server

void accept_loop(Worker& w) {
  w.acceptor.async_accept([&w](std::error_code ec, tcp::socket socket) {
    if (!ec) {
      std::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), w)->start();
      accept_loop(w);
    } else if (ec != asio::error::operation_aborted) {
      // e.g. EMFILE: back off instead of spinning.
      w.accept_retry.expires_after(50ms);
      w.accept_retry.async_wait([&w](std::error_code ec) {
        if (!ec) accept_loop(w);
      });
    }
  });
}

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

void open_acceptor(tcp::acceptor& acceptor, const tcp::endpoint& endpoint) {
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.set_option(ReusePort(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
}

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 9000;
  unsigned threads = 1;
  long latency_ms = 0;
  std::uint32_t products = kDefaultProducts;
};

[[noreturn]] void usage(int code) {
  std::cerr << "usage: cachalot-origin [--listen HOST:PORT] [--threads N] [--latency-ms N] [--products N]\n"
               "  --listen      address to serve on (default 127.0.0.1:9000; port 0 = ephemeral)\n"
               "  --threads     event-loop threads (default 1)\n"
               "  --latency-ms  delay every shop API answer (/api/products, /api/products/ID,\n"
               "                /api/categories/C, /api/dashboard) by N ms (default 0; max 60000)\n"
               "  --products    size of the shop catalogue (default 10000)\n"
               "Prints \"listening on HOST:PORT\" once ready.\n";
  std::exit(code);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (arg == "--listen") {
      std::string_view v = value();
      auto colon = v.rfind(':');
      if (colon == std::string_view::npos) usage(2);
      std::string_view host = v.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      auto port = parse_uint<unsigned short>(v.substr(colon + 1));
      if (!port || host.empty()) usage(2);
      o.host = std::string(host);
      o.port = *port;
    } else if (arg == "--threads") {
      auto n = parse_uint<unsigned>(value());
      if (!n || *n == 0 || *n > 256) usage(2);
      o.threads = *n;
    } else if (arg == "--latency-ms") {
      auto n = parse_uint<long>(value());
      if (!n || *n > kMaxLatencyMs) usage(2);
      o.latency_ms = *n;
    } else if (arg == "--products") {
      auto n = parse_uint<std::uint32_t>(value());
      if (!n || *n == 0 || *n > kMaxProducts) usage(2);
      o.products = *n;
    } else if (arg == "-h" || arg == "--help") {
      usage(0);
    } else {
      std::cerr << "unknown argument: " << arg << "\n";
      usage(2);
    }
  }
  return o;
}

int run(int argc, char** argv) {
  Options opts = parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  g_latency_ms = opts.latency_ms;
  g_products = opts.products;
  g_product_versions = std::make_unique<std::atomic<std::uint32_t>[]>(g_products);
  for (std::uint32_t i = 0; i < g_products; ++i) g_product_versions[i].store(1, std::memory_order_relaxed);
  content();  // build shared bodies before serving
  g_bench.get(1024);
  g_bench.get(64 * 1024);

  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < opts.threads; ++i) {
    workers.push_back(std::make_unique<Worker>());
    g_path_counters.push_back(std::make_unique<PathCounters>());
    workers.back()->counters = g_path_counters.back().get();
  }

  // The first acceptor resolves an ephemeral port; the others share it via SO_REUSEPORT.
  tcp::endpoint endpoint(asio::ip::make_address(opts.host), opts.port);
  open_acceptor(workers[0]->acceptor, endpoint);
  endpoint = workers[0]->acceptor.local_endpoint();
  for (unsigned i = 1; i < opts.threads; ++i) open_acceptor(workers[i]->acceptor, endpoint);
  for (auto& w : workers) accept_loop(*w);

  asio::signal_set signals(workers[0]->ctx, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    for (auto& w : workers) w->ctx.stop();
  });

  std::string host = endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]"
                                                 : endpoint.address().to_string();
  std::cout << "listening on " << host << ":" << endpoint.port() << std::endl;

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < opts.threads; ++i) threads.emplace_back([&w = *workers[i]] { w.ctx.run(); });
  workers[0]->ctx.run();
  for (auto& w : workers) w->ctx.stop();
  for (auto& t : threads) t.join();
  return 0;
}

}  // namespace
}  // namespace origin

int main(int argc, char** argv) {
  try {
    return origin::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "cachalot-origin: " << e.what() << "\n";
    return 1;
  }
}
