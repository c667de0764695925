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
  Opaque,          // unknown syntax: trim and combine lines only
  List,            // case-insensitive list; order may matter
  SortedList,      // case-insensitive list; order carries no meaning
  Accept,          // list of media ranges: type/subtype case-insensitive, parameters kept
  AcceptEncoding,  // weighted codings (RFC 9110 §12.5.3); List semantics when it does not parse
  AcceptLanguage,  // weighted language ranges (RFC 9110 §12.5.4); List semantics when it does not parse
};

FieldKind kind_of(std::string_view name) noexcept {
  if (iequals(name, "accept-encoding")) return FieldKind::AcceptEncoding;
  if (iequals(name, "accept-charset")) return FieldKind::SortedList;
  if (iequals(name, "accept-language")) return FieldKind::AcceptLanguage;
  if (iequals(name, "accept")) return FieldKind::Accept;
  return FieldKind::Opaque;
}

// Up to 32 elements live on the stack; pathological requests spill to the heap.
template <class T>
class InlineVec {
 public:
  void push(const T& v) {
    if (n_ < inline_.size() && heap_.empty()) {
      inline_[n_++] = v;
      return;
    }
    if (heap_.empty()) heap_.assign(inline_.begin(), inline_.begin() + n_);
    heap_.push_back(v);
    ++n_;
  }
  T* begin() noexcept { return heap_.empty() ? inline_.data() : heap_.data(); }
  T* end() noexcept { return begin() + n_; }
  std::size_t size() const noexcept { return n_; }

 private:
  std::array<T, 32> inline_;  // only the first n_ are ever read (left uninitialised: this is the lookup path)
  std::vector<T> heap_;
  std::size_t n_ = 0;
};

// Offsets of list items written into the output string.
struct Span {
  std::size_t off, len;
};
using Spans = InlineVec<Span>;

// ---- weighted lists: Accept-Encoding, Accept-Language ----

constexpr int kQOne = 1000;  // weights in thousandths: "q=0.5" is 500, no weight is 1000

// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ),
// in thousandths; -1 when invalid.
int parse_qvalue(std::string_view s) noexcept {
  if (s.empty() || (s[0] != '0' && s[0] != '1')) return -1;
  const bool one = s[0] == '1';
  if (s.size() == 1) return one ? kQOne : 0;
  if (s[1] != '.' || s.size() > 5) return -1;
  int v = 0, scale = 100;
  for (std::size_t i = 2; i < s.size(); ++i, scale /= 10) {
    const char c = s[i];
    if (c < '0' || c > '9' || (one && c != '0')) return -1;
    v += (c - '0') * scale;
  }
  return one ? kQOne : v;
}

// One parsed item: the normalised text written into the output string
// ("gzip", "gzip;q=0.5"), how much of it is the name, and its weight.
struct Weighted {
  std::size_t off, len, name_len;
  int q;
};
using WeightedItems = InlineVec<Weighted>;

// A list item of the shape `token [ OWS ";" OWS "q=" qvalue ]` (the q is
// case-insensitive, RFC 9110 §12.4.2): its name as written and its weight.
struct WeightedItem {
  std::string_view name;
  int q = kQOne;
};
bool parse_weighted(std::string_view item, WeightedItem& out) noexcept {
  std::size_t i = 0;
  while (i < item.size() && is_tchar(item[i])) ++i;
  if (i == 0) return false;
  out.name = item.substr(0, i);
  out.q = kQOne;
  std::string_view rest = http::trim_ows(item.substr(i));
  if (rest.empty()) return true;
  if (rest[0] != ';') return false;
  rest = http::trim_ows(rest.substr(1));
  if (rest.size() < 2 || (rest[0] != 'q' && rest[0] != 'Q') || rest[1] != '=') return false;
  out.q = parse_qvalue(rest.substr(2));
  return out.q >= 0;
}

// RFC 9110 §8.4.1.1, §8.4.1.3: "x-gzip" and "x-compress" are "gzip" and
// "compress"; codings are case-insensitive (§8.4.1). Returns the canonical
// name for an alias, else "" (the name itself, lower-cased, is canonical).
std::string_view coding_alias(std::string_view name) noexcept {
  if (iequals(name, "x-gzip")) return "gzip";
  if (iequals(name, "x-compress")) return "compress";
  return {};
}

// Appends the normalised text of a parsed item to `out`: the name lower-cased
// (codings and language ranges are case-insensitive: RFC 9110 §8.4.1, RFC 4647
// §2), Accept-Encoding aliases replaced, and ";q=" with the weight's shortest
// form ("q=1.0" or "q=1" as no weight, "q=0.50" as "q=0.5").
void append_weighted(std::string& out, const WeightedItem& item, FieldKind kind, Weighted& w) {
  const std::string_view name = item.name;
  const int q = item.q;
  w.off = out.size();
  w.q = q;
  if (std::string_view alias = kind == FieldKind::AcceptEncoding ? coding_alias(name) : ""; !alias.empty()) {
    out.append(alias);
  } else {
    for (char c : name) out.push_back(ascii_lower(c));
  }
  w.name_len = out.size() - w.off;
  if (q < kQOne) {
    out.append(";q=0");
    if (q > 0) {
      out.push_back('.');
      for (int scale = 100, rem = q; rem > 0; scale /= 10) {
        out.push_back(static_cast<char>('0' + rem / scale));
        rem %= scale;
      }
    }
  }
  w.len = out.size() - w.off;
}

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

bool append_value_as(std::string& out, std::string_view name, const http::HeaderMap& headers, FieldKind kind);

