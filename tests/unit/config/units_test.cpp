#include "config/units.h"

#include <catch2/catch.hpp>

using namespace cachalot::config;
using namespace std::chrono_literals;

TEST_CASE("sizes accept bytes, binary and decimal units, any case, one optional space", "[config]") {
  struct Row {
    const char* text;
    std::optional<uint64_t> bytes;
  };
  const Row rows[] = {
      {"0", 0},
      {"512", 512},
      {"512b", 512},
      {"64KiB", 64 * 1024},
      {"64 KiB", 64 * 1024},
      {"64kib", 64 * 1024},
      {"256MiB", 256ull << 20},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"10KB", 10'000},
      {"10MB", 10'000'000},
      {"1GB", 1'000'000'000},
      {"1gb", 1'000'000'000},
      {"", std::nullopt},
      {"MiB", std::nullopt},          // no number
      {"-1", std::nullopt},           // negative
      {"+1", std::nullopt},
      {"1.5MiB", std::nullopt},       // integers only
      {"64  KiB", std::nullopt},      // one space at most
      {"64 ", std::nullopt},
      {" 64", std::nullopt},
      {"64K", std::nullopt},          // ambiguous: KB or KiB?
      {"64kbit", std::nullopt},
      {"0x10", std::nullopt},
      {"16777216TiB", std::nullopt},  // overflows 64 bits
      {"99999999999999999999", std::nullopt},
  };
  for (const Row& row : rows) {
    INFO("'" << row.text << "'");
    CHECK(parse_size(row.text) == row.bytes);
  }
}

TEST_CASE("durations accept ms, s, m, h, d; a bare number is seconds", "[config]") {
  struct Row {
    const char* text;
    std::optional<std::chrono::milliseconds> value;
  };
  const Row rows[] = {
      {"0", 0ms},
      {"0s", 0ms},
      {"500ms", 500ms},
      {"30s", 30s},
      {"30", 30s},
      {"30 s", 30s},
      {"30S", 30s},
      {"5m", 5min},
      {"1h", 1h},
      {"1d", 24h},
      {"", std::nullopt},
      {"s", std::nullopt},
      {"-1s", std::nullopt},  // negative
      {"1.5s", std::nullopt},
      {"1w", std::nullopt},   // unknown unit
      {"1h30m", std::nullopt},
      {"10 minutes", std::nullopt},
      {"999999999999999999d", std::nullopt},  // overflow
  };
  for (const Row& row : rows) {
    INFO("'" << row.text << "'");
    CHECK(parse_duration(row.text) == row.value);
  }
}

TEST_CASE("sizes and durations format exactly, in the largest unit that divides them", "[config]") {
  CHECK(format_size(0) == "0");
  CHECK(format_size(512) == "512");
  CHECK(format_size(8 * kMiB) == "8MiB");
  CHECK(format_size(1536) == "1536");  // 1.5KiB is not exact
  CHECK(format_size(4 * kGiB) == "4GiB");
  CHECK(format_duration(0ms) == "0s");
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK(format_duration(90s) == "90s");
  CHECK(format_duration(1h) == "1h");
  CHECK(format_duration(48h) == "2d");
  for (const char* text : {"8MiB", "1GiB", "512"}) CHECK(format_size(*parse_size(text)) == text);
}
