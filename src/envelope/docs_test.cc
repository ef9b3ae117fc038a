// Keeps docs/envelope.md and docs/envelope.schema.json in step with the code.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "postline/envelope.h"

namespace postline {
namespace {

std::string ReadDoc(const std::string& name) {
  std::ifstream in(std::string(POSTLINE_SOURCE_DIR) + "/docs/" + name, std::ios::binary);
  EXPECT_TRUE(in.is_open()) << name;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> JsonBlocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  const std::string open = "```json\n";
  std::size_t pos = 0;
  while ((pos = markdown.find(open, pos)) != std::string::npos) {
    const std::size_t start = pos + open.size();
    const std::size_t end = markdown.find("\n```", start);
    if (end == std::string::npos) break;
    blocks.push_back(markdown.substr(start, end - start));
    pos = end + 4;
  }
  return blocks;
}

TEST(DocsTest, EveryJsonExampleInEnvelopeMdParses) {
  const auto blocks = JsonBlocks(ReadDoc("envelope.md"));
  ASSERT_GE(blocks.size(), 3u);
  for (const std::string& block : blocks) {
    auto email = ParseEmailJson(block);
    EXPECT_TRUE(email.has_value()) << block << "\n→ " << email.error().ToString();
  }
}

TEST(DocsTest, SchemaListsExactlyTheAcceptedFields) {
  const auto schema = nlohmann::json::parse(ReadDoc("envelope.schema.json"));
  EXPECT_EQ(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(schema["additionalProperties"], false);
  // Every property the schema names is accepted by the parser...
  const std::string base = R"("from": "a@example.com", "to": "b@example.com", "text": "x")";
  const nlohmann::json samples = {{"v", 1},
                                  {"id", "01JDXKQ4M3ZV8W5R2T7N9P6B1C"},
                                  {"from", "a@example.com"},
                                  {"to", "b@example.com"},
                                  {"cc", "c@example.com"},
                                  {"bcc", "d@example.com"},
                                  {"reply_to", "e@example.com"},
                                  {"subject", "s"},
                                  {"text", "x"},
                                  {"html", "<p>x</p>"},
                                  {"attachments", nlohmann::json::array()},
                                  {"headers", nlohmann::json::object()},
                                  {"priority", 5},
                                  {"idempotency_key", "k"},
                                  {"send_at", "2026-12-01T09:00:00Z"}};
  for (const auto& [name, unused] : schema["properties"].items()) {
    ASSERT_TRUE(samples.contains(name)) << "schema field without a sample: " << name;
    nlohmann::json envelope = nlohmann::json::parse("{" + base + "}");
    envelope[name] = samples[name];
    auto email = ParseEmailJson(envelope.dump());
    EXPECT_TRUE(email.has_value()) << name << ": " << email.error().ToString();
  }
  // ...and every field the parser accepts is in the schema.
  for (const auto& [name, unused] : samples.items()) {
    EXPECT_TRUE(schema["properties"].contains(name)) << name;
  }
  EXPECT_EQ(schema["properties"].size(), samples.size());
  EXPECT_EQ(schema["properties"]["priority"]["minimum"], kMinPriority);
  EXPECT_EQ(schema["properties"]["priority"]["maximum"], kMaxPriority);
  EXPECT_EQ(schema["properties"]["priority"]["default"], kDefaultPriority);
}

}  // namespace
}  // namespace postline
