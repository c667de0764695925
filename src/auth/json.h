// A small, strict JSON reader for JWT headers and claim sets (RFC 8259).
//
// parse_object() reads one JSON object and keeps its top-level members; nested
// objects and arrays are validated and skipped, except arrays whose items are
// all strings (the "aud" claim). Strict: the whole input must be one object
// (whitespace around it allowed), no trailing commas, no comments, no
// single quotes, no control characters in strings, escapes as RFC 8259 §7
// lists them (\uXXXX with valid surrogate pairs, written out as UTF-8), bytes
// in strings must be valid UTF-8, numbers per §6 (no leading zeros, no '+',
// no NaN). A duplicate top-level member name is an error (RFC 7515 §4, RFC
// 7519 §4: "MUST either reject"). Nesting deeper than kMaxDepth is an error.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachalot::auth {

struct JsonValue {
  enum class Type : uint8_t {
    String,
    Number,
    Bool,
    Null,
    StringArray,  // an array whose items are all strings (possibly none)
    Other,        // an object, or an array holding anything but strings
  };
  Type type = Type::Null;
  std::string string;                // String
  double number = 0;                 // Number
  bool boolean = false;              // Bool
  std::vector<std::string> strings;  // StringArray
};

struct JsonMember {
  std::string name;
  JsonValue value;
};

inline constexpr int kMaxJsonDepth = 16;

// The top-level members in input order, or nullopt (and `why`) when the input
// is not exactly one well-formed JSON object.
std::optional<std::vector<JsonMember>> parse_object(std::string_view text, std::string* why = nullptr);

// The member named `name`, or null.
const JsonValue* find_member(const std::vector<JsonMember>& members, std::string_view name) noexcept;

}  // namespace cachalot::auth
