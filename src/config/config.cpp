// Loading: yaml-cpp builds a node tree (with line/column marks), then tables
// of known keys, one per section and shaped like the file, read it into a
// default-constructed Config. Every reader validates its own value; checks
// that span keys run last. Errors are collected, not thrown.
#include "config/config.h"

#include <fmt/format.h>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace cachalot::config {
namespace {

using Node = YAML::Node;

template <class E>
struct Named {
  std::string_view name;
  E value;
};

constexpr std::array kLogLevels = {Named<LogLevel>{"trace", LogLevel::Trace}, Named<LogLevel>{"debug", LogLevel::Debug},
                                   Named<LogLevel>{"info", LogLevel::Info}, Named<LogLevel>{"warn", LogLevel::Warn},
                                   Named<LogLevel>{"error", LogLevel::Error}};
constexpr std::array kAccessLogFormats = {Named<AccessLogFormat>{"text", AccessLogFormat::Text},
                                          Named<AccessLogFormat>{"json", AccessLogFormat::Json}};
// "store_without" says what "strip" does; both stay accepted. to_string() gives the first name.
constexpr std::array kSetCookiePolicies = {Named<SetCookiePolicy>{"no_store", SetCookiePolicy::NoStore},
                                           Named<SetCookiePolicy>{"strip", SetCookiePolicy::Strip},
                                           Named<SetCookiePolicy>{"store_without", SetCookiePolicy::Strip}};

// ASCII case-insensitive equality (field names, content codings).
bool iequals_ascii(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

template <class E, size_t N>
std::string_view name_of(const std::array<Named<E>, N>& table, E value) {
  for (const auto& n : table)
    if (n.value == value) return n.name;
  return "?";
}

// Collects errors, and remembers where each key was written so that checks
// spanning several keys can point at one of them.
class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& at, std::string key, std::string message) {
    // Marks are 0-based; a null mark (-1) becomes 0, "no position".
    errors_.push_back({file_, at.line + 1, at.column + 1, std::move(key), std::move(message)});
  }
  void error(const Node& at, std::string key, std::string message) {
    // A missing value ("key:" alone) is marked where the next token starts; point at its key instead.
    if (at.IsNull()) return error_at_key(key, std::move(message));
    error(at.Mark(), std::move(key), std::move(message));
  }
  // An error about `key`, placed where it (or else its closest written parent) was written.
  void error_at_key(const std::string& key, std::string message) {
    YAML::Mark at = YAML::Mark::null_mark();
    for (std::string_view k = key; !k.empty(); k = k.substr(0, std::min(k.find_last_of(".["), k.size()))) {
      if (auto it = written_.find(std::string(k)); it != written_.end()) {
        at = it->second;
        break;
      }
      if (k.find_last_of(".[") == std::string_view::npos) break;
    }
    error(at, key, std::move(message));
  }

  // An error about `key`, placed where `where` was written (a check that spans keys).
  void error_at(const std::string& where, std::string key, std::string message) {
    auto it = written_.find(where);
    if (it == written_.end()) return error_at_key(key, std::move(message));
    error(it->second, std::move(key), std::move(message));
  }

  void wrote(const std::string& key, const YAML::Mark& at) { written_.emplace(key, at); }
  bool written(const std::string& key) const { return written_.contains(key); }
  bool ok() const { return errors_.empty(); }

  std::vector<ConfigError> take_errors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::tuple(a.line == 0, a.line, a.column) < std::tuple(b.line == 0, b.line, b.column);
    });
    return std::move(errors_);
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
  std::map<std::string, YAML::Mark> written_;  // dotted key -> position of the key
};

std::string describe(const Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: return "'" + n.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

// Reads one value, reporting problems under `key` (its dotted path).
using Reader = std::function<void(Loader&, const Node&, const std::string& key)>;
struct Field {
  std::string_view name;
  Reader read;
};
using Fields = std::vector<Field>;

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitute = diagonal + (a[i - 1] != b[j - 1]);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

std::string unknown_key(std::string_view name, const Fields& fields) {
  std::string message = fmt::format("unknown key '{}'", name);
  const Field* best = nullptr;
  size_t best_distance = 3;  // suggest only close spellings
  for (const Field& f : fields)
    if (size_t d = edit_distance(name, f.name); d < best_distance && d < f.name.size()) best = &f, best_distance = d;
  if (best) message += fmt::format(" (did you mean '{}'?)", best->name);
  return message;
}

// A map: each key must be known and appear once. A key with nothing under it
// ("cache:") keeps the section's defaults.
void read_map(Loader& l, const Node& map, const std::string& path, const Fields& fields) {
  if (map.IsNull()) return;
  if (!map.IsMap()) return l.error(map, path, "expected a map, got " + describe(map));
  std::map<std::string, int> seen;  // key -> line
  for (const auto& kv : map) {
    const Node& k = kv.first;
    if (!k.IsScalar()) {
      l.error(k, path, "expected a key name, got " + describe(k));
      continue;
    }
    const std::string& name = k.Scalar();
    std::string key = path.empty() ? name : path + "." + name;
    if (auto [it, first] = seen.emplace(name, k.Mark().line + 1); !first) {
      l.error(k, key, fmt::format("duplicate key (first at line {})", it->second));
      continue;
    }
    auto field = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == name; });
    if (field == fields.end()) {
      l.error(k, key, unknown_key(name, fields));
      continue;
    }
    l.wrote(key, k.Mark());
    field->read(l, kv.second, key);
  }
}

