#include "cache/invalidation.h"

#include <algorithm>

namespace cachalot::cache {

namespace {

using http::iequals;

constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_scheme_char(char c) noexcept {
  return is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

// An origin-form path for `rest` ("" and "?q" get the root path "/").
std::string as_origin_form(std::string_view rest) {
  return !rest.empty() && rest.front() == '/' ? std::string(rest) : "/" + std::string(rest);
}

// A URI reference split the way §4.4 needs it.
struct Reference {
  bool valid = false;
  bool has_authority = false;
  std::string_view authority;  // host[:port], userinfo removed
  std::string_view rest;       // path and query (may be relative or empty)
};

Reference split_reference(std::string_view ref) noexcept {
  Reference r;
  ref = http::trim_ows(ref);
  ref = ref.substr(0, ref.find('#'));
  if (ref.empty()) return r;
  // scheme ":" (RFC 3986 §3.1); only hierarchical "scheme://" references can name our origin.
  std::size_t i = 0;
  if (is_alpha(ref[0])) {
    while (i < ref.size() && is_scheme_char(ref[i])) ++i;
    if (i < ref.size() && ref[i] == ':') {
      ref.remove_prefix(i + 1);
      if (ref.substr(0, 2) != "//") return r;  // "mailto:x", "urn:y": never same-origin
    }
  }
  if (ref.substr(0, 2) == "//") {
    ref.remove_prefix(2);
    const std::size_t end = std::min(ref.find_first_of("/?"), ref.size());
    r.has_authority = true;
    r.authority = ref.substr(0, end);
    const std::size_t at = r.authority.rfind('@');
    if (at != std::string_view::npos) r.authority.remove_prefix(at + 1);
    ref.remove_prefix(end);
  }
  r.valid = true;
  r.rest = ref;
  return r;
}

// host with a default port removed, for comparison.
std::string_view comparable_host(std::string_view authority) noexcept {
  for (std::string_view port : {std::string_view(":80"), std::string_view(":443")})
    if (authority.size() > port.size() && authority.substr(authority.size() - port.size()) == port)
      return authority.substr(0, authority.size() - port.size());
  return authority;
}

// RFC 3986 §5.2.2 for a reference without authority, against an origin-form base.
std::string resolve(std::string_view base, std::string_view rel) {
  const std::string_view base_path = base.substr(0, base.find('?'));
  if (rel.empty()) return std::string(base);
  if (rel.front() == '/') return std::string(rel);
  if (rel.front() == '?') return std::string(base_path).append(rel);
  // merge (§5.2.3): the base path up to its last '/', then the reference.
  const std::size_t slash = base_path.rfind('/');
  std::string out(slash == std::string_view::npos ? std::string_view("/") : base_path.substr(0, slash + 1));
  return out.append(rel);
}

void add_unique(std::vector<std::string>& out, std::string path) {
  if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(std::move(path));
}

}  // namespace

bool invalidates(http::Method method, int status) noexcept {
  return !http::is_safe(method) && status >= 200 && status <= 399;
}

std::vector<std::string> invalidation_targets(std::string_view target, const http::HeaderMap& resp,
                                              std::string_view request_host) {
  std::vector<std::string> out;
  // The target itself: origin-form, or the path and query of an absolute-form target.
  std::string base(target.substr(0, target.find('#')));
  if (base.empty() || base.front() != '/') base = as_origin_form(split_reference(base).rest);
  out.push_back(base);

  const std::string_view host = comparable_host(request_host);
  for (std::string_view field : {std::string_view("location"), std::string_view("content-location")}) {
    const auto value = resp.get(field);
    if (!value) continue;
    const Reference r = split_reference(*value);
    if (!r.valid) continue;
    if (r.has_authority) {
      if (!iequals(comparable_host(r.authority), host)) continue;  // another origin: never (§4.4)
      add_unique(out, as_origin_form(r.rest));
    } else {
      add_unique(out, resolve(base, r.rest));
    }
  }
  return out;
}

}  // namespace cachalot::cache
