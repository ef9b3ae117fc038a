// The in-memory backend: every queue of one service lives in one map guarded
// by one mutex; long polls sleep on the service's ChangeNotifier. Semantics
// and validation are the sqlite backend's (shared through postline/queue_backend.h).
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "postline/queue.h"
#include "postline/queue_backend.h"

namespace postline {
namespace queue_backend {
namespace {

struct StoredMessage {
  std::int64_t seq = 0;
  std::string id;
  std::string body;
  std::string md5;
  MessageAttributes attributes;
  std::int64_t sent_at = 0;     // epoch ms
  std::int64_t visible_at = 0;  // epoch ms
  int receive_count = 0;
  std::int64_t first_receive_at = 0;
  std::int64_t last_receive_at = 0;
  std::string token;  // of the latest receipt handle; empty before the first receive
  std::string dead_letter_source;
};

struct QueueData {
  std::string name;
  QueueAttributes attributes;
  std::map<std::int64_t, StoredMessage> messages;  // by seq
  std::unordered_map<std::string, std::int64_t> seq_by_id;
  std::unordered_map<std::string, std::int64_t> deleted_handles;  // handle → deleted at (ms)

  void Erase(std::map<std::int64_t, StoredMessage>::iterator it) {
    seq_by_id.erase(it->second.id);
    messages.erase(it);
  }
  void Insert(StoredMessage message) {
    seq_by_id[message.id] = message.seq;
    messages.emplace(message.seq, std::move(message));
  }
  void DropExpired(std::int64_t now) {
    const std::int64_t cutoff =
        now - static_cast<std::int64_t>(attributes.message_retention_seconds) * 1000;
    for (auto it = messages.begin(); it != messages.end();) {
      if (it->second.sent_at <= cutoff) {
        seq_by_id.erase(it->second.id);
        it = messages.erase(it);
      } else {
        ++it;
      }
    }
  }
};

struct ServiceState {
  explicit ServiceState(std::shared_ptr<Clock> c) : clock(std::move(c)) {}

  std::int64_t NowMs() const { return ToUnixMillis(clock->Now()); }

  const std::shared_ptr<Clock> clock;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<QueueData>, std::less<>> queues;  // guarded by mu
  std::int64_t next_seq = 1;                                              // guarded by mu
  ChangeNotifier notifier;
};

std::chrono::system_clock::time_point FromMillis(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

class MemoryQueue final : public Queue {
 public:
  MemoryQueue(std::shared_ptr<ServiceState> state, std::shared_ptr<QueueData> data)
      : state_(std::move(state)), data_(std::move(data)), name_(data_->name) {}

  const std::string& name() const override { return name_; }

  Result<SendMessageResult> SendMessage(const SendMessageRequest& request) override {
    Result<SendMessageResult> result;
    {
      std::lock_guard lock(state_->mu);
      result = SendLocked(request);
    }
    if (result) state_->notifier.Notify();
    return result;
  }

  Result<std::vector<BatchEntryResult<SendMessageResult>>> SendMessageBatch(
      const std::vector<SendMessageBatchEntry>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& entry : entries) ids.push_back(entry.id);
    if (auto r = ValidateBatchIds(ids); !r) return std::unexpected(r.error());
    std::vector<BatchEntryResult<SendMessageResult>> results;
    {
      std::lock_guard lock(state_->mu);
      for (const auto& entry : entries) results.push_back({entry.id, SendLocked(entry.request)});
    }
    state_->notifier.Notify();
    return results;
  }

  Result<std::vector<ReceivedMessage>> ReceiveMessage(
      const ReceiveMessageRequest& request) override {
    Result<ReceiveParameters> params = ResolveReceive(request, data_->attributes);
    if (!params) return std::unexpected(params.error());
    return LongPoll(*state_->clock, state_->notifier, params->wait_time_seconds, request.stop,
                    std::nullopt, [&] { return Attempt(*params); });
  }

  Result<void> DeleteMessage(std::string_view receipt_handle) override {
    Result<ParsedReceiptHandle> parsed = ParseReceiptHandle(receipt_handle);
    if (!parsed) return std::unexpected(parsed.error());
    std::lock_guard lock(state_->mu);
    const std::int64_t now = state_->NowMs();
    std::erase_if(data_->deleted_handles,
                  [&](const auto& entry) { return entry.second < now - kDeletedHandleTtlMillis; });
    auto found = data_->seq_by_id.find(parsed->message_id);
    if (found != data_->seq_by_id.end()) {
      auto it = data_->messages.find(found->second);
      if (it->second.token.empty() || it->second.token != parsed->token) {
        return ReceiptHandleIsInvalid("is stale: the message was received again since");
      }
      data_->Erase(it);
      data_->deleted_handles[std::string(receipt_handle)] = now;
      return {};
    }
    if (data_->deleted_handles.contains(std::string(receipt_handle))) return {};
    return ReceiptHandleIsInvalid(fmt::format("does not match a message in queue '{}'", name_));
  }

  Result<std::vector<BatchEntryResult<void>>> DeleteMessageBatch(
      const std::vector<std::pair<std::string, std::string>>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& entry : entries) ids.push_back(entry.first);
    if (auto r = ValidateBatchIds(ids); !r) return std::unexpected(r.error());
    std::vector<BatchEntryResult<void>> results;
    for (const auto& [id, handle] : entries) results.push_back({id, DeleteMessage(handle)});
    return results;
  }

