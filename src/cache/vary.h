// Vary (RFC 9110 §12.5.5, RFC 9111 §4.1): which request fields select a variant.
//
// A stored response applies to a later request only if the request's values
// of the fields named by Vary "match" those of the original request. §4.1
// lets a cache match after transformations that keep the meaning: adding or
// removing whitespace where the syntax allows it, combining field lines, and
// normalising in ways the field's definition says are equivalent (reordering
// where order is insignificant, case-folding case-insensitive values). The
// variant key is the request's values put through exactly those
// transformations, so equal keys mean matching requests.
//
// Variant key encoding (hit path: built once per lookup, one allocation):
//   for each Vary name, in sorted order, entries joined by '\n':
//     <name> ":" <decimal byte length> ":" <normalised value>   field present
//     <name> ":!"                                               field absent
//   e.g. "accept-encoding:7:br,gzip\nuser-agent:!"
// Names are tokens (no ':' or '\n') and values are length-prefixed, so the
// key is unambiguous whatever bytes a value holds; an absent field and an
// empty one differ. No Vary gives "".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/header_map.h"

namespace cachalot::cache {

struct VarySpec {
  bool star = false;               // "Vary: *", or a member that is not a field name: never matches
  std::vector<std::string> names;  // lower-case, sorted, unique
};

// All Vary field lines of a response. A member that is not a token makes the
// whole spec `star`: ignoring it could serve a variant meant for someone else.
VarySpec parse_vary(const http::HeaderMap& resp_headers);

// The request's normalised values of `spec.names` (see the file comment).
// Normalisation per field:
//   accept-encoding, accept-charset:  list; lower-case; items sorted (order carries no meaning, weights do)
//   accept-language:                  list; lower-case; order kept (some servers read it as priority)
//   accept:                           list; media range lower-case, parameters kept; order kept
//   any other field:                  field lines trimmed and joined with ", "; bytes otherwise kept
// List normalisation: split at commas outside quoted-strings, trim OWS, drop
// empty items (RFC 9110 §5.6.1), drop OWS around ';', join with ",".
std::string variant_key(const VarySpec& spec, const http::HeaderMap& req_headers);
// Same, for names already parsed and stored (Entry::vary_names): lower-case,
// sorted, unique, as parse_vary() leaves them.
std::string variant_key(const std::vector<std::string>& vary_names, const http::HeaderMap& req_headers);

// Same, for names stored joined by '\n' (Entry::vary()).
std::string variant_key_joined(std::string_view joined_names, const http::HeaderMap& req_headers);

// Appends one entry of the encoding above for field `name` (any case; written
// lower-case). Shared with key.h, which puts configured request fields in the key.
void append_field_entry(std::string& out, std::string_view name, const http::HeaderMap& headers);

}  // namespace cachalot::cache
