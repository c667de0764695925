#include "cache/vary.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

using namespace cachalot;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

http::HeaderMap headers(const Fields& fields) {
  http::HeaderMap h;
  for (const auto& [n, v] : fields) h.add(n, v);
  return h;
}

}  // namespace

TEST_CASE("parse_vary collects lower-cased, sorted, unique names (RFC 9110 §12.5.5)", "[policy][vary]") {
  struct Row {
    const char* name;
    Fields fields;
    bool star;
    std::vector<std::string> names;
  };
  const std::vector<Row> rows = {
      {"§12.5.5 no Vary", {}, false, {}},
      {"§12.5.5 one name, lower-cased", {{"Vary", "Accept-Encoding"}}, false, {"accept-encoding"}},
      {"§12.5.5 names are sorted", {{"Vary", "Accept-Language, accept-encoding"}}, false,
       {"accept-encoding", "accept-language"}},
      {"RFC 9110 §5.3 several Vary lines combine, duplicates kept once",
       {{"Vary", "Accept"}, {"vary", "ACCEPT, Origin"}}, false, {"accept", "origin"}},
      {"RFC 9110 §5.6.1 empty members are ignored", {{"Vary", " , accept ,, "}}, false, {"accept"}},
      {"RFC 9110 §5.6.1 an empty Vary names nothing", {{"Vary", ""}}, false, {}},
      {"§12.5.5 Vary: * never matches", {{"Vary", "*"}}, true, {"*"}},
      {"§12.5.5 a '*' member among names never matches", {{"Vary", "Accept, *"}}, true, {"accept"}},
      {"a member that is not a field name is treated as '*'", {{"Vary", "Accept, a b"}}, true, {"accept"}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      const auto spec = cache::parse_vary(headers(r.fields));
      CHECK(spec.star == r.star);
      if (!r.star) CHECK(spec.names == r.names);
    }
  }
}

TEST_CASE("variant_key normalises request values as RFC 9111 §4.1 allows", "[policy][vary]") {
  struct Row {
    const char* name;
    std::vector<std::string> vary;
    Fields request;
    std::string want;
  };
  const std::vector<Row> rows = {
      {"§4.1 no Vary gives an empty key", {}, {{"Accept", "x"}}, ""},
      {"§4.1 an absent field", {"accept-encoding"}, {}, "accept-encoding:!"},
      {"§4.1 an empty field differs from an absent one", {"accept-encoding"}, {{"Accept-Encoding", ""}},
       "accept-encoding:0:"},
      {"§4.1 accept-encoding items are sorted and lower-cased", {"accept-encoding"},
       {{"Accept-Encoding", "GZip, br"}}, "accept-encoding:7:br,gzip"},
      {"§4.1 whitespace around commas is removed", {"accept-encoding"}, {{"Accept-Encoding", " gzip ,\t br "}},
       "accept-encoding:7:br,gzip"},
      {"§4.1 field lines are combined", {"accept-encoding"}, {{"Accept-Encoding", "gzip"}, {"accept-encoding", "br"}},
       "accept-encoding:7:br,gzip"},
      {"RFC 9110 §5.6.1 empty list items are dropped", {"accept-encoding"}, {{"Accept-Encoding", "gzip,,br,"}},
       "accept-encoding:7:br,gzip"},
      {"RFC 9110 §12.4.2 whitespace around a weight is removed", {"accept-encoding"},
       {{"Accept-Encoding", "gzip ; q=0.5, br"}}, "accept-encoding:13:br,gzip;q=0.5"},
      {"RFC 9110 §12.5.4 accept-language is lower-cased but keeps its order", {"accept-language"},
       {{"Accept-Language", "fr-CH, en;q=0.5"}}, "accept-language:14:fr-ch,en;q=0.5"},
      {"RFC 9110 §12.5.1 accept: the media range is lower-cased, parameters kept", {"accept"},
       {{"Accept", "Text/HTML;Level=A, */*"}}, "accept:21:text/html;Level=A,*/*"},
      {"§4.1 an unknown field is only trimmed", {"user-agent"}, {{"User-Agent", "  Foo/1.0 (X, Y)  "}},
       "user-agent:14:Foo/1.0 (X, Y)"},
      {"§4.1 an unknown field's lines are joined with \", \"", {"x-a"}, {{"X-A", "a"}, {"X-A", "b"}},
       "x-a:4:a, b"},
      {"§4.1 several names, in sorted order, joined by newlines", {"accept-encoding", "user-agent"},
       {{"User-Agent", "u"}, {"Accept-Encoding", "br"}}, "accept-encoding:2:br\nuser-agent:1:u"},
      {"§4.1 a comma inside a quoted string does not split", {"accept"}, {{"Accept", "a/b;x=\"1,2\", c/d"}},
       "accept:15:a/b;x=\"1,2\",c/d"},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      cache::VarySpec spec;
      spec.names = r.vary;
      CHECK(cache::variant_key(spec, headers(r.request)) == r.want);
      CHECK(cache::variant_key(r.vary, headers(r.request)) == r.want);  // the Entry::vary_names() overload
      std::string joined;  // as Entry::vary() holds them
      for (const auto& n : r.vary) joined += (joined.empty() ? "" : "\n") + n;
      CHECK(cache::variant_key_joined(joined, headers(r.request)) == r.want);
    }
  }
}

