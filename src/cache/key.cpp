#include "cache/key.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "cache/vary.h"

namespace cachalot::cache {

namespace {

using http::ascii_lower;

constexpr char kHex[] = "0123456789ABCDEF";

constexpr bool is_alpha(unsigned char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }

// RFC 3986 §2.3
constexpr bool is_unreserved(unsigned char c) noexcept {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
// RFC 3986 §2.2
constexpr bool is_sub_delim(unsigned char c) noexcept {
  switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}
// pchar without pct-encoded (RFC 3986 §3.3); the query adds '/' and '?' (§3.4).
constexpr bool is_path_char(unsigned char c) noexcept {
  return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}
constexpr bool is_query_char(unsigned char c) noexcept { return is_path_char(c) || c == '/' || c == '?'; }
// host = IP-literal / IPv4address / reg-name (RFC 3986 §3.2.2); '%' for pct-encoded and zone ids.
constexpr bool is_host_char(unsigned char c) noexcept {
  return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '[' || c == ']' || c == '%';
}

int hex_value(char ch) noexcept {
  const auto c = static_cast<unsigned char>(ch);
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_pct(std::string& out, unsigned char c) {
  out.push_back('%');
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 15]);
}

// Appends `s` with percent-encoding normalised (RFC 3986 §6.2.2.1, §6.2.2.2):
// %xx -> %XX, %XX of an unreserved character decoded, bytes outside
// `allowed` encoded, a '%' that starts no valid triplet kept.
template <class Allowed>
void append_normalized(std::string& out, std::string_view s, Allowed allowed) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    // Fast path: copy a run of bytes that need no change in one append.
    std::size_t run = i;
    while (run < s.size() && allowed(static_cast<unsigned char>(s[run]))) ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      const int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
      const int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
      if (lo < 0) {
        out.push_back('%');
        continue;
      }
      const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
      if (is_unreserved(decoded)) {
        out.push_back(static_cast<char>(decoded));
      } else {
        append_pct(out, decoded);
      }
      i += 2;
    } else if (allowed(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      append_pct(out, c);
    }
  }
}

void append_lower(std::string& out, std::string_view s) {
  for (char c : s) out.push_back(ascii_lower(c));
}

// host[:port], lower-cased, default or empty port dropped (RFC 3986 §6.2.3,
// RFC 9110 §4.2.3).
void append_authority(std::string& out, std::string_view default_port, std::string_view host) {
  std::string_view name = host;
  std::string_view port;
  bool has_port = false;
  const std::size_t colon = host.rfind(':');
  const std::size_t bracket = host.rfind(']');  // an IPv6 literal holds colons of its own
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
    has_port = true;
  }
  const std::size_t name_start = out.size();
  append_normalized(out, name, is_host_char);
  for (std::size_t i = name_start; i < out.size(); ++i) {
    // Lower-case the name, but not the hex digits of %XX (kept upper, §6.2.2.1).
    if (out[i] == '%' && i + 2 < out.size() && hex_value(out[i + 1]) >= 0 && hex_value(out[i + 2]) >= 0) {
      i += 2;
    } else {
      out[i] = ascii_lower(out[i]);
    }
  }
  if (!has_port) return;
  if (std::all_of(port.begin(), port.end(), [](char c) { return is_digit(static_cast<unsigned char>(c)); })) {
    while (port.size() > 1 && port.front() == '0') port.remove_prefix(1);
    if (port.empty() || port == default_port) return;
  }
  out.push_back(':');
  append_normalized(out, port, is_host_char);
}

// Appends the path with dot segments removed (RFC 3986 §5.2.4), one segment
// at a time so a decoded "%2E%2E" is recognised. Always starts with '/'.
void append_path(std::string& out, std::string_view path) {
  const std::size_t base = out.size();
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  for (;;) {
    const std::size_t slash = path.find('/');
    const bool last = slash == std::string_view::npos;
    const std::size_t seg_start = out.size();
    out.push_back('/');
    append_normalized(out, path.substr(0, slash), is_path_char);
    const std::string_view seg(out.data() + seg_start + 1, out.size() - seg_start - 1);
    if (seg == "." || seg == "..") {
      const bool up = seg.size() == 2;
      out.resize(seg_start);
      if (up && out.size() > base) out.resize(out.rfind('/'));  // out[base] is '/', so rfind stays >= base
      if (last) out.push_back('/');  // "/a/." and "/a/b/.." end in a directory
    }
    if (last) break;
    path.remove_prefix(slash + 1);
  }
  if (out.size() == base) out.push_back('/');
}

