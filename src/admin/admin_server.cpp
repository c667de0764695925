#include "admin/admin_server.h"

#include <spdlog/spdlog.h>

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

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Reply error(int status, std::string_view message) {
  return {status, "application/json", "{\"error\":" + json_string(message) + "}\n"};
}

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
  asio::steady_timer deadline(ioc_);
  for (;;) {
    // Read one request (bounded by 10 s).
    deadline.expires_after(std::chrono::seconds(10));
    deadline.async_wait([&s](asio::error_code ec) {
      if (!ec) s.close(ec);
    });
    bool ok = false;
    while (!parser.message_complete()) {
      asio::error_code ec;
      std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      std::size_t off = 0;
      while (off < n && !parser.message_complete() && parser.error() == http::ParseError::None)
        off += parser.execute(buf.data() + off, n - off);
      if (parser.error() != http::ParseError::None) break;
      ok = parser.message_complete();
    }
    deadline.cancel();
    if (!ok) co_return;

    const auto& req = parser.request();
    auto cfg = app_.config();
    Reply r;
    std::string path(req.path());
    std::string query(req.query());
    // /healthz stays open so health checks (container HEALTHCHECK, load balancers) need no secret.
    if (!cfg->admin.token.empty() && path != "/healthz") {
      auto auth = req.headers.get("authorization");
      if (!auth || *auth != "Bearer " + cfg->admin.token) r = error(401, "missing or wrong bearer token");
    }
    if (r.status == 200) {
      auto now = core::Clock::now();
      if (path == "/healthz") {
        r.body = app_.draining() ? "{\"status\":\"draining\"}\n" : "{\"status\":\"ok\"}\n";
        if (app_.draining()) r.status = 503;
      } else if (path == "/metrics") {
        r.content_type = "text/plain; version=0.0.4";
        r.body = app_.metrics_text();
      } else if (path == "/reload") {
        if (req.method != http::Method::Post) {
          r = error(405, "use POST");
        } else {
          auto msg = app_.reload();
          r = msg.empty() ? Reply{200, "application/json", "{\"reloaded\":true}\n"} : error(400, msg);
        }
      } else if (path == "/purge") {
        if (req.method != http::Method::Post) {
          r = error(405, "use POST");
        } else {
          cache::Purge p;
          p.soft = query_param(query, "soft").value_or("0") == "1";
          p.host = query_param(query, "host");
          bool given = true;
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
          } else {
            given = false;
            r = error(400, "give one of path=, prefix=, tag=, all=1 or route=");
          }
          if (given) {
            auto out = app_.purge(p);
            if (!out.error.empty()) {
              r = error(404, out.error);
            } else if (p.kind == cache::Purge::Kind::Route) {
              r.body = "{\"route\":" + json_string(p.value) + ",\"generation\":" + std::to_string(out.generation) + "}\n";
            } else {
              r.body = "{\"purged\":" + std::to_string(out.purged) + ",\"kind\":\"" +
                       std::string(cache::to_string(p.kind)) + "\",\"soft\":" + (p.soft ? "true" : "false") + "}\n";
            }
          }
        }
      } else if (path == "/cache") {
        auto p = query_param(query, "path");
        if (!p) {
          r = error(400, "give path=");
        } else {
          auto found = app_.inspect(*p, query_param(query, "host"));
          const auto& k = found.key;
          const auto& vs = found.variants;
          std::string body = "{\"key\":" + json_string(k) + ",\"variants\":[";
          for (std::size_t i = 0; i < vs.size(); ++i) {
            const auto& e = *vs[i];
            if (i) body += ",";
            body += "{\"variant\":" + json_string(e.variant_key) + ",\"status\":" + std::to_string(e.status) +
                    ",\"age\":" + std::to_string(e.freshness.current_age(now).count()) +
                    ",\"ttl\":" + std::to_string(e.freshness.ttl(now)) +
                    ",\"lifetime\":" + std::to_string(e.freshness.lifetime.count()) +
                    ",\"heuristic\":" + (e.freshness.heuristic ? "true" : "false") +
                    ",\"stale_while_revalidate\":" + std::to_string(e.freshness.stale_while_revalidate.count()) +
                    ",\"stale_if_error\":" + std::to_string(e.freshness.stale_if_error.count()) +
                    ",\"etag\":" + json_string(e.etag) + ",\"last_modified\":" + json_string(e.last_modified) +
                    ",\"size\":" + std::to_string(e.body.size()) + ",\"charge\":" + std::to_string(e.charge()) +
                    ",\"route\":" + json_string(e.route) + ",\"tags\":[";
            for (std::size_t t = 0; t < e.tags.size(); ++t) body += (t ? "," : "") + json_string(e.tags[t]);
            body += "]}";
          }
          body += "]}\n";
          r.body = std::move(body);
          if (vs.empty()) r.status = 404;
        }
      } else {
        r = error(404, "unknown admin endpoint " + path);
      }
    }
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(http::reason_phrase(r.status)) +
                      "\r\nContent-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                      "\r\nCache-Control: no-store\r\n";
    bool keep_alive = req.keep_alive;
    if (!keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
    if (req.method != http::Method::Head) out += r.body;
    asio::error_code ec;
    co_await asio::async_write(s, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
    if (ec || !keep_alive) co_return;
    parser.next_message();
  }
}

}  // namespace cachalot::admin
