#include "http/range.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace cachalot;
using http::ByteRange;
using http::RangeVerdict;

namespace {

const char* name_of(RangeVerdict v) {
  switch (v) {
    case RangeVerdict::Ignore: return "Ignore";
    case RangeVerdict::Satisfiable: return "Satisfiable";
    case RangeVerdict::Unsatisfiable: return "Unsatisfiable";
  }
  return "?";
}

std::string ranges_text(const std::vector<ByteRange>& rs) {
  std::string s;
  for (const auto& r : rs) s += std::to_string(r.first) + "-" + std::to_string(r.last) + " ";
  return s;
}

// "bytes=" followed by n disjoint one-byte ranges 0-0,2-2,4-4...
std::string n_ranges(int n) {
  std::string s = "bytes=";
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(2 * i) + "-" + std::to_string(2 * i);
  return s;
}

std::vector<ByteRange> n_byte_ranges(int n) {
  std::vector<ByteRange> out;
  for (int i = 0; i < n; ++i) out.push_back({static_cast<uint64_t>(2 * i), static_cast<uint64_t>(2 * i)});
  return out;
}

}  // namespace

TEST_CASE("resolve_ranges follows RFC 9110 §14.1.1-§14.1.3", "[policy][range]") {
  const RangeVerdict S = RangeVerdict::Satisfiable, U = RangeVerdict::Unsatisfiable, I = RangeVerdict::Ignore;
  struct Row {
    const char* name;
    std::string value;
    uint64_t length = 10000;
    RangeVerdict want;
    std::vector<ByteRange> ranges = {};
  };
  const std::vector<Row> rows = {
      // §14.1.2 examples, for a representation of length 10000
      {"§14.1.2 the first 500 bytes: bytes=0-499", "bytes=0-499", 10000, S, {{0, 499}}},
      {"§14.1.2 the second 500 bytes: bytes=500-999", "bytes=500-999", 10000, S, {{500, 999}}},
      {"§14.1.2 the final 500 bytes: bytes=-500", "bytes=-500", 10000, S, {{9500, 9999}}},
      {"§14.1.2 the final 500 bytes: bytes=9500-", "bytes=9500-", 10000, S, {{9500, 9999}}},
      {"§14.1.2 the first and last bytes only: bytes=0-0,-1", "bytes=0-0,-1", 10000, S, {{0, 0}, {9999, 9999}}},
      {"§14.1.2 non-canonical but valid second 500 bytes: 500-600,601-999", "bytes=500-600,601-999", 10000, S,
       {{500, 600}, {601, 999}}},
      {"§14.1.1 bytes=0- is the whole representation", "bytes=0-", 10000, S, {{0, 9999}}},
      {"§14.1.1 a one-byte range", "bytes=42-42", 10000, S, {{42, 42}}},
      {"§14.1.1 the last byte by position", "bytes=9999-9999", 10000, S, {{9999, 9999}}},
      // §14.1.1: last-pos past the end is clipped to length - 1
      {"§14.1.1 last-pos >= length is clipped", "bytes=9000-20000", 10000, S, {{9000, 9999}}},
      {"§14.1.1 last-pos == length is clipped", "bytes=0-10000", 10000, S, {{0, 9999}}},
      {"§14.1.1 a huge (19-digit) last-pos is clipped", "bytes=5-9223372036854775807", 10, S, {{5, 9}}},
      // §14.1.3: a suffix longer than the representation selects all of it
      {"§14.1.3 a suffix longer than the body is the whole body", "bytes=-20000", 10000, S, {{0, 9999}}},
      {"§14.1.3 a suffix equal to the length is the whole body", "bytes=-10000", 10000, S, {{0, 9999}}},
      {"§14.1.3 a one-byte body and a suffix", "bytes=-5", 1, S, {{0, 0}}},
      // §14.1.1 unsatisfiable: first-pos >= length, or a zero suffix-length
      {"§14.1.1 first-pos == length is unsatisfiable", "bytes=10000-", 10000, U},
      {"§14.1.1 first-pos > length is unsatisfiable", "bytes=20000-20010", 10000, U},
      {"§14.1.1 a 19-digit first-pos is unsatisfiable", "bytes=9999999999999999999-", 10000, U},
      {"§14.1.1 a zero suffix-length is unsatisfiable", "bytes=-0", 10000, U},
      {"§14.1.1 every range unsatisfiable", "bytes=10000-10001,20000-,-0", 10000, U},
      // §14.1.1 mixed: only the satisfiable ones, in request order
      {"§14.1.1 mixed: the unsatisfiable range is dropped", "bytes=20000-30000,0-9", 10000, S, {{0, 9}}},
      {"§14.1.1 mixed: the order of the request is kept", "bytes=500-999,20000-,0-99", 10000, S,
       {{500, 999}, {0, 99}}},
      {"§14.1.1 ranges in descending order stay in that order", "bytes=-1,0-0", 10000, S, {{9999, 9999}, {0, 0}}},
      // §5.6.1 list syntax
      {"§5.6.1 OWS around commas", "bytes=0-1 ,\t5-6 , 9-9", 10000, S, {{0, 1}, {5, 6}, {9, 9}}},
      {"§5.6.1 empty list elements are ignored", "bytes=0-1,,5-6,", 10000, S, {{0, 1}, {5, 6}}},
      {"§5.6.1 surrounding whitespace", "  bytes=0-1\t", 10000, S, {{0, 1}}},
      {"§14.1 the range unit is case-insensitive", "BYTES=0-1", 10000, S, {{0, 1}}},
      {"§14.1 the range unit in mixed case", "Bytes=-2", 10000, S, {{9998, 9999}}},
      // §14.2: syntax errors are ignored (a full 200)
      {"§14.1.1 last-pos < first-pos is invalid", "bytes=500-499", 10000, I},
      {"§14.1.1 one invalid range invalidates the set", "bytes=0-1,5-4", 10000, I},
      {"garbage after the unit", "bytes=garbage", 10000, I},
      {"letters in a position", "bytes=0-1x", 10000, I},
      {"a sign in a position", "bytes=+1-2", 10000, I},
      {"a negative first-pos", "bytes=--1", 10000, I},
      {"three positions", "bytes=0-1-2", 10000, I},
      {"no dash", "bytes=5", 10000, I},
      {"a lone dash", "bytes=-", 10000, I},
      {"no range-spec at all", "bytes=", 10000, I},
      {"only commas", "bytes=, ,", 10000, I},
      {"a position longer than 19 digits", "bytes=0-99999999999999999999", 10000, I},
      {"an empty value", "", 10000, I},
      {"OWS before '=' is not the bytes unit", "bytes =0-1", 10000, I},
      {"a longer unit name is not bytes", "bytesx=0-1", 10000, I},
      {"§14.1 another range unit", "items=0-5", 10000, I},
      {"§14.1 the unit without '='", "bytes", 10000, I},
      // §14.2: overlapping ranges MAY be ignored (Cachalot does)
      {"§14.2 overlapping ranges are ignored", "bytes=0-499,400-999", 10000, I},
      {"§14.2 overlapping ranges given in reverse order are ignored", "bytes=400-999,0-499", 10000, I},
      {"§14.2 a repeated range is an overlap", "bytes=0-0,0-0", 10000, I},
      {"§14.2 a suffix overlapping an int-range", "bytes=9000-,-500", 10000, I},
      {"§14.2 ranges overlapping only after clipping", "bytes=9990-20000,-5", 10000, I},
      {"§14.2 adjacent ranges do not overlap", "bytes=0-9,10-19", 10000, S, {{0, 9}, {10, 19}}},
      // kMaxRanges
      {"§14.2 16 ranges are answered", n_ranges(16), 10000, S, n_byte_ranges(16)},
      {"§14.2 more than 16 ranges are ignored", n_ranges(17), 10000, I},
      {"§14.2 unsatisfiable ranges count toward the limit",
       n_ranges(16) + ",20000-20001", 10000, I},
      // an empty representation
      {"length 0: an int-range is ignored", "bytes=0-0", 0, I},
      {"length 0: a suffix is ignored", "bytes=-5", 0, I},
      {"length 0: an open range is ignored", "bytes=0-", 0, I},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      const auto got = http::resolve_ranges(r.value, r.length);
      INFO("value '" << r.value << "' length " << r.length << ": " << name_of(got.verdict) << " "
                     << ranges_text(got.ranges));
      CHECK(got.verdict == r.want);
      if (r.want == RangeVerdict::Satisfiable)
        CHECK(got.ranges == r.ranges);
      else
        CHECK(got.ranges.empty());
    }
  }
}

