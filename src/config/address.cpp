#include "config/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace cachalot::config {
namespace {

using Bytes16 = std::array<uint8_t, 16>;

std::nullopt_t fail(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return std::nullopt;
}

std::optional<uint32_t> parse_decimal(std::string_view s) {
  uint32_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

std::optional<uint16_t> parse_port(std::string_view s, std::string* error) {
  auto n = parse_decimal(s);
  if (!n || *n < 1 || *n > 65535) return fail(error, "port '" + std::string(s) + "' is not in 1..65535");
  return uint16_t(*n);
}

// IPv4 becomes IPv4-mapped IPv6; `v4` says which family was written.
std::optional<Bytes16> parse_ip(std::string_view text, bool& v4) {
  std::string s(text);  // inet_pton needs a terminator
  Bytes16 out{};
  v4 = text.find(':') == std::string_view::npos;
  if (!v4) return inet_pton(AF_INET6, s.c_str(), out.data()) == 1 ? std::optional(out) : std::nullopt;
  out[10] = out[11] = 0xff;
  return inet_pton(AF_INET, s.c_str(), out.data() + 12) == 1 ? std::optional(out) : std::nullopt;
}

std::string format_ip(const Bytes16& ip, bool v4) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? ip.data() + 12 : ip.data(), buf, sizeof buf);
  return buf;
}

struct HostPort {
  std::string_view host;  // brackets removed
  std::string_view port;  // empty if none was written
  bool bracketed = false;
};

// "host", "host:port", "[v6]" or "[v6]:port".
std::optional<HostPort> split_host_port(std::string_view text, std::string* error) {
  HostPort hp;
  hp.bracketed = text.starts_with('[');
  std::string_view rest;
  if (hp.bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return fail(error, "missing ']' after IPv6 address");
    hp.host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return fail(error, "expected ':port' after ']'");
  } else {
    size_t colon = text.rfind(':');
    hp.host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    if (hp.host.find(':') != std::string_view::npos)
      return fail(error, "an IPv6 address needs brackets, as in [::1]:8080");
  }
  if (rest == ":") return fail(error, "missing port after ':'");
  hp.port = rest.empty() ? rest : rest.substr(1);
  return hp;
}

bool is_hostname(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_';
  });
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Userinfo may hold '@', ':' or '/' only percent-encoded (RFC 3986 §3.2.1).
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || hex_digit(s[i + 1]) < 0 || hex_digit(s[i + 2]) < 0) return std::nullopt;
    out += char(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
    i += 2;
  }
  return out;
}

std::optional<uint32_t> parse_db(std::string_view s, std::string* error) {
  auto n = parse_decimal(s);
  if (!n || *n > 65535) return fail(error, "database '" + std::string(s) + "' is not a number in 0..65535");
  return n;
}

}  // namespace

std::optional<ListenerConfig> parse_listen_address(std::string_view text, std::string* error) {
  auto hp = split_host_port(text, error);
  if (!hp) return std::nullopt;
  if (hp->port.empty()) return fail(error, "missing ':port'");
  if (hp->host.empty()) return fail(error, "missing host; use 0.0.0.0 or [::] to listen on every address");
  bool v4 = false;
  if (!parse_ip(hp->host, v4) || v4 == hp->bracketed)
    return fail(error, "host '" + std::string(hp->host) + "' is not an IP address (listeners do not resolve names)");
  auto port = parse_port(hp->port, error);
  if (!port) return std::nullopt;
  ListenerConfig listener;
  listener.host = hp->host;
  listener.port = *port;
  listener.text = text;
  return listener;
}

std::optional<UpstreamUrl> parse_upstream_url(std::string_view text, std::string* error) {
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) return fail(error, "expected http://host[:port] or https://host[:port]");
  UpstreamUrl url;
  url.text = text;
  url.scheme = text.substr(0, sep);
  std::transform(url.scheme.begin(), url.scheme.end(), url.scheme.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (url.scheme != "http" && url.scheme != "https")
    return fail(error, "scheme must be http or https, not '" + std::string(text.substr(0, sep)) + "'");

  std::string_view rest = text.substr(sep + 3);
  size_t end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, end), tail = rest.substr(end);
  if (!tail.empty() && tail != "/")
    return fail(error, "only an origin is allowed, not a path, query or fragment ('" + std::string(tail) +
                           "'): request targets are forwarded unchanged");
  if (authority.find('@') != std::string_view::npos) return fail(error, "userinfo is not allowed");

  auto hp = split_host_port(authority, error);
  if (!hp) return std::nullopt;
  if (hp->host.empty()) return fail(error, "missing host");
  bool v4 = false;
  if (hp->bracketed ? !parse_ip(hp->host, v4) || v4 : !is_hostname(hp->host))
    return fail(error, "invalid host '" + std::string(hp->host) + "'");
  url.host = std::string(hp->host);
  url.port = url.tls() ? 443 : 80;
  if (!hp->port.empty()) {
    auto port = parse_port(hp->port, error);
    if (!port) return std::nullopt;
    url.port = *port;
  }
  return url;
}