Reader section(Fields fields) {
  return [fields = std::move(fields)](Loader& l, const Node& n, const std::string& key) {
    read_map(l, n, key, fields);
  };
}

// Scalars: `parse` turns the text into a value or returns nullopt, optionally
// with a specific reason; otherwise the message says `what` was expected.
template <class T>
using Parser = std::function<std::optional<T>(const std::string& text, std::string& why)>;

template <class T>
void read_scalar(Loader& l, const Node& n, const std::string& key, const std::string& what, const Parser<T>& parse,
                 T& out) {
  if (!n.IsScalar()) return l.error(n, key, fmt::format("expected {}, got {}", what, describe(n)));
  std::string why;
  if (auto value = parse(n.Scalar(), why))
    out = std::move(*value);
  else
    l.error(n, key, why.empty() ? fmt::format("expected {}, got '{}'", what, n.Scalar()) : why);
}

template <class T>
Reader scalar(T& out, std::string what, Parser<T> parse) {
  return [&out, what = std::move(what), parse = std::move(parse)](Loader& l, const Node& n, const std::string& key) {
    read_scalar(l, n, key, what, parse, out);
  };
}

// A list of scalars, each `what`; reading it replaces the default list.
template <class T>
Reader list(std::vector<T>& out, std::string what, Parser<T> parse) {
  return [&out, what = std::move(what), parse = std::move(parse)](Loader& l, const Node& n, const std::string& key) {
    if (!n.IsSequence()) return l.error(n, key, "expected a list, got " + describe(n));
    out.assign(n.size(), T{});
    for (size_t i = 0; i < n.size(); ++i) read_scalar(l, n[i], fmt::format("{}[{}]", key, i), what, parse, out[i]);
  };
}

// A list like list(), whose items must also differ ignoring ASCII case (field
// names, content codings): a repeated one is an error at its position.
Reader unique_list(std::vector<std::string>& out, std::string what, Parser<std::string> parse) {
  return [&out, inner = list(out, std::move(what), std::move(parse))](Loader& l, const Node& n,
                                                                       const std::string& key) {
    inner(l, n, key);
    if (!n.IsSequence()) return;
    for (size_t i = 0; i < out.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (!out[i].empty() && iequals_ascii(out[i], out[j])) {
          l.error(n[i], fmt::format("{}[{}]", key, i), fmt::format("'{}' is already listed ({}[{}])", out[i], key, j));
          break;
        }
  };
}

// --- Scalar parsers ---------------------------------------------------------

Parser<std::string> any_string() {
  return [](const std::string& s, std::string&) { return std::optional(s); };
}

Parser<std::string> non_empty() {
  return [](const std::string& s, std::string& why) -> std::optional<std::string> {
    if (s.empty()) why = "must not be empty";
    return s.empty() ? std::nullopt : std::optional(s);
  };
}

// YAML 1.2 core schema booleans only: "yes"/"on" are too easy to write by accident.
Reader boolean(bool& out) {
  return scalar<bool>(out, "true or false", [](const std::string& s, std::string&) -> std::optional<bool> {
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    return std::nullopt;
  });
}

Reader optional_boolean(std::optional<bool>& out) {
  return [&out](Loader& l, const Node& n, const std::string& key) {
    bool v = false;
    boolean(v)(l, n, key);
    if (l.written(key)) out = v;
  };
}

Parser<uint32_t> count_parser(uint32_t min, uint32_t max) {
  return [min, max](const std::string& s, std::string& why) -> std::optional<uint32_t> {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    if (n >= min && n <= max) return uint32_t(n);
    why = fmt::format("{} is out of range {}..{}", n, min, max);
    return std::nullopt;
  };
}

Reader count(uint32_t& out, uint32_t min, uint32_t max) {
  return scalar(out, fmt::format("an integer in {}..{}", min, max), count_parser(min, max));
}

Reader power_of_two(uint32_t& out, uint32_t min, uint32_t max) {
  return scalar<uint32_t>(out, fmt::format("a power of two in {}..{}", min, max),
                          [range = count_parser(min, max)](const std::string& s, std::string& why) {
                            auto n = range(s, why);
                            if (n && !std::has_single_bit(*n)) {
                              why = fmt::format("{} is not a power of two", *n);
                              return std::optional<uint32_t>();
                            }
                            return n;
                          });
}

Reader fraction(double& out) {
  return scalar<double>(out, "a number in 0..1", [](const std::string& s, std::string&) -> std::optional<double> {
    double d = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !(d >= 0 && d <= 1)) return std::nullopt;
    return d;
  });
}

