// Test support: inputs another producer may write that once crashed
// postline's JSON readers — numbers beyond double range and nesting far
// deeper than any envelope (the bounded parser refuses them).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace postline::testing_support {

// `depth` copies of `open`, the number 1, then `depth` copies of `close`.
inline std::string Nested(std::size_t depth, std::string_view open, std::string_view close) {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i) out += open;
  out += "1";
  for (std::size_t i = 0; i < depth; ++i) out += close;
  return out;
}

// Bodies another producer may write (a Python producer on SQS writes any
// integer): numbers beyond double range and nesting 100,000 deep.
inline std::vector<std::string> PoisonBodies() {
  const std::string head =
      R"({"v":1,"id":"01JPOISON","from":"a@example.com","to":"b@example.com","text":"x",)";
  return {
      head + R"("priority":1e400})",
      head + R"("priority":-1e309})",
      head + R"("priority":)" + std::string(400, '9') + "}",
      head + R"("producer_seq":1)" + std::string(400, '0') + "}",
      head + R"("headers":)" + Nested(100000, "[", "]") + "}",
      R"({"v":1,"id":"01JPOISON","from":"a@example.com","text":"x","to":)" +
          Nested(100000, "[", "]") + "}",
      Nested(40000, R"({"a":)", "}"),
  };
}

}  // namespace postline::testing_support
