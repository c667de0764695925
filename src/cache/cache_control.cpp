#include "cache/cache_control.h"

#include <algorithm>
#include <array>

#include "http/structured_fields.h"

namespace cachalot::cache {

namespace {

// This runs on every request and response, so the helpers are local and
// inline: one table lookup per byte, no out-of-line call per character.

// tchar (RFC 9110 §5.6.2), as a table.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 32] = true;
  for (unsigned char c : std::string_view("!#$%&'*+-.^_`|~")) t[c] = true;
  return t;
}();
constexpr bool is_tchar(char c) noexcept { return kTchar[static_cast<unsigned char>(c)]; }

// `s` equals `lower` (an all-lower-case literal) ignoring ASCII case.
constexpr bool iequals(std::string_view s, std::string_view lower) noexcept {
  if (s.size() != lower.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c) != lower[i]) return false;
  }
  return true;
}

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

// One list element: `name [ "=" ( token / quoted-string ) ]`.
struct Directive {
  std::string_view name;
  std::string_view arg;  // a quoted-string's content, escapes still in place
  bool has_arg = false;
  bool quoted = false;
  bool clean = true;  // false if the element was malformed (unterminated quote, trailing junk)
};

// `s[i]` is '"'. Moves `i` past the closing quote; `end` is the closing
// quote's index (or s.size() if there is none). Returns whether it was closed.
bool scan_quoted(std::string_view s, std::size_t& i, std::size_t& end) noexcept {
  ++i;
  while (i < s.size()) {
    if (s[i] == '"') {
      end = i++;
      return true;
    }
    i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;  // quoted-pair
  }
  end = s.size();
  return false;
}

// Calls f(const Directive&) for every named element of a `#cache-directive`
// list (RFC 9110 §5.6.1: empty elements are ignored). Malformed elements are
// resynchronised at the next comma outside a quoted-string. Every iteration
// consumes at least one byte, so any input terminates.
template <class F>
void for_each_directive(std::string_view s, F&& f) {
  const std::size_t n = s.size();
  std::size_t i = 0;
  auto skip_ows = [&] {
    while (i < n && is_ows(s[i])) ++i;
  };
  while (i < n) {
    while (i < n && (s[i] == ',' || is_ows(s[i]))) ++i;
    if (i == n) break;
    Directive d;
    const std::size_t name_begin = i;
    while (i < n && is_tchar(s[i])) ++i;
    d.name = s.substr(name_begin, i - name_begin);
    skip_ows();  // BWS around "=" is not in the grammar; tolerating it costs nothing
    if (i < n && s[i] == '=') {
      ++i;
      skip_ows();
      d.has_arg = true;
      if (i < n && s[i] == '"') {
        d.quoted = true;
        const std::size_t begin = i + 1;
        std::size_t end = 0;
        if (!scan_quoted(s, i, end)) d.clean = false;
        d.arg = s.substr(begin, end - begin);
      } else {
        const std::size_t begin = i;
        while (i < n && is_tchar(s[i])) ++i;
        d.arg = s.substr(begin, i - begin);
      }
    }
    skip_ows();
    if (i < n && s[i] != ',') {
      d.clean = false;
      while (i < n && s[i] != ',') {
        if (s[i] == '"') {
          std::size_t end = 0;
          scan_quoted(s, i, end);
        } else {
          ++i;
        }
      }
    }
    if (!d.name.empty()) f(d);
  }
}

// The argument as delta-seconds, or nullopt if absent or invalid.
std::optional<int64_t> delta_arg(const Directive& d) noexcept {
  if (!d.has_arg || !d.clean) return std::nullopt;
  return parse_delta_seconds(d.arg);
}

// Directives that only loosen caching are honoured only when well-formed and
// argument-free; restrictive ones are honoured however they are written.
bool permissive_ok(const Directive& d) noexcept { return d.clean && !d.has_arg; }

// Appends the field names of a qualified no-cache / private argument (a
// `#field-name` list, lower-cased, de-duplicated). Returns false if the list
// is empty or holds something that is not a field name: the caller then reads
// the directive as unqualified.
bool add_field_names(const Directive& d, std::vector<std::string>& out) {
  if (!d.clean) return false;
  std::vector<std::string> names;
  std::string current;
  bool ok = true;
  auto flush = [&] {
    std::string_view name = http::trim_ows(current);
    if (name.empty()) {  // empty list elements are ignored (RFC 9110 §5.6.1)
    } else if (!std::all_of(name.begin(), name.end(), is_tchar)) {
      ok = false;
    } else {
      std::string lowered = http::to_lower(name);
      if (std::find(names.begin(), names.end(), lowered) == names.end()) names.push_back(std::move(lowered));
    }
    current.clear();
  };
  for (std::size_t i = 0; i < d.arg.size(); ++i) {
    char c = d.arg[i];
    if (d.quoted && c == '\\' && i + 1 < d.arg.size()) c = d.arg[++i];  // quoted-pair
    if (c == ',') {
      flush();
    } else {
      current.push_back(c);
    }
  }
  flush();
  if (!ok || names.empty()) return false;
  for (auto& n : names)
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(std::move(n));
  return true;
}

