#include "proxy/forwarded_request.h"

#include <algorithm>

#include "cache/vary.h"
#include "http/hop_by_hop.h"

namespace cachalot::proxy {

using namespace std::string_view_literals;

namespace {

using http::iequals;

bool is_forwarding_field(std::string_view n) noexcept {
  return iequals(n, "x-forwarded-for") || iequals(n, "x-forwarded-host") || iequals(n, "x-forwarded-proto") ||
         iequals(n, "forwarded");
}

// A Forwarded parameter value: a token as is, anything else quoted (RFC 7239 §4).
void append_forwarded_value(std::string& out, std::string_view v) {
  bool token = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
  if (token) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

// host= and proto= of the first element of a Forwarded value, "host;proto".
std::string forwarded_origin(std::string_view v) {
  std::string_view first = v.substr(0, v.find(','));
  std::string host, proto;
  while (!first.empty()) {
    std::size_t semi = first.find(';');
    std::string_view pair = http::trim_ows(first.substr(0, semi));
    std::size_t eq = pair.find('=');
    if (eq != std::string_view::npos) {
      std::string_view name = http::trim_ows(pair.substr(0, eq));
      std::string_view value = http::trim_ows(pair.substr(eq + 1));
      if (iequals(name, "host")) host = value;
      if (iequals(name, "proto")) proto = value;
    }
    if (semi == std::string_view::npos) break;
    first.remove_prefix(semi + 1);
  }
  return host + ";" + proto;
}

}  // namespace

http::TargetError ForwardedRequest::prepare(http::RequestHead& req, std::string_view scheme, const Peer& peer,
                                            const ForwardOptions& opts) {
  scheme_.assign(scheme);
  client_ip_.assign(peer.ip);
  trusted_ = opts.trusted_proxies && !peer.address.empty() &&
             opts.trusted_proxies->contains(std::span<const uint8_t>(peer.address.data(), peer.address.size()));

  http::Target t;
  if (auto e = http::parse_target(req.target, req.method, t); e != http::TargetError::None) return e;
  asterisk_ = t.asterisk;
  std::string_view host;
  if (!t.authority.empty()) {
    host = t.authority;  // RFC 9112 §3.2.2: the target's authority wins over Host
  } else if (auto h = req.headers.get("host"); h && !h->empty()) {
    if (!http::valid_host(*h)) return http::TargetError::Host;
    host = *h;
  } else {
    host = opts.fallback_host;
  }
  cache::normalize_authority(authority_, scheme, host);

  std::string_view pq = t.asterisk ? std::string_view("/") : t.path_query;
  if (!t.authority.empty() || pq.empty() || pq.front() == '?') {
    // Absolute-form: the origin gets origin-form (RFC 9112 §3.2.2).
    std::string origin_form;
    origin_form.reserve(pq.size() + 1);
    if (pq.empty() || pq.front() == '?') origin_form.push_back('/');
    origin_form.append(pq);
    req.target = std::move(origin_form);
    pq = t.asterisk ? std::string_view("/") : std::string_view(req.target);
  }
  const std::size_t q = std::min(pq.find('?'), pq.size());
  // The key's path is also the path routes match: "/api/../admin" matches what it names.
  cache::key_begin(key_, scheme, authority_, pq.substr(0, q), true);
  path_begin_ = scheme.size() + 3 + authority_.size();
  path_end_ = key_.size();
  finished_ = false;
  partition_.clear();
  has_query_ = q != pq.size();
  query_ = has_query_ ? pq.substr(q + 1) : std::string_view();

  // One pass: hop-by-hop and Connection-nominated fields (never Host: we
  // send our own, below), dropped fields, and the forwarding fields we own.
  http::ConnectionTokens tokens = http::connection_tokens(req.headers);
  peer_xff_.clear();
  peer_forwarded_.clear();
  peer_xfh_.clear();
  peer_xfp_.clear();
  if (trusted_) {
    peer_xff_ = req.headers.get_combined("x-forwarded-for");
    peer_forwarded_ = req.headers.get_combined("forwarded");
    if (auto v = req.headers.get("x-forwarded-host")) peer_xfh_ = *v;
    if (auto v = req.headers.get("x-forwarded-proto")) peer_xfp_ = *v;
  }
  std::vector<std::string> nominated;
  if (tokens.overflow) {
    // More than ConnectionTokens::kMax names: collect them the slow way.
    for (auto f : req.headers) {
      if (!iequals(f.name, "connection")) continue;
      std::string_view v = f.value;
      while (!v.empty()) {
        std::size_t comma = v.find(',');
        std::string_view tok = http::trim_ows(v.substr(0, comma));
        if (!tok.empty()) nominated.emplace_back(tok);
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
      }
    }
  }
  const auto* drop = opts.drop_fields;
  req.headers.remove_if([&](const http::HeaderMap::Field& f) {
    if (iequals(f.name, "host")) return true;
    if (http::is_hop_by_hop(f.name) || is_forwarding_field(f.name)) return true;
    if (tokens.contains(f.name)) return true;
    for (const auto& n : nominated)
      if (iequals(n, f.name)) return true;
    if (drop)
      for (const auto& d : *drop)
        if (iequals(d, f.name)) return true;
    return false;
  });
  // What is forwarded is what is keyed: the reduced value replaces the
  // client's lines here, before any key or variant key reads the fields.
  if (opts.accept_encoding && cache::reduce_accept_encoding(req.headers, *opts.accept_encoding, accept_encoding_))
    req.headers.set("Accept-Encoding", accept_encoding_);
  return http::TargetError::None;
}

void ForwardedRequest::finish_key(const http::RequestHead& req, const cache::KeyOptions& opts) {
  if (finished_) return;
  finished_ = true;
  cache::key_finish(key_, query_, has_query_, req.headers, opts);
  query_ = {};
  if (trusted_ && (!peer_xfh_.empty() || !peer_xfp_.empty() || !peer_forwarded_.empty())) {
    // What a trusted proxy says about the original request reaches the origin: key it.
    http::HeaderMap origin;
    if (!peer_xfh_.empty()) origin.add("x-forwarded-host", peer_xfh_);
    if (!peer_xfp_.empty()) origin.add("x-forwarded-proto", peer_xfp_);
    if (!peer_forwarded_.empty()) origin.add("forwarded-origin", forwarded_origin(peer_forwarded_));
    for (std::string_view n : {"x-forwarded-host", "x-forwarded-proto", "forwarded-origin"}) {
      key_.push_back('\n');
      cache::append_field_entry(key_, n, origin);
    }
  }
}

void ForwardedRequest::set_partition(std::string_view claim) {
  if (!partition_.empty() || claim.empty()) return;
  partition_.assign(claim);
  cache::append_partition(key_, claim);
}

void ForwardedRequest::append_forwarding_fields(std::string& out, int version_minor) const {
  // Via names the protocol version this hop received (RFC 9110 §7.6.3).
  out.append(version_minor == 0 ? "Via: 1.0 cachalot\r\n" : "Via: 1.1 cachalot\r\n");
  if (!client_ip_.empty()) {
    out.append("X-Forwarded-For: "sv);
    if (!peer_xff_.empty()) out.append(peer_xff_).append(", "sv);
    out.append(client_ip_).append("\r\n"sv);
  }
  out.append("X-Forwarded-Host: "sv).append(peer_xfh_.empty() ? std::string_view(authority_) : peer_xfh_).append("\r\n"sv);
  out.append("X-Forwarded-Proto: "sv).append(peer_xfp_.empty() ? std::string_view(scheme_) : peer_xfp_).append("\r\n"sv);
  out.append("Forwarded: "sv);
  if (!peer_forwarded_.empty()) out.append(peer_forwarded_).append(", "sv);
  if (!client_ip_.empty()) {
    out.append("for="sv);
    // RFC 7239 §6: an IPv6 node is "[v6]", which needs quoting.
    append_forwarded_value(out, client_ip_.find(':') != std::string::npos ? "[" + client_ip_ + "]" : client_ip_);
    out.append(";"sv);
  }
  out.append("host="sv);
  append_forwarded_value(out, authority_);
  out.append(";proto="sv).append(scheme_).append("\r\n"sv);
}

}  // namespace cachalot::proxy
