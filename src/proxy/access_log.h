// Access log: one line per request, text or JSON, to stderr, a file, or nowhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "http/message.h"

namespace cachalot::proxy {

// (Re)opens the access log as the config says; throws std::runtime_error naming the file on failure.
void configure_access_log(const config::Config& cfg);
void access_log(const config::Config& cfg, std::string_view client_ip, const http::RequestHead& req, int status,
                uint64_t bytes, double seconds, std::string_view cache_status);

// One log.access_log_format: json line (no newline): client, method, target,
// status, bytes, duration_ms (3 decimals at most) and cache_status, in that
// order. Bytes of the request that are not UTF-8 are written as U+FFFD.
std::string access_log_json(std::string_view client_ip, std::string_view method, std::string_view target, int status,
                            uint64_t bytes, double seconds, std::string_view cache_status);

}  // namespace cachalot::proxy
