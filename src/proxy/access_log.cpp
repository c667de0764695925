#include "proxy/access_log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

#include "core/json.h"

namespace cachalot::proxy {

namespace {
std::atomic<std::shared_ptr<spdlog::logger>> g_access;
}  // namespace

std::string access_log_json(std::string_view client_ip, std::string_view method, std::string_view target, int status,
                            uint64_t bytes, double seconds, std::string_view cache_status) {
  return core::json_text({{"client", client_ip},
                          {"method", method},
                          {"target", target},
                          {"status", status},
                          {"bytes", bytes},
                          {"duration_ms", core::round_to(seconds * 1e3, 3)},
                          {"cache_status", cache_status}});
}

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
    logger->info(access_log_json(ip, method, req.target, status, bytes, seconds, cache_status));
  } else {
    logger->info("{} \"{} {}\" {} {} {:.3f}ms \"{}\"", ip, method, req.target, status, bytes, seconds * 1e3,
                 cache_status);
  }
}

}  // namespace cachalot::proxy
