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
      {"RFC 9110 §12.4.2 q=1, q=1.0 and q=1.000 are no weight", {"accept-encoding"},
       {{"Accept-Encoding", "gzip;q=1.0, br;q=1, zstd;Q=1.000"}}, "accept-encoding:12:br,gzip,zstd"},
      {"RFC 9110 §12.4.2 a weight takes its shortest form", {"accept-encoding"},
       {{"Accept-Encoding", "gzip;q=0.50, br;q=0.125, zstd;q=0.010"}},
       "accept-encoding:33:br;q=0.125,gzip;q=0.5,zstd;q=0.01"},
      {"RFC 9110 §12.4.2 the parameter name q is case-insensitive", {"accept-encoding"},
       {{"Accept-Encoding", "gzip; Q=0.5"}}, "accept-encoding:10:gzip;q=0.5"},
      {"RFC 9110 §12.5.3 exact duplicates are dropped", {"accept-encoding"},
       {{"Accept-Encoding", "gzip, GZIP, br"}, {"Accept-Encoding", "gzip"}}, "accept-encoding:7:br,gzip"},
      {"RFC 9110 §8.4.1.3 x-gzip is gzip", {"accept-encoding"}, {{"Accept-Encoding", "x-gzip, gzip, X-Compress"}},
       "accept-encoding:13:compress,gzip"},
      {"RFC 9110 §12.5.3 a coding with q=0 says no more than leaving it out", {"accept-encoding"},
       {{"Accept-Encoding", "gzip, br;q=0"}}, "accept-encoding:4:gzip"},
      {"RFC 9110 §12.5.3 only q=0 items: present but empty (identity only)", {"accept-encoding"},
       {{"Accept-Encoding", "gzip;q=0"}}, "accept-encoding:0:"},
      {"RFC 9110 §12.5.3 identity;q=0 is kept: it excludes the unencoded response", {"accept-encoding"},
       {{"Accept-Encoding", "gzip, identity;q=0"}}, "accept-encoding:17:gzip,identity;q=0"},
      {"RFC 9110 §12.5.3 *;q=0 is kept: it excludes what is not listed", {"accept-encoding"},
       {{"Accept-Encoding", "gzip, *;q=0"}}, "accept-encoding:10:*;q=0,gzip"},
      {"RFC 9110 §12.5.3 c;q=0 is kept when '*' would admit c", {"accept-encoding"},
       {{"Accept-Encoding", "*, br;q=0"}}, "accept-encoding:8:*,br;q=0"},
      {"RFC 9110 §12.5.3 c;q=0 is kept when c is also listed with a weight", {"accept-encoding"},
       {{"Accept-Encoding", "br, br;q=0"}}, "accept-encoding:9:br,br;q=0"},
      {"§4.1 an accept-encoding item with another parameter: a plain sorted list", {"accept-encoding"},
       {{"Accept-Encoding", "gzip;level=1, BR"}}, "accept-encoding:15:br,gzip;level=1"},
      {"§4.1 an accept-encoding item with a bad qvalue: a plain sorted list", {"accept-encoding"},
       {{"Accept-Encoding", "gzip;q=2, br"}}, "accept-encoding:11:br,gzip;q=2"},
      {"RFC 9110 §12.5.4 accept-language: distinct weights put in descending order", {"accept-language"},
       {{"Accept-Language", "en;q=0.5, de;q=0.9, FR"}}, "accept-language:20:fr,de;q=0.9,en;q=0.5"},
      {"RFC 9110 §12.5.4 accept-language: equal weights keep their order", {"accept-language"},
       {{"Accept-Language", "fr, en, de;q=0.5, da;q=0.5"}}, "accept-language:23:fr,en,de;q=0.5,da;q=0.5"},
      {"RFC 9110 §12.5.4 accept-language: later exact duplicates are dropped", {"accept-language"},
       {{"Accept-Language", "en, fr, EN"}}, "accept-language:5:en,fr"},
      {"RFC 9110 §12.5.4 accept-language: q=0 is kept (a default language may not be it), sorted last",
       {"accept-language"}, {{"Accept-Language", "it;q=0, en, fr;q=0.0"}}, "accept-language:16:en,fr;q=0,it;q=0"},
      {"§4.1 an accept-language item with another parameter: a plain list in order", {"accept-language"},
       {{"Accept-Language", "fr;x=1, en"}}, "accept-language:9:fr;x=1,en"},
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
      {"§4.1 reordered accept-language does not match (RFC 9110 §12.5.4: order may be priority)",
       {{"Accept-Language", "en, fr"}}, {{"Accept-Language", "fr, en"}}, false},
      {"RFC 9110 §12.5.4 accept-language with distinct weights matches in any order and spacing",
       {{"Accept-Language", "en-GB;q=0.8, da, en;q=0.7"}}, {{"Accept-Language", "da ,en;q=0.7,EN-gb; q=0.80"}},
       true},
      {"RFC 9110 §12.4.2 a weight of 1 is no weight", {{"Accept-Language", "da;q=1.0, en;q=0.5"}},
       {{"Accept-Language", "da, en;q=0.500"}}, true},
      {"RFC 9110 §12.5.3 accept-encoding weights: same codings, same weights match",
       {{"Accept-Encoding", "gzip;q=1.0, br;q=0.8, deflate;q=0"}}, {{"Accept-Encoding", "br;q=0.80,gzip"}}, true},
      {"RFC 9110 §12.5.3 accept-encoding weights differ: no match", {{"Accept-Encoding", "gzip, br;q=0.5"}},
       {{"Accept-Encoding", "gzip, br"}}, false},
      {"RFC 9110 §12.5.3 identity;q=0 is not dropped", {{"Accept-Encoding", "gzip, identity;q=0"}},
       {{"Accept-Encoding", "gzip"}}, false},
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

