// Backend-independent parts of postline/queue.h: guide queues, DLQ naming and
// the priority router.
#include "postline/queue.h"

#include "postline/queue_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace postline {

std::string DeadLetterQueueName(std::string_view queue_name) {
  return fmt::format("{}-dlq", queue_name);
}

QueueAttributes GuideQueueAttributes() {
  QueueAttributes attributes;
  attributes.visibility_timeout_seconds = 300;
  attributes.message_retention_seconds = 345600;
  attributes.delay_seconds = 0;
  attributes.maximum_message_size = 262144;
  attributes.receive_message_wait_time_seconds = 0;
  return attributes;
}

namespace {

// CreateQueue, or SetQueueAttributes when the queue exists with others.
Result<std::shared_ptr<Queue>> CreateOrUpdate(QueueService& service, std::string_view name,
                                              const QueueAttributes& attributes) {
  Result<std::shared_ptr<Queue>> created = service.CreateQueue(name, attributes);
  if (created || created.error().code != "QueueAlreadyExists") return created;
  if (auto set = service.SetQueueAttributes(name, attributes); !set) {
    return std::unexpected(set.error());
  }
  return service.GetQueue(name);
}

}  // namespace

Result<QueuePair> EnsureGuideQueues(QueueService& service, const QueueAttributes& attributes,
                                    int max_receive_count) {
  // Dead letters must outlive the source queue's retention (the guide's 4
  // days), so the DLQs keep messages for SQS's maximum of 14 days.
  QueueAttributes dlq_attributes = attributes;
  dlq_attributes.message_retention_seconds = kMaxRetentionSeconds;
  dlq_attributes.redrive_policy.reset();
  // A dead letter is the source message plus the reason attributes the worker
  // adds, so it may be larger than the source queue allows.
  dlq_attributes.maximum_message_size = kMaxMaximumMessageSize;

  QueuePair pair;
  // Both DLQs first: a RedrivePolicy may only name an existing queue.
  for (auto [name, dlq] : {std::pair{kPriorityQueueName, &pair.priority_dlq},
                           std::pair{kRegularQueueName, &pair.regular_dlq}}) {
    Result<std::shared_ptr<Queue>> created =
        CreateOrUpdate(service, DeadLetterQueueName(name), dlq_attributes);
    if (!created) return std::unexpected(created.error());
    *dlq = std::move(*created);
  }
  for (auto [name, queue] : {std::pair{kPriorityQueueName, &pair.priority},
                             std::pair{kRegularQueueName, &pair.regular}}) {
    QueueAttributes source = attributes;
    source.redrive_policy = RedrivePolicy{DeadLetterQueueName(name), max_receive_count};
    Result<std::shared_ptr<Queue>> created = CreateOrUpdate(service, name, source);
    if (!created) return std::unexpected(created.error());
    *queue = std::move(*created);
  }
  return pair;
}

Result<QueueAttributes> Queue::GetQueueConfiguration() {
  Result<QueueStats> stats = GetQueueAttributes();
  if (!stats) return std::unexpected(stats.error());
  return stats->attributes;
}

Result<std::vector<Result<SendMessageResult>>> Queue::SendMessages(
    std::span<const SendMessageRequest> requests) {
  std::vector<Result<SendMessageResult>> results;
  results.reserve(requests.size());
  for (std::size_t start = 0; start < requests.size(); start += kMaxBatchEntries) {
    const std::size_t end = std::min(requests.size(), start + kMaxBatchEntries);
    std::vector<SendMessageBatchEntry> entries;
    for (std::size_t i = start; i < end; ++i) {
      entries.push_back({fmt::format("m{}", i - start), requests[i]});
    }
    auto sent = SendMessageBatch(entries);
    std::vector<Result<SendMessageResult>> chunk(
        end - start,
        std::unexpected(Error{ErrorKind::kInternal, "InternalError", "no result for entry", ""}));
    if (!sent) {
      for (auto& r : chunk) r = std::unexpected(sent.error());
    } else {
      // Entries answer by their batch entry id ("m<k>").
      for (auto& entry : *sent) {
        const std::size_t k = std::stoul(entry.id.substr(1));
        if (k < chunk.size()) chunk[k] = std::move(entry.result);
      }
    }
    for (auto& r : chunk) results.push_back(std::move(r));
  }
  return results;
}

Result<void> ValidateSendMessageRequest(const SendMessageRequest& request,
                                        const QueueAttributes& attributes) {
  return queue_backend::ValidateSendMessage(request, attributes);
}

Result<std::shared_ptr<Queue>> RouteByPriority(const QueuePair& pair, int priority) {
  for (const Lane& lane : pair.Lanes()) {
    if (priority >= lane.min_priority && priority <= lane.max_priority) return lane.queue;
  }
  return InvalidInput("invalid_priority",
                      fmt::format("priority is {}; allowed are 1–10 (1–3 priority lane, 4–10 "
                                  "regular lane)",
                                  priority),
                      "priority");
}

std::optional<Lane> FindLane(const QueuePair& pair, std::string_view queue_name) {
  for (const Lane& lane : pair.Lanes()) {
    if ((lane.queue && lane.queue->name() == queue_name) ||
        (lane.dlq && lane.dlq->name() == queue_name)) {
      return lane;
    }
  }
  return std::nullopt;
}

}  // namespace postline
