// Reading, redriving and deleting dead letters through the Queue interface.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "dashboard/dashboard_internal.h"
#include "postline/envelope.h"
#include "postline/producer.h"
#include "postline/worker.h"

namespace postline::dashboard_internal {
namespace {

constexpr int kHoldSeconds = 30;  // how long a read dead letter stays hidden at most

DeadLetter Describe(const ReceivedMessage& m, const std::string& dlq) {
  DeadLetter d;
  d.message = m;
  d.dlq = dlq;
  d.info = DescribeDeadLetter(m);
  auto email = ParseEmailJson(m.body, "");
  if (email) {
    if (d.info.envelope_id.empty()) d.info.envelope_id = email->id;
    d.email = std::move(*email);
  } else {
    d.parse_error = email.error().ToString();
  }
  return d;
}
// Makes `messages` visible again at once (best effort, in batches of 10).
void Release(Queue& queue, const std::vector<ReceivedMessage>& messages) {
  for (std::size_t i = 0; i < messages.size(); i += kMaxBatchEntries) {
    std::vector<Queue::VisibilityChange> batch;
    for (std::size_t j = i; j < std::min(messages.size(), i + kMaxBatchEntries); ++j) {
      batch.push_back({fmt::format("m{}", j), messages[j].receipt_handle, 0});
    }
    (void)queue.ChangeMessageVisibilityBatch(batch);
  }
}

// Receives up to `limit` messages, each hidden for kHoldSeconds.
Result<std::vector<ReceivedMessage>> ReceiveAll(Queue& queue, int limit, bool* truncated) {
  std::vector<ReceivedMessage> got;
  *truncated = false;
  while (static_cast<int>(got.size()) < limit) {
    ReceiveMessageRequest request;
    request.max_number_of_messages =
        std::min(kMaxBatchEntries, limit - static_cast<int>(got.size()));
    request.visibility_timeout_seconds = kHoldSeconds;
    request.wait_time_seconds = 0;
    auto batch = queue.ReceiveMessage(request);
    if (!batch) {
      Release(queue, got);
      return std::unexpected(batch.error());
    }
    if (batch->empty()) return got;
    for (auto& m : *batch) got.push_back(std::move(m));
  }
  // Anything left over?
  ReceiveMessageRequest probe;
  probe.max_number_of_messages = 1;
  probe.visibility_timeout_seconds = 0;
  probe.wait_time_seconds = 0;
  if (auto more = queue.ReceiveMessage(probe); more && !more->empty()) *truncated = true;
  return got;
}

bool Selected(const ReceivedMessage& m, const std::set<std::string>& ids, bool all) {
  return all || ids.contains(m.message_id);
}

std::shared_ptr<Queue> SourceQueue(const QueuePair& queues, std::string_view name) {
  if (queues.priority && queues.priority->name() == name) return queues.priority;
  if (queues.regular && queues.regular->name() == name) return queues.regular;
  return nullptr;
}

}  // namespace

Result<DeadLetterPage> PeekDeadLetters(Queue& dlq, int limit) {
  DeadLetterPage page;
  auto got = ReceiveAll(dlq, limit, &page.truncated);
  if (!got) return std::unexpected(got.error());
  Release(dlq, *got);
  std::sort(got->begin(), got->end(), [](const ReceivedMessage& a, const ReceivedMessage& b) {
    return a.sent_timestamp < b.sent_timestamp;
  });
  for (const auto& m : *got) page.letters.push_back(Describe(m, dlq.name()));
  return page;
}

Result<DeadLetterActionResult> RedriveSelected(const QueuePair& queues, Queue& dlq,
                                               const std::set<std::string>& ids, bool all,
                                               int limit, StatusObserver* observer) {
  bool truncated = false;
  auto got = ReceiveAll(dlq, limit, &truncated);
  if (!got) return std::unexpected(got.error());
  DeadLetterActionResult result;
  std::vector<ReceivedMessage> keep;
  for (const auto& m : *got) {
    if (!Selected(m, ids, all)) {
      keep.push_back(m);
      continue;
    }
    DeadLetter d = Describe(m, dlq.name());
    auto target = SourceQueue(queues, d.info.source_queue);
    if (!target) {
      result.errors.push_back(
          fmt::format("{}: source queue \"{}\" is not one of this pipeline's "
                      "queues",
                      m.message_id, d.info.source_queue));
      keep.push_back(m);
      continue;
    }
    auto sent = target->SendMessage(RedriveRequest(m));
    if (!sent) {
      result.errors.push_back(fmt::format("{}: {}", m.message_id, sent.error().ToString()));
      keep.push_back(m);
      continue;
    }
    if (auto deleted = dlq.DeleteMessage(m.receipt_handle); !deleted) {
      // Sent twice at worst; the sent log suppresses the duplicate delivery.
      result.errors.push_back(fmt::format("{}: redriven, but not deleted from {}: {}", m.message_id,
                                          dlq.name(), deleted.error().ToString()));
    }
    ++result.done;
    if (observer && !d.info.envelope_id.empty()) {
      StatusEvent event;
      event.state = StatusEvent::State::kQueued;
      event.envelope_id = d.info.envelope_id;
      event.queue = target->name();
      event.detail = "redriven from " + dlq.name();
      if (d.email) event.email = &*d.email;
      observer->OnStatus(event);
    }
  }
  Release(dlq, keep);
  return result;
}

Result<DeadLetterActionResult> DeleteSelected(Queue& dlq, const std::set<std::string>& ids,
                                              bool all, int limit) {
  bool truncated = false;
  auto got = ReceiveAll(dlq, limit, &truncated);
  if (!got) return std::unexpected(got.error());
  DeadLetterActionResult result;
  std::vector<ReceivedMessage> keep;
  for (const auto& m : *got) {
    if (!Selected(m, ids, all)) {
      keep.push_back(m);
      continue;
    }
    if (auto deleted = dlq.DeleteMessage(m.receipt_handle); !deleted) {
      result.errors.push_back(fmt::format("{}: {}", m.message_id, deleted.error().ToString()));
      continue;
    }
    ++result.done;
  }
  Release(dlq, keep);
  return result;
}

}  // namespace postline::dashboard_internal
