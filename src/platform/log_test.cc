#include "postline/log.h"

#include <gtest/gtest.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

namespace postline {
namespace {

TEST(LogTest, WritesOneJsonObjectPerLine) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      JsonLinesPattern(), spdlog::pattern_time_type::utc));
  Log log(logger);
  log.Info("sent", {{"envelope_id", "01ABC"}, {"reply", "250 \"ok\"\n"}});
  log.Warn("odd", {{"bytes", std::string("\xff\xfe")}});  // invalid UTF-8 is replaced
  std::istringstream lines(out.str());
  std::string line;
  std::getline(lines, line);
  auto first = nlohmann::json::parse(line);
  EXPECT_EQ(first["event"], "sent");
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["envelope_id"], "01ABC");
  EXPECT_EQ(first["reply"], "250 \"ok\"\n");
  EXPECT_TRUE(first["ts"].get<std::string>().ends_with("Z"));
  std::getline(lines, line);
  auto second = nlohmann::json::parse(line);
  EXPECT_EQ(second["level"], "warning");
}

}  // namespace
}  // namespace postline