TEST_CASE("ByteRange::size counts both ends (RFC 9110 §14.1.1 inclusive positions)", "[policy][range]") {
  CHECK(ByteRange{0, 0}.size() == 1);
  CHECK(ByteRange{0, 499}.size() == 500);
  CHECK(ByteRange{9500, 9999}.size() == 500);
}

TEST_CASE("is_bytes_range recognises the bytes unit only (RFC 9110 §14.1)", "[policy][range]") {
  struct Row {
    const char* name;
    std::string_view value;
    bool want;
  };
  const std::vector<Row> rows = {
      {"§14.1.2 bytes=0-499", "bytes=0-499", true},
      {"§14.1 case-insensitive unit", "ByTeS=0-1", true},
      {"surrounding OWS", " \tbytes=-5 ", true},
      {"a syntax error after the unit is still the bytes unit", "bytes=garbage", true},
      {"the unit with an empty set", "bytes=", true},
      {"§14.1 another unit", "items=0-5", false},
      {"§14.1 an unknown unit that starts like bytes", "bytesx=0-1", false},
      {"OWS before '='", "bytes =0-1", false},
      {"no '='", "bytes", false},
      {"empty", "", false},
      {"a shorter prefix", "byte=0-1", false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(http::is_bytes_range(r.value) == r.want); }
  }
}