TEST_CASE("reduce_accept_encoding keeps only the configured codings a request accepts (RFC 9110 §12.5.3)",
          "[policy][vary]") {
  struct Row {
    const char* name;
    Fields request;
    bool rewrite;
    std::string want = "";
    std::vector<std::string> config = {"br", "gzip"};
  };
  const std::vector<Row> rows = {
      {"§12.5.3 a browser's list is reduced to the codings the origin uses",
       {{"Accept-Encoding", "gzip, deflate, br, zstd"}}, true, "br, gzip"},
      {"§12.5.3 weights are dropped: every kept coding is acceptable", {{"Accept-Encoding", "gzip;q=0.8, br;q=0.1"}},
       true, "br, gzip"},
      {"§12.5.3 q=0 refuses a coding", {{"Accept-Encoding", "gzip, br;q=0"}}, true, "gzip"},
      {"§12.5.3 '*' admits the codings not listed", {{"Accept-Encoding", "*"}}, true, "br, gzip"},
      {"§12.5.3 '*' does not admit one refused by name", {{"Accept-Encoding", "*, gzip;q=0"}}, true, "br"},
      {"§8.4.1.3 x-gzip counts as gzip", {{"Accept-Encoding", "x-gzip"}}, true, "gzip"},
      {"§12.5.3 none of them accepted: only identity, an empty field", {{"Accept-Encoding", "zstd, deflate"}}, true,
       ""},
      {"§12.5.3 an empty field stays empty (identity only)", {{"Accept-Encoding", ""}}, true, ""},
      {"§12.5.3 identity;q=0 is kept", {{"Accept-Encoding", "gzip, identity;q=0"}}, true, "gzip, identity;q=0"},
      {"§12.5.3 *;q=0 without identity refuses identity too", {{"Accept-Encoding", "br, *;q=0"}}, true,
       "br, identity;q=0"},
      {"§12.5.3 *;q=0 with identity listed keeps identity acceptable", {{"Accept-Encoding", "br, identity, *;q=0"}},
       true, "br"},
      {"§12.5.3 several field lines are one list", {{"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br"}}, true,
       "br, gzip"},
      {"codings are compared ignoring case, written lower-case", {{"Accept-Encoding", "GZIP"}}, true, "gzip",
       {"Br", "GZip"}},
      {"an absent field stays absent: not rewritten", {}, false},
      {"an unparsable field is forwarded as sent", {{"Accept-Encoding", "gzip;level=9"}}, false},
      {"no configured codings: not rewritten", {{"Accept-Encoding", "gzip"}}, false, "", {}},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      std::string out = "left over";
      CHECK(cache::reduce_accept_encoding(headers(r.request), r.config, out) == r.rewrite);
      if (r.rewrite) CHECK(out == r.want);
    }
  }
}

TEST_CASE("variant_key of a reduced Accept-Encoding is one variant for most browsers", "[policy][vary]") {
  const std::vector<std::string> codings = {"br", "gzip"};
  auto key_of = [&](std::string value) {
    std::string reduced;
    http::HeaderMap h;
    h.add("Accept-Encoding", value);
    REQUIRE(cache::reduce_accept_encoding(h, codings, reduced));
    http::HeaderMap forwarded;
    forwarded.add("Accept-Encoding", reduced);
    return cache::variant_key(std::vector<std::string>{"accept-encoding"}, forwarded);
  };
  CHECK(key_of("gzip, deflate, br, zstd") == key_of("br, gzip"));
  CHECK(key_of("gzip, deflate, br") == key_of("gzip;q=1.0, br;q=0.9, *;q=0.1"));
  CHECK(key_of("gzip") != key_of("gzip, br"));
}
