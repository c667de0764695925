#include "admin/admin_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "admin/answers.h"
#include "admin/guard.h"
#include "auth/jwt.h"
#include "admin/redact.h"
#include "config/units.h"
#include "core/clock.h"
#include "http/parser.h"

namespace cachalot::admin {

using asio::awaitable;
using asio::use_awaitable;

namespace {

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

Reply error(int status, std::string_view message) { return {status, "application/json", error_body(message)}; }

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    auto eq = part.find('=');
    if (part.substr(0, eq) == name) return url_decode(eq == std::string_view::npos ? "" : part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

Reply purge(Control& app, std::string_view query) {
  cache::Purge p;
  p.soft = query_param(query, "soft").value_or("0") == "1";
  p.host = query_param(query, "host");
  if (auto v = query_param(query, "path")) {
    p.kind = cache::Purge::Kind::Url;
    p.value = *v;
  } else if (auto pre = query_param(query, "prefix")) {
    p.kind = cache::Purge::Kind::Prefix;
    p.value = *pre;
  } else if (auto tag = query_param(query, "tag")) {
    p.kind = cache::Purge::Kind::Tag;
    p.value = *tag;
  } else if (query_param(query, "all").value_or("0") == "1") {
    p.kind = cache::Purge::Kind::All;
  } else if (auto route = query_param(query, "route")) {
    p.kind = cache::Purge::Kind::Route;
    p.value = *route;
  } else if (auto claim = query_param(query, "partition")) {
    // A verified claim is non-empty and free of control characters (auth/jwt.h): nothing else names a partition.
    const bool valid = !claim->empty() && claim->size() <= auth::kMaxClaimBytes &&
                       std::none_of(claim->begin(), claim->end(), [](char c) {
                         return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                       });
    if (!valid) return error(400, "partition= needs a claim value (non-empty, no control characters)");
    p.kind = cache::Purge::Kind::Partition;
    p.value = *claim;
  } else {
    return error(400, "give one of path=, prefix=, tag=, all=1, route= or partition=");
  }
  auto out = app.purge(p);
  if (!out.error.empty()) return error(404, out.error);
  return {200, "application/json", purge_body(p, out)};
}

// Keys hold request field values verbatim; credentials among them are shown
// only as digests (admin/redact.h).
Reply inspect(const Control& app, const config::Config& cfg, std::string_view query) {
  auto p = query_param(query, "path");
  if (!p) return error(400, "give path=");
  auto found = app.inspect(*p, query_param(query, "host"));
  const std::vector<std::string> hidden = redacted_names(cfg.admin.redact_fields);
  return {found.variants.empty() ? 404 : 200, "application/json", inspect_body(found, hidden, core::Clock::now())};
}

// GET /cluster: the invalidation bus (cluster/bus.h). 200 either way: a node
// without a cluster: section says so.
Reply cluster(const Control& app) { return {200, "application/json", cluster_body(app.cluster())}; }

#if CACHALOT_TEST_CLOCK
// Test builds only: moves core::Clock forward, so a conversation test can
// make an entry stale without sleeping through its max-age.
Reply advance_clock(std::string_view query) {
  auto text = query_param(query, "advance");
  auto by = text ? config::parse_duration(*text) : std::nullopt;
  if (!by) return error(400, "give advance=<duration>, e.g. 15s or 500ms");
  core::Clock::advance(*by);
  spdlog::warn("test clock advanced by {}; offset now {} ms", *text, core::Clock::offset().count());
  return {200, "application/json", body_of({{"offset_ms", core::Clock::offset().count()}})};
}
#endif

int parse_error_status(http::ParseError e) {
  switch (e) {
    case http::ParseError::HeaderTooLarge: return 431;
    case http::ParseError::UriTooLong: return 414;
    case http::ParseError::BodyTooLarge: return 413;
    case http::ParseError::Unsupported: return 501;
    case http::ParseError::Malformed:
    case http::ParseError::None: break;
  }
  return 400;
}

// One request, after the parser: checks first (guard.h), then the endpoint.
Reply handle(Control& app, const http::RequestHead& req) {
  auto cfg = app.config();
  if (Verdict v = check_request(req, cfg->admin); v != Verdict::Answer) {
    // Visible by default: a refused cross-site or rebound request means a page tried to reach the API.
    spdlog::info("admin: {} {} refused ({}): {}", http::to_string(req.method), req.path(), status_of(v), to_string(v));
    return error(status_of(v), message_of(v));
  }
  std::string path(req.path());
  std::string_view query = req.query();
  bool post = req.method == http::Method::Post;
  if (path == "/healthz") {
    if (app.draining()) return {503, "application/json", body_of({{"status", "draining"}})};
    return {200, "application/json", body_of({{"status", "ok"}})};
  }
  if (path == "/metrics") return {200, "text/plain; version=0.0.4", app.metrics_text()};
  if (path == "/reload") {
    if (!post) return error(405, "use POST");
    auto msg = app.reload();
    return msg.empty() ? Reply{200, "application/json", body_of({{"reloaded", true}})} : error(400, msg);
  }
  if (path == "/purge") return post ? purge(app, query) : error(405, "use POST");
  if (path == "/cache") return inspect(app, *cfg, query);
  if (path == "/cluster") return cluster(app);
#if CACHALOT_TEST_CLOCK
  if (path == "/test/clock") return post ? advance_clock(query) : error(405, "use POST");
#endif
  return error(404, "unknown admin endpoint " + path);
}

}  // namespace

AdminServer::AdminServer(Control& app) : app_(app) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
  auto cfg = app_.config();
  if (!cfg->admin.listen) return;
  const auto& l = *cfg->admin.listen;
  asio::ip::tcp::endpoint ep(asio::ip::make_address(l.host), l.port);
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(ioc_);
  acceptor_->open(ep.protocol());
  acceptor_->set_option(asio::socket_base::reuse_address(true));
  asio::error_code ec;
  acceptor_->bind(ep, ec);
  if (ec) throw std::system_error(ec, "cannot listen on admin address " + l.text);
  acceptor_->listen();
  asio::co_spawn(ioc_, accept_loop(), asio::detached);
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(ioc_);
    ioc_.run();
  });
  spdlog::info("admin listening on {}", l.text);
}

