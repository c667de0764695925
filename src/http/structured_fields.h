// Structured Field Values (RFC 8941): a strict parser for Dictionaries.
//
// Only what Cachalot reads is here: sf-dictionary (§3.2) with its Items,
// Inner Lists and Parameters, as targeted cache-control fields need them
// (RFC 9213 §2.1). The parser follows the algorithms of RFC 8941 §4.2
// exactly; any deviation from the grammar fails the whole field (§4.2:
// "fail parsing", and RFC 9213 §2.1: the field is then ignored). In
// particular:
//   - keys are lower-case only: "Max-Age=1" fails (§3.1.2 key grammar);
//   - no whitespace around "=" or inside an inner list's parentheses other
//     than the SP the grammar allows; OWS (SP / HTAB) only around ",";
//   - Integers have at most 15 digits, Decimals at most 12 integer and 3
//     fractional digits; Strings are printable ASCII whose only escapes are
//     a backslash before a quote or a backslash; Tokens start with ALPHA or "*";
//   - RFC 9651's Date (@...) and Display String (%"...") are not RFC 8941
//     types and fail.
// Several field lines are combined with "," first (§4.2). A duplicate key
// overwrites the earlier value in place (§4.2.2). Any byte sequence is
// accepted without reading out of bounds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "http/header_map.h"

namespace cachalot::http::sf {

// sf-decimal, held exactly: the value times 1000 (at most 3 fractional digits).
struct Decimal {
  int64_t thousandths = 0;
  bool operator==(const Decimal&) const = default;
};
struct Token {
  std::string value;
  bool operator==(const Token&) const = default;
};
// sf-binary: the base64 text between the colons, validated but not decoded
// (nothing Cachalot reads needs the bytes).
struct ByteSequence {
  std::string base64;
  bool operator==(const ByteSequence&) const = default;
};

// Integer, Decimal, String (unescaped), Token, Byte Sequence, Boolean.
using BareItem = std::variant<int64_t, Decimal, std::string, Token, ByteSequence, bool>;

struct Parameter {
  std::string key;
  BareItem value;
  bool operator==(const Parameter&) const = default;
};
using Parameters = std::vector<Parameter>;  // in order, keys unique

struct Item {
  BareItem value;
  Parameters params;
  bool operator==(const Item&) const = default;
};
struct InnerList {
  std::vector<Item> items;
  Parameters params;
  bool operator==(const InnerList&) const = default;
};

struct DictMember {
  std::string key;
  std::variant<Item, InnerList> value;
  bool operator==(const DictMember&) const = default;
};
using Dictionary = std::vector<DictMember>;  // in order, keys unique

// RFC 8941 §4.2 with field_type "dictionary"; nullopt when parsing fails.
// An empty (or all-SP) value is an empty Dictionary.
std::optional<Dictionary> parse_dictionary(std::string_view value);
// Every field line called `name` in `headers`, combined (§4.2); nullopt when
// parsing fails or there is no such field.
std::optional<Dictionary> parse_dictionary(const HeaderMap& headers, std::string_view name);

}  // namespace cachalot::http::sf
