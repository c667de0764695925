// Request and response heads: start line plus fields. Bodies travel separately.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http/header_map.h"

namespace cachalot::http {

enum class Method : uint8_t { Get, Head, Post, Put, Delete, Patch, Options, Trace, Connect, Purge, Other };

Method method_from_string(std::string_view m) noexcept;
std::string_view to_string(Method m) noexcept;
// RFC 9110 §9.2.1: GET, HEAD, OPTIONS, TRACE are safe.
bool is_safe(Method m) noexcept;

struct RequestHead {
  Method method = Method::Get;
  std::string method_name;  // as received (for Method::Other)
  std::string target;       // request-target as received (origin-form normally)
  int version_minor = 1;    // HTTP/1.x
  HeaderMap headers;
  bool keep_alive = true;   // after considering version and Connection

  void clear() {
    method = Method::Get;
    method_name.clear();
    target.clear();
    version_minor = 1;
    headers.clear();
    keep_alive = true;
  }
  // Path part of target (before '?'), and query (after '?', without it; empty if none).
  std::string_view path() const noexcept;
  std::string_view query() const noexcept;
};

struct ResponseHead {
  int status = 200;
  std::string reason;
  int version_minor = 1;
  HeaderMap headers;
  bool keep_alive = true;

  void clear() {
    status = 200;
    reason.clear();
    version_minor = 1;
    headers.clear();
    keep_alive = true;
  }
};

// Canonical reason phrase for a status code ("OK", "Not Found", ...; "" if unknown).
std::string_view reason_phrase(int status) noexcept;

}  // namespace cachalot::http
