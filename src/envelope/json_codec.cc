// JSON v1 codec of the envelope (docs/envelope.schema.json, docs/envelope.md).
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>

#include "address_internal.h"
#include "postline/envelope.h"
#include "postline/json.h"
#include "text.h"
#include "validate_internal.h"

namespace postline {
namespace {

using Json = nlohmann::ordered_json;
using envelope_internal::Quoted;

std::string_view TypeName(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a number";
    default:
      return "an unsupported value";
  }
}

std::unexpected<Error> WrongType(std::string_view field, const Json& value,
                                 std::string_view allowed) {
  return InvalidInput("invalid_type",
                      fmt::format("{} is {}; allowed: {}", field, TypeName(value), allowed),
                      std::string(field));
}

std::unexpected<Error> UnknownField(std::string_view field, std::string_view allowed) {
  return InvalidInput("unknown_field",
                      fmt::format("{} is not a known field; allowed: {}", field, allowed),
                      std::string(field));
}

Result<std::string> GetString(const Json& value, std::string_view field) {
  if (!value.is_string()) return WrongType(field, value, "a string");
  return value.get<std::string>();
}

constexpr std::string_view kAddressForms =
    "\"Name <local@domain>\" or {\"name\": \"…\", \"email\": \"local@domain\"}";

Result<Address> DecodeAddress(const Json& value, std::string_view field) {
  if (value.is_string()) return ParseAddress(value.get_ref<const std::string&>(), field);
  if (!value.is_object()) return WrongType(field, value, kAddressForms);
  Address address;
  bool has_email = false;
  for (const auto& [key, item] : value.items()) {
    const std::string item_field = fmt::format("{}.{}", field, key);
    if (key == "name") {
      auto name = GetString(item, item_field);
      if (!name) return std::unexpected(name.error());
      address.name = std::move(*name);
    } else if (key == "email") {
      auto email = GetString(item, item_field);
      if (!email) return std::unexpected(email.error());
      address.email = std::move(*email);
      has_email = true;
    } else {
      return UnknownField(item_field, "\"name\", \"email\"");
    }
  }
  if (!has_email) {
    const std::string email_field = fmt::format("{}.email", field);
    return InvalidInput(
        "missing_field",
        fmt::format("{} is required; allowed: an address \"local@domain\"", email_field),
        email_field);
  }
  if (auto ok = envelope_internal::ValidateAddress(address, field); !ok) {
    return std::unexpected(ok.error());
  }
  return address;
}

Result<std::vector<Address>> DecodeAddressList(const Json& value, std::string_view field) {
  if (value.is_string()) return ParseAddressList(value.get_ref<const std::string&>(), field);
  if (!value.is_array()) {
    return WrongType(field, value,
                     "an address-list string or an array of addresses, each "
                     "\"Name <local@domain>\" or {\"name\", \"email\"}");
  }
  std::vector<Address> out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    auto address = DecodeAddress(value[i], fmt::format("{}[{}]", field, i));
    if (!address) return std::unexpected(address.error());
    out.push_back(std::move(*address));
  }
  return out;
}

Result<std::string> ReadAttachmentFile(const std::string& path, std::string_view base_dir,
                                       std::string_view field, const EnvelopeLimits& limits) {
  std::filesystem::path full(path);
  if (full.is_relative()) full = std::filesystem::path(base_dir) / full;
  std::error_code ec;
  const bool regular = std::filesystem::is_regular_file(full, ec);
  if (!regular) {
    const std::string why = ec ? ec.message() : "not a regular file or does not exist";
    return InvalidInput("unreadable_attachment",
                        fmt::format("{} {} cannot be read ({}); allowed: a readable file, "
                                    "relative to {}",
                                    field, Quoted(full.string(), 200), why, Quoted(base_dir, 200)),
                        std::string(field));
  }
  const std::uintmax_t size = std::filesystem::file_size(full, ec);
  if (!ec && size > limits.max_total_bytes) {
    return InvalidInput("too_large",
                        fmt::format("{} is {} bytes; allowed: at most {} bytes", field, size,
                                    limits.max_total_bytes),
                        std::string(field));
  }
  std::ifstream in(full, std::ios::binary);
  std::string content;
  if (in) content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in.is_open() || in.bad()) {
    return InvalidInput(
        "unreadable_attachment",
        fmt::format("{} {} could not be read completely", field, Quoted(full.string(), 200)),
        std::string(field));
  }
  return content;
}

