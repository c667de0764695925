#include "cache/key.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "cache/vary.h"

namespace cachalot::cache {

// This runs on every request. The key is written through a pointer into a
// string sized once for the worst case (every byte percent-encoded, and room
// to rebuild a sorted query), then trimmed: one allocation, no per-byte
// capacity checks, one table lookup per byte.

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

constexpr bool is_alpha(unsigned char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }
constexpr char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Character classes of RFC 3986.
enum CharClass : uint8_t {
  kUnreserved = 1,  // §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~"
  kPathChar = 2,    // §3.3 pchar without pct-encoded: unreserved / sub-delims / ":" / "@"
  kQueryChar = 4,   // §3.4: pchar / "/" / "?"
  kHostChar = 8,    // §3.2.2 reg-name: unreserved / sub-delims (pct-encoded is handled apart)
  kIpLiteral = 16,  // §3.2.2 IP-literal: reg-name bytes plus "[" / "]" / ":"
};
constexpr std::array<uint8_t, 256> kCharClass = [] {
  std::array<uint8_t, 256> t{};
  const std::string_view sub_delims = "!$&'()*+,;=";  // §2.2
  for (int i = 0; i < 256; ++i) {
    const auto c = static_cast<unsigned char>(i);
    const bool unreserved = is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
    const bool sub_delim = c != 0 && sub_delims.find(static_cast<char>(c)) != std::string_view::npos;
    uint8_t v = 0;
    if (unreserved) v |= kUnreserved;
    if (unreserved || sub_delim || c == ':' || c == '@') v |= kPathChar | kQueryChar;
    if (c == '/' || c == '?') v |= kQueryChar;
    if (unreserved || sub_delim) v |= kHostChar | kIpLiteral;
    if (c == ':' || c == '[' || c == ']') v |= kIpLiteral;
    t[i] = v;
  }
  return t;
}();
constexpr bool in_class(unsigned char c, uint8_t cls) noexcept { return (kCharClass[c] & cls) != 0; }

constexpr int hex_value(char ch) noexcept {
  const auto c = static_cast<unsigned char>(ch);
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char* write(char* p, std::string_view s) noexcept {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Writes the byte at s[i] (or the %XX triplet starting there, advancing `i`
// past it) with percent-encoding normalised (RFC 3986 §6.2.2.1, §6.2.2.2):
// %xx -> %XX, %XX of an unreserved character decoded, bytes outside class
// `allowed` encoded, and a '%' that starts no valid triplet encoded as "%25"
// (it can only be data; keeping it raw would let a later decoded character
// complete a triplet, "%8%41" -> "%8A", and alias a different URI). `fold`
// lower-cases letters (the host is case-insensitive; %XX hex digits stay
// upper). Writes at most 3 bytes per input byte.
template <bool fold>
inline char* put_normalized(char* p, std::string_view s, std::size_t& i, uint8_t allowed) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c != '%' && in_class(c, allowed)) {
    *p++ = fold ? lower(static_cast<char>(c)) : static_cast<char>(c);
    return p;
  }
  if (c == '%') {
    const int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
    if (lo < 0) {
      *p++ = '%', *p++ = '2', *p++ = '5';
      return p;
    }
    i += 2;
    const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
    if (in_class(decoded, kUnreserved)) {
      *p++ = fold ? lower(static_cast<char>(decoded)) : static_cast<char>(decoded);
      return p;
    }
    *p++ = '%', *p++ = kHex[decoded >> 4], *p++ = kHex[decoded & 15];
    return p;
  }
  *p++ = '%', *p++ = kHex[c >> 4], *p++ = kHex[c & 15];
  return p;
}

template <bool fold>
char* write_normalized(char* p, std::string_view s, uint8_t allowed) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) p = put_normalized<fold>(p, s, i, allowed);
  return p;
}

// host[:port], lower-cased, the default or an empty port dropped (RFC 3986
// §6.2.3, RFC 9110 §4.2.3).
char* write_authority(char* p, std::string_view default_port, std::string_view host) noexcept {
  // The port is the digits after the last ':'; in an IP-literal ("[v6]:port")
  // only a ':' right after the ']' counts, since the literal holds colons of
  // its own. Anything else after a ':' is not a port and stays part of the
  // (then invalid) host.
  const bool ip_literal = !host.empty() && host.front() == '[';
  std::string_view name = host;
  std::string_view port;
  bool has_port = false;
  const std::size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && (!ip_literal || (colon > 0 && host[colon - 1] == ']'))) {
    const std::string_view digits = host.substr(colon + 1);
    if (std::all_of(digits.begin(), digits.end(), [](char c) { return is_digit(static_cast<unsigned char>(c)); })) {
      name = host.substr(0, colon);
      port = digits;
      has_port = true;
    }
  }
  // A ':' belongs in a host only inside an IP-literal; elsewhere it is encoded
  // so that "h:x" cannot be read as a port after normalisation.
  p = write_normalized<true>(p, name, ip_literal ? kIpLiteral : kHostChar);
  if (!has_port) return p;
  while (port.size() > 1 && port.front() == '0') port.remove_prefix(1);
  if (port.empty() || port == default_port) return p;
  *p++ = ':';
  return write(p, port);
}

