// Reading and redriving dead letters (`postline dlq`).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "postline/json.h"
#include "postline/service.h"

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
  // Any body, whatever is inside: a body that is no JSON (or too deep, or
  // with numbers beyond double range) is described from its attributes only.
  auto parsed = ParseJson(m.body, {.document = "the dead letter's body"});
  const nlohmann::json doc = parsed ? std::move(*parsed) : nlohmann::json();
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

namespace postline {

Result<std::vector<ReceivedMessage>> ReceiveAllVisible(Queue& queue,
                                                       int visibility_timeout_seconds,
                                                       std::size_t limit, bool* truncated) {
  std::vector<ReceivedMessage> got;
  std::set<std::string> seen;
  if (truncated != nullptr) *truncated = false;
  while (got.size() < limit) {
    ReceiveMessageRequest request;
    request.max_number_of_messages =
        static_cast<int>(std::min<std::size_t>(kMaxBatchEntries, limit - got.size()));
    request.visibility_timeout_seconds = visibility_timeout_seconds;
    request.wait_time_seconds = 0;
    auto batch = queue.ReceiveMessage(request);
    if (!batch) {
      ReleaseAll(queue, got);
      return std::unexpected(batch.error());
    }
    if (batch->empty()) return got;
    bool repeated = false;
    for (auto& m : *batch) {
      if (!seen.insert(m.message_id).second) {
        repeated = true;
        continue;
      }
      got.push_back(std::move(m));
    }
    if (repeated) return got;
  }
  if (truncated != nullptr) {
    ReceiveMessageRequest probe;
    probe.max_number_of_messages = 1;
    probe.visibility_timeout_seconds = 0;
    probe.wait_time_seconds = 0;
    if (auto more = queue.ReceiveMessage(probe); more && !more->empty()) *truncated = true;
  }
  return got;
}

void ReleaseAll(Queue& queue, const std::vector<ReceivedMessage>& messages) {
  for (std::size_t i = 0; i < messages.size(); i += kMaxBatchEntries) {
    std::vector<Queue::VisibilityChange> batch;
    for (std::size_t j = i; j < std::min<std::size_t>(messages.size(), i + kMaxBatchEntries); ++j) {
      batch.push_back({fmt::format("m{}", j - i), messages[j].receipt_handle, 0});
    }
    (void)queue.ChangeMessageVisibilityBatch(batch);
  }
}

Result<RedriveOutcome> RedriveFromDeadLetterQueue(const QueuePair& queues, Queue& dlq,
                                                  const RedriveSelection& selection,
                                                  StatusObserver* observer) {
  // Hidden long enough for a paced redrive; the ones not moved are released.
  auto all = ReceiveAllVisible(dlq, 900);
  if (!all) return std::unexpected(all.error());
  const auto pace = selection.rate_per_second > 0
                        ? std::chrono::duration<double>(1.0 / selection.rate_per_second)
                        : std::chrono::duration<double>(0);
  auto next = std::chrono::steady_clock::now();
  RedriveOutcome outcome;
  std::vector<ReceivedMessage> keep;
  for (auto& m : *all) {
    const DeadLetterInfo d = DescribeDeadLetter(m);
    const bool selected =
        outcome.moved < selection.max &&
        (selection.reasons.empty() || std::find(selection.reasons.begin(),
                                                selection.reasons.end(),
                                                d.reason) != selection.reasons.end()) &&
        (selection.message_ids.empty() || selection.message_ids.contains(m.message_id));
    if (!selected) {
      keep.push_back(std::move(m));
      continue;
    }
    const std::string who = d.envelope_id.empty() ? d.message_id : d.envelope_id;
    std::shared_ptr<Queue> target;
    for (const auto& q : {queues.priority, queues.regular}) {
      if (q && q->name() == d.source_queue) target = q;
    }
    // A dead letter that names no source goes back to the lane whose DLQ
    // holds it.
    if (d.source_queue.empty()) {
      if (queues.priority_dlq.get() == &dlq) target = queues.priority;
      if (queues.regular_dlq.get() == &dlq) target = queues.regular;
    }
    if (!target) {
      outcome.errors.push_back(fmt::format("{}: source queue \"{}\" is not one of ours; left in {}",
                                           who, d.source_queue, dlq.name()));
      ++outcome.skipped;
      keep.push_back(std::move(m));
      continue;
    }
    if (pace.count() > 0) {
      std::this_thread::sleep_until(next);
      next = std::max(next, std::chrono::steady_clock::now()) +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(pace);
    }
    auto sent = target->SendMessage(RedriveRequest(m));
    if (!sent) {
      outcome.errors.push_back(fmt::format("{}: {}", who, sent.error().ToString()));
      keep.push_back(std::move(m));
      continue;
    }
    if (auto del = dlq.DeleteMessage(m.receipt_handle); !del) {
      outcome.errors.push_back(fmt::format("{}: redriven, but not deleted from {}: {}", who,
                                           dlq.name(), del.error().ToString()));
    }
    ++outcome.moved;
    if (observer != nullptr && !d.envelope_id.empty()) {
      StatusEvent event;
      event.state = StatusEvent::State::kQueued;
      event.envelope_id = d.envelope_id;
      event.queue = target->name();
      event.detail = "redriven from " + dlq.name();
      observer->OnStatus(event);
    }
  }
  ReleaseAll(dlq, keep);
  return outcome;
}

}  // namespace postline
