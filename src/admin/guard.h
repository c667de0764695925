// Which admin requests are answered at all, before any endpoint runs.
//
// The admin API listens on loopback by default, which stops remote clients but
// not the operator's own browser: any web page can make it send requests to
// 127.0.0.1. Three checks close that door, in this order:
//
//   1. Host (DNS rebinding). A page on attacker.example whose name is
//      re-pointed to 127.0.0.1 is same-origin with the admin API as far as the
//      browser knows, so it can read /metrics and /cache. Its requests still
//      say "Host: attacker.example", so only names that cannot be rebound are
//      answered: IP literals (any port), localhost (any port) and the entries
//      of admin.hosts (case-insensitive; an entry without a port matches any
//      port). Anything else is 421 Misdirected Request (RFC 9110 §15.5.20).
//   2. Cross-site state changes (CSRF). A form or fetch() from another site
//      may POST without a preflight (Content-Type: text/plain) and without
//      reading the answer: enough to purge the cache. Browsers label such
//      requests with Origin (RFC 6454 §7, sent on every cross-origin POST)
//      and Sec-Fetch-Site (W3C Fetch Metadata). For any method other than
//      GET and HEAD, a present Origin must be the listener's own origin
//      ("http://" plus the request's Host, or an admin.hosts entry), and a
//      present Sec-Fetch-Site must be "same-origin" or "none" (typed by the
//      user). Tools (curl, scripts) send neither and are unaffected. 403.
//   3. The bearer token, if admin.token is set (every path but /healthz),
//      compared in constant time so response timing does not reveal how many
//      leading bytes were right. 401.
//
// Pure (headers and config in, a verdict out): no Asio, in cachalot_base.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "http/message.h"

namespace cachalot::admin {

enum class Verdict {
  Answer,          // go on to the endpoint
  BadHost,         // 400: HTTP/1.1 without Host, several Host lines, or a Host that is not host[:port] (RFC 9112 §3.2)
  MisdirectedHost, // 421: a name this listener does not answer to (DNS rebinding)
  CrossOrigin,     // 403: a state change whose Origin is another site's (CSRF)
  CrossSiteFetch,  // 403: a state change whose Sec-Fetch-Site is cross-site or same-site
  BadToken,        // 401: admin.token is set and the request does not carry it
};
std::string_view to_string(Verdict v);
int status_of(Verdict v);          // the HTTP status a refusal is answered with (200 for Answer)
std::string_view message_of(Verdict v);  // the JSON error text

// The first check that refuses `req`, or Answer.
Verdict check_request(const http::RequestHead& req, const config::AdminConfig& admin);

// Check 1 alone: `host` is a Host field value.
bool host_allowed(std::string_view host, const std::vector<std::string>& extra_hosts);

// Check 2's Origin rule alone: `origin` is an Origin field value, `host` the
// request's (already allowed) Host.
bool origin_allowed(std::string_view origin, std::string_view host, const std::vector<std::string>& extra_hosts);

// Check 3 alone: `authorization` is "Bearer <token>" (scheme case-insensitive,
// RFC 9110 §11.1). Both credentials are hashed with SHA-256 and the digests
// compared with CRYPTO_memcmp: the time taken does not depend on how many
// leading bytes were right, and hashing time only on the lengths.
bool token_matches(std::optional<std::string_view> authorization, std::string_view token);

}  // namespace cachalot::admin
