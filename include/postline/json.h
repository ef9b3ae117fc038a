// postline/json.h — the one way postline reads JSON text (RFC 8259).
//
// Every JSON document postline reads goes through ParseJson or
// ParseOrderedJson: HTTP API bodies, envelope files, stdin and JSON Lines of
// the CLI, queued message bodies (the worker, the dead-letter tools, the blob
// store's pointers), invoice JSON, AWS JSON responses and the JSON columns of
// the state database. Beyond RFC 8259 two rules hold, so that no input can
// exhaust the stack (nlohmann's copy and dump() recurse once per level) or
// reach an exception (nlohmann throws out_of_range for an overflowing number):
//
//  * Nesting: at most JsonParseOptions::max_depth arrays and objects inside
//    one another (default kMaxJsonDepth = 32). A scalar document has depth 0,
//    `{}` and `[]` depth 1, `{"to": [{"email": "a@b"}]}` depth 3 (an envelope
//    needs at most 3, an invoice 5, an SQS response 6). The parser itself is
//    iterative and stops at the first array or object past the limit: nothing
//    deeper is read or built.
//  * Numbers: every number must be a finite IEEE 754 double, i.e. within
//    ±1.7976931348623157e308. `1e309`, `-1e400` and a 400-digit integer are
//    refused, wherever they stand (also in fields the reader does not know).
//    Integers within int64/uint64 stay exact; larger integers that fit a
//    double become doubles; numbers below the smallest double become 0.
//
// Errors (all ErrorKind::kInvalidInput; the message starts with
// JsonParseOptions::document or with the field, and says what is allowed):
//   "malformed_json"       not JSON: a syntax error, invalid UTF-8, a control
//                          character in a string, text after the value.
//                          Message: "<document> is not valid JSON at line L,
//                          column C (byte B): <detail>"; B counts the bytes
//                          read up to and including the offending one.
//                          field = JsonParseOptions::field.
//   "json_too_deep"        nesting past max_depth. Message: "<document>: <path>
//                          nests arrays and objects deeper than N levels;
//                          allowed: at most N". field = <path>.
//   "number_out_of_range"  a number outside the double range. Message:
//                          "<path>: number <text> is out of range; allowed: a
//                          number within ±1.7976931348623157e308 (IEEE 754
//                          double)". field = <path>.
// <path> names the member where the problem is, in the style chosen by
// JsonParseOptions::paths: kDotted as envelope fields are named
// ("priority", "emails[3].to[0]", "(root)" for the document itself), or
// kPointer as RFC 6901 JSON Pointers ("/lines/0/quantity", "/" for the
// document). Keys longer than 40 bytes are cut with "…", and a path longer than
// 200 bytes is cut at a segment with "…".
//
// The readers below (JsonMember, JsonString, JsonBool, JsonArray, JsonObject)
// read a member of a parsed document without throwing, whatever its type.
//
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "postline/error.h"

namespace postline {

// The default deepest nesting of arrays and objects accepted.
inline constexpr std::size_t kMaxJsonDepth = 32;

enum class JsonPathStyle {
  kDotted,   // priority, to[1], headers.X-Tag, emails[0].priority; (root)
  kPointer,  // RFC 6901: /priority, /to/1, /lines/0/quantity; /
};

struct JsonParseOptions {
  // Arrays and objects nested deeper than this are refused ("json_too_deep").
  std::size_t max_depth = kMaxJsonDepth;
  // How error messages and Error::field name a member.
  JsonPathStyle paths = JsonPathStyle::kDotted;
  // What the text is, for messages: "the envelope", "the request body",
  // "invoice.json".
  std::string_view document = "the JSON document";
  // Error::field of a "malformed_json" error ("body" for an HTTP body).
  std::string_view field = {};
};

// Parses `text` (one JSON value, UTF-8) into a document whose objects keep
// their keys sorted (nlohmann::json). Never throws on any input; errors as
// listed above. A key that repeats keeps its last value.
Result<nlohmann::json> ParseJson(std::string_view text, const JsonParseOptions& options = {});

// As ParseJson, into a document whose objects keep the keys in the order of
// the text (nlohmann::ordered_json).
Result<nlohmann::ordered_json> ParseOrderedJson(std::string_view text,
                                                const JsonParseOptions& options = {});

// The member `key` of `object`; nullptr when `object` is not an object or has
// no such member. The pointer is valid while `object` is unchanged.
template <typename BasicJson>
const BasicJson* JsonMember(const BasicJson& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(std::string(key));
  return it == object.end() ? nullptr : &*it;
}

// The member `key` of `object` when it is a string, else `fallback` (absent,
// another type, or `object` not an object).
template <typename BasicJson>
std::string JsonString(const BasicJson& object, std::string_view key,
                       std::string_view fallback = {}) {
  const BasicJson* member = JsonMember(object, key);
  if (member == nullptr || !member->is_string()) return std::string(fallback);
  return member->template get_ref<const std::string&>();
}

// The member `key` of `object` when it is a boolean, else `fallback`.
template <typename BasicJson>
bool JsonBool(const BasicJson& object, std::string_view key, bool fallback) {
  const BasicJson* member = JsonMember(object, key);
  if (member == nullptr || !member->is_boolean()) return fallback;
  return member->template get<bool>();
}

// The member `key` of `object` when it is an array, else an empty array.
template <typename BasicJson>
const BasicJson& JsonArray(const BasicJson& object, std::string_view key) {
  static const BasicJson kEmpty = BasicJson::array();
  const BasicJson* member = JsonMember(object, key);
  return member != nullptr && member->is_array() ? *member : kEmpty;
}

// The member `key` of `object` when it is an object, else an empty object.
template <typename BasicJson>
const BasicJson& JsonObject(const BasicJson& object, std::string_view key) {
  static const BasicJson kEmpty = BasicJson::object();
  const BasicJson* member = JsonMember(object, key);
  return member != nullptr && member->is_object() ? *member : kEmpty;
}

}  // namespace postline