TEST_CASE("variant_key is equal exactly for requests that match under RFC 9111 §4.1", "[policy][vary]") {
  cache::VarySpec spec;
  spec.names = {"accept", "accept-encoding", "accept-language", "x-tenant"};
  struct Row {
    const char* name;
    Fields a, b;
    bool same;
  };
  const std::vector<Row> rows = {
      {"§4.1 reordered accept-encoding matches", {{"Accept-Encoding", "gzip, br"}}, {{"Accept-Encoding", "br,gzip"}},
       true},
      {"§4.1 case of accept-encoding does not matter", {{"Accept-Encoding", "GZIP"}}, {{"accept-encoding", "gzip"}},
       true},
      {"§4.1 reordered accept-language does not match", {{"Accept-Language", "en, fr"}},
       {{"Accept-Language", "fr, en"}}, false},
      {"§4.1 case of an unknown field matters", {{"X-Tenant", "Abc"}}, {{"X-Tenant", "abc"}}, false},
      {"§4.1 absent and empty differ", {}, {{"X-Tenant", ""}}, false},
      {"length prefixes keep a value from forging the next entry", {{"X-Tenant", "a\nzz:!"}}, {{"X-Tenant", "a"}},
       false},
      {"unrelated fields are ignored", {{"Cookie", "a=1"}}, {{"Cookie", "b=2"}}, true},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK((cache::variant_key(spec, headers(r.a)) == cache::variant_key(spec, headers(r.b))) == r.same);
    }
  }
}

TEST_CASE("variant_key sorts long accept-encoding lists that spill past the inline buffer", "[policy][vary]") {
  std::string value, want;
  // Items "eA0".."eN39" in reverse order and upper case; the key wants them sorted and lower-cased.
  for (int i = 39; i >= 0; --i)
    value += (value.empty() ? "" : ", ") + std::string("e") + char('A' + i % 26) + std::to_string(i);
  std::vector<std::string> items;
  for (int i = 0; i < 40; ++i) items.push_back(std::string("e") + char('a' + i % 26) + std::to_string(i));
  std::sort(items.begin(), items.end());
  for (const auto& i : items) want += (want.empty() ? "" : ",") + i;
  cache::VarySpec spec;
  spec.names = {"accept-encoding"};
  CHECK(cache::variant_key(spec, headers({{"Accept-Encoding", value}})) ==
        "accept-encoding:" + std::to_string(want.size()) + ":" + want);
}
