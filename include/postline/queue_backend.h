// postline/queue_backend.h — what every queue backend (sqlite, memory, sqs,
// and decorators such as the offloading queue) is built from: SQS parameter
// validation, identifiers and receipt handles, the attribute codec and the
// long-poll wait. Only backends include it; users of queues include
// postline/queue.h. Every backend validates through these functions, so all of
// them refuse the same inputs with the same errors.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"
#include "postline/queue.h"

namespace postline::queue_backend {

// How long a deleted message's last receipt handle still deletes
// successfully (SQS: DeleteMessage is idempotent for the latest handle). A
// handle is only usable within the 12-hour visibility ceiling of the receive
// that issued it, so tombstones older than that are dropped.
inline constexpr std::int64_t kDeletedHandleTtlMillis =
    static_cast<std::int64_t>(kMaxVisibilityTimeoutSeconds) * 1000;

// --- errors -----------------------------------------------------------------

std::unexpected<Error> InvalidParameter(std::string message, std::string field);
std::unexpected<Error> QueueDoesNotExist(std::string_view name);
std::unexpected<Error> ReceiptHandleIsInvalid(std::string_view why);
std::unexpected<Error> MessageNotInflight();
std::unexpected<Error> InternalError(std::string message);

// --- validation (SQS API Reference parameter constraints) --------------------

// QueueName: 1–80 characters of [A-Za-z0-9_-] (standard queues; FIFO names
// ending in ".fifo" are refused). InvalidParameterValue otherwise.
Result<void> ValidateQueueName(std::string_view name);

// Every attribute inside its SQS range, the RedrivePolicy's maxReceiveCount
// in 1–1000 and its DLQ a valid name other than `queue_name`.
// InvalidParameterValue naming the attribute otherwise. Whether the DLQ
// exists is the backend's check.
Result<void> ValidateQueueAttributes(std::string_view queue_name,
                                     const QueueAttributes& attributes);

bool SameAttributes(const QueueAttributes& a, const QueueAttributes& b);

// A visibility timeout in 0–43200 s; `field` names the parameter.
Result<void> ValidateVisibilityTimeout(int seconds, std::string_view field);

// SendMessage: body characters (InvalidMessageContents), delay 0–900,
// attributes (count ≤ 10, names, data types, non-empty values, String values'
// characters, Number values' syntax) and the total size
// (MessageTooLong above attributes.maximum_message_size).
Result<void> ValidateSendMessage(const SendMessageRequest& request,
                                 const QueueAttributes& queue_attributes);

// The delay a SendMessage gets: its own, or the queue's DelaySeconds.
int EffectiveDelaySeconds(const SendMessageRequest& request, const QueueAttributes& attributes);

// ReceiveMessage parameters with the queue's defaults filled in.
struct ReceiveParameters {
  int max_number_of_messages = 1;
  int visibility_timeout_seconds = 30;
  int wait_time_seconds = 0;
};
Result<ReceiveParameters> ResolveReceive(const ReceiveMessageRequest& request,
                                         const QueueAttributes& attributes);

// Batch shape: 1–10 entries (EmptyBatchRequest, TooManyEntriesInBatchRequest),
// ids of 1–80 [A-Za-z0-9_-] (InvalidBatchEntryId), distinct
// (BatchEntryIdsNotDistinct).
Result<void> ValidateBatchIds(const std::vector<std::string_view>& ids);

// --- identifiers --------------------------------------------------------------

// A random UUID (version 4) as SQS message ids look.
std::string NewMessageId();
// 128 random bits as 32 lowercase hex digits (the unguessable part of a
// receipt handle).
std::string NewReceiptToken();

// A receipt handle is "<32 hex token><message id>".
std::string MakeReceiptHandle(std::string_view token, std::string_view message_id);
struct ParsedReceiptHandle {
  std::string token;
  std::string message_id;
};
// ReceiptHandleIsInvalid when the handle is not of that form.
Result<ParsedReceiptHandle> ParseReceiptHandle(std::string_view handle);

// --- attribute codec (for storage) -------------------------------------------

// Length-prefixed binary encoding of MessageAttributes; Decode returns
// InternalError on malformed input.
std::string EncodeAttributes(const MessageAttributes& attributes);
Result<MessageAttributes> DecodeAttributes(std::string_view bytes);

// --- long polling ---------------------------------------------------------------

// A generation counter with a condition variable: writers call Notify() after
// committing anything that can make a message visible (send, visibility
// change, redrive); waiters remember Generation() before looking and sleep
// until it changes. Thread-safe.
class ChangeNotifier {
 public:
  std::uint64_t Generation() const;
  void Notify();

  enum class WaitResult { kChanged, kTimedOut, kStopped };
  // Blocks until the generation differs from `seen`, `timeout` passes, or
  // `stop` is requested (whichever first).
  WaitResult Wait(std::uint64_t seen, std::chrono::milliseconds timeout,
                  const std::stop_token& stop);

 private:
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::uint64_t generation_ = 0;
};

// One look at a queue by a backend: the messages it received and, when it got
// none, how long until the next delayed or in-flight message becomes visible.
struct ReceiveAttempt {
  std::vector<ReceivedMessage> messages;
  std::optional<std::chrono::milliseconds> next_visible_in;
};

// The ReceiveMessage wait loop shared by the backends. Calls `attempt` (a
// callable returning Result<ReceiveAttempt>); returns at once when it gets
// messages, fails, or wait_time_seconds is 0. Otherwise sleeps on `notifier`
// until a change, the next visibility time, the end of the wait (measured on
// `clock`), or `stop`, and looks again; no busy polling. `max_sleep` bounds
// one sleep when changes from elsewhere cannot be observed.
template <typename Attempt>
Result<std::vector<ReceivedMessage>> LongPoll(const Clock& clock, ChangeNotifier& notifier,
                                              int wait_time_seconds, const std::stop_token& stop,
                                              std::optional<std::chrono::milliseconds> max_sleep,
                                              Attempt&& attempt) {
  using std::chrono::milliseconds;
  const milliseconds wait_total{static_cast<std::int64_t>(wait_time_seconds) * 1000};
  const auto deadline = clock.SteadyNow() + wait_total;
  // Real time spent in sleeps that ran to their end. With a clock that does
  // not move (a test's fake clock) this still ends the wait.
  milliseconds slept{0};
  while (true) {
    const std::uint64_t seen = notifier.Generation();
    Result<ReceiveAttempt> got = attempt();
    if (!got) return std::unexpected(got.error());
    if (!got->messages.empty() || wait_time_seconds <= 0 || stop.stop_requested()) {
      return std::move(got->messages);
    }
    const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - clock.SteadyNow());
    if (remaining <= milliseconds(0) || slept >= wait_total) return std::move(got->messages);
    milliseconds sleep = remaining;
    if (got->next_visible_in && *got->next_visible_in < sleep) {
      sleep = std::max(*got->next_visible_in, milliseconds(1));
    }
    if (max_sleep && *max_sleep < sleep) sleep = *max_sleep;
    const ChangeNotifier::WaitResult woke = notifier.Wait(seen, sleep, stop);
    if (woke == ChangeNotifier::WaitResult::kStopped) return std::vector<ReceivedMessage>{};
    if (woke == ChangeNotifier::WaitResult::kTimedOut) slept += sleep;
  }
}

}  // namespace postline::queue_backend
