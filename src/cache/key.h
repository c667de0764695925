// Primary cache key (RFC 9111 §2, §4: "the request method and target URI";
// we store GET only, so the method is implied).
//
// Key layout (one std::string, built on every lookup):
//   <scheme> "://" <host>[":" <port>] <path> ["?" <query>] [ "\n" <field entries> ]
//   e.g. "https://example.com/a/b?x=1"   or   "http://h:8080/p\nx-tenant:3:abc"
// Normalisation (RFC 3986 §6.2.2 syntax-based, §6.2.3 scheme-based, RFC 9110 §4.2.3):
//   - scheme and host lower-cased; the scheme's default port (http 80,
//     https 443) and an empty port dropped; leading zeros of a port dropped.
//   - path and query: hex digits of %XX upper-cased, %XX of unreserved
//     characters decoded ("%7e" -> "~"), bytes that may not appear raw in a
//     URI (controls, space, '"', '<', '>', '\', '^', '`', '{', '|', '}',
//     non-ASCII) percent-encoded. A '%' not followed by two hex digits can
//     only be data and is encoded as "%25" (the WHATWG URL standard decodes
//     "%zz" and "%25zz" to the same bytes), which keeps normalisation
//     idempotent: a stray '%' never pairs up with a decoded character later.
//   - path: dot segments removed (RFC 3986 §5.2.4) after decoding (so "%2E%2E"
//     counts); empty path is "/"; "%2F" stays encoded (it is data, not a separator).
//   - query: with sort_query, parameters are stably sorted by name (order of
//     equal names is kept: a=1&a=2 differs from a=2&a=1); parameters named in
//     ignore_params are dropped; with either option, empty parameters ("&&")
//     are dropped. A query left empty drops its "?".
//   - a fragment ("#..."), which clients must not send, is dropped.
//   - absolute-form targets ("http://h/p?q") contribute only their path and
//     query; the caller chooses `host` (RFC 9112 §3.2.2: the target's
//     authority wins over Host, so pass that one).
//   - bytes in `host` that cannot appear in a host are percent-encoded (':'
//     too, outside an IPv6 literal), so a hostile Host cannot forge a path
//     ("a/b" + "/c" vs "a" + "/b/c") or a port.
// Extra request fields (KeyOptions::headers, route `key.headers`) follow the
// path after '\n' (which the encoded path cannot contain), one entry each in
// the order configured, using the Vary encoding (vary.h): "name:len:value" or
// "name:!" when absent.
//
// Partitions (route `partition:`, per-user entries): a request whose bearer
// token verified gets one more entry, always the last:
//   "\n" "\x1f" "p=" <len> ":" <claim>      e.g. "http://h/dash\n\x1fp=5:alice"
// \x1f cannot start a field entry (names are tokens) nor appear in an encoded
// path, and the claim is length-prefixed, so no URL and no other claim can
// produce the same key: an unpartitioned request never finds a partitioned
// entry, nor one user another's. Url and prefix purges still match them (the
// path comes first, the partition after a '\n').
//
// The proxy must forward the target it keyed on (or the original one only if
// the origin treats them as the same resource, which RFC 3986 says it should).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/header_map.h"

namespace cachalot::cache {

struct KeyOptions {
  bool sort_query = false;                 // route key.sort_query
  std::vector<std::string> ignore_params{};  // route key.ignore_params (exact, case-sensitive names)
  std::vector<std::string> headers{};      // route key.headers: request fields added to the key
};

// One allocation: the string is sized for the worst case and trimmed, so its
// capacity may exceed its size; copy it (rather than move it) into
// long-lived storage.
std::string primary_key(std::string_view scheme, std::string_view host, std::string_view target,
                        const http::HeaderMap& req_headers, const KeyOptions& opts);

// The same key built in two steps into a reused string (the proxy matches
// its route on the normalised path between them; the query and header
// entries depend on the route's options). `authority_normalized`: `host`
// is already normalize_authority()'s output and is written as is.
//   key_begin:  scheme "://" authority path   (no query, no header entries)
//   key_finish: "?" query (when has_query) and the header entries
void key_begin(std::string& key, std::string_view scheme, std::string_view host, std::string_view path,
               bool authority_normalized);
void key_finish(std::string& key, std::string_view query, bool has_query, const http::HeaderMap& req_headers,
                const KeyOptions& opts);

// Appends the partition entry for `claim` (a verified claim: non-empty, no
// control characters).
void append_partition(std::string& key, std::string_view claim);
// The claim of a partitioned key; empty if the key has no partition entry.
std::string_view key_partition(std::string_view primary_key) noexcept;
// The reserved tag every entry of a partition carries (the store's tag index
// finds them for purges and the per-partition budget): "\x1fp=" + claim.
// Origins cannot set it: parse_tags() drops tags starting with \x1f.
std::string partition_tag(std::string_view claim);
// The claim of a partition "<namespace>:<claim>" (auth::JwtPolicy::ns); "" if none.
std::string_view partition_claim(std::string_view partition) noexcept;
inline constexpr char kReservedTagByte = '\x1f';

// The normalised path and query of a key ("/a/b?x=1"), for prefix purges.
// Empty if `primary_key` is not a key.
std::string_view key_path(std::string_view primary_key) noexcept;
// True when `path` ("/a/b") is already in the form primary_key() writes: only
// pchar and '/', no '%', no "." or ".." segment. The proxy matches routes on
// such a path as received, and normalises only the others.
bool is_normalized_path(std::string_view path) noexcept;
// The normalised authority of a key ("example.com:8080"); empty if not a key.
std::string_view key_authority(std::string_view primary_key) noexcept;
// The normalised authority a Host value keys as (host lower-cased, default
// port for `scheme` dropped): what the proxy forwards as Host.
std::string normalized_authority(std::string_view scheme, std::string_view host);
// Same, into a reused string.
void normalize_authority(std::string& out, std::string_view scheme, std::string_view host);

}  // namespace cachalot::cache
