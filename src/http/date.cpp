#include "http/date.h"

#include <algorithm>
#include <array>

namespace cachalot::http {

namespace {

constexpr std::array<std::string_view, 7> kDayNames = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDayNames = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                           "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonthNames = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

constexpr int64_t kSecondsPerDay = 86400;
// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range a 4-digit year can show.
constexpr int64_t kMinFormattable = -62167219200;
constexpr int64_t kMaxFormattable = 253402300799;

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

template <std::size_t N>
bool is_one_of(std::string_view s, const std::array<std::string_view, N>& names) noexcept {
  return std::any_of(names.begin(), names.end(), [s](std::string_view n) { return iequal(s, n); });
}

// Three letters, lower-cased, in one integer: names compare with one instruction.
constexpr uint32_t pack3(std::string_view s) noexcept {
  return static_cast<uint32_t>(static_cast<unsigned char>(lower(s[0]))) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(lower(s[1]))) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(lower(s[2])));
}

template <std::size_t N>
constexpr std::array<uint32_t, N> pack_all(const std::array<std::string_view, N>& names) noexcept {
  std::array<uint32_t, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = pack3(names[i]);
  return out;
}

constexpr auto kDayKeys = pack_all(kDayNames);
constexpr auto kMonthKeys = pack_all(kMonthNames);

// `s` (3 chars) is a short day name.
bool is_day_name(std::string_view s) noexcept {
  const uint32_t k = pack3(s);
  return std::find(kDayKeys.begin(), kDayKeys.end(), k) != kDayKeys.end();
}

// 1..12, or 0 if `s` (3 chars) is not a month name.
int month_number(std::string_view s) noexcept {
  const uint32_t k = pack3(s);
  for (std::size_t i = 0; i < kMonthKeys.size(); ++i)
    if (kMonthKeys[i] == k) return static_cast<int>(i) + 1;
  return 0;
}

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Exactly `s.size()` ASCII digits; -1 otherwise.
int digits(std::string_view s) noexcept {
  if (s.empty()) return -1;
  int v = 0;
  for (char c : s) {
    if (!is_digit(c)) return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

constexpr bool is_leap(int64_t y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

constexpr int days_in_month(int64_t y, int m) noexcept {
  constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm,
// exact for every year, no tables, no branches on the month).
constexpr int64_t days_from_civil(int64_t y, int m, int d) noexcept {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                  // [0, 399]
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          // [0, 146096]
  return era * 146097 + doe - 719468;
}

struct Civil {
  int64_t year;
  int month, day;
};

constexpr Civil civil_from_days(int64_t z) noexcept {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;                                   // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);           // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                 // [0, 11]
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (m <= 2), m, d};
}

// "HH:MM:SS" -> seconds into the day; -1 if malformed. 60 is a leap second.
int64_t time_of_day(std::string_view s) noexcept {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return -1;
  const int h = digits(s.substr(0, 2)), m = digits(s.substr(3, 2)), sec = digits(s.substr(6, 2));
  if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60) return -1;
  return h * 3600 + m * 60 + sec;
}

std::optional<int64_t> assemble(int64_t year, int month, int day, std::string_view time) noexcept {
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return std::nullopt;
  const int64_t tod = time_of_day(time);
  if (tod < 0) return std::nullopt;
  return days_from_civil(year, month, day) * kSecondsPerDay + tod;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (29 chars).
std::optional<int64_t> parse_imf_fixdate(std::string_view s) noexcept {
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[25] != ' ')
    return std::nullopt;
  if (!is_day_name(s.substr(0, 3)) || !iequal(s.substr(26, 3), "GMT")) return std::nullopt;
  return assemble(digits(s.substr(12, 4)), month_number(s.substr(8, 3)), digits(s.substr(5, 2)), s.substr(17, 8));
}

// rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT"; the comma ends the long day name.
std::optional<int64_t> parse_rfc850(std::string_view s, std::size_t comma) noexcept {
  std::string_view rest = s.substr(comma + 1);  // " 06-Nov-94 08:49:37 GMT"
  if (rest.size() != 23 || rest[0] != ' ' || rest[3] != '-' || rest[7] != '-' || rest[10] != ' ' ||
      rest[19] != ' ')
    return std::nullopt;
  if (!is_one_of(s.substr(0, comma), kLongDayNames) || !iequal(rest.substr(20, 3), "GMT")) return std::nullopt;
  const int yy = digits(rest.substr(8, 2));
  if (yy < 0) return std::nullopt;
  const int64_t year = yy < 70 ? 2000 + yy : 1900 + yy;  // see the pivot note in date.h
  return assemble(year, month_number(rest.substr(4, 3)), digits(rest.substr(1, 2)), rest.substr(11, 8));
}

// asctime-date: "Sun Nov  6 08:49:37 1994" (24 chars; the day is " 6" or "06").
std::optional<int64_t> parse_asctime(std::string_view s) noexcept {
  if (s.size() != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ') return std::nullopt;
  if (!is_day_name(s.substr(0, 3))) return std::nullopt;
  std::string_view day = s.substr(8, 2);
  if (day[0] == ' ') day.remove_prefix(1);
  return assemble(digits(s.substr(20, 4)), month_number(s.substr(4, 3)), digits(day), s.substr(11, 8));
}

void put2(char* p, int v) noexcept {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

std::optional<int64_t> parse_http_date(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  // The forms are told apart by length and the character after the day name.
  if (s.size() == 29 && s[3] == ',') return parse_imf_fixdate(s);
  if (s.size() == 24 && s[3] == ' ') return parse_asctime(s);
  const std::size_t comma = s.find(',');
  if (comma >= 6 && comma <= 9) return parse_rfc850(s, comma);  // "Monday" .. "Wednesday"
  return std::nullopt;
}

void format_http_date(int64_t t, char out[kHttpDateLength]) noexcept {
  t = std::clamp(t, kMinFormattable, kMaxFormattable);
  // Floor division so times before 1970 get the right day and time of day.
  int64_t days = t / kSecondsPerDay;
  int64_t secs = t % kSecondsPerDay;
  if (secs < 0) {
    secs += kSecondsPerDay;
    --days;
  }
  const Civil c = civil_from_days(days);
  const int weekday = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
  const std::string_view wd = kDayNames[weekday];
  const std::string_view mon = kMonthNames[c.month - 1];
  const int year = static_cast<int>(c.year);

  out[0] = wd[0], out[1] = wd[1], out[2] = wd[2];
  out[3] = ',', out[4] = ' ';
  put2(out + 5, c.day);
  out[7] = ' ';
  out[8] = mon[0], out[9] = mon[1], out[10] = mon[2];
  out[11] = ' ';
  put2(out + 12, year / 100);
  put2(out + 14, year % 100);
  out[16] = ' ';
  put2(out + 17, static_cast<int>(secs / 3600));
  out[19] = ':';
  put2(out + 20, static_cast<int>(secs / 60 % 60));
  out[22] = ':';
  put2(out + 23, static_cast<int>(secs % 60));
  out[25] = ' ', out[26] = 'G', out[27] = 'M', out[28] = 'T';
}

std::string format_http_date(int64_t unix_seconds) {
  std::string s(kHttpDateLength, '\0');
  format_http_date(unix_seconds, s.data());
  return s;
}

}  // namespace cachalot::http
