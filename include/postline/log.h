// postline/log.h — structured logs as JSON lines.
//
// Every line is one JSON object: {"ts": RFC 3339 UTC with milliseconds,
// "level", "event", ...fields}. Every line about a message carries its
// "envelope_id". Sinks are injected (spdlog), so tests capture output with a
// test sink. Logging never throws: a field that cannot be encoded is replaced.
//
// Thread-safety: a Log may be shared by threads (spdlog loggers with _mt sinks
// are thread-safe).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace postline {

class Log {
 public:
  // REQUIRES: logger non-null; its pattern should be JsonLinesPattern().
  explicit Log(std::shared_ptr<spdlog::logger> logger);

  void Debug(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) const;
  void Info(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) const;
  void Warn(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) const;
  void Error(std::string_view event, const nlohmann::json& fields = nlohmann::json::object()) const;

  spdlog::logger& logger() const { return *logger_; }

 private:
  void Write(spdlog::level::level_enum level, std::string_view event,
             const nlohmann::json& fields) const;
  std::shared_ptr<spdlog::logger> logger_;
};

// The spdlog pattern for JSON lines (timestamps in UTC).
const char* JsonLinesPattern();

// A logger writing JSON lines to standard error at `level`
// ("debug" | "info" | "warn" | "error"; anything else means info).
std::shared_ptr<spdlog::logger> NewStderrJsonLogger(std::string_view name, std::string_view level);

}  // namespace postline