// Response parsing state: the struct plus which directives were already seen,
// so the first occurrence wins even when it was invalid and left a field unset.
struct ResponseParser {
  ResponseCacheControl cc;
  bool seen_swr = false;
  bool seen_sie = false;

  void feed(std::string_view value) {
    for_each_directive(value, [this](const Directive& d) { apply(d); });
  }

  void apply(const Directive& d) {
    const std::string_view n = d.name;
    if (iequals(n, "max-age")) {
      if (!cc.max_age) cc.max_age = delta_arg(d).value_or(0);  // invalid: stale (§4.2.1)
    } else if (iequals(n, "s-maxage")) {
      if (!cc.s_maxage) cc.s_maxage = delta_arg(d).value_or(0);
    } else if (iequals(n, "no-cache")) {
      if (!d.has_arg || !add_field_names(d, cc.no_cache_fields)) cc.no_cache = true;
    } else if (iequals(n, "private")) {
      if (!d.has_arg || !add_field_names(d, cc.private_fields)) cc.private_ = true;
    } else if (iequals(n, "no-store")) {
      cc.no_store = true;
    } else if (iequals(n, "public")) {
      cc.public_ = cc.public_ || permissive_ok(d);
    } else if (iequals(n, "must-revalidate")) {
      cc.must_revalidate = true;
    } else if (iequals(n, "proxy-revalidate")) {
      cc.proxy_revalidate = true;
    } else if (iequals(n, "stale-while-revalidate")) {
      if (!seen_swr) cc.stale_while_revalidate = delta_arg(d);  // invalid: no window
      seen_swr = true;
    } else if (iequals(n, "stale-if-error")) {
      if (!seen_sie) cc.stale_if_error = delta_arg(d);
      seen_sie = true;
    } else if (iequals(n, "must-understand")) {
      cc.must_understand = cc.must_understand || permissive_ok(d);  // it loosens no-store (§5.2.2.3)
    } else if (iequals(n, "no-transform")) {
      cc.no_transform = true;
    } else if (iequals(n, "immutable")) {
      cc.immutable = cc.immutable || permissive_ok(d);
    }
  }
};

struct RequestParser {
  RequestCacheControl cc;
  bool seen_max_stale = false;
  bool seen_sie = false;

  void feed(std::string_view value) noexcept {
    for_each_directive(value, [this](const Directive& d) { apply(d); });
  }

  void apply(const Directive& d) noexcept {
    const std::string_view n = d.name;
    if (iequals(n, "max-age")) {
      if (!cc.max_age) cc.max_age = delta_arg(d).value_or(0);  // invalid: validate now
    } else if (iequals(n, "max-stale")) {
      if (!seen_max_stale) {
        if (!d.has_arg)
          cc.max_stale = d.clean ? std::optional<int64_t>(kMaxStaleAny) : std::nullopt;
        else
          cc.max_stale = delta_arg(d);  // invalid: accept no staleness
      }
      seen_max_stale = true;
    } else if (iequals(n, "min-fresh")) {
      if (!cc.min_fresh) cc.min_fresh = delta_arg(d).value_or(kDeltaSecondsMax);  // invalid: nothing is fresh enough
    } else if (iequals(n, "no-cache")) {
      cc.no_cache = true;
    } else if (iequals(n, "no-store")) {
      cc.no_store = true;
    } else if (iequals(n, "only-if-cached")) {
      cc.only_if_cached = true;
    } else if (iequals(n, "no-transform")) {
      cc.no_transform = true;
    } else if (iequals(n, "stale-if-error")) {
      if (!seen_sie) cc.stale_if_error = delta_arg(d);
      seen_sie = true;
    }
  }
};

// ---- targeted fields (RFC 9213) ----

// The member's value when it is an Item of type T; nullptr otherwise.
template <class T>
const T* item_of(const http::sf::DictMember& m) noexcept {
  const auto* item = std::get_if<http::sf::Item>(&m.value);
  return item ? std::get_if<T>(&item->value) : nullptr;
}

bool is_true(const http::sf::DictMember& m) noexcept {
  const bool* b = item_of<bool>(m);
  return b && *b;
}

// A delta-seconds directive: an Integer >= 0, clamped (RFC 9111 §1.2.2).
std::optional<int64_t> delta_member(const http::sf::DictMember& m) noexcept {
  const int64_t* v = item_of<int64_t>(m);
  if (!v || *v < 0) return std::nullopt;
  return std::min(*v, kDeltaSecondsMax);
}

