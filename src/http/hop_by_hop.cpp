#include "http/hop_by_hop.h"

#include <string>
#include <vector>

namespace cachalot::http {

bool is_hop_by_hop(std::string_view n) noexcept {
  switch (n.size()) {
    case 2: return iequals(n, "te");
    case 7: return iequals(n, "trailer") || iequals(n, "upgrade");
    case 10: return iequals(n, "connection") || iequals(n, "keep-alive");
    case 16: return iequals(n, "proxy-connection");
    case 17: return iequals(n, "transfer-encoding");
    default: return false;
  }
}

ConnectionTokens connection_tokens(const HeaderMap& h) noexcept {
  ConnectionTokens t;
  for (auto f : h) {
    if (!iequals(f.name, "connection")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      auto comma = v.find(',');
      std::string_view tok = trim_ows(v.substr(0, comma));
      if (!tok.empty()) {
        if (t.count == ConnectionTokens::kMax) {
          t.overflow = true;
          return t;
        }
        t.names[t.count++] = tok;
      }
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return t;
}

// Fields named by Connection are hop-by-hop too (RFC 9110 §7.6.1).
void strip_hop_by_hop(HeaderMap& h) {
  strip_hop_by_hop_and(h, [](std::string_view) { return false; });
}

void strip_hop_by_hop_slow(HeaderMap& h) {
  std::vector<std::string> named;
  for (auto f : h) {
    if (!iequals(f.name, "connection")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      auto comma = v.find(',');
      std::string_view tok = trim_ows(v.substr(0, comma));
      if (!tok.empty()) named.emplace_back(tok);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  for (const auto& n : named) h.remove(n);
  static constexpr std::string_view kFixed[] = {"connection", "keep-alive", "proxy-connection", "te",
                                                "trailer",    "transfer-encoding", "upgrade"};
  for (auto n : kFixed) h.remove(n);
}

}  // namespace cachalot::http
