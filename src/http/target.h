// Request targets and Host values, validated before anything is keyed or
// forwarded (RFC 9112 §3.2, RFC 9110 §4.2, §7.2, RFC 3986).
//
// Strict on purpose: a target or Host we would have to guess about gets 400.
//  - origin-form "/path?query": no fragment ('#' may not appear in a
//    request-target); every '%' in the path starts a valid %XX triplet (an
//    invalid escape is read differently by different servers, so the key and
//    the origin could disagree). The query may hold a stray '%': it is keyed
//    and forwarded as "%25", one spelling for both.
//  - absolute-form "http://host[:port]/path?query": only http and https; no
//    userinfo (RFC 9110 §4.2.4: a recipient treats it as an error); the
//    authority must be a valid Host; it replaces the Host field (§3.2.2).
//  - asterisk-form "*": OPTIONS only.
//  - authority-form: CONNECT only, which the proxy does not implement (501).
// Host (and an absolute-form authority): uri-host [":" port] with uri-host an
// IP-literal ("[...]" of hex digits, ':' and '.'), or a reg-name / IPv4 of
// unreserved and sub-delim characters. No '@' (userinfo), no '/', no
// percent-encoding (no real client needs it, and it would give one host two
// spellings), a port of at most 5 digits. Empty is allowed (RFC 9112 §3.2: a
// target without authority).
#pragma once

#include <cstdint>
#include <string_view>

#include "http/message.h"

namespace cachalot::http {

enum class TargetError : uint8_t {
  None,
  Fragment,  // '#' in the request-target
  Scheme,    // absolute-form with a scheme other than http / https
  Userinfo,  // absolute-form authority with "user@"
  Host,      // Host field or absolute-form authority is not uri-host[:port]
  Escape,    // '%' not followed by two hex digits in the path
  Form,      // not origin-, absolute- or (for OPTIONS) asterisk-form
};
// "fragment", "scheme", "userinfo", "host", "escape", "form".
std::string_view to_string(TargetError e) noexcept;

struct Target {
  std::string_view authority;   // absolute-form: the target's authority; "" otherwise
  std::string_view path_query;  // "/p?q"; may start with '?' (absolute-form without path) or be "" ("/" then)
  bool asterisk = false;        // "*" (OPTIONS)
};

TargetError parse_target(std::string_view target, Method method, Target& out) noexcept;
bool valid_host(std::string_view host) noexcept;

}  // namespace cachalot::http