// The normalised weighted list of every `name` field line (see vary.h for the
// rules and why they differ between the two fields), appended to `out`.
// Returns false, appending nothing, if some item does not parse.
bool append_weighted_list(std::string& out, std::string_view name, const http::HeaderMap& headers, FieldKind kind) {
  const std::size_t start = out.size();
  WeightedItems items;
  bool ok = true;
  for (auto f : headers) {
    if (!ok) break;
    if (!iequals(f.name, name)) continue;
    for_each_item(f.value, [&](std::string_view item) {
      WeightedItem parsed;
      if (!ok || !parse_weighted(item, parsed)) {
        ok = false;
        return;
      }
      Weighted w{};
      append_weighted(out, parsed, kind, w);
      items.push(w);
    });
  }
  if (!ok) {
    out.resize(start);
    return false;
  }
  // Build the result after the scratch region, then drop the region. It is
  // never longer than the region, so reserving twice keeps offsets valid.
  const std::size_t region = out.size() - start;
  out.reserve(out.size() + region);
  auto text = [&out](const Weighted& w) { return std::string_view(out.data() + w.off, w.len); };
  auto name_of = [&out](const Weighted& w) { return std::string_view(out.data() + w.off, w.name_len); };
  if (kind == FieldKind::AcceptEncoding) {
    std::sort(items.begin(), items.end(), [&](const Weighted& a, const Weighted& b) { return text(a) < text(b); });
  } else {
    // Descending weight; equal weights keep their order (some servers read it
    // as priority, RFC 9110 §12.5.4), except among q=0, where it means nothing.
    std::stable_sort(items.begin(), items.end(), [&](const Weighted& a, const Weighted& b) {
      if (a.q != b.q) return a.q > b.q;
      return a.q == 0 && name_of(a) < name_of(b);
    });
  }
  auto dropped = [&](const Weighted& w) {
    if (kind != FieldKind::AcceptEncoding || w.q != 0) return false;
    const std::string_view n = name_of(w);
    if (n == "*" || n == "identity") return false;  // their q=0 excludes what is not listed
    // Kept when "*" would admit the coding, or it is also listed with a weight (ambiguous).
    for (const Weighted& o : items)
      if (o.q > 0 && (name_of(o) == "*" || name_of(o) == n)) return false;
    return true;
  };
  const std::size_t result = out.size();
  for (const Weighted* it = items.begin(); it != items.end(); ++it) {
    if (dropped(*it)) continue;
    bool duplicate = false;
    for (const Weighted* prev = items.begin(); prev != it && !duplicate; ++prev)
      duplicate = text(*prev) == text(*it);
    if (duplicate) continue;
    if (out.size() > result) out.push_back(',');
    out.append(out.data() + it->off, it->len);
  }
  out.erase(start, region);
  return true;
}

// Appends the normalised value of every `name` field line; returns false if
// there is none.
bool append_value(std::string& out, std::string_view name, const http::HeaderMap& headers) {
  const FieldKind kind = kind_of(name);
  if (kind == FieldKind::AcceptEncoding || kind == FieldKind::AcceptLanguage) {
    if (!headers.has(name)) return false;
    if (append_weighted_list(out, name, headers, kind)) return true;
    // Not a list of weighted tokens: normalise it as a list with unknown items.
    return append_value_as(out, name, headers,
                           kind == FieldKind::AcceptEncoding ? FieldKind::SortedList : FieldKind::List);
  }
  return append_value_as(out, name, headers, kind);
}

bool append_value_as(std::string& out, std::string_view name, const http::HeaderMap& headers, FieldKind kind) {
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

namespace {

// The weight the client's Accept-Encoding gives `coding` (lower-case,
// canonical) by listing it, -1 when it does not list it. Listed more than
// once (ambiguous), the lowest weight counts.
int listed_weight(const http::HeaderMap& req_headers, std::string_view coding) {
  int q = -1;
  for (auto f : req_headers) {
    if (!iequals(f.name, "accept-encoding")) continue;
    for_each_item(f.value, [&](std::string_view item) {
      WeightedItem w;
      if (!parse_weighted(item, w)) return;
      const std::string_view alias = coding_alias(w.name);
      if (!iequals(alias.empty() ? w.name : alias, coding)) return;
      q = q < 0 ? w.q : std::min(q, w.q);
    });
  }
  return q;
}

}  // namespace

bool reduce_accept_encoding(const http::HeaderMap& req_headers, const std::vector<std::string>& codings,
                            std::string& out) {
  out.clear();
  if (codings.empty() || !req_headers.has("accept-encoding")) return false;
  bool parses = true;
  for (auto f : req_headers) {
    if (!iequals(f.name, "accept-encoding")) continue;
    for_each_item(f.value, [&](std::string_view item) {
      WeightedItem w;
      parses = parses && parse_weighted(item, w);
    });
  }
  if (!parses) return false;
  // RFC 9110 §12.5.3: a listed coding is acceptable unless its weight is 0;
  // one not listed takes the weight of "*", or is not acceptable without it.
  const int star = listed_weight(req_headers, "*");
  for (const auto& configured : codings) {
    const std::string_view alias = coding_alias(configured);
    const std::string_view coding = alias.empty() ? std::string_view(configured) : alias;
    int q = listed_weight(req_headers, coding);
    if (q < 0) q = std::max(star, 0);
    if (q == 0) continue;
    if (!out.empty()) out.append(", ");
    for (char c : coding) out.push_back(ascii_lower(c));
  }
  // An unencoded response is acceptable by default unless "identity;q=0" (or "*;q=0"
  // without an identity entry) excludes it: keep that exclusion.
  int identity = listed_weight(req_headers, "identity");
  if (identity < 0) identity = star < 0 ? kQOne : star;
  if (identity == 0) out.append(out.empty() ? "identity;q=0" : ", identity;q=0");
  return true;
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
