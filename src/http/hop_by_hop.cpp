#include "http/hop_by_hop.h"

#include <string>
#include <vector>

namespace cachalot::http {

bool is_hop_by_hop(std::string_view n) noexcept {
  return iequals(n, "connection") || iequals(n, "keep-alive") || iequals(n, "proxy-connection") ||
         iequals(n, "te") || iequals(n, "trailer") || iequals(n, "transfer-encoding") || iequals(n, "upgrade");
}

void strip_hop_by_hop(HeaderMap& h) {
  // Fields named by Connection are hop-by-hop too (RFC 9110 §7.6.1).
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
