#include "http/structured_fields.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace cachalot::http;
using namespace cachalot::http::sf;

namespace {

DictMember item(std::string key, BareItem v, Parameters params = {}) {
  return DictMember{std::move(key), Item{std::move(v), std::move(params)}};
}
DictMember inner(std::string key, std::vector<Item> items, Parameters params = {}) {
  return DictMember{std::move(key), InnerList{std::move(items), std::move(params)}};
}
BareItem tok(std::string t) { return Token{std::move(t)}; }
BareItem str(std::string s) { return BareItem(std::move(s)); }
BareItem dec(int64_t thousandths) { return Decimal{thousandths}; }

}  // namespace

TEST_CASE("parse_dictionary follows RFC 8941 §4.2.2, strictly", "[http][structured-fields]") {
  struct Row {
    const char* name;
    std::string value;
    std::optional<Dictionary> want;  // nullopt: parsing fails
  };
  const std::vector<Row> rows = {
      {"§4.2 an empty field is an empty Dictionary", "", Dictionary{}},
      {"§4.2 leading and trailing SP are discarded", "  a=1  ", Dictionary{item("a", int64_t{1})}},
      {"§3.2 a bare key is Boolean true", "a", Dictionary{item("a", true)}},
      {"§3.2 members keep their order", "b=1, a=2", Dictionary{item("b", int64_t{1}), item("a", int64_t{2})}},
      {"§4.2.2 OWS (SP, HTAB) around commas", "a=1 ,\tb", Dictionary{item("a", int64_t{1}), item("b", true)}},
      {"§4.2.2 a repeated key overwrites the value in place", "a=1, b, a=3",
       Dictionary{item("a", int64_t{3}), item("b", true)}},
      {"§3.3.1 Integer, negative and zero", "a=-42, b=0", Dictionary{item("a", int64_t{-42}), item("b", int64_t{0})}},
      {"§3.3.1 fifteen digits is the largest Integer", "a=999999999999999",
       Dictionary{item("a", int64_t{999999999999999})}},
      {"§3.3.2 Decimal with one to three fractional digits", "a=1.5, b=-0.125, c=12.30",
       Dictionary{item("a", dec(1500)), item("b", dec(-125)), item("c", dec(12300))}},
      {"§3.3.3 String with escapes", R"(a="x \"y\" \\ z")", Dictionary{item("a", str("x \"y\" \\ z"))}},
      {"§3.3.4 Token with ':' and '/'", "a=foo/bar:baz, b=*x", Dictionary{item("a", tok("foo/bar:baz")),
                                                                          item("b", tok("*x"))}},
      {"§3.3.5 Byte Sequence (base64 kept as text)", "a=:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:",
       Dictionary{item("a", ByteSequence{"cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg=="})}},
      {"§4.2.7 missing padding is accepted", "a=:YWI:", Dictionary{item("a", ByteSequence{"YWI"})}},
      {"§3.3.6 Boolean ?0 and ?1", "a=?0, b=?1", Dictionary{item("a", false), item("b", true)}},
      {"§3.1.2 Parameters on an Item and on a bare key", "a=1;x;y=\"z\", b;q=0.5",
       Dictionary{item("a", int64_t{1}, {{"x", true}, {"y", str("z")}}), item("b", true, {{"q", dec(500)}})}},
      {"§4.2.3.2 SP after ';' is allowed", "a;  x=1", Dictionary{item("a", true, {{"x", int64_t{1}}})}},
      {"§3.1.1 Inner List with parameters", "a=(1 \"b\" c;d);e",
       Dictionary{inner("a", {Item{int64_t{1}, {}}, Item{str("b"), {}}, Item{tok("c"), {{"d", true}}}},
                        {{"e", true}})}},
      {"§3.1.1 an empty Inner List, spaces inside", "a=( ), b=(  1  )",
       Dictionary{inner("a", {}), inner("b", {Item{int64_t{1}, {}}})}},
      {"§3.1.2 keys may hold digits, '_', '-', '.', '*'", "*a.b-c_d9", Dictionary{item("*a.b-c_d9", true)}},
      {"§3.1.2 an upper-case key fails", "A=1", std::nullopt},
      {"§3.1.2 a key cannot start with a digit", "1a=1", std::nullopt},
      {"§4.2.2 a trailing comma fails", "a=1,", std::nullopt},
      {"§4.2.2 an empty member fails", "a=1,,b=2", std::nullopt},
      {"§4.2.2 a leading HTAB fails (only SP is discarded)", "\ta=1", std::nullopt},
      {"§4.2.2 SP before '=' fails", "a =1", std::nullopt},
      {"§4.2.2 SP after '=' fails", "a= 1", std::nullopt},
      {"§4.2.2 members need a comma between them", "a=1 b=2", std::nullopt},
      {"§4.2.3.1 an unknown type fails", "a=&", std::nullopt},
      {"§4.2.4 sixteen Integer digits fail", "a=1234567890123456", std::nullopt},
      {"§4.2.4 thirteen integer digits in a Decimal fail", "a=1234567890123.5", std::nullopt},
      {"§4.2.4 four fractional digits fail", "a=1.2345", std::nullopt},
      {"§4.2.4 a Decimal ending in '.' fails", "a=1.", std::nullopt},
      {"§4.2.4 a lone '-' fails", "a=-", std::nullopt},
      {"§4.2.5 an unterminated String fails", "a=\"abc", std::nullopt},
      {"§4.2.5 an unknown escape fails", R"(a="\n")", std::nullopt},
      {"§4.2.5 a control character in a String fails", "a=\"x\x01\"", std::nullopt},
      {"§4.2.5 a non-ASCII byte in a String fails", "a=\"caf\xc3\xa9\"", std::nullopt},
      {"§4.2.7 a bad base64 character fails", "a=:ab$c:", std::nullopt},
      {"§4.2.7 '=' inside base64 fails", "a=:ab=c:", std::nullopt},
      {"§4.2.7 an unterminated Byte Sequence fails", "a=:abc", std::nullopt},
      {"§4.2.8 a Boolean other than ?0 or ?1 fails", "a=?2", std::nullopt},
      {"§4.2.1.2 an unterminated Inner List fails", "a=(1 2", std::nullopt},
      {"§4.2.1.2 Inner List items need SP between them", "a=(1,2)", std::nullopt},
      {"§4.2.3.2 a Parameter key must be a key", "a;X=1", std::nullopt},
      {"RFC 9651's Date is not an RFC 8941 type", "a=@1659578233", std::nullopt},
      {"RFC 9651's Display String is not an RFC 8941 type", "a=%\"x\"", std::nullopt},
      {"§4.2 a non-ASCII byte after a member fails", "a=1\xff", std::nullopt},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      const auto got = parse_dictionary(r.value);
      REQUIRE(got.has_value() == r.want.has_value());
      if (got) CHECK(*got == *r.want);
    }
  }
}

TEST_CASE("parse_dictionary combines field lines before parsing (RFC 8941 §4.2)", "[http][structured-fields]") {
  HeaderMap h;
  CHECK_FALSE(parse_dictionary(h, "cdn-cache-control").has_value());  // absent
  h.add("CDN-Cache-Control", "a=1");
  h.add("Other", "x");
  h.add("cdn-cache-control", "b");
  const auto d = parse_dictionary(h, "CDN-Cache-Control");
  REQUIRE(d);
  CHECK(*d == Dictionary{item("a", int64_t{1}), item("b", true)});
  h.add("CDN-Cache-Control", "(");  // one bad line fails the whole field
  CHECK_FALSE(parse_dictionary(h, "cdn-cache-control").has_value());
}

TEST_CASE("parse_dictionary terminates on any prefix of valid input", "[http][structured-fields]") {
  const std::string full = R"(a=1;x=?1, b=(1 "s" t:u;p=:YWI=:);q=-1.25, c="\\\"", *d)";
  REQUIRE(parse_dictionary(full));
  for (std::size_t n = 0; n < full.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    (void)parse_dictionary(std::string_view(full).substr(0, n));  // must not crash or read past the end
  }
}
