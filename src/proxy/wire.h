// Small helpers for writing HTTP/1.1 heads, shared by the responder and the fetch.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "http/date.h"
#include "http/message.h"

namespace cachalot::proxy::wire {

inline void append_num(std::string& out, int64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  out.append(b, r.ptr);
}

inline void append_status_line(std::string& out, int status, std::string_view reason) {
  out.append("HTTP/1.1 ", 9);
  append_num(out, status);
  out.push_back(' ');
  if (reason.empty()) reason = http::reason_phrase(status);
  out.append(reason);
  out.append("\r\n", 2);
}

inline bool status_has_no_body(int status) noexcept {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

// This thread's Date value, formatted at most once a second.
inline std::string_view date_now() {
  thread_local int64_t last = -1;
  thread_local char buf[29];
  int64_t now = core::to_unix_seconds(core::Clock::now());
  if (now != last) {
    http::format_http_date(now, buf);
    last = now;
  }
  return {buf, 29};
}

inline void append_cache_status(std::string& out, std::string_view value) {
  using namespace std::string_view_literals;
  out.append("Cache-Status: cachalot; "sv);
  out.append(value);
  out.append("\r\n"sv);
}

}  // namespace cachalot::proxy::wire
