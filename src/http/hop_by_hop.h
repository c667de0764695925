// Hop-by-hop fields (RFC 9110 §7.6.1): never forwarded by a proxy.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "http/header_map.h"

namespace cachalot::http {

// True for the fixed hop-by-hop names: Connection, Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade.
bool is_hop_by_hop(std::string_view name) noexcept;

// The field names listed in Connection (views into `h`). Up to kMax are kept;
// beyond that, `overflow` is set and callers fall back to a slow path.
struct ConnectionTokens {
  static constexpr std::size_t kMax = 16;
  std::array<std::string_view, kMax> names{};
  std::size_t count = 0;
  bool overflow = false;
  bool contains(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < count; ++i)
      if (iequals(names[i], name)) return true;
    return false;
  }
};
ConnectionTokens connection_tokens(const HeaderMap& h) noexcept;

// Removes the fixed hop-by-hop fields and every field named in Connection.
void strip_hop_by_hop(HeaderMap& h);
// The same without the token bound: copies the names Connection lists (the
// path for more than ConnectionTokens::kMax of them).
void strip_hop_by_hop_slow(HeaderMap& h);

// strip_hop_by_hop(), and every field for which also(name) is true, in one
// pass over the fields (the tokens are views into `h`, whose bytes remove_if
// leaves in place until its pass is over).
template <class Also>
void strip_hop_by_hop_and(HeaderMap& h, Also&& also) {
  const ConnectionTokens tokens = connection_tokens(h);
  if (tokens.overflow) strip_hop_by_hop_slow(h);  // then only `also` is left to apply
  h.remove_if([&](const HeaderMap::Field& f) {
    return is_hop_by_hop(f.name) || (!tokens.overflow && tokens.contains(f.name)) || also(f.name);
  });
}

// Appends "Name: value\r\n" for every end-to-end field of `h` (no hop-by-hop
// field, none named in Connection) for which skip(name) is false: one pass,
// no copy of the map. This is how heads are forwarded.
template <class Skip>
void serialize_end_to_end(const HeaderMap& h, std::string& out, Skip&& skip) {
  ConnectionTokens tokens = connection_tokens(h);
  if (tokens.overflow) {
    HeaderMap copy = h;
    strip_hop_by_hop(copy);
    for (auto f : copy) {
      if (skip(f.name)) continue;
      append_field(out, f.name, f.value);
    }
    return;
  }
  for (auto f : h) {
    if (is_hop_by_hop(f.name) || tokens.contains(f.name) || skip(f.name)) continue;
    append_field(out, f.name, f.value);
  }
}

}  // namespace cachalot::http
