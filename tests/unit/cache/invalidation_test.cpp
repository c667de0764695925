#include "cache/invalidation.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace cachalot;

TEST_CASE("invalidates: unsafe methods with non-error statuses (RFC 9111 §4.4)", "[policy][invalidation]") {
  struct Row {
    const char* name;
    http::Method method;
    int status;
    bool want;
  };
  const std::vector<Row> rows = {
      {"§4.4 POST with 200", http::Method::Post, 200, true},
      {"§4.4 PUT with 204", http::Method::Put, 204, true},
      {"§4.4 DELETE with 301 (3xx is non-error)", http::Method::Delete, 301, true},
      {"§4.4 PATCH with 303", http::Method::Patch, 303, true},
      {"§4.4 a method of unknown safety counts as unsafe", http::Method::Other, 200, true},
      {"§4.4 POST with 404 is an error", http::Method::Post, 404, false},
      {"§4.4 POST with 500 is an error", http::Method::Post, 500, false},
      {"§4.4 POST with an interim 100", http::Method::Post, 100, false},
      {"RFC 9110 §9.2.1 GET is safe", http::Method::Get, 200, false},
      {"RFC 9110 §9.2.1 HEAD is safe", http::Method::Head, 200, false},
      {"RFC 9110 §9.2.1 OPTIONS is safe", http::Method::Options, 200, false},
      {"RFC 9110 §9.2.1 TRACE is safe", http::Method::Trace, 200, false},
  };
  for (const auto& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(cache::invalidates(r.method, r.status) == r.want); }
  }
}

TEST_CASE("invalidation_targets: the target, and same-origin Location / Content-Location (RFC 9111 §4.4)",
          "[policy][invalidation]") {
  struct Row {
    const char* name;
    std::string target;
    std::vector<std::pair<std::string, std::string>> response;
    std::vector<std::string> want;
  };
  const std::vector<Row> rows = {
      {"§4.4 the target URI alone", "/a/b", {}, {"/a/b"}},
      {"§4.4 the target keeps its query", "/a?x=1", {}, {"/a?x=1"}},
      {"RFC 9112 §3.2.2 an absolute-form target gives its path", "http://example.com/a?q", {}, {"/a?q"}},
      {"§4.4 Location with an absolute path", "/a/b", {{"Location", "/c"}}, {"/a/b", "/c"}},
      {"§4.4 Content-Location too", "/a/b", {{"Content-Location", "/a/b.json"}}, {"/a/b", "/a/b.json"}},
      {"§4.4 both, without duplicates", "/a", {{"Location", "/a"}, {"Content-Location", "/b"}}, {"/a", "/b"}},
      {"§4.4 an absolute URI on the same host", "/a", {{"Location", "http://example.com/c?d"}}, {"/a", "/c?d"}},
      {"§4.4 host case, scheme and default port do not change the origin", "/a",
       {{"Location", "https://EXAMPLE.com:443/c"}}, {"/a", "/c"}},
      {"§4.4 userinfo does not change the host", "/a", {{"Location", "http://u@example.com/c"}}, {"/a", "/c"}},
      {"§4.4 an absolute URI with an empty path is '/'", "/a", {{"Location", "http://example.com"}}, {"/a", "/"}},
      {"§4.4 MUST NOT invalidate another origin", "/a", {{"Location", "http://other.com/c"}}, {"/a"}},
      {"§4.4 another port is another origin", "/a", {{"Location", "http://example.com:8080/c"}}, {"/a"}},
      {"§4.4 a network-path reference to another origin", "/a", {{"Location", "//other.com/c"}}, {"/a"}},
      {"§4.4 a network-path reference to our origin", "/a", {{"Location", "//example.com/c"}}, {"/a", "/c"}},
      {"RFC 3986 §5.2.3 a relative path is merged with the target's directory", "/a/b?x", {{"Location", "c"}},
       {"/a/b?x", "/a/c"}},
      {"RFC 3986 §5.2.2 a query-only reference keeps the target's path", "/a/b?x", {{"Location", "?y=1"}},
       {"/a/b?x", "/a/b?y=1"}},
      {"RFC 3986 §5.2.2 a fragment is dropped", "/a", {{"Location", "/c#top"}}, {"/a", "/c"}},
      {"a non-hierarchical URI is never same-origin", "/a", {{"Location", "mailto:x@example.com"}}, {"/a"}},
      {"an empty Location is ignored", "/a", {{"Location", " "}}, {"/a"}},
  };
  for (const auto& r : rows) {
    DYNAMIC_SECTION(r.name) {
      http::HeaderMap h;
      for (const auto& [n, v] : r.response) h.add(n, v);
      CHECK(cache::invalidation_targets(r.target, h, "example.com") == r.want);
    }
  }
}
