#include "auth/json.h"

#include <charconv>
#include <cstdint>

namespace cachalot::auth {

namespace {

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  bool fail(const char* why) {
    if (why_.empty()) why_ = why;
    return false;
  }
  const std::string& why() const { return why_; }

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool at_end() const { return i_ == s_.size(); }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool eat(char c) {
    if (!peek(c)) return false;
    ++i_;
    return true;
  }
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return fail("invalid literal");
    i_ += w.size();
    return true;
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(uint32_t& out) {
    if (i_ + 4 > s_.size()) return fail("short \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      int h = hex(s_[i_ + k]);
      if (h < 0) return fail("bad \\u escape");
      out = out * 16 + static_cast<uint32_t>(h);
    }
    i_ += 4;
    return true;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  // One raw UTF-8 sequence starting at i_ (RFC 3629: shortest form, no surrogates, <= U+10FFFF).
  bool utf8(std::string& out) {
    const auto b0 = static_cast<unsigned char>(s_[i_]);
    int len;
    uint32_t cp;
    if (b0 < 0xC2) return fail("invalid UTF-8");
    if (b0 < 0xE0) len = 2, cp = b0 & 0x1F;
    else if (b0 < 0xF0) len = 3, cp = b0 & 0x0F;
    else if (b0 < 0xF5) len = 4, cp = b0 & 0x07;
    else return fail("invalid UTF-8");
    if (i_ + len > s_.size()) return fail("truncated UTF-8");
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s_[i_ + k]);
      if ((b & 0xC0) != 0x80) return fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return fail("invalid UTF-8");
    out.append(s_.substr(i_, len));
    i_ += len;
    return true;
  }

  bool string(std::string& out) {
    if (!eat('"')) return fail("expected a string");
    for (;;) {
      if (i_ >= s_.size()) return fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return fail("control character in string");
      if (c >= 0x80) {
        if (!utf8(out)) return false;
        continue;
      }
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++i_;
        continue;
      }
      if (++i_ >= s_.size()) return fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (!(eat('\\') && eat('u'))) return fail("lone high surrogate");
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("lone high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: return fail("invalid escape");
      }
    }
  }

  bool number(double& out) {
    const std::size_t start = i_;
    eat('-');
    if (eat('0')) {
    } else if (i_ < s_.size() && s_[i_] >= '1' && s_[i_] <= '9') {
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    } else {
      return fail("invalid number");
    }
    if (eat('.')) {
      const std::size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == d) return fail("invalid number");
    }
    if (eat('e') || eat('E')) {
      if (!eat('+')) eat('-');
      const std::size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == d) return fail("invalid number");
    }
    auto [p, ec] = std::from_chars(s_.data() + start, s_.data() + i_, out);
    if (ec != std::errc() || p != s_.data() + i_) return fail("number out of range");
    return true;
  }

  // Any value; `out` is filled for the types JsonValue keeps.
  bool value(JsonValue& out, int depth) {
    if (depth > kMaxJsonDepth) return fail("nested too deeply");
    ws();
    if (i_ >= s_.size()) return fail("expected a value");
    switch (s_[i_]) {
      case '"': out.type = JsonValue::Type::String; return string(out.string);
      case 't': out.type = JsonValue::Type::Bool, out.boolean = true; return literal("true");
      case 'f': out.type = JsonValue::Type::Bool, out.boolean = false; return literal("false");
      case 'n': out.type = JsonValue::Type::Null; return literal("null");
      case '{': {
        out.type = JsonValue::Type::Other;
        return object(nullptr, depth + 1);
      }
      case '[': {
        ++i_;
        out.type = JsonValue::Type::StringArray;
        ws();
        if (eat(']')) return true;
        for (;;) {
          JsonValue item;
          if (!value(item, depth + 1)) return false;
          if (item.type == JsonValue::Type::String)
            out.strings.push_back(std::move(item.string));
          else
            out.type = JsonValue::Type::Other;
          ws();
          if (eat(']')) break;
          if (!eat(',')) return fail("expected ',' or ']'");
        }
        if (out.type == JsonValue::Type::Other) out.strings.clear();
        return true;
      }
      default: out.type = JsonValue::Type::Number; return number(out.number);
    }
  }

  // An object; its members go to `members` (null: nested, validated only).
  bool object(std::vector<JsonMember>* members, int depth) {
    if (depth > kMaxJsonDepth) return fail("nested too deeply");
    ws();
    if (!eat('{')) return fail("expected an object");
    ws();
    if (eat('}')) return true;
    std::vector<std::string> nested_names;
    for (;;) {
      ws();
      std::string name;
      if (!string(name)) return false;
      if (members) {
        for (const auto& m : *members)
          if (m.name == name) return fail("duplicate member name");
      } else {
        for (const auto& n : nested_names)
          if (n == name) return fail("duplicate member name");
        nested_names.push_back(name);
      }
      ws();
      if (!eat(':')) return fail("expected ':'");
      JsonValue v;
      if (!value(v, depth)) return false;
      if (members) members->push_back({std::move(name), std::move(v)});
      ws();
      if (eat('}')) return true;
      if (!eat(',')) return fail("expected ',' or '}'");
    }
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
  std::string why_;
};

}  // namespace

std::optional<std::vector<JsonMember>> parse_object(std::string_view text, std::string* why) {
  Reader r(text);
  std::vector<JsonMember> members;
  bool ok = r.object(&members, 1);
  if (ok) {
    r.ws();
    if (!r.at_end()) ok = r.fail("trailing bytes after the object");
  }
  if (!ok) {
    if (why) *why = r.why();
    return std::nullopt;
  }
  return members;
}

const JsonValue* find_member(const std::vector<JsonMember>& members, std::string_view name) noexcept {
  for (const auto& m : members)
    if (m.name == name) return &m.value;
  return nullptr;
}

}  // namespace cachalot::auth