std::optional<RedisAddress> parse_redis_address(std::string_view text, std::string* error) {
  RedisAddress a;
  if (text.starts_with("unix://")) {
    std::string_view rest = text.substr(7);
    size_t q = rest.find('?');
    a.unix_socket = true;
    a.path = rest.substr(0, q);
    a.text = text;
    if (!a.path.starts_with('/')) return fail(error, "expected unix:///absolute/path/to/redis.sock");
    if (q == std::string_view::npos) return a;
    std::string_view query = rest.substr(q + 1);
    if (!query.starts_with("db=")) return fail(error, "the only parameter a unix:// address takes is ?db=N");
    auto db = parse_db(query.substr(3), error);
    if (!db) return std::nullopt;
    a.db = *db;
    return a;
  }
  if (!text.starts_with("redis://"))
    return fail(error, "expected redis://host[:port][/db] or unix:///path/to/redis.sock[?db=N]");
  std::string_view rest = text.substr(8);
  size_t slash = std::min(rest.find('/'), rest.size());
  std::string_view authority = rest.substr(0, slash), tail = rest.substr(slash);
  std::string shown(text);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    size_t colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = percent_decode(colon == std::string_view::npos ? "" : userinfo.substr(colon + 1));
    if (!user || !password) return fail(error, "invalid %-escape in the user or password");
    if (password->empty()) return fail(error, "a user needs a password: redis://user:password@host");
    a.user = *user;
    a.password = *password;
    authority = authority.substr(at + 1);
    shown = "redis://" + (a.user.empty() ? std::string() : std::string(userinfo.substr(0, colon))) + ":***@" +
            std::string(rest.substr(at + 1));
  }
  auto hp = split_host_port(authority, error);
  if (!hp) return std::nullopt;
  if (hp->host.empty()) return fail(error, "missing host");
  bool v4 = false;
  if (hp->bracketed ? !parse_ip(hp->host, v4) || v4 : !is_hostname(hp->host))
    return fail(error, "invalid host '" + std::string(hp->host) + "'");
  a.host = hp->host;
  if (!hp->port.empty()) {
    auto port = parse_port(hp->port, error);
    if (!port) return std::nullopt;
    a.port = *port;
  }
  if (tail.size() > 1) {
    auto db = parse_db(tail.substr(1), error);
    if (!db) return std::nullopt;
    a.db = *db;
  }
  a.text = std::move(shown);
  return a;
}

bool Cidr::contains(const std::array<uint8_t, 16>& v6) const {
  int full = prefix_len / 8, bits = prefix_len % 8;
  if (!std::equal(network.begin(), network.begin() + full, v6.begin())) return false;
  if (bits == 0) return true;
  uint8_t mask = uint8_t(0xff << (8 - bits));
  return (v6[full] & mask) == network[full];
}

std::optional<Cidr> parse_cidr(std::string_view text, std::string* error) {
  size_t slash = text.find('/');
  std::string_view addr = text.substr(0, slash);
  bool v4 = false;
  auto ip = parse_ip(addr, v4);
  if (!ip) return fail(error, "'" + std::string(addr) + "' is not an IP address");
  uint32_t max_len = v4 ? 32 : 128, len = max_len;
  if (slash != std::string_view::npos) {
    auto n = parse_decimal(text.substr(slash + 1));
    if (!n || *n > max_len)
      return fail(error, "prefix length must be 0.." + std::to_string(max_len));
    len = *n;
  }
  Cidr cidr;
  cidr.prefix_len = uint8_t(len + (v4 ? 96 : 0));
  cidr.text = text;
  for (int i = 0; i < 16; ++i) {  // keep the network bits only
    int bits = std::clamp(int(cidr.prefix_len) - 8 * i, 0, 8);
    cidr.network[i] = (*ip)[i] & uint8_t(0xff << (8 - bits));
  }
  if (cidr.network != *ip)
    return fail(error, "host bits are set; did you mean " + format_ip(cidr.network, v4) + "/" + std::to_string(len) + "?");
  return cidr;
}

bool CidrSet::contains(std::span<const uint8_t> address) const {
  Bytes16 v6{};
  if (address.size() == 4) {
    v6[10] = v6[11] = 0xff;
    std::copy(address.begin(), address.end(), v6.begin() + 12);
  } else if (address.size() == 16) {
    std::copy(address.begin(), address.end(), v6.begin());
  } else {
    return false;
  }
  return std::any_of(ranges.begin(), ranges.end(), [&](const Cidr& c) { return c.contains(v6); });
}

bool CidrSet::contains(std::string_view address) const {
  bool v4 = false;
  auto ip = parse_ip(address, v4);
  return ip && contains(std::span<const uint8_t>(*ip));
}

}  // namespace cachalot::config
