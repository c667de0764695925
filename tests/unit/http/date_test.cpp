#include "http/date.h"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

using cachalot::http::format_http_date;
using cachalot::http::parse_http_date;

namespace {

constexpr int64_t kSun06Nov1994 = 784111777;  // the RFC 9110 §5.6.7 example

}  // namespace

TEST_CASE("parse_http_date reads the three RFC 9110 §5.6.7 forms and rejects everything else", "[policy][date]") {
  struct Row {
    const char* name;
    std::string text;
    std::optional<int64_t> want;
  };
  const std::vector<Row> rows = {
      {"§5.6.7 IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", kSun06Nov1994},
      {"§5.6.7 obsolete RFC 850 form", "Sunday, 06-Nov-94 08:49:37 GMT", kSun06Nov1994},
      {"§5.6.7 obsolete asctime form, space-padded day", "Sun Nov  6 08:49:37 1994", kSun06Nov1994},
      {"§5.6.7 asctime with a two-digit day", "Wed Nov 16 08:49:37 1994", 784975777},
      {"§5.6.7 asctime with a zero-padded day", "Sun Nov 06 08:49:37 1994", kSun06Nov1994},
      {"§5.6.7 the epoch", "Thu, 01 Jan 1970 00:00:00 GMT", 0},
      {"§5.6.7 a date before 1970 is negative", "Wed, 31 Dec 1969 23:59:59 GMT", -1},
      {"§5.6.7 a date after 2038 does not overflow", "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648},
      {"§5.6.7 the last 4-digit year", "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799},
      {"§5.6.7 29 February of a leap year", "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000},
      {"§5.6.7 a leap second lands on the next minute", "Sun, 06 Nov 1994 08:49:60 GMT", kSun06Nov1994 + 23},
      {"§5.6.7 robustness: names in any case", "sun, 06 nov 1994 08:49:37 gmt", kSun06Nov1994},
      {"§5.6.7 robustness: surrounding whitespace", " \tSun, 06 Nov 1994 08:49:37 GMT  ", kSun06Nov1994},
      {"§5.6.7 RFC 850 year 70 is 1970", "Thursday, 01-Jan-70 00:00:00 GMT", 0},
      {"§5.6.7 RFC 850 year 00 is 2000", "Saturday, 01-Jan-00 00:00:00 GMT", 946684800},
      {"§5.6.7 RFC 850 year 69 is 2069", "Tuesday, 31-Dec-69 23:59:59 GMT", 3155759999},
      {"§5.3 Expires: 0 is not a date", "0", std::nullopt},
      {"§5.3 Expires: -1 is not a date", "-1", std::nullopt},
      {"empty", "", std::nullopt},
      {"zone other than GMT", "Sun, 06 Nov 1994 08:49:37 UTC", std::nullopt},
      {"single-digit day in IMF-fixdate", "Sun, 6 Nov 1994 08:49:37 GMT", std::nullopt},
      {"hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", std::nullopt},
      {"minute 60", "Sun, 06 Nov 1994 08:60:00 GMT", std::nullopt},
      {"29 February of a common year", "Wed, 29 Feb 2023 12:00:00 GMT", std::nullopt},
      {"31 April", "Sun, 31 Apr 2023 12:00:00 GMT", std::nullopt},
      {"day 00", "Sun, 00 Nov 1994 08:49:37 GMT", std::nullopt},
      {"unknown weekday", "Xyz, 06 Nov 1994 08:49:37 GMT", std::nullopt},
      {"unknown month", "Sun, 06 Foo 1994 08:49:37 GMT", std::nullopt},
      {"letter in the year", "Sun, 06 Nov 19a4 08:49:37 GMT", std::nullopt},
      {"trailing junk", "Sun, 06 Nov 1994 08:49:37 GMT x", std::nullopt},
      {"RFC 850 with a short day name", "Sun, 06-Nov-94 08:49:37 GMT", std::nullopt},
      {"RFC 850 with a four-digit year", "Sunday, 06-Nov-1994 08:49:37 GMT", std::nullopt},
      {"asctime with a bad separator", "Sun Nov  6 08:49:37-1994", std::nullopt},
      {"NUL bytes", std::string("Sun, 06 Nov 1994 08:49:37 GM\0", 29), std::nullopt},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      INFO("text: \"" << r.text << "\"");
      CHECK(parse_http_date(r.text) == r.want);
    }
  }
}

TEST_CASE("format_http_date writes exactly 29 characters of RFC 9110 §5.6.7 IMF-fixdate", "[policy][date]") {
  struct Row {
    const char* name;
    int64_t t;
    const char* want;
  };
  const std::vector<Row> rows = {
      {"§5.6.7 example date", kSun06Nov1994, "Sun, 06 Nov 1994 08:49:37 GMT"},
      {"the epoch", 0, "Thu, 01 Jan 1970 00:00:00 GMT"},
      {"one second before the epoch", -1, "Wed, 31 Dec 1969 23:59:59 GMT"},
      {"leap day", 1709208000, "Thu, 29 Feb 2024 12:00:00 GMT"},
      {"past 2^31", 2147483648, "Tue, 19 Jan 2038 03:14:08 GMT"},
      {"far future clamps to year 9999", INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
      {"far past clamps to year 0000", INT64_MIN, "Sat, 01 Jan 0000 00:00:00 GMT"},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      CHECK(format_http_date(r.t) == r.want);
      char buf[cachalot::http::kHttpDateLength];
      format_http_date(r.t, buf);
      CHECK(std::string(buf, sizeof(buf)) == r.want);
    }
  }
}

TEST_CASE("format_http_date and parse_http_date round-trip from 1900 to 2100 (RFC 9110 §5.6.7)", "[policy][date]") {
  // Steps of a prime number of seconds hit every weekday, month and time of day.
  for (int64_t t = -2208988800; t < 4102444800; t += 86399 * 7 + 13) {
    const std::string s = format_http_date(t);
    REQUIRE(s.size() == 29);
    const auto back = parse_http_date(s);
    INFO(s);
    REQUIRE(back == t);
  }
}
