#include "admin/admin_server.h"

#include <spdlog/spdlog.h>

#include "cache/key.h"
#include "core/clock.h"
#include "http/parser.h"
#include "proxy/app.h"

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

// A copy of `e` that is stale from now on: stale-while-revalidate and
// stale-if-error still apply, and the next request revalidates it.
std::shared_ptr<const cache::Entry> mark_stale(const cache::Entry& e, core::TimePoint now,
                                                std::chrono::milliseconds keep) {
  auto copy = std::make_shared<cache::Entry>(e);
  auto age = copy->freshness.current_age(now);
  if (copy->freshness.lifetime > age) copy->freshness.lifetime = age;
  cache::finalize_entry(*copy);
  return copy;
}

}  // namespace

AdminServer::AdminServer(proxy::App& app) : app_(app) {}

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
      auto keep = cfg->cache.keep;
      if (path == "/healthz") {
        r.body = app_.draining() ? "{\"status\":\"draining\"}\n" : "{\"status\":\"ok\"}\n";
        if (app_.draining()) r.status = 503;
      } else if (path == "/metrics") {
        r.content_type = "text/plain; version=0.0.4";
        r.body = app_.metrics().render();
      } else if (path == "/reload") {
        if (req.method != http::Method::Post) {
          r = error(405, "use POST");
        } else {
          auto msg = app_.reload_from_file();
          r = msg.empty() ? Reply{200, "application/json", "{\"reloaded\":true}\n"} : error(400, msg);
        }
      } else if (path == "/purge") {
        if (req.method != http::Method::Post) {
          r = error(405, "use POST");
        } else {
          bool soft = query_param(query, "soft").value_or("0") == "1";
          cache::RewriteFn rewrite = [now, keep](const cache::Entry& e) { return mark_stale(e, now, keep); };
          auto& store = app_.store();
          std::size_t n = 0;
          PurgeKind kind = PurgeKind::Url;
          auto host = query_param(query, "host");
          // Without host=, a path applies to every host that has entries.
          std::vector<std::string> hosts = host ? std::vector<std::string>{*host} : app_.hosts();
          auto key_for = [&](const std::string& h, const std::string& target) {
            return cache::primary_key("http", h, target, http::HeaderMap{}, {});
          };
          if (auto p = query_param(query, "path")) {
            kind = PurgeKind::Url;
            for (const auto& h : hosts) n += app_.purge_url(h, *p, soft ? &rewrite : nullptr);
          } else if (auto pre = query_param(query, "prefix")) {
            kind = PurgeKind::Prefix;
            for (const auto& h : hosts) {
              // The key of "/p" may carry a normalized form; purge by the raw prefix of the key.
              auto k = key_for(h, *pre);
              n += soft ? store.rewrite_prefix(k, rewrite) : store.purge_prefix(k);
            }
          } else if (auto tag = query_param(query, "tag")) {
            kind = PurgeKind::Tag;
            n = soft ? store.rewrite_tag(*tag, rewrite) : store.purge_tag(*tag);
          } else if (query_param(query, "all").value_or("0") == "1") {
            kind = PurgeKind::All;
            n = soft ? store.rewrite_all(rewrite) : store.purge_all();
          } else if (auto route = query_param(query, "route")) {
            kind = PurgeKind::Route;
            bool known = false;
            for (const auto& rt : cfg->routes) known = known || rt.name == *route;
            if (!known) {
              r = error(404, "no route named " + *route);
            } else {
              auto g = app_.bump_route_generation(*route);
              r.body = "{\"route\":" + json_string(*route) + ",\"generation\":" + std::to_string(g) + "}\n";
            }
          } else {
            r = error(400, "give one of path=, prefix=, tag=, all=1 or route=");
          }
          if (r.status == 200 && r.body.empty())
            r.body = "{\"purged\":" + std::to_string(n) + ",\"kind\":\"" + std::string(to_string(kind)) +
                     "\",\"soft\":" + (soft ? "true" : "false") + "}\n";
          if (r.status == 200) app_.metrics().worker(0).purges[static_cast<size_t>(kind)].fetch_add(1);
        }
      } else if (path == "/cache") {
        auto p = query_param(query, "path");
        if (!p) {
          r = error(400, "give path=");
        } else {
          auto host = query_param(query, "host");
          std::vector<std::string> hosts = host ? std::vector<std::string>{*host} : app_.hosts();
          std::string k;
          std::vector<std::shared_ptr<const cache::Entry>> vs;
          for (const auto& h : hosts) {
            k = app_.url_key(h, *p);
            vs = app_.store().variants(k);
            if (!vs.empty()) break;
          }
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
