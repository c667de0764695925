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
//   accept-encoding:  weighted list (below); items sorted (RFC 9110 §12.5.3:
//                     only weights carry preference), exact duplicates
//                     dropped, `c;q=0` dropped (see below)
//   accept-language:  weighted list (below); items ordered by descending
//                     weight, equal weights keep their order, exact duplicates
//                     after the first dropped; q=0 items kept (last, sorted)
//   accept-charset:   list; lower-case; items sorted
//   accept:           list; media range lower-case, parameters kept; order kept
//   any other field:  field lines trimmed and joined with ", "; bytes otherwise kept
// List normalisation: split at commas outside quoted-strings, trim OWS, drop
// empty items (RFC 9110 §5.6.1), drop OWS around ';', join with ",".
// Weighted list: every item `token [ OWS ";" OWS "q=" qvalue ]`
// (RFC 9110 §12.4.2), the token lower-cased, the weight in its shortest form:
// "q=1", "q=1.0" and no weight are the same (the default is 1), "q=0.50" is
// "q=0.5", "Q=" is "q=". Accept-Encoding also reads "x-gzip" as "gzip" and
// "x-compress" as "compress" (RFC 9110 §8.4.1.1, §8.4.1.3). A field with any
// other item (another parameter, a bad qvalue) is normalised as a plain list
// instead: sorted for Accept-Encoding, in order for Accept-Language.
//
// Why the two differ (RFC 9111 §4.1 allows only meaning-preserving changes):
//  - Order. For codings only the weights express preference. For languages
//    RFC 9110 §12.5.4 warns that "some recipients treat the order in which
//    language tags are listed as an indication of descending priority,
//    particularly for tags that are assigned equal quality values (no value
//    is the same as q=1)": so "en, fr" and "fr, en" stay different variants,
//    while "fr;q=0.5, en" and "en, fr;q=0.5" (distinct weights) are one.
//  - q=0 ("not acceptable", §12.4.2). A coding the request does not list is
//    already not acceptable unless "*" admits it (§12.5.3), so `br;q=0` says
//    nothing more than leaving br out, and is dropped -- unless the item is
//    "*" or "identity" (their q=0 excludes what is not listed) or a "*" or
//    the same coding with a weight above 0 is also listed. Languages have no
//    such rule: an origin that finds no match may serve its default language
//    (§12.5.4), which "fr;q=0" forbids and an absent "fr" does not, so q=0
//    language items are kept.
std::string variant_key(const VarySpec& spec, const http::HeaderMap& req_headers);
// Same, for names already parsed and stored (Entry::vary_names): lower-case,
// sorted, unique, as parse_vary() leaves them.
std::string variant_key(const std::vector<std::string>& vary_names, const http::HeaderMap& req_headers);

// Same, for names stored joined by '\n' (Entry::vary()).
std::string variant_key_joined(std::string_view joined_names, const http::HeaderMap& req_headers);

// Appends one entry of the encoding above for field `name` (any case; written
// lower-case). Shared with key.h, which puts configured request fields in the key.
void append_field_entry(std::string& out, std::string_view name, const http::HeaderMap& headers);

// cache.accept_encoding: the content codings the origin actually uses. With
// them, the request's Accept-Encoding is reduced to those it accepts, so that
// one variant serves every client that accepts the same of them (browsers
// send "gzip, deflate, br, zstd": with [br, gzip] each gets "br, gzip").
// What is forwarded is what is keyed, so the reduced value must replace the
// request's Accept-Encoding lines in the forwarded request itself (the
// variant key is then derived from it as usual): otherwise the origin could
// answer one client with a coding another client sharing the key cannot
// decode. Writes into `out` (its capacity is reused) and returns true when
// the request is to be rewritten: `codings` is not empty, the request has
// Accept-Encoding, and every item parses as a weighted coding. The value:
// the codings of `codings` the request accepts (RFC 9110 §12.5.3: listed with
// a weight above 0, or admitted by "*"), lower-cased ("x-gzip" as "gzip"), in `codings` order,
// joined by ", ", weights dropped (every one is acceptable, the origin
// chooses); then "identity;q=0" if the request refused an unencoded
// response. It may be "" (only identity is acceptable); an absent field
// stays absent ("any coding", which the origin reads its own way).
bool reduce_accept_encoding(const http::HeaderMap& req_headers, const std::vector<std::string>& codings,
                            std::string& out);

}  // namespace cachalot::cache
