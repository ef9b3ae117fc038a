// Reading and redriving dead letters (`postline dlq`).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "postline/worker.h"

namespace postline {
namespace {

std::string Attribute(const ReceivedMessage& m, std::string_view name) {
  auto it = m.attributes.find(std::string(name));
  return it == m.attributes.end() ? std::string() : it->second.value;
}

int AttributeInt(const ReceivedMessage& m, std::string_view name) {
  std::string v = Attribute(m, name);
  int out = 0;
  std::from_chars(v.data(), v.data() + v.size(), out);
  return out;
}

// Addresses of a "to"/"cc"/"bcc" value in an envelope: a string, an object
// {"name", "email"}, or an array of either.
void CollectAddresses(const nlohmann::json& v, std::vector<std::string>& out) {
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_object() && v.contains("email") && v["email"].is_string()) {
    out.push_back(v["email"].get<std::string>());
  } else if (v.is_array()) {
    for (const auto& item : v) CollectAddresses(item, out);
  }
}

bool IsDeadLetterAttribute(std::string_view name) {
  for (auto a : {kAttrReason, kAttrReplyCode, kAttrReply, kAttrSourceQueue, kAttrEnvelopeId,
                 kAttrAttempts}) {
    if (name == a) return true;
  }
  return false;
}

}  // namespace

DeadLetterInfo DescribeDeadLetter(const ReceivedMessage& m) {
  DeadLetterInfo info;
  info.message_id = m.message_id;
  info.sent_timestamp = m.sent_timestamp;
  info.reason = Attribute(m, kAttrReason);
  if (info.reason.empty()) info.reason = "max_receives";  // moved by the RedrivePolicy
  info.reply_code = AttributeInt(m, kAttrReplyCode);
  info.reply = Attribute(m, kAttrReply);
  info.attempts = AttributeInt(m, kAttrAttempts);
  info.source_queue = Attribute(m, kAttrSourceQueue);
  if (info.source_queue.empty()) info.source_queue = m.dead_letter_source_queue;
  info.envelope_id = Attribute(m, kAttrEnvelopeId);
  if (info.envelope_id == "-") info.envelope_id.clear();
  auto doc = nlohmann::json::parse(m.body, nullptr, false);
  if (doc.is_object()) {
    if (info.envelope_id.empty() && doc.contains("id") && doc["id"].is_string()) {
      info.envelope_id = doc["id"].get<std::string>();
    }
    if (doc.contains("subject") && doc["subject"].is_string()) {
      info.subject = doc["subject"].get<std::string>();
    }
    for (const char* field : {"to", "cc", "bcc"}) {
      if (doc.contains(field)) CollectAddresses(doc[field], info.recipients);
    }
  }
  return info;
}

SendMessageRequest RedriveRequest(const ReceivedMessage& m) {
  SendMessageRequest req;
  req.body = m.body;
  req.delay_seconds = 0;
  for (const auto& [name, value] : m.attributes) {
    if (!IsDeadLetterAttribute(name)) req.attributes[name] = value;
  }
  return req;
}

Result<std::vector<std::string>> ParseDeadLetterFilter(std::string_view filter) {
  std::vector<std::string> out;
  std::string allowed;
  for (auto r : kDeadLetterReasons)
    allowed += allowed.empty() ? std::string(r) : "|" + std::string(r);
  if (filter.empty()) {
    for (auto r : kDeadLetterReasons) out.emplace_back(r);
    return out;
  }
  std::string_view rest = filter;
  if (!rest.starts_with("reason=")) {
    return InvalidInput(
        "invalid_filter",
        fmt::format("--filter must be reason=R[,R…] with R one of {}, got \"{}\"", allowed, filter),
        "--filter");
  }
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.starts_with("reason=")) item.remove_prefix(7);
    bool known = std::find(std::begin(kDeadLetterReasons), std::end(kDeadLetterReasons), item) !=
                 std::end(kDeadLetterReasons);
    if (!known) {
      return InvalidInput(
          "invalid_filter",
          fmt::format("--filter reason \"{}\" is unknown; allowed: {}", item, allowed), "--filter");
    }
    if (std::find(out.begin(), out.end(), item) == out.end()) out.emplace_back(item);
  }
  return out;
}

}  // namespace postline
