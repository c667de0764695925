// Redaction of credentials in cache keys before GET /cache shows them.
//
// Variant keys (cache/vary.h) and the field part of primary keys (cache/key.h)
// hold request field values verbatim: "name:len:value" entries joined by
// '\n', "name:!" for an absent field. A Vary: Cookie response or a route with
// key.headers: [Authorization] therefore stores a session cookie or a bearer
// token in its key, and /cache would print it to whoever may read the admin
// API (and into the terminal scrollback and tickets it is pasted into).
//
// A redacted entry keeps its name and byte length and replaces the value by
// the first 16 hex digits of its SHA-256:
//   "cookie:14:sid=abc123xyz" -> "cookie:14:sha256:1f0c5e0d3b7a9c42"
// The length no longer counts the bytes that follow (they are the digest), so
// a redacted key is for reading, not for parsing back. An operator can still
// tell variants apart and check which one is theirs:
//   printf %s "$value" | sha256sum | cut -c1-16
// Bytes that do not parse as entries (never produced by cache/) are hidden
// whole as one "?:<len>:sha256:<digest>" entry.
//
// Pure (OpenSSL's digest only): no Asio, so it lives in cachalot_base and the
// unit tests cover it.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::admin {

// Request fields whose values are always redacted (lower-case).
inline constexpr std::array<std::string_view, 3> kAlwaysRedacted = {"cookie", "authorization",
                                                                    "proxy-authorization"};

// kAlwaysRedacted plus `extra` (admin.redact_fields, any case), lower-cased.
std::vector<std::string> redacted_names(const std::vector<std::string>& extra);

// Field entries joined by '\n' (a variant key) with the values of `names`
// (lower-case, as redacted_names() returns them) redacted.
std::string redact_field_entries(std::string_view entries, std::span<const std::string> names);

// A primary key: the URL before the first '\n' is kept, the field entries
// after it are redacted as above.
std::string redact_primary_key(std::string_view key, std::span<const std::string> names);

// SHA-256 of `data`.
std::array<unsigned char, 32> sha256(std::string_view data);

}  // namespace cachalot::admin