void AdminServer::stop() {
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
}

awaitable<void> AdminServer::accept_loop() {
  for (;;) {
    asio::error_code ec;
    auto s = co_await acceptor_->async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!acceptor_->is_open()) co_return;
      continue;
    }
    asio::co_spawn(ioc_, serve(std::move(s)), asio::detached);
  }
}

awaitable<void> AdminServer::serve(asio::ip::tcp::socket s) {
  http::Parser parser(http::Parser::Kind::Request, {16 * 1024, 8 * 1024, 64 * 1024});
  std::vector<char> buf(16 * 1024);
  // Bytes read but not yet parsed: buf[begin, end). A client may pipeline
  // (RFC 9112 §9.3.2), so one read can hold the next requests as well; they
  // are answered in order, one at a time, from here before reading again.
  std::size_t begin = 0, end = 0;
  asio::steady_timer deadline(ioc_);
  for (;;) {
    // Read one request (bounded by 10 s, whether its bytes are buffered or not).
    deadline.expires_after(std::chrono::seconds(10));
    deadline.async_wait([&s](asio::error_code ec) {
      if (!ec) s.close(ec);
    });
    bool ok = false;
    for (;;) {
      if (begin < end) {
        begin += parser.execute(buf.data() + begin, end - begin);
        if (parser.error() != http::ParseError::None) break;
        if (parser.message_complete()) {
          ok = true;
          break;
        }
      }
      begin = end = 0;  // execute() consumes everything unless a message ends
      asio::error_code ec;
      end = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    deadline.cancel();
    if (!ok && parser.error() == http::ParseError::None) co_return;  // the client left, or the deadline passed

    // A request the parser refused is answered (as JSON, like every admin
    // error) and ends the connection: its framing can no longer be trusted.
    const auto& req = parser.request();
    bool keep_alive = ok && req.keep_alive;
    Reply r = ok ? handle(app_, req) : error(parse_error_status(parser.error()), parser.error_reason());
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(http::reason_phrase(r.status)) +
                      "\r\nContent-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                      "\r\nCache-Control: no-store\r\n";
    if (!keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
    if (!ok || req.method != http::Method::Head) out += r.body;
    asio::error_code ec;
    co_await asio::async_write(s, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
    if (ec || !keep_alive) {
      s.shutdown(asio::socket_base::shutdown_send, ec);  // FIN after the answer
      co_return;
    }
    parser.next_message();
  }
}

}  // namespace cachalot::admin