// no-cache / private: true for the unqualified form, or field names in a
// String or Token ("a, b"; lower-cased, de-duplicated, appended to `out`).
// Returns false when the value has another type or is not a list of names.
bool qualified_member(const http::sf::DictMember& m, bool& unqualified, std::vector<std::string>& out) {
  if (is_true(m)) {
    unqualified = true;
    return true;
  }
  std::string_view list;
  if (const auto* s = item_of<std::string>(m))
    list = *s;
  else if (const auto* t = item_of<http::sf::Token>(m))
    list = t->value;
  else
    return false;
  std::vector<std::string> names;
  while (true) {
    const std::size_t comma = list.find(',');
    const std::string_view name = http::trim_ows(list.substr(0, comma));
    if (!name.empty()) {
      if (!std::all_of(name.begin(), name.end(), is_tchar)) return false;
      std::string lowered = http::to_lower(name);
      if (std::find(names.begin(), names.end(), lowered) == names.end()) names.push_back(std::move(lowered));
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  if (names.empty()) return false;
  for (auto& n : names)
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(std::move(n));
  return true;
}

std::optional<ResponseCacheControl> targeted_from(const std::optional<http::sf::Dictionary>& dict) {
  // RFC 9213 §2.1: unparsable or empty -> ignored, as if absent.
  if (!dict || dict->empty()) return std::nullopt;
  ResponseCacheControl cc;
  cc.targeted = true;
  for (const auto& m : *dict) {
    const std::string_view n = m.key;  // sf keys are lower-case already
    auto delta = [&](std::optional<int64_t>& field) {
      field = delta_member(m);
      return field.has_value();
    };
    auto flag = [&](bool& field) {
      field = is_true(m);
      return field;
    };
    bool ok = true;
    if (n == "max-age") {
      ok = delta(cc.max_age);
    } else if (n == "s-maxage") {
      ok = delta(cc.s_maxage);
    } else if (n == "stale-while-revalidate") {
      ok = delta(cc.stale_while_revalidate);
    } else if (n == "stale-if-error") {
      ok = delta(cc.stale_if_error);
    } else if (n == "no-store") {
      ok = flag(cc.no_store);
    } else if (n == "must-revalidate") {
      ok = flag(cc.must_revalidate);
    } else if (n == "proxy-revalidate") {
      ok = flag(cc.proxy_revalidate);
    } else if (n == "public") {
      ok = flag(cc.public_);
    } else if (n == "must-understand") {
      ok = flag(cc.must_understand);
    } else if (n == "no-transform") {
      ok = flag(cc.no_transform);
    } else if (n == "immutable") {
      ok = flag(cc.immutable);
    } else if (n == "no-cache") {
      ok = qualified_member(m, cc.no_cache, cc.no_cache_fields);
    } else if (n == "private") {
      ok = qualified_member(m, cc.private_, cc.private_fields);
    }
    // RFC 9213 §2.1: a value of the wrong type is not consumed; the field is ignored.
    if (!ok) return std::nullopt;
  }
  return cc;
}

}  // namespace

std::optional<ResponseCacheControl> parse_targeted_cache_control(std::string_view value) {
  return targeted_from(http::sf::parse_dictionary(value));
}

std::optional<ResponseCacheControl> parse_targeted_cache_control(const http::HeaderMap& headers,
                                                                 std::string_view field) {
  return targeted_from(http::sf::parse_dictionary(headers, field));
}

ResponseCacheControl select_response_cache_control(const http::HeaderMap& headers,
                                                   const std::vector<std::string>& targets) {
  for (const auto& field : targets)
    if (auto cc = parse_targeted_cache_control(headers, field)) return std::move(*cc);
  return parse_response_cache_control(headers);
}

bool forward_targeted_field(std::string_view name, const std::vector<std::string>& drop) noexcept {
  for (const auto& d : drop)
    if (http::iequals(name, d)) return false;
  return true;
}

std::optional<int64_t> parse_delta_seconds(std::string_view s) noexcept {
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    // Keep scanning after saturating so "99999999999x" is still rejected.
    if (v < kDeltaSecondsMax) v = v * 10 + (c - '0');
  }
  return std::min(v, kDeltaSecondsMax);
}

ResponseCacheControl parse_response_cache_control(std::string_view value) {
  ResponseParser p;
  p.feed(value);
  return std::move(p.cc);
}

ResponseCacheControl parse_response_cache_control(const http::HeaderMap& headers) {
  ResponseParser p;
  for (auto f : headers)
    if (iequals(f.name, "cache-control")) p.feed(f.value);
  return std::move(p.cc);
}

RequestCacheControl parse_request_cache_control(std::string_view value) noexcept {
  RequestParser p;
  p.feed(value);
  return p.cc;
}

RequestCacheControl parse_request_cache_control(const http::RequestHead& req) noexcept {
  RequestParser p;
  bool has_cache_control = false;
  bool pragma_no_cache = false;
  for (auto f : req.headers) {
    if (iequals(f.name, "cache-control")) {
      has_cache_control = true;
      p.feed(f.value);
    } else if (!pragma_no_cache && iequals(f.name, "pragma")) {
      for_each_directive(f.value, [&](const Directive& d) { pragma_no_cache |= iequals(d.name, "no-cache"); });
    }
  }
  // §5.4: Pragma: no-cache means Cache-Control: no-cache only when the request
  // has no Cache-Control field at all.
  if (!has_cache_control && pragma_no_cache) p.cc.no_cache = true;
  return p.cc;
}

}  // namespace cachalot::cache
