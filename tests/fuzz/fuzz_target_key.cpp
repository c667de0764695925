// libFuzzer target for request-target and Host validation and the key the
// proxy derives from them: "what is forwarded is what is keyed".
//
// Input: one flag byte, then lines split at '\n':
//   line 0: the request-target (any bytes)
//   line 1: the Host field value (any bytes; absent with flag kNoHost)
//   more:   "name: value" request fields (kept when the name is a token and
//           the value, trimmed and limited to VCHAR / SP / HTAB as the parser
//           leaves it, is not empty)
// Checked (abort on violation):
//   - parse_target / valid_host agree with prepare();
//   - a prepared request keys to "scheme://authority/path..." whose path part
//     holds no CR, LF, SP, NUL or '#', whose authority is a valid Host, and
//     whose path (without the query) is what path() gives the route matcher;
//   - the forwarded head (serialize_head) parses as HTTP/1.1, its request
//     line carries the key's path and query and its Host the key's authority;
//   - preparing and keying that forwarded request again (as an untrusted
//     client would send it) gives the same key and path.
//
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCACHALOT_FUZZ=ON -DCACHALOT_TESTS=OFF
//   cmake --build build-fuzz --target fuzz_target_key
//   build-fuzz/tests/fuzz/fuzz_target_key tests/fuzz/corpus/key -max_total_time=180
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cache/key.h"
#include "config/address.h"
#include "http/header_map.h"
#include "http/message.h"
#include "http/parser.h"
#include "http/target.h"
#include "proxy/forwarded_request.h"

namespace {
// The key as the proxy completes it: prepare(), then finish_key() once.
std::string finished_key(cachalot::proxy::ForwardedRequest& f, const cachalot::http::RequestHead& r,
                         const cachalot::cache::KeyOptions& o) {
  f.finish_key(r, o);
  return f.key();
}
}  // namespace

using namespace cachalot;

namespace {

// Aborts (libFuzzer then reports the input), naming the property that failed.
#define check(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "fuzz_target_key.cpp:%d: %s\n", __LINE__, #cond); \
      std::abort();                                                          \
    }                                                                        \
  } while (0)

enum Flags : uint8_t {
  kHttps = 1,        // the listener is https
  kOptions = 2,      // OPTIONS instead of GET
  kSortQuery = 4,    // route key.sort_query
  kIgnore = 8,       // route key.ignore_params
  kTrusted = 16,     // the peer is a trusted proxy
  kHttp10 = 32,      // HTTP/1.0
  kKeyHeader = 64,   // route key.headers: [X-Key]
  kNoHost = 128,     // no Host field
};

bool is_tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A field value as the parser would hand it over.
std::string clean_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 0x20 && u < 0x7f) || c == '\t') out.push_back(c);
  }
  const std::size_t b = out.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return out.substr(b, out.find_last_not_of(" \t") - b + 1);
}

// No bare CR, LF, SP, NUL or '#' in the path and query of a key.
bool clean_path(std::string_view p) {
  for (char c : p)
    if (c == '\r' || c == '\n' || c == ' ' || c == '\0' || c == '#') return false;
  return !p.empty() && p.front() == '/';
}

const config::CidrSet& trusted_set() {
  static const config::CidrSet set = [] {
    config::CidrSet s;
    s.ranges.push_back(*config::parse_cidr("10.0.0.0/8"));
    return s;
  }();
  return set;
}

const proxy::Peer kClient{"192.0.2.7", {192, 0, 2, 7}};
const proxy::Peer kProxy{"10.1.2.3", {10, 1, 2, 3}};