Result<Attachment> DecodeAttachment(const Json& value, std::string_view field,
                                    std::string_view base_dir, const EnvelopeLimits& limits) {
  if (!value.is_object()) {
    return WrongType(field, value,
                     "an object with \"filename\", \"content_type\" and one of "
                     "\"content_base64\" or \"path\"");
  }
  Attachment attachment;
  bool has_filename = false;
  bool has_type = false;
  const Json* base64 = nullptr;
  const Json* path = nullptr;
  for (const auto& [key, item] : value.items()) {
    const std::string item_field = fmt::format("{}.{}", field, key);
    if (key == "filename") {
      auto text = GetString(item, item_field);
      if (!text) return std::unexpected(text.error());
      attachment.filename = std::move(*text);
      has_filename = true;
    } else if (key == "content_type") {
      auto text = GetString(item, item_field);
      if (!text) return std::unexpected(text.error());
      attachment.content_type = std::move(*text);
      has_type = true;
    } else if (key == "content_base64") {
      if (!item.is_string()) return WrongType(item_field, item, "a base64 string");
      base64 = &item;
    } else if (key == "path") {
      if (!item.is_string()) return WrongType(item_field, item, "a file path string");
      path = &item;
    } else {
      return UnknownField(item_field,
                          "\"filename\", \"content_type\", \"content_base64\", \"path\"");
    }
  }
  for (const auto& [present, name] :
       {std::pair{has_filename, "filename"}, std::pair{has_type, "content_type"}}) {
    if (!present) {
      const std::string missing = fmt::format("{}.{}", field, name);
      return InvalidInput("missing_field", fmt::format("{} is required", missing), missing);
    }
  }
  if ((base64 == nullptr) == (path == nullptr)) {
    return InvalidInput("invalid_attachment",
                        fmt::format("{} has {} of content_base64 and path; allowed: exactly one",
                                    field, base64 == nullptr ? "neither" : "both"),
                        std::string(field));
  }
  if (base64 != nullptr) {
    const std::string item_field = fmt::format("{}.content_base64", field);
    // Refuse oversized content before decoding it.
    const std::size_t decoded_size = base64->get_ref<const std::string&>().size() / 4 * 3;
    if (decoded_size > limits.max_total_bytes + 2) {
      return InvalidInput("too_large",
                          fmt::format("{} holds about {} bytes; allowed: at most {} bytes",
                                      item_field, decoded_size, limits.max_total_bytes),
                          item_field);
    }
    auto content = envelope_internal::Base64Decode(base64->get_ref<const std::string&>());
    if (!content) {
      return InvalidInput("invalid_base64",
                          fmt::format("{} is not valid base64; allowed: RFC 4648 base64 with "
                                      "padding",
                                      item_field),
                          item_field);
    }
    attachment.content = std::move(*content);
  } else {
    const std::string item_field = fmt::format("{}.path", field);
    if (base_dir.empty()) {
      // Queued and HTTP envelopes: the reader must not open files a producer names.
      return InvalidInput("attachment_path_refused",
                          fmt::format("{}: this envelope must carry content_base64; attachments "
                                      "by path are read only by the command line",
                                      item_field),
                          item_field);
    }
    auto content =
        ReadAttachmentFile(path->get_ref<const std::string&>(), base_dir, item_field, limits);
    if (!content) return std::unexpected(content.error());
    attachment.content = std::move(*content);
  }
  return attachment;
}

Result<std::vector<std::pair<std::string, std::string>>> DecodeHeaders(const Json& value) {
  std::vector<std::pair<std::string, std::string>> out;
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      auto text = GetString(item, fmt::format("headers.{}", key));
      if (!text) return std::unexpected(text.error());
      out.emplace_back(key, std::move(*text));
    }
    return out;
  }
  if (!value.is_array()) {
    return WrongType("headers", value,
                     "an object {\"Name\": \"value\"} or an array of [\"Name\", \"value\"] pairs");
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    const Json& pair = value[i];
    const std::string field = fmt::format("headers[{}]", i);
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      return InvalidInput("invalid_type",
                          fmt::format("{} is not a pair; allowed: [\"Name\", \"value\"] with two "
                                      "strings",
                                      field),
                          field);
    }
    out.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
  }
  return out;
}

