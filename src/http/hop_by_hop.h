// Hop-by-hop fields (RFC 9110 §7.6.1): never forwarded by a proxy.
#pragma once

#include <string_view>

#include "http/header_map.h"

namespace cachalot::http {

// True for the fixed hop-by-hop names: Connection, Keep-Alive, Proxy-Connection,
// TE, Trailer, Transfer-Encoding, Upgrade (and Proxy-Authorization? no: that is
// for the proxy itself and is consumed, see strip_hop_by_hop).
bool is_hop_by_hop(std::string_view name) noexcept;

// Removes the fixed hop-by-hop fields and every field named in Connection.
void strip_hop_by_hop(HeaderMap& h);

}  // namespace cachalot::http
