#include "postline/json.h"

#include <gtest/gtest.h>

#include <string>

namespace postline {
namespace {

std::string Nested(std::size_t depth, std::string_view open, std::string_view close,
                   std::string_view inner = "1") {
  std::string out;
  out.reserve(depth * (open.size() + close.size()) + inner.size());
  for (std::size_t i = 0; i < depth; ++i) out += open;
  out += inner;
  for (std::size_t i = 0; i < depth; ++i) out += close;
  return out;
}

TEST(ParseJson, ReadsDocumentsAsNlohmannDoes) {
  auto doc = ParseJson(R"({"b": [1, -2, 18446744073709551615, 1.5, "x", true, null], "a": {}})");
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_EQ(*doc, nlohmann::json::parse(
                      R"({"b": [1, -2, 18446744073709551615, 1.5, "x", true, null], "a": {}})"));
  auto ordered = ParseOrderedJson(R"({"z": 1, "a": [{"k": "v"}], "z": 2})");
  ASSERT_TRUE(ordered);
  EXPECT_EQ(ordered->dump(), R"({"z":2,"a":[{"k":"v"}]})");  // order kept, last value wins
  auto scalar = ParseJson(" 42 ");
  ASSERT_TRUE(scalar);
  EXPECT_EQ(*scalar, 42);
  // Beyond uint64 but within double: a double, as nlohmann reads it.
  auto big = ParseJson("123456789012345678901234567890");
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->is_number_float());
}

TEST(ParseJson, MalformedTextNamesLineColumnAndByte) {
  JsonParseOptions options;
  options.document = "the request body";
  options.field = "body";
  auto e = ParseJson("{\n  \"a\": 1,\n  oops\n}", options);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(e.error().code, "malformed_json");
  EXPECT_EQ(e.error().field, "body");
  EXPECT_NE(e.error().message.find("the request body is not valid JSON at line 3, column 3"),
            std::string::npos)
      << e.error().message;
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "1 2", "\"\xff\"", "\"a\x01\"", "nul"}) {
    auto r = ParseJson(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "malformed_json") << bad;
  }
  // The detail never carries the input's invalid UTF-8.
  auto utf8 = ParseJson("[\"\xff\xfe\"]");
  ASSERT_FALSE(utf8);
  EXPECT_EQ(utf8.error().message.find('\xff'), std::string::npos);
  EXPECT_NO_THROW((void)nlohmann::json(utf8.error().message).dump());
}

// Deep nesting: JSON that nlohmann's recursive copy, dump() and our readers
// would overflow the stack on is refused while parsing, in every shape.
TEST(ParseJson, DeepNestingIsRefusedAtTheLimitInEveryShape) {
  struct Shape {
    const char* name;
    std::string open, close;
  };
  const Shape shapes[] = {{"objects", "{\"a\":", "}"},
                          {"arrays", "[", "]"},
                          {"mixed", "{\"k\":[", "]}"},
                          {"arrays of objects", "[{\"x\":0,\"y\":", "}]"}};
  for (const auto& shape : shapes) {
    for (std::size_t levels : {std::size_t{33}, std::size_t{1000}, std::size_t{100000}}) {
      const std::string text = Nested(levels, shape.open, shape.close);
      auto r = ParseJson(text);
      ASSERT_FALSE(r) << shape.name << " " << levels;
      EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
      EXPECT_EQ(r.error().code, "json_too_deep") << shape.name;
      EXPECT_NE(r.error().message.find("deeper than 32 levels"), std::string::npos)
          << r.error().message;
      EXPECT_LE(r.error().field.size(), 210u);
      auto ordered = ParseOrderedJson(text);
      ASSERT_FALSE(ordered);
      EXPECT_EQ(ordered.error().code, "json_too_deep");
    }
  }
  // Exactly at the limit is accepted.
  EXPECT_TRUE(ParseJson(Nested(32, "[", "]")));
  EXPECT_TRUE(ParseJson(Nested(16, "{\"k\":[", "]}")));
  // The path names where the nesting went too deep.
  auto headers = ParseJson("{\"to\":\"a@b\",\"headers\":" + Nested(40, "{\"X\":", "}") + "}");
  ASSERT_FALSE(headers);
  EXPECT_TRUE(headers.error().field.starts_with("headers.X.X.")) << headers.error().field;
  auto pointer =
      ParseJson("{\"lines\":" + Nested(40, "[", "]") + "}", {.paths = JsonPathStyle::kPointer});
  ASSERT_FALSE(pointer);
  EXPECT_TRUE(pointer.error().field.starts_with("/lines/0/0/")) << pointer.error().field;
  // A lower limit of the caller's choosing.
  auto shallow = ParseJson("[[[1]]]", {.max_depth = 2});
  ASSERT_FALSE(shallow);
  EXPECT_NE(shallow.error().message.find("deeper than 2 levels"), std::string::npos);
}

