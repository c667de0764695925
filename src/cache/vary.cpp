#include "cache/vary.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>

namespace cachalot::cache {

namespace {

// variant_key() runs on every lookup of a Vary'd URI: the helpers are local
// and inline rather than calls per character.
constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// ASCII case-insensitive equality; equal bytes (the common case) cost one compare.
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    const auto folded = static_cast<unsigned char>(x | 0x20);
    if ((x ^ y) != 0x20 || folded < 'a' || folded > 'z') return false;
  }
  return true;
}

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

constexpr bool is_tchar(char ch) noexcept {
  const auto c = static_cast<unsigned char>(ch);
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// How a field's value may be normalised without changing its meaning (§4.1).
enum class FieldKind : uint8_t {
  Opaque,      // unknown syntax: trim and combine lines only
  List,        // case-insensitive list; order may matter
  SortedList,  // case-insensitive list; order carries no meaning
  Accept,      // list of media ranges: type/subtype case-insensitive, parameters kept
};

FieldKind kind_of(std::string_view name) noexcept {
  if (iequals(name, "accept-encoding") || iequals(name, "accept-charset")) return FieldKind::SortedList;
  if (iequals(name, "accept-language")) return FieldKind::List;
  if (iequals(name, "accept")) return FieldKind::Accept;
  return FieldKind::Opaque;
}

// Offsets of list items written into the output string. Up to 32 items live
// on the stack; pathological requests spill to the heap.
struct Span {
  std::size_t off, len;
};
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
  std::size_t size() const noexcept { return n_; }

 private:
  std::array<Span, 32> inline_;  // only the first n_ are ever read
  std::vector<Span> heap_;
  std::size_t n_ = 0;
};

// Appends a trimmed, non-empty list item: OWS around ';' dropped,
// case-folded as `kind` allows, quoted-strings copied verbatim. The result is
// never longer than `item`, so it is written through a pointer into space
// reserved up front.
void append_item(std::string& out, std::string_view item, FieldKind kind) {
  const std::size_t start = out.size();
  out.resize(start + item.size());
  char* const begin = out.data() + start;
  char* p = begin;
  bool fold = true;  // Accept: only the media range (before the first ';') folds
  for (std::size_t i = 0; i < item.size(); ++i) {
    const char c = item[i];
    if (c == '"') {  // quoted-string: verbatim, including quoted-pairs
      *p++ = c;
      while (++i < item.size()) {
        *p++ = item[i];
        if (item[i] == '\\' && i + 1 < item.size()) {
          *p++ = item[++i];
        } else if (item[i] == '"') {
          break;
        }
      }
      continue;
    }
    if (c == ';') {
      while (p > begin && is_ows(p[-1])) --p;
      *p++ = ';';
      while (i + 1 < item.size() && is_ows(item[i + 1])) ++i;
      if (kind == FieldKind::Accept) fold = false;
      continue;
    }
    *p++ = fold ? ascii_lower(c) : c;
  }
  out.resize(static_cast<std::size_t>(p - out.data()));
}

// Calls f(item) for each trimmed, non-empty item of a comma-separated list,
// splitting only at commas outside quoted-strings.
template <class F>
void for_each_item(std::string_view v, F&& f) {
  std::size_t begin = 0;
  bool quoted = false;
  for (std::size_t i = 0; i <= v.size(); ++i) {
    if (i < v.size()) {
      const char c = v[i];
      if (quoted) {
        if (c == '\\' && i + 1 < v.size()) {
          ++i;  // quoted-pair: the next byte cannot end the string
        } else if (c == '"') {
          quoted = false;
        }
        continue;
      }
      if (c == '"') {
        quoted = true;
        continue;
      }
      if (c != ',') continue;
    }
    std::string_view item = http::trim_ows(v.substr(begin, std::min(i, v.size()) - begin));
    if (!item.empty()) f(item);
    begin = i + 1;
  }
}

// Appends the normalised value of every `name` field line; returns false if
// there is none.
bool append_value(std::string& out, std::string_view name, const http::HeaderMap& headers) {
  const FieldKind kind = kind_of(name);
  const std::size_t start = out.size();
  bool present = false;
  Spans items;
  for (auto f : headers) {
    if (!iequals(f.name, name)) continue;
    present = true;
    if (kind == FieldKind::Opaque) {
      std::string_view v = http::trim_ows(f.value);
      if (v.empty()) continue;
      if (out.size() > start) out.append(", ");
      out.append(v);
      continue;
    }
    for_each_item(f.value, [&](std::string_view item) {
      if (out.size() > start) out.push_back(',');
      const std::size_t off = out.size();
      append_item(out, item, kind);
      items.push({off, out.size() - off});
    });
  }
  if (kind == FieldKind::SortedList && items.size() > 1) {
    // Sort the items in place: append them in order after the region, then
    // drop the region. Reserving first keeps the views valid while appending.
    const std::size_t region = out.size() - start;
    out.reserve(out.size() + region);
    auto view = [&out](const Span& s) { return std::string_view(out.data() + s.off, s.len); };
    std::sort(items.begin(), items.end(), [&](const Span& a, const Span& b) { return view(a) < view(b); });
    for (const Span& s : items) {
      if (out.size() > start + region) out.push_back(',');
      out.append(out.data() + s.off, s.len);
    }
    out.erase(start, region);
  }
  return present;
}

}  // namespace

VarySpec parse_vary(const http::HeaderMap& resp_headers) {
  VarySpec spec;
  for (auto f : resp_headers) {
    if (!iequals(f.name, "vary")) continue;
    for_each_item(f.value, [&](std::string_view member) {
      if (member == "*" || !std::all_of(member.begin(), member.end(), is_tchar)) {
        spec.star = true;
        return;
      }
      spec.names.push_back(http::to_lower(member));
    });
  }
  std::sort(spec.names.begin(), spec.names.end());
  spec.names.erase(std::unique(spec.names.begin(), spec.names.end()), spec.names.end());
  return spec;
}

void append_field_entry(std::string& out, std::string_view name, const http::HeaderMap& headers) {
  const std::size_t name_start = out.size();
  out.append(name);
  for (std::size_t i = name_start; i < out.size(); ++i) out[i] = ascii_lower(out[i]);
  out.push_back(':');
  const std::size_t value_start = out.size();
  if (!append_value(out, name, headers)) {
    out.push_back('!');
    return;
  }
  // Prefix the value with its length: "<len>:".
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits) - 1, out.size() - value_start);
  *end++ = ':';
  out.insert(value_start, digits, static_cast<std::size_t>(end - digits));
}

std::string variant_key(const VarySpec& spec, const http::HeaderMap& req_headers) {
  return variant_key(spec.names, req_headers);
}

std::string variant_key(const std::vector<std::string>& vary_names, const http::HeaderMap& req_headers) {
  std::string key;
  if (vary_names.empty()) return key;
  key.reserve(vary_names.size() * 48);
  for (const std::string& name : vary_names) {
    if (!key.empty()) key.push_back('\n');
    append_field_entry(key, name, req_headers);
  }
  return key;
}

std::string variant_key_joined(std::string_view joined, const http::HeaderMap& req_headers) {
  std::string key;
  if (joined.empty()) return key;
  key.reserve(48);
  while (!joined.empty()) {
    const std::size_t nl = joined.find('\n');
    if (!key.empty()) key.push_back('\n');
    append_field_entry(key, joined.substr(0, nl), req_headers);
    if (nl == std::string_view::npos) break;
    joined.remove_prefix(nl + 1);
  }
  return key;
}

}  // namespace cachalot::cache
