// Network addresses as written in the config: listeners, the upstream URL and
// CIDR ranges. Parsed with inet_pton only, so this layer needs no Asio.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::config {

// "127.0.0.1:8080" or "[::1]:8080". The host must be an IP literal: a name may
// resolve to several addresses, so binding to it would be ambiguous. Use
// 0.0.0.0 or [::] for every address.
struct ListenerConfig {
  std::string host;       // IP literal, IPv6 without brackets: "127.0.0.1", "::1"
  uint16_t port = 0;
  bool tls = false;
  std::string cert_file;  // PEM paths as written (relative to the working directory); set iff tls
  std::string key_file;
  std::string text;       // the address as written, for logs: "[::1]:8443"

  bool operator==(const ListenerConfig&) const = default;
};
std::optional<ListenerConfig> parse_listen_address(std::string_view text, std::string* error = nullptr);

// "http://origin.internal", "https://10.0.0.5:8443", "http://[::1]:9000/".
// Only the origin: a path other than "/", a query, a fragment or userinfo is
// rejected, so request targets are forwarded unchanged.
struct UpstreamUrl {
  std::string scheme;     // "http" or "https" (lowercased)
  std::string host;       // DNS name or IP literal, IPv6 without brackets
  uint16_t port = 0;      // explicit, or 80 / 443 from the scheme
  std::string text;       // as written

  bool tls() const { return scheme == "https"; }
  bool operator==(const UpstreamUrl&) const = default;
};
std::optional<UpstreamUrl> parse_upstream_url(std::string_view text, std::string* error = nullptr);

// Where the cluster's Redis is (cluster.redis):
//   "redis://[[user]:password@]host[:port][/db]"   TCP; port 6379, db 0 by default
//   "unix:///path/to/redis.sock[?db=N]"            a Unix socket
// user and password are percent-decoded; `text` is what logs and GET /cluster
// show, with the password replaced by "***".
struct RedisAddress {
  bool unix_socket = false;
  std::string host;       // TCP: DNS name or IP literal, IPv6 without brackets
  uint16_t port = 6379;   // TCP
  std::string path;       // unix_socket: the socket's path
  uint32_t db = 0;        // SELECT'ed after connecting when not 0
  std::string user;       // AUTH user password (Redis 6 ACLs); empty: AUTH password
  std::string password;   // empty: no AUTH
  std::string text;       // as written, password redacted

  bool operator==(const RedisAddress&) const = default;
};
std::optional<RedisAddress> parse_redis_address(std::string_view text, std::string* error = nullptr);

// An address range. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d, prefix + 96),
// so one comparison serves both families and a v4 client accepted on a v6
// socket matches v4 ranges.
struct Cidr {
  std::array<uint8_t, 16> network{};  // host bits are zero
  uint8_t prefix_len = 0;             // 0..128, in the IPv6 space
  std::string text;                   // as written

  bool contains(const std::array<uint8_t, 16>& v6) const;
  bool operator==(const Cidr&) const = default;
};
// "10.0.0.0/8", "::1/128", or a bare address (a single host). Host bits set
// ("10.0.0.1/8") are an error: the writer probably meant something else.
std::optional<Cidr> parse_cidr(std::string_view text, std::string* error = nullptr);

struct CidrSet {
  std::vector<Cidr> ranges;

  // `address` is 4 bytes (IPv4) or 16 bytes (IPv6), network order, as from
  // asio's address_v4/v6::to_bytes(). Any other size matches nothing.
  bool contains(std::span<const uint8_t> address) const;
  // A textual IP literal ("127.0.0.1", "::1"); false if it is not one.
  bool contains(std::string_view address) const;
  bool operator==(const CidrSet&) const = default;
};

}  // namespace cachalot::config
