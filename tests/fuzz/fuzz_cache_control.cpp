// libFuzzer target for the policy layer's parsers: Cache-Control (request and
// response), targeted cache-control fields (RFC 9213, over the RFC 8941
// Dictionary parser), HTTP-date, and the request-derived keys (primary_key,
// Vary, the Accept-Encoding reduction).
// Any bytes must be accepted without crashing, reading or writing out of
// bounds or looping, and results must stay inside their documented ranges.
//
//   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//         -DCACHALOT_FUZZ=ON -DCACHALOT_SANITIZE=address
//   cmake --build build-fuzz --target fuzz_cache_control
//   build-fuzz/tests/fuzz/fuzz_cache_control -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_control.h"
#include "cache/key.h"
#include "cache/vary.h"
#include "http/date.h"
#include "http/header_map.h"
#include "http/message.h"
#include "http/structured_fields.h"

using namespace cachalot;

namespace {

void check(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the input
}

bool in_delta_range(const std::optional<int64_t>& v) { return !v || (*v >= 0 && *v <= cache::kDeltaSecondsMax); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  const auto resp = cache::parse_response_cache_control(in);
  check(in_delta_range(resp.max_age) && in_delta_range(resp.s_maxage) &&
        in_delta_range(resp.stale_while_revalidate) && in_delta_range(resp.stale_if_error));
  for (const auto& f : resp.no_cache_fields) check(!f.empty());
  for (const auto& f : resp.private_fields) check(!f.empty());

  const auto req = cache::parse_request_cache_control(in);
  check(in_delta_range(req.max_age) && in_delta_range(req.min_fresh) && in_delta_range(req.stale_if_error));
  check(!req.max_stale || *req.max_stale == cache::kMaxStaleAny || in_delta_range(req.max_stale));

  // The same bytes split into field lines must parse like the combined value.
  const std::size_t cut = size / 2;
  http::RequestHead head;
  head.headers.add("Cache-Control", in.substr(0, cut));
  head.headers.add("Pragma", in.substr(cut));
  (void)cache::parse_request_cache_control(head);
  http::HeaderMap lines;
  lines.add("Cache-Control", in);
  check(cache::parse_response_cache_control(lines) == resp);

  // Targeted fields: a strict Dictionary parse; what it yields stays in range,
  // and the field-line form parses like the value.
  const auto dict = http::sf::parse_dictionary(in);
  const auto targeted = cache::parse_targeted_cache_control(in);
  check(!targeted || dict);
  if (targeted) {
    check(targeted->targeted && in_delta_range(targeted->max_age) && in_delta_range(targeted->s_maxage) &&
          in_delta_range(targeted->stale_while_revalidate) && in_delta_range(targeted->stale_if_error));
    for (const auto& f : targeted->no_cache_fields) check(!f.empty());
    for (const auto& f : targeted->private_fields) check(!f.empty());
  }
  http::HeaderMap targeted_lines;
  targeted_lines.add("CDN-Cache-Control", in);
  check(cache::parse_targeted_cache_control(targeted_lines, "cdn-cache-control") == targeted);

  // A date that parses must format back to a date that parses to the same
  // instant (formatting clamps to years 0000-9999, which parsing never exceeds).
  if (const auto t = http::parse_http_date(in)) {
    const std::string s = http::format_http_date(*t);
    check(s.size() == http::kHttpDateLength && http::parse_http_date(s) == t);
  }

  // Keys: "host\ntarget". primary_key writes through a pointer into a buffer
  // sized for the worst case, so this is also its overflow test. Normalising
  // a normalised key must change nothing.
  const std::size_t nl = in.find('\n');
  const std::string_view host = nl == std::string_view::npos ? std::string_view("example.com") : in.substr(0, nl);
  const std::string_view target = nl == std::string_view::npos ? in : in.substr(nl + 1);
  http::HeaderMap req_headers;
  req_headers.add("Accept-Encoding", target);
  req_headers.add("X-Key", host);
  cache::KeyOptions opts;
  opts.sort_query = true;
  opts.ignore_params = {"utm_source", ""};
  opts.headers = {"x-key"};
  for (const cache::KeyOptions& o : {cache::KeyOptions{}, opts}) {
    const std::string key = cache::primary_key("http", host, target, req_headers, o);
    const std::string_view path = cache::key_path(key);
    check(!path.empty() && path.front() == '/');
    const std::size_t authority_end = static_cast<std::size_t>(path.data() - key.data());
    const std::string_view authority = std::string_view(key).substr(7, authority_end - 7);  // after "http://"
    check(cache::primary_key("http", authority, path, req_headers, o) == key);
  }

  // Weighted lists (Accept-Encoding, Accept-Language) and the reduction, whose
  // result must itself be reducible to the same value.
  http::HeaderMap weighted;
  weighted.add("Accept-Encoding", in);
  weighted.add("Accept-Language", in);
  (void)cache::variant_key(std::vector<std::string>{"accept-encoding", "accept-language"}, weighted);
  std::string reduced;
  const std::vector<std::string> codings = {"br", "gzip"};
  if (cache::reduce_accept_encoding(weighted, codings, reduced)) {
    http::HeaderMap forwarded;
    forwarded.add("Accept-Encoding", reduced);
    std::string again;
    check(cache::reduce_accept_encoding(forwarded, codings, again) && again == reduced);
  }

  // Vary: names from the bytes, values from the bytes.
  http::HeaderMap resp_headers;
  resp_headers.add("Vary", in);
  const auto spec = cache::parse_vary(resp_headers);
  if (!spec.star) check(cache::variant_key(spec, req_headers) == cache::variant_key(spec, req_headers));
  return 0;
}