// The path with dot segments removed (RFC 3986 §5.2.4), in one pass: each
// segment is written normalised, then dropped if it reads "." or ".." (so a
// decoded "%2E%2E" counts too). Always starts with '/'.
char* write_path(char* p, std::string_view path) noexcept {
  char* const base = p;
  std::size_t i = !path.empty() && path.front() == '/' ? 1 : 0;
  for (;;) {
    char* const seg = p;
    *p++ = '/';
    for (; i < path.size() && path[i] != '/'; ++i) p = put_normalized<false>(p, path, i, kPathChar);
    const bool last = i >= path.size();
    const std::string_view written(seg + 1, static_cast<std::size_t>(p - seg - 1));
    if (written == "." || written == "..") {
      p = seg;
      if (written.size() == 2 && p > base) {
        do --p;  // ".." drops the previous segment too; *base is '/', so this stops at base at the latest
        while (*p != '/');
      }
      if (last) *p++ = '/';  // "/a/." and "/a/b/.." end in a directory
    }
    if (last) break;
    ++i;  // past the '/'
  }
  if (p == base) *p++ = '/';
  return p;
}

// A query parameter inside the buffer.
struct Param {
  uint32_t off, len, name_len;  // from the start of the query; the name is what precedes '='
};

// Up to 32 parameters on the stack; more spill to the heap (rare).
class Params {
 public:
  void push(Param s) {
    if (n_ < inline_.size() && heap_.empty()) {
      inline_[n_++] = s;
      return;
    }
    if (heap_.empty()) heap_.assign(inline_.begin(), inline_.begin() + n_);
    heap_.push_back(s);
    ++n_;
  }
  Param* begin() noexcept { return heap_.empty() ? inline_.data() : heap_.data(); }
  Param* end() noexcept { return begin() + n_; }

 private:
  std::array<Param, 32> inline_;  // only the first n_ are ever read
  std::vector<Param> heap_;
  std::size_t n_ = 0;
};

// "?query", normalised, then filtered and sorted as the options say; the "?"
// is dropped if nothing is left. Needs 6 * query.size() + 1 bytes: the
// normalised query, then the same again to rebuild it.
char* write_query(char* p, std::string_view query, const KeyOptions& opts) {
  *p++ = '?';
  char* const q = p;
  p = write_normalized<false>(p, query, kQueryChar);
  if (opts.sort_query || !opts.ignore_params.empty()) {
    // Split at '&' after normalisation: an encoded "%26" is data, not a separator.
    const std::string_view normalized(q, static_cast<std::size_t>(p - q));
    Params params;
    for (std::size_t at = 0; at <= normalized.size();) {
      const std::size_t amp = std::min(normalized.find('&', at), normalized.size());
      const std::string_view param = normalized.substr(at, amp - at);
      const std::string_view name = param.substr(0, param.find('='));
      const bool ignored =
          std::find(opts.ignore_params.begin(), opts.ignore_params.end(), name) != opts.ignore_params.end();
      if (!param.empty() && !ignored)
        params.push({static_cast<uint32_t>(at), static_cast<uint32_t>(param.size()),
                     static_cast<uint32_t>(name.size())});
      at = amp + 1;
    }
    if (opts.sort_query)
      std::stable_sort(params.begin(), params.end(), [q](const Param& a, const Param& b) {
        return std::string_view(q + a.off, a.name_len) < std::string_view(q + b.off, b.name_len);
      });
    // Rebuild after the normalised query, then move it into place.
    char* const rebuilt = p;
    char* r = rebuilt;
    for (const Param& s : params) {
      if (r != rebuilt) *r++ = '&';
      r = write(r, std::string_view(q + s.off, s.len));
    }
    std::memmove(q, rebuilt, static_cast<std::size_t>(r - rebuilt));
    p = q + (r - rebuilt);
  }
  return p == q ? p - 1 : p;
}

// Path and query of an origin-form or absolute-form target.
std::string_view path_and_query(std::string_view target) noexcept {
  if (!target.empty() && target.front() == '/') return target;
  // absolute-form: scheme "://" authority path-abempty [ "?" query ] (RFC 9112 §3.2.2)
  const std::size_t sep = target.find("://");
  if (sep != std::string_view::npos && sep > 0 && is_alpha(static_cast<unsigned char>(target[0])) &&
      std::all_of(target.begin(), target.begin() + sep, [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
      })) {
    const std::string_view rest = target.substr(sep + 3);
    const std::size_t p = rest.find_first_of("/?");
    return p == std::string_view::npos ? std::string_view{} : rest.substr(p);
  }
  return target;  // asterisk-form or junk: keyed as a path
}

