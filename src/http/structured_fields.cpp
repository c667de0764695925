#include "http/structured_fields.h"

namespace cachalot::http::sf {

namespace {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_lcalpha(char c) noexcept { return c >= 'a' && c <= 'z'; }
constexpr bool is_alpha(char c) noexcept { return is_lcalpha(c) || (c >= 'A' && c <= 'Z'); }
// tchar, RFC 9110 §5.6.2
constexpr bool is_tchar(char c) noexcept {
  return is_alpha(c) || is_digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
constexpr bool is_base64(char c) noexcept { return is_alpha(c) || is_digit(c) || c == '+' || c == '/' || c == '='; }

// The algorithms of RFC 8941 §4.2, one member function each, consuming `in_`.
// Every step either consumes a byte or fails, so any input terminates.
class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  // §4.2, field_type "dictionary".
  std::optional<Dictionary> top_level_dictionary() {
    skip_sp();
    auto d = dictionary();
    if (!d) return std::nullopt;
    skip_sp();
    if (!in_.empty()) return std::nullopt;
    return d;
  }

 private:
  std::string_view in_;

  bool empty() const noexcept { return in_.empty(); }
  char peek() const noexcept { return in_.front(); }
  void consume() noexcept { in_.remove_prefix(1); }
  void skip_sp() noexcept {
    while (!in_.empty() && in_.front() == ' ') consume();
  }
  void skip_ows() noexcept {
    while (!in_.empty() && (in_.front() == ' ' || in_.front() == '\t')) consume();
  }

  // §4.2.2
  std::optional<Dictionary> dictionary() {
    Dictionary dict;
    while (!empty()) {
      auto key = this->key();
      if (!key) return std::nullopt;
      DictMember m;
      m.key = std::move(*key);
      if (!empty() && peek() == '=') {
        consume();
        auto v = item_or_inner_list();
        if (!v) return std::nullopt;
        m.value = std::move(*v);
      } else {
        auto params = parameters();
        if (!params) return std::nullopt;
        m.value = Item{true, std::move(*params)};
      }
      // "If dictionary already contains a key this_key, overwrite its value."
      bool replaced = false;
      for (auto& existing : dict) {
        if (existing.key == m.key) {
          existing.value = std::move(m.value);
          replaced = true;
          break;
        }
      }
      if (!replaced) dict.push_back(std::move(m));
      skip_ows();
      if (empty()) return dict;
      if (peek() != ',') return std::nullopt;
      consume();
      skip_ows();
      if (empty()) return std::nullopt;  // a trailing comma
    }
    return dict;
  }

  // §4.2.1.1
  std::optional<std::variant<Item, InnerList>> item_or_inner_list() {
    if (!empty() && peek() == '(') {
      auto l = inner_list();
      if (!l) return std::nullopt;
      return std::variant<Item, InnerList>(std::move(*l));
    }
    auto i = item();
    if (!i) return std::nullopt;
    return std::variant<Item, InnerList>(std::move(*i));
  }

  // §4.2.1.2
  std::optional<InnerList> inner_list() {
    consume();  // '('
    InnerList l;
    while (!empty()) {
      skip_sp();
      if (empty()) break;
      if (peek() == ')') {
        consume();
        auto params = parameters();
        if (!params) return std::nullopt;
        l.params = std::move(*params);
        return l;
      }
      auto i = item();
      if (!i) return std::nullopt;
      l.items.push_back(std::move(*i));
      if (empty()) break;
      if (peek() != ' ' && peek() != ')') return std::nullopt;
    }
    return std::nullopt;  // no closing parenthesis
  }

  // §4.2.3
  std::optional<Item> item() {
    auto v = bare_item();
    if (!v) return std::nullopt;
    auto params = parameters();
    if (!params) return std::nullopt;
    return Item{std::move(*v), std::move(*params)};
  }

  // §4.2.3.1
  std::optional<BareItem> bare_item() {
    if (empty()) return std::nullopt;
    const char c = peek();
    if (c == '-' || is_digit(c)) return number();
    if (c == '"') return string();
    if (c == '*' || is_alpha(c)) return token();
    if (c == ':') return byte_sequence();
    if (c == '?') return boolean();
    return std::nullopt;
  }

  // §4.2.3.2
  std::optional<Parameters> parameters() {
    Parameters params;
    while (!empty() && peek() == ';') {
      consume();
      skip_sp();
      auto key = this->key();
      if (!key) return std::nullopt;
      BareItem value = true;
      if (!empty() && peek() == '=') {
        consume();
        auto v = bare_item();
        if (!v) return std::nullopt;
        value = std::move(*v);
      }
      bool replaced = false;
      for (auto& p : params) {
        if (p.key == *key) {
          p.value = std::move(value);
          replaced = true;
          break;
        }
      }
      if (!replaced) params.push_back({std::move(*key), std::move(value)});
    }
    return params;
  }

  // §4.2.3.3: key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
  std::optional<std::string> key() {
    if (empty() || !(is_lcalpha(peek()) || peek() == '*')) return std::nullopt;
    std::string k;
    while (!empty()) {
      const char c = peek();
      if (!(is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '*')) break;
      k.push_back(c);
      consume();
    }
    return k;
  }

  // §4.2.4
  std::optional<BareItem> number() {
    bool negative = false;
    if (peek() == '-') {
      negative = true;
      consume();
    }
    if (empty() || !is_digit(peek())) return std::nullopt;
    int64_t integer = 0;
    int digits = 0;
    while (!empty() && is_digit(peek())) {
      if (++digits > 15) return std::nullopt;
      integer = integer * 10 + (peek() - '0');
      consume();
    }
    if (empty() || peek() != '.') return BareItem(negative ? -integer : integer);
    if (digits > 12) return std::nullopt;
    consume();  // '.'
    int64_t fraction = 0;
    int fraction_digits = 0;
    while (!empty() && is_digit(peek())) {
      if (++fraction_digits > 3) return std::nullopt;
      fraction = fraction * 10 + (peek() - '0');
      consume();
    }
    if (fraction_digits == 0) return std::nullopt;  // "1." is not a Decimal
    for (int i = fraction_digits; i < 3; ++i) fraction *= 10;
    const int64_t thousandths = integer * 1000 + fraction;
    return BareItem(Decimal{negative ? -thousandths : thousandths});
  }

  // §4.2.5
  std::optional<BareItem> string() {
    consume();  // '"'
    std::string s;
    while (!empty()) {
      const char c = peek();
      consume();
      if (c == '\\') {
        if (empty()) return std::nullopt;
        const char next = peek();
        if (next != '"' && next != '\\') return std::nullopt;
        s.push_back(next);
        consume();
      } else if (c == '"') {
        return BareItem(std::move(s));
      } else if (c < 0x20 || c > 0x7e) {  // plain char is %x20-21 / %x23-5B / %x5D-7E; char is signed or not
        return std::nullopt;
      } else {
        s.push_back(c);
      }
    }
    return std::nullopt;  // no closing quote
  }

  // §4.2.6: sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )
  std::optional<BareItem> token() {
    Token t;
    while (!empty()) {
      const char c = peek();
      if (!(is_tchar(c) || c == ':' || c == '/')) break;
      t.value.push_back(c);
      consume();
    }
    return BareItem(std::move(t));
  }

  // Would base64-decoding succeed? "=" only as 1 or 2 trailing pad characters
  // of a whole quantum; without padding any length but 4n+1 (§4.2.7: parsers
  // synthesize missing padding).
  static bool decodable(std::string_view s) noexcept {
    const std::size_t pad_at = s.find('=');
    if (pad_at == std::string_view::npos) return s.size() % 4 != 1;
    const std::size_t pad = s.size() - pad_at;
    if (pad > 2 || s.size() % 4 != 0) return false;
    return s.find_first_not_of('=', pad_at) == std::string_view::npos;
  }

  // §4.2.7
  std::optional<BareItem> byte_sequence() {
    consume();  // ':'
    ByteSequence b;
    while (!empty()) {
      const char c = peek();
      consume();
      if (c == ':') {
        if (!decodable(b.base64)) return std::nullopt;
        return BareItem(std::move(b));
      }
      if (!is_base64(c)) return std::nullopt;
      b.base64.push_back(c);
    }
    return std::nullopt;  // no closing colon
  }

  // §4.2.8
  std::optional<BareItem> boolean() {
    consume();  // '?'
    if (empty()) return std::nullopt;
    const char c = peek();
    consume();
    if (c == '1') return BareItem(true);
    if (c == '0') return BareItem(false);
    return std::nullopt;
  }
};

}  // namespace

std::optional<Dictionary> parse_dictionary(std::string_view value) { return Parser(value).top_level_dictionary(); }

std::optional<Dictionary> parse_dictionary(const HeaderMap& headers, std::string_view name) {
  if (!headers.has(name)) return std::nullopt;
  // §4.2: the field lines combined into one comma-separated value (RFC 9110 §5.3).
  return parse_dictionary(headers.get_combined(name));
}

}  // namespace cachalot::http::sf