struct Span {
  std::size_t off, len, name_len;
};

// Parameter offsets; up to 32 on the stack, more spill to the heap.
class Spans {
 public:
  void push(Span s) {
    if (n_ < inline_.size() && heap_.empty()) {
      inline_[n_++] = s;
      return;
    }
    if (heap_.empty()) heap_.assign(inline_.begin(), inline_.begin() + n_);
    heap_.push_back(s);
    ++n_;
  }
  Span* begin() noexcept { return heap_.empty() ? inline_.data() : heap_.data(); }
  Span* end() noexcept { return begin() + n_; }

 private:
  std::array<Span, 32> inline_;  // only the first n_ are ever read
  std::vector<Span> heap_;
  std::size_t n_ = 0;
};

// "?query", normalised, then filtered and sorted as the options say. The
// "?" is dropped if nothing is left.
void append_query(std::string& out, std::string_view query, const KeyOptions& opts) {
  out.push_back('?');
  const std::size_t start = out.size();
  append_normalized(out, query, is_query_char);
  if (opts.sort_query || !opts.ignore_params.empty()) {
    // Parameters are split at '&' after normalisation: an encoded "%26" is data.
    const std::size_t end = out.size();
    Spans params;
    for (std::size_t p = start; p < end;) {
      std::size_t amp = out.find('&', p);
      if (amp == std::string::npos || amp > end) amp = end;
      const std::string_view param(out.data() + p, amp - p);
      const std::string_view name = param.substr(0, param.find('='));
      const bool ignored = std::find(opts.ignore_params.begin(), opts.ignore_params.end(), name) !=
                           opts.ignore_params.end();
      if (!param.empty() && !ignored) params.push({p, param.size(), name.size()});
      p = amp + 1;
    }
    auto name_of = [&out](const Span& s) { return std::string_view(out.data() + s.off, s.name_len); };
    if (opts.sort_query)
      std::stable_sort(params.begin(), params.end(),
                       [&](const Span& a, const Span& b) { return name_of(a) < name_of(b); });
    // Rebuild after the region, then drop the region; reserving keeps the offsets' data in place.
    out.reserve(out.size() + (end - start));
    for (const Span& s : params) {
      if (out.size() > end) out.push_back('&');
      out.append(out.data() + s.off, s.len);
    }
    out.erase(start, end - start);
  }
  if (out.size() == start) out.pop_back();
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

}  // namespace

std::string primary_key(std::string_view scheme, std::string_view host, std::string_view target,
                        const http::HeaderMap& req_headers, const KeyOptions& opts) {
  std::string key;
  key.reserve(scheme.size() + 3 + host.size() + target.size() + 8 + opts.headers.size() * 32);
  append_lower(key, scheme);
  key.append("://");
  const std::string_view default_port = http::iequals(scheme, "http")    ? "80"
                                        : http::iequals(scheme, "https") ? "443"
                                                                         : "";
  append_authority(key, default_port, host);

  std::string_view pq = path_and_query(target);
  pq = pq.substr(0, pq.find('#'));  // a fragment is not part of the target
  const std::size_t q = pq.find('?');
  append_path(key, pq.substr(0, q));
  if (q != std::string_view::npos) append_query(key, pq.substr(q + 1), opts);

  for (const std::string& name : opts.headers) {
    key.push_back('\n');
    append_field_entry(key, name, req_headers);
  }
  return key;
}

std::string_view key_path(std::string_view key) noexcept {
  const std::size_t sep = key.find("://");
  if (sep == std::string_view::npos) return {};
  const std::size_t begin = key.find('/', sep + 3);
  if (begin == std::string_view::npos) return {};
  const std::size_t end = key.find('\n', begin);
  return key.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
}

}  // namespace cachalot::cache
