// ForwardedRequest: the request as this hop forwards it, built once per
// request from the parsed head. What is forwarded is what is keyed.
//
// prepare() turns the client's RequestHead into the forwarded one, in place:
//  - the target is validated (http/target.h: 400 for fragments, foreign
//    schemes, userinfo, invalid escapes) and so is the Host; an absolute-form
//    target's authority replaces Host (RFC 9112 §3.2.2);
//  - hop-by-hop fields and every field Connection names are removed
//    (RFC 9110 §7.6.1), except Host, which can never be removed;
//  - server.drop_request_fields (X-Original-URL, X-HTTP-Method-Override...)
//    are removed;
//  - with cache.accept_encoding, Accept-Encoding is reduced to the configured
//    codings the client accepts (cache::reduce_accept_encoding(), RFC 9110
//    §12.5.3): one line with the reduced value replaces the client's, so the
//    origin gets, and the variant key is computed from, the same value;
//  - forwarding fields belong to us: X-Forwarded-For/-Host/-Proto and
//    Forwarded from the client are removed and written anew; from a peer in
//    server.trusted_proxies their values are kept and extended.
// The one rule for targets and Host: the proxy forwards the normalised form
// it keys. The primary key (cache/key.h) is computed from this request, and
// the request line and Host sent to the origin are read back out of that key
// (key_path(), the key's authority), so they cannot disagree: "/x/../y" is
// forwarded as "/y", "/a%7e" as "/a~", "Host: EXAMPLE.com:80" as
// "Host: example.com", and a route's sort_query / ignore_params apply to the
// forwarded query too. The variant key is computed from the same (stripped)
// fields. Values a trusted proxy sent in X-Forwarded-Host/-Proto (and the
// host/proto of its first Forwarded element) reach the origin, so they are
// part of the primary key.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/key.h"
#include "config/address.h"
#include "http/message.h"
#include "http/target.h"

namespace cachalot::proxy {

struct ForwardOptions {
  const config::CidrSet* trusted_proxies = nullptr;     // server.trusted_proxies
  const std::vector<std::string>* drop_fields = nullptr;  // server.drop_request_fields
  std::string_view fallback_host;                       // Host for requests without one (HTTP/1.0): the origin's
  const std::vector<std::string>* accept_encoding = nullptr;  // cache.accept_encoding (null or empty: as sent)
};

struct Peer {
  std::string ip;                // textual, IPv4-mapped IPv6 shown as IPv4
  std::vector<uint8_t> address;  // 4 or 16 bytes, network order (for CIDR checks)
};

class ForwardedRequest {
 public:
  // Prepares `req` in place (see the file comment) and begins its primary
  // key (scheme, authority, normalised path). `scheme` is the listener's
  // ("http" or "https"). On an error, `req` may be half-prepared and must
  // only be answered 400. A ForwardedRequest is reused from request to
  // request on a connection: its strings keep their capacity.
  http::TargetError prepare(http::RequestHead& req, std::string_view scheme, const Peer& peer,
                            const ForwardOptions& opts);
  // Completes the primary key under the matched route's key options (the
  // query as they shape it, the key header entries, a trusted peer's origin
  // fields), after prepare() and route matching. Later calls do nothing.
  void finish_key(const http::RequestHead& req, const cache::KeyOptions& opts);
  // The primary key (after finish_key()).
  const std::string& key() const noexcept { return key_; }
  // After finish_key(), for a request whose bearer token verified on a
  // partitioned route: appends the partition entry (cache::append_partition)
  // to the key. The forwarded request is unchanged (Authorization included).
  void set_partition(std::string_view claim);
  // The verified claim ("" when the request is not partitioned).
  const std::string& partition() const noexcept { return partition_; }

  std::string_view scheme() const noexcept { return scheme_; }
  // Normalised host[:port]: the key's authority and the Host we send.
  const std::string& authority() const noexcept { return authority_; }
  // Normalised path (no query), for route matching: the key's path.
  std::string_view path() const noexcept { return std::string_view(key_).substr(path_begin_, path_end_ - path_begin_); }
  bool trusted_peer() const noexcept { return trusted_; }
  bool asterisk() const noexcept { return asterisk_; }

  // The request head for the origin: request line with the key's path and
  // query, Host, the prepared fields for which skip(name) is false, then the
  // forwarding fields (Via, X-Forwarded-*, Forwarded). No final CRLF.
  template <class Skip>
  void serialize_head(std::string& out, const http::RequestHead& req, std::string_view method,
                      std::string_view key, Skip&& skip) const {
    out.append(method);
    out.push_back(' ');
    out.append(asterisk_ ? std::string_view("*") : cache::key_path(key));
    out.append(" HTTP/1.1\r\n", 11);
    http::append_field(out, "Host", authority_);
    for (auto f : req.headers) {
      if (skip(f.name)) continue;
      http::append_field(out, f.name, f.value);
    }
    append_forwarding_fields(out, req.version_minor);
  }

 private:
  void append_forwarding_fields(std::string& out, int version_minor) const;

  std::string scheme_;
  std::string authority_;
  std::string key_;
  std::size_t path_begin_ = 0, path_end_ = 0;  // the path within key_
  std::string_view query_;  // into req.target, between prepare() and finish_key()
  bool has_query_ = false;
  bool finished_ = false;
  std::string partition_;  // the verified claim, reset by prepare()
  std::string client_ip_;
  std::string accept_encoding_;  // the reduced Accept-Encoding (capacity reused)
  bool trusted_ = false;
  bool asterisk_ = false;
  // From a trusted peer: what it sent (empty when it sent nothing).
  std::string peer_xff_, peer_forwarded_, peer_xfh_, peer_xfp_;
};

}  // namespace cachalot::proxy
