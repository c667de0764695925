#include "http/target.h"

#include "http/header_map.h"

namespace cachalot::http {

namespace {

constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_hex(char c) noexcept { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
constexpr bool is_unreserved(char c) noexcept {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
constexpr bool is_sub_delim(char c) noexcept {
  switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}

// Every '%' in `s` starts a %XX triplet.
bool escapes_valid(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

TargetError check_path_query(std::string_view pq) noexcept {
  if (pq.find('#') != std::string_view::npos) return TargetError::Fragment;
  std::string_view path = pq.substr(0, pq.find('?'));
  return escapes_valid(path) ? TargetError::None : TargetError::Escape;
}

}  // namespace

std::string_view to_string(TargetError e) noexcept {
  switch (e) {
    case TargetError::None: return "none";
    case TargetError::Fragment: return "fragment";
    case TargetError::Scheme: return "scheme";
    case TargetError::Userinfo: return "userinfo";
    case TargetError::Host: return "host";
    case TargetError::Escape: return "escape";
    case TargetError::Form: return "form";
  }
  return "none";
}

bool valid_host(std::string_view host) noexcept {
  if (host.empty()) return true;
  std::string_view name = host;
  std::string_view port;
  if (host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : host.substr(1, close - 1))
      if (!is_hex(c) && c != ':' && c != '.') return false;
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
    name = {};
  } else {
    const std::size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      name = host.substr(0, colon);
      port = host.substr(colon + 1);
    }
    if (name.empty()) return false;
    for (char c : name)
      if (!is_unreserved(c) && !is_sub_delim(c)) return false;
  }
  if (port.size() > 5) return false;
  for (char c : port)
    if (!is_digit(c)) return false;
  return true;
}

TargetError parse_target(std::string_view t, Method method, Target& out) noexcept {
  out = Target{};
  if (t.empty()) return TargetError::Form;
  if (t.front() == '/') {
    out.path_query = t;
    return check_path_query(t);
  }
  if (t == "*") {
    if (method != Method::Options) return TargetError::Form;
    out.asterisk = true;
    return TargetError::None;
  }
  // absolute-form: scheme "://" authority path-abempty [ "?" query ]
  const std::size_t sep = t.find("://");
  if (sep == std::string_view::npos || sep == 0) return TargetError::Form;
  const std::string_view scheme = t.substr(0, sep);
  if (!is_alpha(scheme.front())) return TargetError::Form;
  for (char c : scheme)
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return TargetError::Form;
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return TargetError::Scheme;
  const std::string_view rest = t.substr(sep + 3);
  const std::size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  if (authority.find('@') != std::string_view::npos) return TargetError::Userinfo;
  if (authority.empty() || !valid_host(authority)) return TargetError::Host;
  out.authority = authority;
  out.path_query = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  return check_path_query(out.path_query);
}

}  // namespace cachalot::http