std::unexpected<Error> BadTimestamp(std::string_view text) {
  return InvalidInput("invalid_send_at",
                      fmt::format("send_at {} is not a timestamp; allowed: RFC 3339 with offset, "
                                  "e.g. \"2026-12-01T09:00:00Z\" or \"2026-12-01T10:00:00+01:00\"",
                                  Quoted(text)),
                      "send_at");
}

// RFC 3339 §5.6 date-time; fractions beyond milliseconds are truncated.
Result<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text) {
  std::size_t pos = 0;
  auto digits = [&](std::size_t count, int& out) {
    if (pos + count > text.size()) return false;
    out = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += count;
    return true;
  };
  auto expect = [&](std::string_view chars) {
    if (pos < text.size() && chars.find(text[pos]) != std::string_view::npos) {
      ++pos;
      return true;
    }
    return false;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(4, year) || !expect("-") || !digits(2, month) || !expect("-") || !digits(2, day) ||
      !expect("Tt") || !digits(2, hour) || !expect(":") || !digits(2, minute) || !expect(":") ||
      !digits(2, second)) {
    return BadTimestamp(text);
  }
  long long millis = 0;
  if (expect(".")) {
    std::size_t count = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (count < 3) millis = millis * 10 + (text[pos] - '0');
      ++count;
      ++pos;
    }
    if (count == 0) return BadTimestamp(text);
    for (std::size_t i = count; i < 3; ++i) millis *= 10;
  }
  int offset_minutes = 0;
  if (expect("Zz")) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh = 0, om = 0;
    if (!digits(2, oh) || !expect(":") || !digits(2, om) || oh > 23 || om > 59) {
      return BadTimestamp(text);
    }
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return BadTimestamp(text);
  }
  if (pos != text.size()) return BadTimestamp(text);
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  // Second 60 (a leap second) is accepted and lands on the next second.
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) return BadTimestamp(text);
  // system_clock counts nanoseconds in 64 bits (years 1677–2262); keep well
  // inside that, so no date can wrap around into another century.
  if (year < 1970 || year > 2200) {
    return InvalidInput("invalid_send_at",
                        fmt::format("send_at {} is out of range; allowed: years 1970–2200",
                                    Quoted(text)),
                        "send_at");
  }
  using std::chrono::milliseconds;
  const auto local = std::chrono::sys_days{date} + std::chrono::hours{hour} +
                     std::chrono::minutes{minute} + std::chrono::seconds{second} +
                     milliseconds{millis};
  const auto utc = local - std::chrono::minutes{offset_minutes};
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(utc);
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t);
  const auto days = std::chrono::floor<std::chrono::days>(ms);
  const std::chrono::year_month_day date{days};
  const std::chrono::hh_mm_ss<std::chrono::milliseconds> time{ms - days};
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z",
                     static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                     static_cast<unsigned>(date.day()), time.hours().count(),
                     time.minutes().count(), time.seconds().count(), time.subseconds().count());
}

constexpr std::string_view kTopLevelFields =
    "v, id, from, to, cc, bcc, reply_to, subject, text, html, attachments, headers, priority, "
    "idempotency_key, send_at";

Json EncodeAddress(const Address& address) {
  Json out = Json::object();
  if (!address.name.empty()) out["name"] = address.name;
  out["email"] = address.email;
  return out;
}

}  // namespace

