#include "admin/redact.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>

#include "http/header_map.h"

namespace cachalot::admin {
namespace {

constexpr std::size_t kDigestHexDigits = 16;  // 64 bits: enough to tell variants apart

std::string digest_prefix(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto d = sha256(value);
  std::string out;
  for (std::size_t i = 0; i < kDigestHexDigits / 2; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 0xf];
  }
  return out;
}

void append_redacted(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(":").append(std::to_string(value.size())).append(":sha256:").append(digest_prefix(value));
}

bool redacted(std::string_view name, std::span<const std::string> names) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return http::iequals(n, name); });
}

}  // namespace

std::array<unsigned char, 32> sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  // EVP_Digest cannot fail for SHA-256 on an initialised library short of
  // allocation failure; an all-zero digest would then only hide more.
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

std::vector<std::string> redacted_names(const std::vector<std::string>& extra) {
  std::vector<std::string> names(kAlwaysRedacted.begin(), kAlwaysRedacted.end());
  for (const std::string& n : extra) names.push_back(http::to_lower(n));
  return names;
}

std::string redact_field_entries(std::string_view entries, std::span<const std::string> names) {
  std::string out;
  out.reserve(entries.size());
  std::string_view rest = entries;
  while (!rest.empty()) {
    // One entry: <name> ":" ( "!" | <len> ":" <len bytes> ), then '\n' or the end.
    std::size_t colon = rest.find(':');
    std::size_t newline = rest.find('\n');
    bool ok = colon != std::string_view::npos && colon > 0 && colon < newline;
    std::string_view name, value;
    std::size_t entry_end = 0;
    bool absent = false;
    if (ok) {
      name = rest.substr(0, colon);
      if (rest.substr(colon + 1, 1) == "!" && (colon + 2 == rest.size() || rest[colon + 2] == '\n')) {
        absent = true;
        entry_end = colon + 2;
      } else {
        std::size_t len = 0;
        const char* digits = rest.data() + colon + 1;
        auto [end, ec] = std::from_chars(digits, rest.data() + rest.size(), len);
        std::size_t value_start = static_cast<std::size_t>(end - rest.data()) + 1;
        ok = ec == std::errc() && end != digits && end < rest.data() + rest.size() && *end == ':' &&
             len <= rest.size() - value_start &&
             (value_start + len == rest.size() || rest[value_start + len] == '\n');
        if (ok) {
          value = rest.substr(value_start, len);
          entry_end = value_start + len;
        }
      }
    }
    if (!ok) {
      append_redacted(out, "?", rest);  // not our encoding: hide all of it
      break;
    }
    if (!absent && redacted(name, names))
      append_redacted(out, name, value);
    else
      out.append(rest.substr(0, entry_end));
    rest.remove_prefix(entry_end);
    if (!rest.empty()) {  // the '\n' between entries
      out += '\n';
      rest.remove_prefix(1);
    }
  }
  return out;
}

std::string redact_primary_key(std::string_view key, std::span<const std::string> names) {
  std::size_t newline = key.find('\n');
  if (newline == std::string_view::npos) return std::string(key);
  return std::string(key.substr(0, newline + 1)) + redact_field_entries(key.substr(newline + 1), names);
}

}  // namespace cachalot::admin
