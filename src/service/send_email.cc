#include "postline/service.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace postline {
namespace {

inline constexpr std::string_view kAttrEnvelopeId = "postline-envelope-id";
inline constexpr std::string_view kAttrPriority = "postline-priority";

// Prepares the SendMessage request of a validated e-mail (id assigned).
Result<SendMessageRequest> Prepare(Email& email, const Clock& clock) {
  if (email.id.empty()) email.id = NewEnvelopeId(clock);
  if (auto ok = ValidateEmail(email); !ok) return std::unexpected(ok.error());
  SendMessageRequest req;
  req.body = EncodeEmailJson(email);
  // The body's characters and size are checked once, against the queue
  // (SendMessage, or ValidateSendMessageRequest before a batch).
  if (email.send_at) {
    auto delay =
        std::chrono::duration_cast<std::chrono::seconds>(*email.send_at - clock.Now()).count();
    req.delay_seconds = static_cast<int>(std::clamp<long long>(delay, 0, kMaxDelaySeconds));
  }
  req.attributes[std::string(kAttrEnvelopeId)] = {"String", email.id};
  req.attributes[std::string(kAttrPriority)] = {"Number", std::to_string(email.priority)};
  return req;
}

// Prefixes a batch entry's error with its index: "[i] …", field "[i].field".
Error AtIndex(std::size_t i, Error e) {
  e.message = fmt::format("[{}] {}", i, e.message);
  e.field = fmt::format("[{}]{}{}", i, e.field.empty() ? "" : ".", e.field);
  return e;
}

void NotifyQueued(StatusObserver* observer, const Email& email, const std::string& queue) {
  if (!observer) return;
  StatusEvent ev;
  ev.state = StatusEvent::State::kQueued;
  ev.envelope_id = email.id;
  ev.queue = queue;
  ev.email = &email;
  observer->OnStatus(ev);
}

}  // namespace


Result<EnqueueResult> EnqueueEmail(const QueuePair& queues, Email email, const Clock& clock,
                                   StatusObserver* observer) {
  auto req = Prepare(email, clock);
  if (!req) return std::unexpected(req.error());
  auto queue = RouteByPriority(queues, email.priority);
  if (!queue) return std::unexpected(queue.error());
  // Recorded as queued before the send, so a fast worker's "sending" can
  // never be overwritten by a late "queued".
  NotifyQueued(observer, email, (*queue)->name());
  auto sent = (*queue)->SendMessage(*req);
  if (!sent) return std::unexpected(sent.error());
  return EnqueueResult{email.id, (*queue)->name(), sent->message_id};
}

Result<std::vector<Result<EnqueueResult>>> EnqueueEmails(const QueuePair& queues,
                                                         std::vector<Email> emails,
                                                         const Clock& clock,
                                                         StatusObserver* observer) {
  std::vector<SendMessageRequest> requests;
  std::vector<std::shared_ptr<Queue>> routes;
  requests.reserve(emails.size());
  for (std::size_t i = 0; i < emails.size(); ++i) {
    auto req = Prepare(emails[i], clock);
    if (!req) return std::unexpected(AtIndex(i, req.error()));
    auto queue = RouteByPriority(queues, emails[i].priority);
    if (!queue) return std::unexpected(queue.error());
    requests.push_back(std::move(*req));
    routes.push_back(*queue);
  }
  // Every entry must also pass the queue's own checks (size above all), so
  // that a refusal can't leave other entries queued.
  std::map<Queue*, QueueAttributes> limits;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    Queue* q = routes[i].get();
    if (!limits.contains(q)) {
      auto configuration = q->GetQueueConfiguration();
      if (!configuration) return std::unexpected(configuration.error());
      limits[q] = *configuration;
    }
    if (auto ok = ValidateSendMessageRequest(requests[i], limits[q]); !ok) {
      return std::unexpected(AtIndex(i, ok.error()));
    }
  }
  std::vector<Result<EnqueueResult>> results(
      emails.size(), std::unexpected(Error{ErrorKind::kInternal, "InternalError", "not sent", ""}));
  std::map<Queue*, std::vector<std::size_t>> by_queue;
  for (std::size_t i = 0; i < emails.size(); ++i) by_queue[routes[i].get()].push_back(i);
  for (auto& [queue, indices] : by_queue) {
    std::vector<SendMessageRequest> batch;
    batch.reserve(indices.size());
    for (const std::size_t i : indices) {
      NotifyQueued(observer, emails[i], queue->name());
      batch.push_back(std::move(requests[i]));
    }
    // One call per queue: one transaction on sqlite, batches of 10 on SQS.
    auto sent = queue->SendMessages(batch);
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const std::size_t i = indices[k];
      if (!sent) {
        results[i] = std::unexpected(sent.error());
      } else if ((*sent)[k]) {
        results[i] = EnqueueResult{emails[i].id, queue->name(), (*sent)[k]->message_id};
      } else {
        results[i] = std::unexpected((*sent)[k].error());
      }
    }
  }
  return results;
}

}  // namespace postline
