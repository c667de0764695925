// Invalidation after unsafe requests (RFC 9111 §4.4).
//
// A cache MUST invalidate the target URI after a non-error response to an
// unsafe method, and MAY invalidate the URIs in Location and Content-Location,
// but only when they have the same origin as the target (§4.4: otherwise a
// site could purge another's entries). The proxy turns the returned paths into
// keys (primary_key() with the request's scheme and host) and purges them with
// all their variants.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/header_map.h"
#include "http/message.h"

namespace cachalot::cache {

// §4.4: the method is unsafe (RFC 9110 §9.2.1; unknown methods count as
// unsafe) and the status is non-error, i.e. 2xx or 3xx.
bool invalidates(http::Method method, int status) noexcept;

// Origin-form paths (path and query) to invalidate: the request target first,
// then Location and Content-Location when same-origin, without duplicates.
// A reference is same-origin when it is relative (resolved against the
// target, RFC 3986 §5.2) or names `request_host` (case-insensitive; a
// default port on either side is ignored, as is the scheme, which the proxy
// fixes). The target may be origin-form or absolute-form. Paths are returned
// as resolved, not normalised: primary_key() normalises them.
std::vector<std::string> invalidation_targets(std::string_view request_target_path, const http::HeaderMap& resp,
                                              std::string_view request_host);

}  // namespace cachalot::cache
