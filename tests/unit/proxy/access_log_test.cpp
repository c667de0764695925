// The JSON access-log line (log.access_log_format: json).
#include "proxy/access_log.h"

#include <catch2/catch.hpp>

#include <string>

#include "core/json.h"

using namespace cachalot;

TEST_CASE("a JSON access-log line: fields in order, duration in ms with 3 decimals at most", "[proxy][access_log]") {
  CHECK(proxy::access_log_json("127.0.0.1", "GET", "/a?b=1", 200, 1234, 0.0015004, "hit") ==
        R"({"client":"127.0.0.1","method":"GET","target":"/a?b=1","status":200,"bytes":1234,)"
        R"("duration_ms":1.5,"cache_status":"hit"})");
  CHECK(proxy::access_log_json("::1", "PURGE", "/x", 404, 0, 0, "fwd=bypass; detail=not-cached") ==
        R"({"client":"::1","method":"PURGE","target":"/x","status":404,"bytes":0,)"
        R"("duration_ms":0.0,"cache_status":"fwd=bypass; detail=not-cached"})");
}

TEST_CASE("a JSON access-log line escapes what the client sent", "[proxy][access_log]") {
  const std::string line = proxy::access_log_json("10.0.0.1", "M\"\\", "/q?s=\"x\"\\y\t", 400, 7, 0.25, "fwd=bypass");
  CHECK(line == R"({"client":"10.0.0.1","method":"M\"\\","target":"/q?s=\"x\"\\y\t","status":400,"bytes":7,)"
                R"("duration_ms":250.0,"cache_status":"fwd=bypass"})");
  auto j = core::Json::parse(line);
  CHECK(j["target"] == "/q?s=\"x\"\\y\t");
  CHECK(j["method"] == "M\"\\");
}

TEST_CASE("a target that is not UTF-8 still gives a valid JSON line (U+FFFD), never an exception",
          "[proxy][access_log]") {
  std::string line;
  REQUIRE_NOTHROW(line = proxy::access_log_json("127.0.0.1", "GET", "/caf\xe9/\xff", 200, 1, 0.001, "miss"));
  auto j = core::Json::parse(line);
  CHECK(j["target"] == "/caf\xef\xbf\xbd/\xef\xbf\xbd");
  CHECK(j["status"] == 200);
  CHECK(j["duration_ms"] == 1.0);
}