Result<Email> ParseEmailJson(std::string_view json, std::string_view base_dir,
                             const EnvelopeLimits& limits) {
  // Depth and number range are checked while parsing (postline/json.h).
  auto parsed = ParseOrderedJson(json, {.document = "the envelope"});
  if (!parsed) {
    Error e = parsed.error();
    if (e.code == "malformed_json") e.message += "; allowed: one JSON object (UTF-8)";
    return std::unexpected(std::move(e));
  }
  const Json& root = *parsed;
  if (!root.is_object()) return WrongType("(root)", root, "a JSON object");

  Email email;
  bool has_from = false;
  for (const auto& [key, value] : root.items()) {
    if (key == "v") {
      if (!value.is_number_integer() || value.get<long long>() != 1) {
        return InvalidInput(
            "unsupported_version",
            fmt::format("v is {}; allowed: 1",
                        Quoted(value.dump(-1, ' ', false, Json::error_handler_t::replace))),
            "v");
      }
    } else if (key == "id") {
      auto id = GetString(value, "id");
      if (!id) return std::unexpected(id.error());
      email.id = std::move(*id);
    } else if (key == "from") {
      auto from = DecodeAddress(value, "from");
      if (!from) return std::unexpected(from.error());
      email.from = std::move(*from);
      has_from = true;
    } else if (key == "to" || key == "cc" || key == "bcc" || key == "reply_to") {
      auto list = DecodeAddressList(value, key);
      if (!list) return std::unexpected(list.error());
      auto& target = key == "to"    ? email.to
                     : key == "cc"  ? email.cc
                     : key == "bcc" ? email.bcc
                                    : email.reply_to;
      target = std::move(*list);
    } else if (key == "subject" || key == "text" || key == "html" || key == "idempotency_key") {
      auto text = GetString(value, key);
      if (!text) return std::unexpected(text.error());
      auto& target = key == "subject" ? email.subject
                     : key == "text"  ? email.text
                     : key == "html"  ? email.html
                                      : email.idempotency_key;
      target = std::move(*text);
    } else if (key == "attachments") {
      if (!value.is_array()) return WrongType("attachments", value, "an array of objects");
      for (std::size_t i = 0; i < value.size(); ++i) {
        auto attachment =
            DecodeAttachment(value[i], fmt::format("attachments[{}]", i), base_dir, limits);
        if (!attachment) return std::unexpected(attachment.error());
        email.attachments.push_back(std::move(*attachment));
      }
    } else if (key == "headers") {
      auto headers = DecodeHeaders(value);
      if (!headers) return std::unexpected(headers.error());
      email.headers = std::move(*headers);
    } else if (key == "priority") {
      if (!value.is_number_integer()) {
        return InvalidInput("invalid_priority",
                            fmt::format("priority is {}; allowed: integer {}–{}", TypeName(value),
                                        kMinPriority, kMaxPriority),
                            "priority");
      }
      const long long priority = value.is_number_unsigned()
                                     ? static_cast<long long>(std::min<std::uint64_t>(
                                           value.get<std::uint64_t>(), 1'000'000))
                                     : value.get<long long>();
      if (priority < kMinPriority || priority > kMaxPriority) {
        return InvalidInput("invalid_priority",
                            fmt::format("priority {} is out of range; allowed: integer {}–{}",
                                        priority, kMinPriority, kMaxPriority),
                            "priority");
      }
      email.priority = static_cast<int>(priority);
    } else if (key == "send_at") {
      auto text = GetString(value, "send_at");
      if (!text) return std::unexpected(text.error());
      auto when = ParseRfc3339(*text);
      if (!when) return std::unexpected(when.error());
      email.send_at = *when;
    } else {
      return UnknownField(key, kTopLevelFields);
    }
  }
  if (!has_from) {
    return InvalidInput("missing_field",
                        "from is required; allowed: an address \"Name <local@domain>\"", "from");
  }
  if (auto ok = ValidateEmail(email, limits); !ok) return std::unexpected(ok.error());
  return email;
}

std::string EncodeEmailJson(const Email& email) {
  Json out = Json::object();
  out["v"] = 1;
  if (!email.id.empty()) out["id"] = email.id;
  out["from"] = EncodeAddress(email.from);
  for (const auto& [list, name] :
       {std::pair{&email.to, "to"}, std::pair{&email.cc, "cc"}, std::pair{&email.bcc, "bcc"},
        std::pair{&email.reply_to, "reply_to"}}) {
    if (list->empty() && std::string_view(name) != "to") continue;
    Json array = Json::array();
    for (const Address& address : *list) array.push_back(EncodeAddress(address));
    out[name] = std::move(array);
  }
  out["subject"] = email.subject;
  if (!email.text.empty()) out["text"] = email.text;
  if (!email.html.empty()) out["html"] = email.html;
  if (!email.attachments.empty()) {
    Json array = Json::array();
    for (const Attachment& attachment : email.attachments) {
      Json item = Json::object();
      item["filename"] = attachment.filename;
      item["content_type"] = attachment.content_type;
      item["content_base64"] = envelope_internal::Base64Encode(attachment.content);
      array.push_back(std::move(item));
    }
    out["attachments"] = std::move(array);
  }
  if (!email.headers.empty()) {
    // Pairs keep order and allow a field name to repeat.
    Json array = Json::array();
    for (const auto& [name, value] : email.headers) array.push_back(Json::array({name, value}));
    out["headers"] = std::move(array);
  }
  out["priority"] = email.priority;
  if (!email.idempotency_key.empty()) out["idempotency_key"] = email.idempotency_key;
  if (email.send_at) out["send_at"] = FormatRfc3339(*email.send_at);
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace postline