Reader size(uint64_t& out, uint64_t min = 0) {
  return scalar<uint64_t>(out, "a size such as 512, 64KiB, 256MiB or 1GiB",
                          [min](const std::string& s, std::string& why) {
                            auto n = parse_size(s);
                            if (n && *n < min) {
                              why = fmt::format("must be at least {}", format_size(min));
                              return std::optional<uint64_t>();
                            }
                            return n;
                          });
}

// Timeouts must be positive: a zero timeout would fail every exchange.
enum class Zero { Allowed, Rejected };
Reader duration(Duration& out, Zero zero = Zero::Allowed) {
  return scalar<Duration>(out, "a duration such as 500ms, 30s, 5m, 1h or 1d",
                          [zero](const std::string& s, std::string& why) {
                            auto d = parse_duration(s);
                            if (d && d->count() == 0 && zero == Zero::Rejected) {
                              why = "must be greater than 0";
                              return std::optional<Duration>();
                            }
                            return d;
                          });
}

// cache.snapshot.interval: 0 (off) or at least a second.
Reader snapshot_interval(Duration& out) {
  return scalar<Duration>(out, "a duration such as 30s, 5m or 1h, or 0 for none",
                          [](const std::string& s, std::string& why) {
                            auto d = parse_duration(s);
                            if (d && d->count() != 0 && *d < 1s) {
                              why = "must be 0 (off) or at least 1s";
                              return std::optional<Duration>();
                            }
                            return d;
                          });
}

template <class E, size_t N>
Reader one_of(E& out, const std::array<Named<E>, N>& table) {
  std::string what = "one of ";
  for (const auto& n : table) what += std::string(&n == table.data() ? "" : ", ") + std::string(n.name);
  return scalar<E>(out, what, [&table](const std::string& s, std::string&) -> std::optional<E> {
    for (const auto& n : table)
      if (s == n.name) return n.value;
    return std::nullopt;
  });
}

// RFC 9110 §5.6.2 token: what a field name may contain.
Parser<std::string> field_name() {
  return [](const std::string& s, std::string&) -> std::optional<std::string> {
    bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
      return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
    });
    return ok ? std::optional(s) : std::nullopt;
  };
}

// A field the proxy may strip from forwarded requests: any token except the
// fields it frames and routes requests by.
Parser<std::string> droppable_field_name() {
  return [token = field_name()](const std::string& s, std::string& why) -> std::optional<std::string> {
    auto name = token(s, why);
    if (!name) return std::nullopt;
    for (std::string_view framing : {"host", "content-length", "transfer-encoding"}) {
      if (s.size() == framing.size() && std::equal(s.begin(), s.end(), framing.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == b;
          })) {
        why = fmt::format("{} may not be dropped: the request is framed and routed by it", s);
        return std::nullopt;
      }
    }
    return name;
  };
}

// A cache.targeted_cache_control entry (RFC 9213 §2): a field name other than
// Cache-Control, which is what a targeted field stands in for.
Parser<std::string> targeted_field_name() {
  return [token = field_name()](const std::string& s, std::string& why) -> std::optional<std::string> {
    auto name = token(s, why);
    if (!name) return std::nullopt;
    if (iequals_ascii(s, "cache-control")) {
      why = "Cache-Control is the fallback a targeted field replaces, not a targeted field (RFC 9213 §2.2)";
      return std::nullopt;
    }
    return name;
  };
}

// A cache.accept_encoding entry: a content coding (RFC 9110 §8.4.1, a token),
// not "*" or "identity" (every request may have those).
Parser<std::string> content_coding() {
  return [token = field_name()](const std::string& s, std::string& why) -> std::optional<std::string> {
    auto name = token(s, why);
    if (!name) return std::nullopt;
    if (s == "*" || iequals_ascii(s, "identity")) {
      why = fmt::format("'{}' is not a content coding the origin applies", s);
      return std::nullopt;
    }
    return name;
  };
}