bool skip_field(std::string_view n) { return http::iequals(n, "expect") || http::iequals(n, "content-length"); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::vector<std::string_view> lines;
  for (;;) {
    const std::size_t nl = in.find('\n');
    lines.push_back(in.substr(0, nl));
    if (nl == std::string_view::npos) break;
    in.remove_prefix(nl + 1);
  }
  const std::string_view target = lines[0];
  const std::string_view host = lines.size() > 1 ? lines[1] : std::string_view("example.com");

  http::RequestHead req;
  req.method = flags & kOptions ? http::Method::Options : http::Method::Get;
  req.method_name = std::string(http::to_string(req.method));
  req.target = std::string(target);
  req.version_minor = flags & kHttp10 ? 0 : 1;
  if (!(flags & kNoHost)) req.headers.add("Host", host);
  for (std::size_t i = 2; i < lines.size(); ++i) {
    const std::size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    const std::string_view name = lines[i].substr(0, colon);
    bool token = true;
    for (char c : name) token = token && is_tchar(c);
    if (!token || http::iequals(name, "host")) continue;
    // Our parser (llhttp 8 in strict mode) refuses an empty field value, so
    // prepare() never sees one; nor could the forwarded head be parsed back.
    const std::string value = clean_value(lines[i].substr(colon + 1));
    if (value.empty()) continue;
    req.headers.add(name, value);
  }

  const std::string_view scheme = flags & kHttps ? "https" : "http";
  cache::KeyOptions opts;
  opts.sort_query = (flags & kSortQuery) != 0;
  if (flags & kIgnore) opts.ignore_params = {"utm_source", "a", ""};
  if (flags & kKeyHeader) opts.headers = {"X-Key"};
  const std::vector<std::string> drop = {"X-Original-URL"};
  proxy::ForwardOptions fo;
  fo.trusted_proxies = &trusted_set();
  fo.drop_fields = &drop;
  fo.fallback_host = "origin.internal";
  const proxy::Peer& peer = flags & kTrusted ? kProxy : kClient;

  // Validation on its own, then as prepare() applies it.
  http::Target t;
  const http::TargetError target_error = http::parse_target(target, req.method, t);
  if (target_error == http::TargetError::None && !t.authority.empty()) check(http::valid_host(t.authority));
  const auto host_field = req.headers.get("host");
  const bool host_ok = !host_field || host_field->empty() || http::valid_host(*host_field);

  proxy::ForwardedRequest fr;
  const http::TargetError e = fr.prepare(req, scheme, peer, fo);
  if (target_error != http::TargetError::None) {
    check(e == target_error);
    return 0;
  }
  if (t.authority.empty() && !host_ok) {
    check(e == http::TargetError::Host);
    return 0;
  }
  check(e == http::TargetError::None);
  check(http::valid_host(fr.authority()));
  check(cache::normalized_authority(scheme, fr.authority()) == fr.authority());

  const std::string key = finished_key(fr, req, opts);
  const std::string_view key_path = cache::key_path(key);
  check(clean_path(key_path));
  check(cache::key_authority(key) == fr.authority());
  check(key.substr(0, scheme.size() + 3) == std::string(scheme) + "://");
  check(fr.path() == key_path.substr(0, key_path.find('?')));

  // The head the origin gets.
  std::string head;
  fr.serialize_head(head, req, req.method_name, key, skip_field);
  head.append("\r\n");
  // Limits far above what any input can reach (normalising may triple a target).
  http::Parser parser(http::Parser::Kind::Request, {.max_header_bytes = 1 << 22, .max_uri_length = 1 << 22});
  parser.execute(head.data(), head.size());
  check(parser.error() == http::ParseError::None && parser.message_complete());
  http::RequestHead forwarded = parser.request();
  check(forwarded.target == (fr.asterisk() ? std::string_view("*") : key_path));
  check(forwarded.headers.get("host") == std::string_view(fr.authority()));

  // Keyed again: the same key. A trusted peer's forwarding fields are part of
  // its key, and we forward ours, so the round trip is checked for untrusted
  // clients; for a trusted peer the key is the untrusted one plus entries.
  proxy::ForwardedRequest again;
  check(again.prepare(forwarded, scheme, kClient, fo) == http::TargetError::None);
  const std::string rekeyed = finished_key(again, forwarded, opts);
  check(again.path() == fr.path());
  check(again.authority() == fr.authority());
  if (!fr.trusted_peer()) {
    check(rekeyed == key);
  } else {
    check(key.compare(0, rekeyed.size(), rekeyed) == 0);
    check(key.size() == rekeyed.size() || key[rekeyed.size()] == '\n');
  }
  return 0;
}