  Result<void> ChangeMessageVisibility(std::string_view receipt_handle,
                                       int visibility_timeout_seconds) override {
    if (auto r = ValidateVisibilityTimeout(visibility_timeout_seconds, "VisibilityTimeout"); !r) {
      return r;
    }
    Result<ParsedReceiptHandle> parsed = ParseReceiptHandle(receipt_handle);
    if (!parsed) return std::unexpected(parsed.error());
    {
      std::lock_guard lock(state_->mu);
      const std::int64_t now = state_->NowMs();
      auto found = data_->seq_by_id.find(parsed->message_id);
      if (found == data_->seq_by_id.end()) {
        return ReceiptHandleIsInvalid(fmt::format("does not match a message in queue '{}'", name_));
      }
      StoredMessage& message = data_->messages.at(found->second);
      if (message.token.empty() || message.token != parsed->token) {
        return ReceiptHandleIsInvalid("is stale: the message was received again since");
      }
      if (message.visible_at <= now) return MessageNotInflight();
      const std::int64_t new_visible_at =
          now + static_cast<std::int64_t>(visibility_timeout_seconds) * 1000;
      if (new_visible_at > message.last_receive_at +
                               static_cast<std::int64_t>(kMaxVisibilityTimeoutSeconds) * 1000) {
        return InvalidParameter(
            fmt::format("VisibilityTimeout {} s would keep the message invisible beyond 12 hours "
                        "after it was received",
                        visibility_timeout_seconds),
            "VisibilityTimeout");
      }
      message.visible_at = new_visible_at;
    }
    state_->notifier.Notify();
    return {};
  }

  Result<std::vector<BatchEntryResult<void>>> ChangeMessageVisibilityBatch(
      const std::vector<VisibilityChange>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& entry : entries) ids.push_back(entry.id);
    if (auto r = ValidateBatchIds(ids); !r) return std::unexpected(r.error());
    std::vector<BatchEntryResult<void>> results;
    for (const auto& entry : entries) {
      results.push_back({entry.id, ChangeMessageVisibility(entry.receipt_handle,
                                                           entry.visibility_timeout_seconds)});
    }
    return results;
  }

  Result<QueueStats> GetQueueAttributes() override {
    std::lock_guard lock(state_->mu);
    const std::int64_t now = state_->NowMs();
    data_->DropExpired(now);
    QueueStats stats;
    stats.attributes = data_->attributes;
    std::optional<std::int64_t> oldest;
    for (const auto& [seq, message] : data_->messages) {
      if (message.visible_at <= now) {
        ++stats.approximate_number_of_messages;
      } else if (message.receive_count > 0) {
        ++stats.approximate_number_of_messages_not_visible;
      } else {
        ++stats.approximate_number_of_messages_delayed;
      }
      oldest = std::min(oldest.value_or(message.sent_at), message.sent_at);
    }
    if (oldest)
      stats.approximate_age_of_oldest_message_seconds =
          std::max<std::int64_t>(0, (now - *oldest) / 1000);
    return stats;
  }

  Result<void> PurgeQueue() override {
    std::lock_guard lock(state_->mu);
    data_->messages.clear();
    data_->seq_by_id.clear();
    return {};
  }

 private:
  // REQUIRES: state_->mu held.
  Result<SendMessageResult> SendLocked(const SendMessageRequest& request) {
    if (auto r = ValidateSendMessage(request, data_->attributes); !r) {
      return std::unexpected(r.error());
    }
    const std::int64_t now = state_->NowMs();
    StoredMessage message;
    message.seq = state_->next_seq++;
    message.id = NewMessageId();
    message.body = request.body;
    message.md5 = Md5Hex(request.body);
    message.attributes = request.attributes;
    message.sent_at = now;
    message.visible_at =
        now + static_cast<std::int64_t>(EffectiveDelaySeconds(request, data_->attributes)) * 1000;
    SendMessageResult result{message.id, message.md5};
    data_->Insert(std::move(message));
    return result;
  }