// An admin.hosts entry: a DNS name, optionally with ":port" (1..65535).
Parser<std::string> host_name_and_port() {
  return [](const std::string& s, std::string& why) -> std::optional<std::string> {
    std::string_view host = s, port;
    if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
      if (port.empty() || ec != std::errc() || end != port.data() + port.size() || n == 0 || n > 65535) {
        why = fmt::format("expected a port in 1..65535 after ':' in '{}'", s);
        return std::nullopt;
      }
    }
    // Letters, digits, '-', '_' and '.' (IP literals need no entry: they are always answered).
    bool ok = !host.empty() && std::all_of(host.begin(), host.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '-' || c == '_' || c == '.';
    });
    return ok ? std::optional(s) : std::nullopt;
  };
}

template <class T>
Parser<T> from(std::optional<T> (*parse)(std::string_view, std::string*)) {
  return [parse](const std::string& s, std::string& why) { return parse(s, &why); };
}

// --- Structured values ------------------------------------------------------

// An admin-style address: "host:port", or "" for none.
Reader optional_listener(std::optional<ListenerConfig>& out) {
  return scalar<std::optional<ListenerConfig>>(
      out, "an address such as 127.0.0.1:9901, or \"\" for none",
      [](const std::string& s, std::string& why) -> std::optional<std::optional<ListenerConfig>> {
        if (s.empty()) return std::optional<ListenerConfig>();  // disabled
        auto listener = parse_listen_address(s, &why);
        if (!listener) return std::nullopt;
        return listener;
      });
}

// "host:port", or { address: "host:port", tls: { cert: file, key: file } }.
void read_listener(Loader& l, const Node& n, const std::string& key, ListenerConfig& out) {
  const std::string what = "an address such as 127.0.0.1:8080";
  if (!n.IsMap()) return read_scalar(l, n, key, what, from(parse_listen_address), out);
  std::string address, cert, key_file;
  read_map(l, n, key, {{"address", scalar(address, what, non_empty())},
                       {"tls", section({{"cert", scalar(cert, "a file name", non_empty())},
                                        {"key", scalar(key_file, "a file name", non_empty())}})}});
  if (!l.written(key + ".address")) return l.error(n, key + ".address", "is required");
  std::string why;
  if (auto parsed = parse_listen_address(address, &why))
    out = *parsed;
  else
    l.error_at_key(key + ".address", why);
  if (!l.written(key + ".tls")) return;
  out.tls = true;
  out.cert_file = cert;
  out.key_file = key_file;
  for (const char* name : {".tls.cert", ".tls.key"})
    if (!l.written(key + name)) l.error_at_key(key + name, "is required with tls");
}

Reader listeners(std::vector<ListenerConfig>& out) {
  return [&out](Loader& l, const Node& n, const std::string& key) {
    if (!n.IsSequence()) return l.error(n, key, "expected a list of addresses, got " + describe(n));
    if (n.size() == 0) return l.error(n, key, "at least one address is required");
    out.assign(n.size(), {});
    for (size_t i = 0; i < n.size(); ++i) read_listener(l, n[i], fmt::format("{}[{}]", key, i), out[i]);
  };
}

Reader regex(Route& r) {
  return [&r](Loader& l, const Node& n, const std::string& key) {
    read_scalar(l, n, key, "an RE2 pattern", non_empty(), r.regex);
    if (r.regex.empty()) return;
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(r.regex, options);
    if (!re->ok()) return l.error(n, key, "invalid regex: " + re->error());
    r.compiled = std::move(re);
  };
}

// route.partition.jwt.algorithms: JWS algorithm names (RFC 7518 §3.1), case-sensitive.
Parser<auth::Algorithm> jwt_algorithm() {
  return [](const std::string& s, std::string& why) -> std::optional<auth::Algorithm> {
    auto a = auth::parse_algorithm(s);
    if (!a)
      why = s == "none" ? "'none' is never accepted: a token must be signed"
                        : fmt::format("unknown algorithm '{}' (RS256, ES256 or HS256)", s);
    return a;
  };
}

