#include "proxy/access_log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

namespace cachalot::proxy {

namespace {
std::atomic<std::shared_ptr<spdlog::logger>> g_access;

// JSON string escaping for the few fields that come from the client.
void json_escape(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += c;
        }
    }
  }
}
}  // namespace

void configure_access_log(const config::Config& cfg) {
  const std::string& target = cfg.log.access_log;
  std::shared_ptr<spdlog::logger> logger;
  if (target == "off") {
    g_access.store(nullptr);
    return;
  }
  if (target == "stderr") {
    logger = std::make_shared<spdlog::logger>("access", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    try {
      logger = std::make_shared<spdlog::logger>("access",
                                                std::make_shared<spdlog::sinks::basic_file_sink_mt>(target, false));
    } catch (const spdlog::spdlog_ex& e) {
      throw std::runtime_error("cannot open access log " + target + ": " + e.what());
    }
  }
  logger->set_pattern("%v");
  logger->flush_on(spdlog::level::info);
  g_access.store(std::move(logger));
}

void access_log(const config::Config& cfg, std::string_view ip, const http::RequestHead& req, int status,
                uint64_t bytes, double seconds, std::string_view cache_status) {
  auto logger = g_access.load(std::memory_order_acquire);
  if (!logger) return;
  std::string_view method = req.method_name.empty() ? http::to_string(req.method) : std::string_view(req.method_name);
  if (cfg.log.access_log_format == config::AccessLogFormat::Json) {
    std::string line;
    line.reserve(256);
    line += "{\"client\":\"";
    json_escape(line, ip);
    line += "\",\"method\":\"";
    json_escape(line, method);
    line += "\",\"target\":\"";
    json_escape(line, req.target);
    line += "\",\"status\":" + std::to_string(status) + ",\"bytes\":" + std::to_string(bytes) +
            ",\"duration_ms\":" + fmt::format("{:.3f}", seconds * 1e3) + ",\"cache_status\":\"";
    json_escape(line, cache_status);
    line += "\"}";
    logger->info(line);
  } else {
    logger->info("{} \"{} {}\" {} {} {:.3f}ms \"{}\"", ip, method, req.target, status, bytes, seconds * 1e3,
                 cache_status);
  }
}

}  // namespace cachalot::proxy