  Result<ReceiveAttempt> Attempt(const ReceiveParameters& params) {
    ReceiveAttempt out;
    bool moved = false;
    {
      std::lock_guard lock(state_->mu);
      const std::int64_t now = state_->NowMs();
      data_->DropExpired(now);
      std::vector<std::pair<std::int64_t, std::int64_t>> visible;  // (visible_at, seq)
      for (const auto& [seq, message] : data_->messages) {
        if (message.visible_at <= now) visible.emplace_back(message.visible_at, seq);
      }
      std::sort(visible.begin(), visible.end());
      std::shared_ptr<QueueData> dlq;
      const auto& policy = data_->attributes.redrive_policy;
      if (policy) {
        auto it = state_->queues.find(policy->dead_letter_queue);
        if (it != state_->queues.end()) dlq = it->second;
      }
      for (const auto& [visible_at, seq] : visible) {
        if (out.messages.size() >= static_cast<std::size_t>(params.max_number_of_messages)) break;
        auto it = data_->messages.find(seq);
        StoredMessage& message = it->second;
        if (dlq && message.receive_count >= policy->max_receive_count) {
          data_->seq_by_id.erase(message.id);
          StoredMessage dead = std::move(message);
          data_->messages.erase(it);
          dead.visible_at = now;
          dead.receive_count = 0;
          dead.first_receive_at = 0;
          dead.last_receive_at = 0;
          dead.token.clear();
          dead.dead_letter_source = name_;
          dlq->Insert(std::move(dead));
          moved = true;
          continue;
        }
        message.token = NewReceiptToken();
        message.visible_at =
            now + static_cast<std::int64_t>(params.visibility_timeout_seconds) * 1000;
        ++message.receive_count;
        if (message.first_receive_at == 0) message.first_receive_at = now;
        message.last_receive_at = now;
        ReceivedMessage received;
        received.message_id = message.id;
        received.receipt_handle = MakeReceiptHandle(message.token, message.id);
        received.body = message.body;
        received.md5_of_body = message.md5;
        received.attributes = message.attributes;
        received.approximate_receive_count = message.receive_count;
        received.sent_timestamp = FromMillis(message.sent_at);
        received.first_receive_timestamp = FromMillis(message.first_receive_at);
        received.dead_letter_source_queue = message.dead_letter_source;
        out.messages.push_back(std::move(received));
      }
      if (out.messages.empty()) {
        std::optional<std::int64_t> next;
        for (const auto& [seq, message] : data_->messages) {
          if (message.visible_at > now)
            next = std::min(next.value_or(message.visible_at), message.visible_at);
        }
        if (next) out.next_visible_in = std::chrono::milliseconds(*next - now);
      }
    }
    if (moved) state_->notifier.Notify();
    return out;
  }

  const std::shared_ptr<ServiceState> state_;
  const std::shared_ptr<QueueData> data_;
  const std::string name_;
};

class MemoryQueueService final : public QueueService {
 public:
  explicit MemoryQueueService(std::shared_ptr<Clock> clock)
      : state_(std::make_shared<ServiceState>(std::move(clock))) {}

  Result<std::shared_ptr<Queue>> CreateQueue(std::string_view name,
                                             const QueueAttributes& attributes) override {
    if (auto r = ValidateQueueName(name); !r) return std::unexpected(r.error());
    if (auto r = ValidateQueueAttributes(name, attributes); !r) return std::unexpected(r.error());
    std::lock_guard lock(state_->mu);
    if (auto it = state_->queues.find(name); it != state_->queues.end()) {
      if (!SameAttributes(it->second->attributes, attributes)) {
        return InvalidInput(
            "QueueAlreadyExists",
            fmt::format("queue '{}' already exists with different attributes", name), "QueueName");
      }
      return std::make_shared<MemoryQueue>(state_, it->second);
    }
    if (attributes.redrive_policy &&
        !state_->queues.contains(attributes.redrive_policy->dead_letter_queue)) {
      return QueueDoesNotExist(attributes.redrive_policy->dead_letter_queue);
    }
    auto data = std::make_shared<QueueData>();
    data->name = std::string(name);
    data->attributes = attributes;
    state_->queues.emplace(data->name, data);
    return std::make_shared<MemoryQueue>(state_, data);
  }

  Result<void> SetQueueAttributes(std::string_view name,
                                  const QueueAttributes& attributes) override {
    if (auto r = ValidateQueueAttributes(name, attributes); !r) return std::unexpected(r.error());
    std::lock_guard lock(state_->mu);
    auto it = state_->queues.find(name);
    if (it == state_->queues.end()) return QueueDoesNotExist(name);
    if (attributes.redrive_policy &&
        !state_->queues.contains(attributes.redrive_policy->dead_letter_queue)) {
      return QueueDoesNotExist(attributes.redrive_policy->dead_letter_queue);
    }
    it->second->attributes = attributes;
    return {};
  }

  Result<std::shared_ptr<Queue>> GetQueue(std::string_view name) override {
    std::lock_guard lock(state_->mu);
    auto it = state_->queues.find(name);
    if (it == state_->queues.end()) return QueueDoesNotExist(name);
    return std::make_shared<MemoryQueue>(state_, it->second);
  }

  Result<std::vector<std::string>> ListQueues() override {
    std::lock_guard lock(state_->mu);
    std::vector<std::string> names;
    for (const auto& [name, data] : state_->queues) names.push_back(name);
    return names;
  }

 private:
  const std::shared_ptr<ServiceState> state_;
};

}  // namespace
}  // namespace queue_backend

std::shared_ptr<QueueService> NewMemoryQueueService(std::shared_ptr<Clock> clock) {
  return std::make_shared<queue_backend::MemoryQueueService>(std::move(clock));
}

}  // namespace postline