Reader jwt_algorithms(std::vector<auth::Algorithm>& out) {
  return [&out, inner = list(out, "an algorithm", jwt_algorithm())](Loader& l, const Node& n, const std::string& key) {
    inner(l, n, key);
    if (!n.IsSequence()) return;
    if (n.size() == 0) return l.error(n, key, "at least one algorithm is required");
    for (size_t i = 0; i < out.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (out[i] == out[j] && n[i].IsScalar() && auth::parse_algorithm(n[i].Scalar())) {
          l.error(n[i], fmt::format("{}[{}]", key, i), fmt::format("'{}' is already listed", auth::to_string(out[i])));
          break;
        }
  };
}

Reader partition(std::optional<PartitionJwt>& out) {
  return [&out](Loader& l, const Node& n, const std::string& key) {
    PartitionJwt& p = out.emplace();
    read_map(l, n, key, {{"jwt", section({
                                     {"algorithms", jwt_algorithms(p.algorithms)},
                                     {"key_file", scalar(p.key_file, "a file name", non_empty())},
                                     {"issuer", scalar(p.issuer, "a string", any_string())},
                                     {"audience", scalar(p.audience, "a string", any_string())},
                                     {"claim", scalar(p.claim, "a claim name", non_empty())},
                                     {"leeway", duration(p.leeway)},
                                 })}});
    const std::string jwt = key + ".jwt";
    if (!l.written(jwt)) return l.error_at_key(jwt, "is required (the only kind of partition)");
    if (!l.written(jwt + ".algorithms")) l.error_at_key(jwt + ".algorithms", "is required");
    if (!l.written(jwt + ".key_file")) return l.error_at_key(jwt + ".key_file", "is required");
    if (p.key_file.empty()) return;
    std::ifstream in(p.key_file, std::ios::binary);
    if (!in) return l.error_at_key(jwt + ".key_file", fmt::format("cannot read {}: {}", p.key_file, std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    std::string why;
    p.key = auth::JwtKey::load(text.str(), &why);
    if (!p.key) return l.error_at_key(jwt + ".key_file", fmt::format("{} {}", p.key_file, why));
    // After a bad algorithm name, "none fits" would only repeat it.
    if (p.algorithms.empty() || !l.ok()) return;
    // Every listed algorithm must fit the key: a list naming one that cannot
    // be verified with it says the key or the list is not what was meant.
    for (std::size_t i = 0; i < p.algorithms.size(); ++i)
      if (!p.key->fits(p.algorithms[i]))
        l.error_at_key(fmt::format("{}.algorithms[{}]", jwt, i),
                       fmt::format("cannot be verified with {} ({}: RS256 needs an RSA public key, ES256 a P-256 "
                                   "public key, HS256 a secret); list only the key's algorithm",
                                   p.key_file,
                                   p.key->type() == auth::JwtKey::Type::Secret ? "a secret"
                                   : p.key->type() == auth::JwtKey::Type::Rsa  ? "an RSA public key"
                                                                               : "a P-256 public key"));
  };
}

Fields route_fields(Route& r) {
  auto route_name = [](const std::string& s, std::string&) -> std::optional<std::string> {
    bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '_' || c == '.' || c == '-';
    });
    return ok ? std::optional(s) : std::nullopt;
  };
  auto path_prefix = [](const std::string& s, std::string&) {
    return s.starts_with('/') ? std::optional(s) : std::nullopt;
  };
  return {
      {"name", scalar<std::string>(r.name, "a name of letters, digits, '_', '.' and '-'", route_name)},
      {"prefix", scalar<std::string>(r.prefix, "a path prefix starting with '/'", path_prefix)},
      {"regex", regex(r)},
      {"bypass", boolean(r.bypass)},
      {"default_ttl", duration(r.default_ttl)},
      {"min_ttl", duration(r.min_ttl)},
      {"max_ttl", duration(r.max_ttl)},
      {"stale_while_revalidate", duration(r.stale_while_revalidate)},
      {"stale_if_error", duration(r.stale_if_error)},
      {"refresh_ahead", boolean(r.refresh_ahead)},
      {"set_cookie", one_of(r.set_cookie, kSetCookiePolicies)},
      {"synthesize_etag", optional_boolean(r.synthesize_etag)},
      {"key", section({
                  {"sort_query", boolean(r.key.sort_query)},
                  {"ignore_params", list(r.key.ignore_params, "a query parameter name", non_empty())},
                  {"headers", list(r.key.headers, "a field name", field_name())},
              })},
      {"partition", partition(r.partition)},
      {"partition_max_bytes", size(r.partition_max_bytes, 1)},
  };
}

void check_route(Loader& l, const Node& n, const std::string& path, const Route& r,
                 std::map<std::string, int>& lines_by_name) {
  if (!l.written(path + ".name")) l.error(n, path + ".name", "is required");
  if (!r.name.empty()) {
    int line = n["name"].Mark().line + 1;
    if (auto [it, first] = lines_by_name.emplace(r.name, line); !first)
      l.error_at_key(path + ".name", fmt::format("duplicate route name '{}' (first at line {})", r.name, it->second));
  }
  bool prefix = l.written(path + ".prefix"), regex = l.written(path + ".regex");
  if (prefix && regex) l.error_at_key(path + ".regex", "set either prefix or regex, not both");
  if (!prefix && !regex) l.error(n, path, "needs a prefix or a regex");
  if (l.written(path + ".partition_max_bytes") && !l.written(path + ".partition"))
    l.error_at_key(path + ".partition_max_bytes", "needs partition (there is no partition to budget)");
  if (r.partition && r.bypass) l.error_at_key(path + ".partition", "a bypass route stores nothing: drop bypass or partition");
  if (r.max_ttl.count() != 0 && r.min_ttl > r.max_ttl)
    l.error_at_key(path + ".max_ttl", fmt::format("max_ttl ({}) is below min_ttl ({})", format_duration(r.max_ttl),
                                                  format_duration(r.min_ttl)));
}

Reader routes(std::vector<Route>& out) {
  return [&out](Loader& l, const Node& n, const std::string& key) {
    if (n.IsNull()) return;
    if (!n.IsSequence()) return l.error(n, key, "expected a list of routes, got " + describe(n));
    std::map<std::string, int> lines_by_name;
    for (size_t i = 0; i < n.size(); ++i) {
      std::string path = fmt::format("{}[{}]", key, i);
      if (!n[i].IsMap()) {
        l.error(n[i], path, "expected a route (a map), got " + describe(n[i]));
        continue;
      }
      Route& r = out.emplace_back();
      read_map(l, n[i], path, route_fields(r));
      check_route(l, n[i], path, r, lines_by_name);
    }
  };
}

// cluster: present (even empty) turns the bus on, with the defaults of ClusterConfig.
Reader cluster(std::optional<ClusterConfig>& out) {
  return [&out](Loader& l, const Node& n, const std::string& key) {
    ClusterConfig& c = out.emplace();
    auto node_name = [](const std::string& s, std::string&) -> std::optional<std::string> {
      bool ok = s.size() <= 64 && std::all_of(s.begin(), s.end(), [](unsigned char ch) {
                  return std::isalnum(ch) || ch == '_' || ch == '.' || ch == '-' || ch == ':';
                });
      return ok ? std::optional(s) : std::nullopt;
    };
    read_map(l, n, key, {
        {"redis", scalar(c.redis, "redis://host[:port][/db] or unix:///path[?db=N]", from(parse_redis_address))},
        {"stream", scalar(c.stream, "a Redis key", non_empty())},
        {"node", scalar<std::string>(c.node, "a name of up to 64 letters, digits, '_', '.', ':' and '-'", node_name)},
        {"max_events", count(c.max_events, 1, 1'000'000'000)},
        {"queue_limit", count(c.queue_limit, 1, 10'000'000)},
        {"read_batch", count(c.read_batch, 1, 10'000)},
        {"timeout", duration(c.timeout, Zero::Rejected)},
        {"backoff_min", duration(c.backoff_min, Zero::Rejected)},
        {"backoff_max", duration(c.backoff_max, Zero::Rejected)},
    });
    if (c.backoff_max < c.backoff_min)
      l.error_at_key(key + (l.written(key + ".backoff_max") ? ".backoff_max" : ".backoff_min"),
                     fmt::format("backoff_max ({}) is below backoff_min ({})", format_duration(c.backoff_max),
                                 format_duration(c.backoff_min)));
  };
}

// cache.l2: present (even empty) turns the shared L2 store on, with the defaults of L2Config.
Reader l2_section(std::optional<L2Config>& out) {
  return [&out](Loader& l, const Node& n, const std::string& key) {
    L2Config& c = out.emplace();
    read_map(l, n, key, {
        {"redis", scalar(c.redis, "redis://host[:port][/db] or unix:///path[?db=N]", from(parse_redis_address))},
        {"max_object_size", size(c.max_object_size, 1)},
        {"timeout", duration(c.timeout, Zero::Rejected)},
        {"fill_margin", duration(c.fill_margin)},
        {"coalesce_wait", duration(c.coalesce_wait)},
        {"prefix", scalar(c.prefix, "a Redis key prefix", non_empty())},
    });
  };
}

// The host name, the default cluster.node.
std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "cachalot";
  return buf;
}

// The whole file, shaped like config/cachalot.yaml.
Fields config_fields(Config& c) {
  ServerConfig& s = c.server;
  UpstreamConfig& u = c.upstream;
  CacheConfig& k = c.cache;
  return {
      {"server", section({
                     {"listen", listeners(s.listen)},
                     {"workers", count(s.workers, 0, 256)},
                     {"timeouts", section({
                                      {"client_header", duration(s.timeouts.client_header, Zero::Rejected)},
                                      {"client_idle", duration(s.timeouts.client_idle, Zero::Rejected)},
                                      {"client_body", duration(s.timeouts.client_body, Zero::Rejected)},
                                      {"send", duration(s.timeouts.send, Zero::Rejected)},
                                      {"drain", duration(s.timeouts.drain)},
                                  })},
                     {"limits", section({
                                    {"max_header_bytes", size(s.limits.max_header_bytes, 1 * kKiB)},
                                    {"max_uri_length", size(s.limits.max_uri_length, 1)},
                                    {"max_body_size", size(s.limits.max_body_size)},
                                    {"max_connections", count(s.limits.max_connections, 1, 1'000'000)},
                                })},
                     {"purge_allow", list(s.purge_allow.ranges, "a CIDR range such as 10.0.0.0/8", from(parse_cidr))},
                     {"trusted_proxies",
                      list(s.trusted_proxies.ranges, "a CIDR range such as 10.0.0.0/8", from(parse_cidr))},
                     {"drop_request_fields", list(s.drop_request_fields, "a field name", droppable_field_name())},
                 })},
      {"upstream", section({
                       {"url", scalar(u.url, "an http:// or https:// URL", from(parse_upstream_url))},
                       {"timeouts", section({
                                        {"connect", duration(u.timeouts.connect, Zero::Rejected)},
                                        {"first_byte", duration(u.timeouts.first_byte, Zero::Rejected)},
                                        {"idle", duration(u.timeouts.idle, Zero::Rejected)},
                                        {"pool_idle", duration(u.timeouts.pool_idle, Zero::Rejected)},
                                    })},
                       {"pool", section({{"max_idle_per_worker", count(u.pool.max_idle_per_worker, 0, 65536)}})},
                       {"max_concurrent_misses", count(u.max_concurrent_misses, 0, 1'000'000)},
                       {"tls", section({
                                   {"verify", boolean(u.tls.verify)},
                                   {"ca_file", scalar(u.tls.ca_file, "a file name", any_string())},
                                   {"sni", scalar(u.tls.sni, "a host name", any_string())},
                               })},
                   })},
      {"cache", section({
                    {"max_memory", size(k.max_memory, 1)},
                    {"max_object_size", size(k.max_object_size, 1)},
                    {"range_fill_max_size", size(k.range_fill_max_size, 0)},
                    {"shards", power_of_two(k.shards, 1, 65536)},
                    {"max_variants", count(k.max_variants, 1, 1024)},
                    {"heuristic_fraction", fraction(k.heuristic_fraction)},
                    {"heuristic_max", duration(k.heuristic_max)},
                    {"keep", duration(k.keep)},
                    {"stale_if_error", duration(k.stale_if_error)},
                    {"stale_on_disconnect", duration(k.stale_on_disconnect)},
                    {"tag_headers", list(k.tag_headers, "a field name", field_name())},
                    {"targeted_cache_control",
                     unique_list(k.targeted_cache_control, "a field name", targeted_field_name())},
                    {"drop_targeted_cache_control",
                     unique_list(k.drop_targeted_cache_control, "a field name", field_name())},
                    {"accept_encoding", unique_list(k.accept_encoding, "a content coding", content_coding())},
                    {"synthesize_etag", boolean(k.synthesize_etag)},
                    {"coalesce", section({
                                     {"enabled", boolean(k.coalesce.enabled)},
                                     {"max_waiters", count(k.coalesce.max_waiters, 0, 1'000'000)},
                                     {"timeout", duration(k.coalesce.timeout, Zero::Rejected)},
                                     {"hit_for_miss", duration(k.coalesce.hit_for_miss)},
                                 })},
                    {"max_background_refreshes", count(k.max_background_refreshes, 0, 1'000'000)},
                    {"snapshot", section({
                                     {"path", scalar(k.snapshot.path, "a file path, or \"\" for none", any_string())},
                                     {"interval", snapshot_interval(k.snapshot.interval)},
                                 })},
                    {"l2", l2_section(k.l2)},
                })},
      {"admin", section({
                    {"listen", optional_listener(c.admin.listen)},
                    {"token", scalar(c.admin.token, "a string", any_string())},
                    {"hosts", list(c.admin.hosts, "a host name, optionally with :port", host_name_and_port())},
                    {"redact_fields", list(c.admin.redact_fields, "a field name", field_name())},
                })},
      {"log", section({
                  {"level", one_of(c.log.level, kLogLevels)},
                  {"access_log", scalar(c.log.access_log, "off, stderr or a file path", non_empty())},
                  {"access_log_format", one_of(c.log.access_log_format, kAccessLogFormats)},
              })},
      {"cluster", cluster(c.cluster)},
      {"routes", routes(c.routes)},
  };
}

// Checks that span sections. Run only on an otherwise valid file, so a bad
// value does not also cause complaints about its neighbours.
void check_config(Loader& l, const Config& c) {
  const CacheConfig& k = c.cache;
  if (k.max_object_size > k.max_memory)
    l.error_at_key(l.written("cache.max_object_size") ? "cache.max_object_size" : "cache.max_memory",
                   fmt::format("cache.max_object_size ({}) must not exceed cache.max_memory ({})",
                               format_size(k.max_object_size), format_size(k.max_memory)));

  // RFC 9213 §2.2: a targeted field not on the target list "MUST be passed through".
  for (size_t i = 0; i < k.drop_targeted_cache_control.size(); ++i) {
    const std::string& name = k.drop_targeted_cache_control[i];
    const bool listed = std::any_of(k.targeted_cache_control.begin(), k.targeted_cache_control.end(),
                                    [&](const std::string& t) { return iequals_ascii(t, name); });
    if (!listed)
      l.error_at_key(fmt::format("cache.drop_targeted_cache_control[{}]", i),
                     fmt::format("{} is not in cache.targeted_cache_control: a targeted field this cache does not "
                                 "use is always forwarded (RFC 9213 §2.2)",
                                 name));
  }
  for (size_t i = 0; i < c.routes.size(); ++i)
    if (c.routes[i].partition && c.routes[i].partition_max_bytes > k.max_memory)
      l.error_at_key(fmt::format("routes[{}].partition_max_bytes", i),
                     fmt::format("partition_max_bytes ({}) must not exceed cache.max_memory ({})",
                                 format_size(c.routes[i].partition_max_bytes), format_size(k.max_memory)));
  if (k.l2 && k.l2->max_object_size > k.max_object_size)
    l.error_at_key(l.written("cache.l2.max_object_size") ? "cache.l2.max_object_size" : "cache.max_object_size",
                   fmt::format("cache.l2.max_object_size ({}) must not exceed cache.max_object_size ({}): an L2 "
                               "hit is stored locally too",
                               format_size(k.l2->max_object_size), format_size(k.max_object_size)));
  if (k.snapshot.interval.count() != 0 && k.snapshot.path.empty())
    l.error_at_key("cache.snapshot.interval", "needs cache.snapshot.path (periodic snapshots have nowhere to go)");

  std::vector<std::pair<const ListenerConfig*, std::string>> listeners;
  for (size_t i = 0; i < c.server.listen.size(); ++i)
    listeners.emplace_back(&c.server.listen[i], fmt::format("server.listen[{}]", i));
  if (c.admin.listen) listeners.emplace_back(&*c.admin.listen, "admin.listen");
  for (size_t i = 0; i < listeners.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (listeners[i].first->host == listeners[j].first->host && listeners[i].first->port == listeners[j].first->port)
        l.error_at_key(listeners[i].second, fmt::format("{} is already used by {}", listeners[i].first->text,
                                                        listeners[j].second));

  // Off loopback the admin API is reachable from the network: purges and
  // reloads would be open to anyone who can connect.
  static const CidrSet kLoopback{{*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")}};
  if (c.admin.listen && c.admin.token.empty() && !kLoopback.contains(std::string_view(c.admin.listen->host)))
    l.error_at(l.written("admin.token") ? "admin.token" : "admin.listen", "admin.token",
               "required when admin.listen is not a loopback address");
}

}  // namespace

bool Route::matches(std::string_view path) const {
  return compiled ? RE2::PartialMatch(path, *compiled) : path.starts_with(prefix);
}

const Route* Config::match_route(std::string_view path) const {
  for (const Route& r : routes)
    if (r.matches(path)) return &r;
  return nullptr;
}

std::string ConfigError::to_string() const {
  std::string s = file;
  if (line > 0) s += fmt::format(":{}:{}", line, column);
  s += ": ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

LoadResult load_config_string(std::string_view yaml, std::string name) {
  Loader l(name);
  Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    l.error(e.mark, "", "YAML syntax error: " + e.msg);
    return l.take_errors();
  }
  if (root.IsNull()) {
    l.error(YAML::Mark::null_mark(), "", "the file is empty; upstream.url is required");
    return l.take_errors();
  }
  if (!root.IsMap()) {
    l.error(root, "", "expected a map of sections, got " + describe(root));
    return l.take_errors();
  }

  auto config = std::make_shared<Config>();
  config->source_path = std::move(name);
  read_map(l, root, "", config_fields(*config));
  if (!l.written("upstream.url")) l.error_at_key("upstream.url", "is required");
  if (l.ok()) check_config(l, *config);
  if (!l.ok()) return l.take_errors();

  if (config->server.workers == 0) config->server.workers = std::max(1u, std::thread::hardware_concurrency());
  if (config->cluster && config->cluster->node.empty()) config->cluster->node = host_name();
  return std::shared_ptr<const Config>(std::move(config));
}

LoadResult load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::vector{ConfigError{path, 0, 0, "", std::string("cannot open: ") + std::strerror(errno)}};
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::vector{ConfigError{path, 0, 0, "", "cannot read"}};
  return load_config_string(text.str(), path);
}

std::string_view to_string(LogLevel level) { return name_of(kLogLevels, level); }
std::string_view to_string(AccessLogFormat format) { return name_of(kAccessLogFormats, format); }
std::string_view to_string(SetCookiePolicy policy) { return name_of(kSetCookiePolicies, policy); }

}  // namespace cachalot::config
