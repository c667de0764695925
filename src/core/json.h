// JSON output (admin API answers, JSON access-log lines) through nlohmann::json.
//
// Json keeps an object's members in the order they were added, so an answer
// reads in the order its fields are documented. json_text() is compact and
// never throws: request bytes that are not UTF-8 (a client's URL, a header in
// a cache key) come out as U+FFFD, never as a broken line or an exception.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace cachalot::core {

using Json = nlohmann::ordered_json;

// Compact text of `j`; invalid UTF-8 in its strings is replaced by U+FFFD.
std::string json_text(const Json& j);

// `v` rounded to `places` decimal places, for a number written in JSON with
// at most that many (json_text() writes the shortest text that reads back the same).
double round_to(double v, int places);

}  // namespace cachalot::core