TEST(ParseJson, NumbersBeyondDoubleRangeNameTheField) {
  const std::string digits400(400, '7');
  struct Case {
    std::string text;
    std::string field;
  };
  const Case cases[] = {
      {R"({"priority": 1e400})", "priority"},
      {R"({"priority": 1e309})", "priority"},
      {R"({"priority": -1e400})", "priority"},
      {R"({"priority": )" + digits400 + "}", "priority"},
      {R"({"priority": -)" + digits400 + "}", "priority"},
      {R"({"unknown_field": )" + digits400 + "}", "unknown_field"},
      {R"({"emails": [{"to": "a@b"}, {"priority": 1E+999}]})", "emails[1].priority"},
      {R"({"headers": [["X-A", "1"], ["X-B", 2e308]]})", "headers[1][1]"},
      {"1e400", "(root)"},
  };
  for (const auto& c : cases) {
    auto r = ParseJson(c.text);
    ASSERT_FALSE(r) << c.text.substr(0, 60);
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
    EXPECT_EQ(r.error().code, "number_out_of_range");
    EXPECT_EQ(r.error().field, c.field);
    EXPECT_TRUE(r.error().message.starts_with(c.field + ": number ")) << r.error().message;
    EXPECT_NE(r.error().message.find("out of range"), std::string::npos);
    EXPECT_LT(r.error().message.size(), 200u) << "the 400 digits are cut";
    auto ordered = ParseOrderedJson(c.text);
    ASSERT_FALSE(ordered);
    EXPECT_EQ(ordered.error().field, c.field);
  }
  auto pointer =
      ParseJson(R"({"lines": [{"quantity": 1e999}]})", {.paths = JsonPathStyle::kPointer});
  ASSERT_FALSE(pointer);
  EXPECT_EQ(pointer.error().field, "/lines/0/quantity");
  // A key with control characters keeps the message on one line.
  auto control = ParseJson(R"({"a\nb": 1e400})");
  ASSERT_FALSE(control);
  EXPECT_EQ(control.error().field, "a\\x0Ab");
  EXPECT_EQ(control.error().message.find('\n'), std::string::npos);
  // The largest doubles and underflow are numbers.
  EXPECT_TRUE(ParseJson("[1.7976931348623157e308, -1.7976931348623157e308, 1e-400]"));
}

TEST(JsonReaders, NeverThrowWhateverTheType) {
  auto doc = ParseJson(R"({"s": "x", "n": 5, "b": true, "a": [1], "o": {"k": 1}, "z": null})");
  ASSERT_TRUE(doc);
  EXPECT_EQ(JsonString(*doc, "s"), "x");
  EXPECT_EQ(JsonString(*doc, "n", "fallback"), "fallback");
  EXPECT_EQ(JsonString(*doc, "missing"), "");
  EXPECT_EQ(JsonString(nlohmann::json("not an object"), "s", "f"), "f");
  EXPECT_TRUE(JsonBool(*doc, "b", false));
  EXPECT_FALSE(JsonBool(*doc, "s", false));
  EXPECT_EQ(JsonArray(*doc, "a").size(), 1u);
  EXPECT_TRUE(JsonArray(*doc, "o").empty());
  EXPECT_TRUE(JsonArray(nlohmann::json(3), "a").is_array());
  EXPECT_EQ(JsonObject(*doc, "o").size(), 1u);
  EXPECT_TRUE(JsonObject(*doc, "z").is_object());
  EXPECT_EQ(JsonMember(*doc, "z")->type(), nlohmann::json::value_t::null);
  EXPECT_EQ(JsonMember(nlohmann::json::array(), "z"), nullptr);
}

}  // namespace
}  // namespace postline