bool iequals(std::string_view s, std::string_view lower_literal) noexcept {
  if (s.size() != lower_literal.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (lower(s[i]) != lower_literal[i]) return false;
  return true;
}

}  // namespace

std::string primary_key(std::string_view scheme, std::string_view host, std::string_view target,
                        const http::HeaderMap& req_headers, const KeyOptions& opts) {
  std::string_view pq = path_and_query(target);
  pq = pq.substr(0, pq.find('#'));  // a fragment is not part of the target
  const std::size_t q = std::min(pq.find('?'), pq.size());
  std::string key;
  key_begin(key, scheme, host, pq.substr(0, q), false);
  key_finish(key, pq.substr(std::min(q + 1, pq.size())), q != pq.size(), req_headers, opts);
  return key;
}

void key_begin(std::string& key, std::string_view scheme, std::string_view host, std::string_view path,
               bool authority_normalized) {
  // Worst case: scheme + "://" + 3x host + ":" + "/" + 3x path. resize() on a
  // reused string keeps its capacity: no allocation in steady state.
  key.resize(scheme.size() + 3 + (authority_normalized ? host.size() : 3 * host.size() + 1) + 1 + 3 * path.size());
  char* p = key.data();
  for (char c : scheme) *p++ = lower(c);
  p = write(p, "://");
  if (authority_normalized) {
    p = write(p, host);
  } else {
    const std::string_view default_port = iequals(scheme, "http") ? "80" : iequals(scheme, "https") ? "443" : "";
    p = write_authority(p, default_port, host);
  }
  p = write_path(p, path);
  key.resize(static_cast<std::size_t>(p - key.data()));
}

void key_finish(std::string& key, std::string_view query, bool has_query, const http::HeaderMap& req_headers,
                const KeyOptions& opts) {
  if (has_query) {
    const std::size_t n = key.size();
    key.resize(n + 1 + 6 * query.size());  // "?" + the normalised query + room to rebuild it
    char* p = write_query(key.data() + n, query, opts);
    key.resize(static_cast<std::size_t>(p - key.data()));
  }
  for (const std::string& name : opts.headers) {
    key.push_back('\n');
    append_field_entry(key, name, req_headers);
  }
}

void normalize_authority(std::string& out, std::string_view scheme, std::string_view host) {
  out.resize(3 * host.size() + 1);
  const std::string_view default_port = iequals(scheme, "http") ? "80" : iequals(scheme, "https") ? "443" : "";
  char* p = write_authority(out.data(), default_port, host);
  out.resize(static_cast<std::size_t>(p - out.data()));
}

std::string_view key_path(std::string_view key) noexcept {
  const std::size_t sep = key.find("://");
  if (sep == std::string_view::npos) return {};
  const std::size_t begin = key.find('/', sep + 3);
  if (begin == std::string_view::npos) return {};
  const std::size_t end = key.find('\n', begin);
  return key.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
}

bool is_normalized_path(std::string_view path) noexcept {
  if (path.empty() || path.front() != '/') return false;
  std::size_t seg = 1;
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      const std::string_view s = path.substr(seg, i - seg);
      if (s == "." || s == "..") return false;
      seg = i + 1;
      continue;
    }
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '%' || !in_class(c, kPathChar)) return false;
  }
  return true;
}

std::string_view key_authority(std::string_view key) noexcept {
  const std::size_t sep = key.find("://");
  if (sep == std::string_view::npos) return {};
  const std::size_t begin = sep + 3;
  const std::size_t end = key.find('/', begin);
  return end == std::string_view::npos ? std::string_view{} : key.substr(begin, end - begin);
}

void append_partition(std::string& key, std::string_view claim) {
  key.append("\n\x1fp=");
  key.append(std::to_string(claim.size()));
  key.push_back(':');
  key.append(claim);
}

std::string_view key_partition(std::string_view key) noexcept {
  constexpr std::string_view kMarker = "\n\x1fp=";
  // The partition entry is the last one; its claim has no control bytes, so
  // the last marker in the key is the entry.
  const std::size_t at = key.rfind(kMarker);
  if (at == std::string_view::npos) return {};
  std::string_view rest = key.substr(at + kMarker.size());
  const std::size_t colon = rest.find(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  std::size_t len = 0;
  for (char c : rest.substr(0, colon)) {
    if (!is_digit(static_cast<unsigned char>(c))) return {};
    len = len * 10 + static_cast<std::size_t>(c - '0');
  }
  rest.remove_prefix(colon + 1);
  return rest.size() == len ? rest : std::string_view{};
}

std::string partition_tag(std::string_view claim) {
  std::string t("\x1fp=");
  t.append(claim);
  return t;
}

std::string_view partition_claim(std::string_view partition) noexcept {
  const std::size_t colon = partition.find(':');
  return colon == std::string_view::npos ? std::string_view{} : partition.substr(colon + 1);
}

std::string normalized_authority(std::string_view scheme, std::string_view host) {
  std::string out;
  normalize_authority(out, scheme, host);
  return out;
}

}  // namespace cachalot::cache
