#include "postline/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace postline {

Log::Log(std::shared_ptr<spdlog::logger> logger) : logger_(std::move(logger)) {}

void Log::Debug(std::string_view event, const nlohmann::json& fields) const {
  Write(spdlog::level::debug, event, fields);
}
void Log::Info(std::string_view event, const nlohmann::json& fields) const {
  Write(spdlog::level::info, event, fields);
}
void Log::Warn(std::string_view event, const nlohmann::json& fields) const {
  Write(spdlog::level::warn, event, fields);
}
void Log::Error(std::string_view event, const nlohmann::json& fields) const {
  Write(spdlog::level::err, event, fields);
}

void Log::Write(spdlog::level::level_enum level, std::string_view event,
                const nlohmann::json& fields) const {
  if (!logger_->should_log(level)) return;
  try {
    nlohmann::json line = nlohmann::json::object();
    line["event"] = event;
    if (fields.is_object()) {
      for (const auto& [key, value] : fields.items()) line[key] = value;
    }
    // The pattern opens the object with ts and level; the payload supplies
    // the rest without its opening brace. Invalid UTF-8 is replaced, never thrown.
    std::string body = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    logger_->log(level, "{}", std::string_view(body).substr(1));
  } catch (...) {
    // Logging never throws.
  }
}

const char* JsonLinesPattern() { return R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v)"; }

std::shared_ptr<spdlog::logger> NewStderrJsonLogger(std::string_view name, std::string_view level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(std::string(name), sink);
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      JsonLinesPattern(), spdlog::pattern_time_type::utc));
  auto lvl = spdlog::level::info;
  if (level == "debug") lvl = spdlog::level::debug;
  if (level == "warn") lvl = spdlog::level::warn;
  if (level == "error") lvl = spdlog::level::err;
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::debug);
  return logger;
}

}  // namespace postline
