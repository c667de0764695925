// The admin API's JSON answers (admin_server.cpp sends them), one function
// per endpoint that reports more than a constant. Each body is one compact
// JSON object and a '\n', members in the order written here, through
// core::json_text(): request bytes that are not UTF-8 (a URL or a header
// value in a cache key) show as U+FFFD instead of failing the answer.
//
// Pure (no Asio), so it lives in cachalot_base and the unit tests cover it.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "admin/control.h"
#include "core/json.h"

namespace cachalot::admin {

// `j` as an answer body: compact JSON and a '\n'.
std::string body_of(const core::Json& j);

// {"error":"<message>"}
std::string error_body(std::string_view message);

// POST /purge: {"route":..,"generation":..} for a route, else {"purged":..,"kind":..,"soft":..}.
std::string purge_body(const cache::Purge& p, const cache::PurgeOutcome& out);

// GET /cache: the key and each variant's freshness, validators, size, route
// and tags, with the fields of `hidden` (redacted_names()) redacted.
std::string inspect_body(const Inspection& found, std::span<const std::string> hidden, core::TimePoint now);

// GET /cluster: {"enabled":false} without a bus, else its status.
std::string cluster_body(const std::optional<cluster::BusStatus>& st);

}  // namespace cachalot::admin
