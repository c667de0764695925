#include "admin/guard.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <cstdint>

#include "admin/redact.h"
#include "http/header_map.h"

namespace cachalot::admin {
namespace {

constexpr uint32_t kHttpDefaultPort = 80;

// A Host value (or the authority of an Origin) split up. `port` is nullopt when
// absent; a present but empty port ("host:") counts as absent (RFC 3986 §3.2.3).
struct Authority {
  std::string_view host;  // without brackets for IPv6
  bool ip_literal = false;
  std::optional<uint32_t> port;
};

std::optional<uint32_t> parse_port(std::string_view s, bool& ok) {
  ok = true;
  if (s.empty()) return std::nullopt;
  uint32_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  ok = ec == std::errc() && end == s.data() + s.size() && n <= 65535;
  return n;
}

std::optional<Authority> parse_authority(std::string_view s) {
  // No controls, spaces or NULs: inet_pton below reads a C string, and
  // "127.0.0.1\0.attacker.example" must not pass for an IP literal.
  if (std::any_of(s.begin(), s.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; })) return std::nullopt;
  Authority a;
  std::string_view port;
  if (s.starts_with('[')) {
    std::size_t close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    a.host = s.substr(1, close - 1);
    std::string_view after = s.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return std::nullopt;
    port = after.empty() ? after : after.substr(1);
    in6_addr v6;
    if (inet_pton(AF_INET6, std::string(a.host).c_str(), &v6) != 1) return std::nullopt;
    a.ip_literal = true;
  } else {
    std::size_t colon = s.find(':');
    if (colon != std::string_view::npos && s.find(':', colon + 1) != std::string_view::npos) return std::nullopt;
    a.host = s.substr(0, colon);
    if (colon != std::string_view::npos) port = s.substr(colon + 1);
    in_addr v4;
    a.ip_literal = inet_pton(AF_INET, std::string(a.host).c_str(), &v4) == 1;
  }
  if (a.host.empty()) return std::nullopt;
  bool ok = false;
  a.port = parse_port(port, ok);
  if (!ok) return std::nullopt;
  return a;
}

// `a` names an admin.hosts entry ("name" = any port, "name:port" = that port;
// a Host without a port means port 80, as a browser leaves it out for http).
bool matches_extra_host(const Authority& a, const std::vector<std::string>& extra_hosts) {
  for (const std::string& entry : extra_hosts) {
    auto e = parse_authority(entry);
    if (!e || !http::iequals(e->host, a.host)) continue;
    if (!e->port || *e->port == a.port.value_or(kHttpDefaultPort)) return true;
  }
  return false;
}

bool allowed(const Authority& a, const std::vector<std::string>& extra_hosts) {
  return a.ip_literal || http::iequals(a.host, "localhost") || matches_extra_host(a, extra_hosts);
}

bool safe_method(http::Method m) { return m == http::Method::Get || m == http::Method::Head; }

}  // namespace

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::Answer: return "answer";
    case Verdict::BadHost: return "bad-host";
    case Verdict::MisdirectedHost: return "misdirected-host";
    case Verdict::CrossOrigin: return "cross-origin";
    case Verdict::CrossSiteFetch: return "cross-site-fetch";
    case Verdict::BadToken: return "bad-token";
  }
  return "?";
}

int status_of(Verdict v) {
  switch (v) {
    case Verdict::Answer: return 200;
    case Verdict::BadHost: return 400;
    case Verdict::MisdirectedHost: return 421;
    case Verdict::CrossOrigin:
    case Verdict::CrossSiteFetch: return 403;
    case Verdict::BadToken: return 401;
  }
  return 500;
}

std::string_view message_of(Verdict v) {
  switch (v) {
    case Verdict::Answer: return "";
    case Verdict::BadHost: return "missing, repeated or malformed Host";
    case Verdict::MisdirectedHost:
      return "this admin listener does not answer to that Host (use an IP address or localhost, or list the name "
             "in admin.hosts)";
    case Verdict::CrossOrigin: return "cross-origin request refused (Origin is not this admin listener)";
    case Verdict::CrossSiteFetch: return "cross-site request refused (Sec-Fetch-Site)";
    case Verdict::BadToken: return "missing or wrong bearer token";
  }
  return "";
}

bool host_allowed(std::string_view host, const std::vector<std::string>& extra_hosts) {
  auto a = parse_authority(host);
  return a && allowed(*a, extra_hosts);
}

bool origin_allowed(std::string_view origin, std::string_view host, const std::vector<std::string>& extra_hosts) {
  // RFC 6454 §7.1: "null" (opaque origins: sandboxed frames, file: pages) or scheme "://" host [":" port].
  constexpr std::string_view kScheme = "http://";
  if (origin.size() <= kScheme.size() || !http::iequals(origin.substr(0, kScheme.size()), kScheme)) return false;
  auto o = parse_authority(origin.substr(kScheme.size()));  // a path or "/" makes it fail: not an origin
  auto h = parse_authority(host);
  if (!o || !h) return false;
  bool same_origin = http::iequals(o->host, h->host) &&
                     o->port.value_or(kHttpDefaultPort) == h->port.value_or(kHttpDefaultPort);
  return same_origin || matches_extra_host(*o, extra_hosts);
}

bool token_matches(std::optional<std::string_view> authorization, std::string_view token) {
  constexpr std::string_view kScheme = "bearer ";
  std::string_view given;
  bool scheme_ok = authorization && authorization->size() >= kScheme.size() &&
                   http::iequals(authorization->substr(0, kScheme.size()), kScheme);
  if (scheme_ok) given = http::trim_ows(authorization->substr(kScheme.size()));
  // Always hash and compare, so a wrong scheme costs the same as a wrong token.
  auto a = sha256(given), b = sha256(token);
  bool equal = CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
  return scheme_ok && !token.empty() && equal;
}

Verdict check_request(const http::RequestHead& req, const config::AdminConfig& admin) {
  std::size_t host_lines = req.headers.count("host");
  auto host = req.headers.get("host");
  if (host_lines > 1 || (host_lines == 0 && req.version_minor >= 1)) return Verdict::BadHost;
  // An HTTP/1.0 request without Host cannot come from a browser (they always
  // send one), so it cannot be DNS rebinding: a `printf | nc` health check.
  if (host) {
    if (!parse_authority(*host)) return Verdict::BadHost;
    if (!host_allowed(*host, admin.hosts)) return Verdict::MisdirectedHost;
  }
  if (!safe_method(req.method)) {
    if (auto origin = req.headers.get("origin"); origin && !(host && origin_allowed(*origin, *host, admin.hosts)))
      return Verdict::CrossOrigin;
    if (auto site = req.headers.get("sec-fetch-site"); site && !http::iequals(*site, "same-origin") &&
                                                        !http::iequals(*site, "none"))
      return Verdict::CrossSiteFetch;
  }
  if (!admin.token.empty() && req.path() != "/healthz" && !token_matches(req.headers.get("authorization"), admin.token))
    return Verdict::BadToken;
  return Verdict::Answer;
}

}  // namespace cachalot::admin
