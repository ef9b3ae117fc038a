// postline/queue.h — the SQS standard-queue operations behind one interface.
//
// The semantics are Amazon SQS's (SQS API Reference, 2012-11-05): at-least-
// once delivery, a visibility timeout per receive, a new receipt handle on
// every receive, ApproximateReceiveCount, per-queue and per-message delay,
// retention, and a RedrivePolicy that moves a message to its dead-letter
// queue (DLQ) once it has been received maxReceiveCount times.
//
// The queue moves opaque bodies plus message attributes; it does not know
// what an e-mail is.
//
// Backends: sqlite (embedded default, durable, shared by processes on one
// machine), memory (tests), sqs (Amazon SQS).
//
// Errors use SQS's error names in Error::code:
//   InvalidMessageContents   body has a character outside #x9 #xA #xD
//                            #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF, or
//                            is not valid UTF-8 (kInvalidInput)
//   MessageTooLong           body + attributes above MaximumMessageSize (kInvalidInput)
//   InvalidParameterValue    a parameter outside SQS's range (kInvalidInput)
//   ReceiptHandleIsInvalid   unknown, malformed or stale receipt handle (kInvalidInput)
//   MessageNotInflight       ChangeMessageVisibility on a message not in flight (kInvalidInput)
//   TooManyEntriesInBatchRequest / EmptyBatchRequest /
//   BatchEntryIdsNotDistinct / InvalidBatchEntryId   batch shape (kInvalidInput)
//   QueueDoesNotExist        (kNotFound)
//   ServiceUnavailable       database busy/locked beyond its timeout, I/O error (kTransient)
//   InternalError            anything else (kInternal)
//
// Thread-safety: Queue and QueueService implementations are safe to use from
// many threads at once; the sqlite backend is also safe across processes that
// share one database file.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"

namespace postline {

// SQS limits (SQS Developer Guide, "Quotas").
inline constexpr int kMaxVisibilityTimeoutSeconds = 43200;  // 12 hours
inline constexpr int kMinRetentionSeconds = 60;
inline constexpr int kMaxRetentionSeconds = 1209600;  // 14 days
inline constexpr int kMaxDelaySeconds = 900;
inline constexpr int kMaxWaitTimeSeconds = 20;
inline constexpr int kMaxBatchEntries = 10;
inline constexpr int kMinMaximumMessageSize = 1024;
inline constexpr int kMaxMaximumMessageSize = 1048576;  // 1 MiB
inline constexpr int kMaxMessageAttributes = 10;

// Queue names from the setup guide.
inline constexpr std::string_view kRegularQueueName = "invoice-generation-queue";
inline constexpr std::string_view kPriorityQueueName = "priority-emails-queue";
// A queue's DLQ is named "<queue>-dlq".
std::string DeadLetterQueueName(std::string_view queue_name);

// A message attribute (SendMessage MessageAttributes). data_type is "String",
// "Number" or "Binary" (optionally with a ".custom" suffix); value holds the
// string, the decimal number as text, or the raw bytes.
struct MessageAttributeValue {
  std::string data_type = "String";
  std::string value;
  friend bool operator==(const MessageAttributeValue&, const MessageAttributeValue&) = default;
};
using MessageAttributes = std::map<std::string, MessageAttributeValue>;

struct RedrivePolicy {
  std::string dead_letter_queue;  // queue name of the DLQ (same service)
  int max_receive_count = 5;      // 1–1000
};

// CreateQueue attributes. Defaults are SQS's; the guide's queues use
// GuideQueueAttributes().
struct QueueAttributes {
  int visibility_timeout_seconds = 30;          // 0–43200
  int message_retention_seconds = 345600;       // 60–1209600
  int delay_seconds = 0;                        // 0–900
  int maximum_message_size = 262144;            // 1024–1048576 bytes
  int receive_message_wait_time_seconds = 0;    // 0–20
  std::optional<RedrivePolicy> redrive_policy;  // none: messages are never moved
};

// The setup guide's attributes: visibility 300 s, retention 345600 s (4 days),
// delay 0, maximum size 262144 bytes (256 KiB), wait 0.
QueueAttributes GuideQueueAttributes();

struct SendMessageRequest {
  std::string body;                  // UTF-8, SQS's allowed characters only
  std::optional<int> delay_seconds;  // 0–900; absent: the queue's DelaySeconds
  MessageAttributes attributes;      // at most 10
};

struct SendMessageResult {
  std::string message_id;
  std::string md5_of_body;  // hex MD5 of the body bytes, as SQS reports it
};

struct SendMessageBatchEntry {
  std::string id;  // batch entry id: 1–80 of [A-Za-z0-9_-], distinct in the batch
  SendMessageRequest request;
};

// Result of one batch entry: either the success payload or the error.
template <typename T>
struct BatchEntryResult {
  std::string id;
  Result<T> result;
};

struct ReceiveMessageRequest {
  int max_number_of_messages = 1;                // 1–10
  std::optional<int> visibility_timeout_seconds;  // 0–43200; absent: the queue's
  std::optional<int> wait_time_seconds;           // 0–20; absent: the queue's
  // Long polls return early (with whatever they have, possibly nothing)
  // when stop is requested.
  std::stop_token stop;
};

struct ReceivedMessage {
  std::string message_id;
  std::string receipt_handle;  // valid until the next receive of this message
  std::string body;
  std::string md5_of_body;
  MessageAttributes attributes;
  int approximate_receive_count = 0;                       // including this receive
  std::chrono::system_clock::time_point sent_timestamp;    // when SendMessage accepted it
  std::chrono::system_clock::time_point first_receive_timestamp;
  // Set on messages that a RedrivePolicy moved into this queue (a DLQ): the
  // name of the queue the message came from, so a later redrive knows its
  // origin (SQS's DeadLetterQueueSourceArn, as a queue name). Empty for
  // messages sent to this queue directly.
  std::string dead_letter_source_queue;
};

// GetQueueAttributes: the guide's console metrics.
struct QueueStats {
  std::int64_t approximate_number_of_messages = 0;            // visible now
  std::int64_t approximate_number_of_messages_not_visible = 0;  // in flight
  std::int64_t approximate_number_of_messages_delayed = 0;
  // Age of the oldest message in the queue (any state), seconds; 0 when empty
  // (CloudWatch ApproximateAgeOfOldestMessage).
  std::int64_t approximate_age_of_oldest_message_seconds = 0;
  QueueAttributes attributes;
};

class Queue {
 public:
  virtual ~Queue() = default;

  virtual const std::string& name() const = 0;

  // SendMessage. On success the message is durable (sqlite: committed
  // with synchronous=FULL) before this returns.
  virtual Result<SendMessageResult> SendMessage(const SendMessageRequest& request) = 0;

  // SendMessageBatch: 1–10 entries, each accepted or refused on its own.
  // The outer error is only for the batch's shape (empty, too many, ids).
  virtual Result<std::vector<BatchEntryResult<SendMessageResult>>> SendMessageBatch(
      const std::vector<SendMessageBatchEntry>& entries) = 0;

  // ReceiveMessage: up to max_number_of_messages visible messages; each
  // becomes invisible for the visibility timeout and gets a new receipt
  // handle. With wait_time_seconds > 0, blocks until at least one message is
  // available or the wait ends (no busy polling). A message whose receive
  // count has reached the RedrivePolicy's maxReceiveCount is moved to the DLQ
  // instead of being returned (in the same transaction): it keeps its message
  // id, body, attributes and SentTimestamp (retention still counts from the
  // original send), its receive count starts again at 0 in the DLQ, and
  // ReceivedMessage::dead_letter_source_queue names the source queue.
  // Expired messages (retention) are dropped. Order: the message visible the
  // longest first (standard queues promise no order).
  virtual Result<std::vector<ReceivedMessage>> ReceiveMessage(
      const ReceiveMessageRequest& request) = 0;

  // DeleteMessage by the latest receipt handle. Deleting an already-deleted
  // message with its last handle succeeds (SQS is idempotent here); a handle
  // superseded by a later receive is ReceiptHandleIsInvalid. The deleting
  // handle keeps succeeding for 12 hours (the longest a handle can be in use).
  // On the sqs backend a superseded handle is not reliably refused: per the
  // SQS API reference (DeleteMessage), a call with an older handle can
  // succeed without deleting the message (the sent log covers that case).
  virtual Result<void> DeleteMessage(std::string_view receipt_handle) = 0;

  virtual Result<std::vector<BatchEntryResult<void>>> DeleteMessageBatch(
      const std::vector<std::pair<std::string, std::string>>& id_and_receipt_handles) = 0;

  // ChangeMessageVisibility: the message becomes visible `visibility_timeout_seconds`
  // (0–43200) from now. 0 releases it at once. Errors: MessageNotInflight
  // when the message is visible (its timeout ran out or it was released);
  // InvalidParameterValue for a timeout outside 0–43200 or one that would
  // end more than 12 hours after the receive that issued the handle (SQS's
  // ceiling); ReceiptHandleIsInvalid for a stale, unknown or malformed handle.
  virtual Result<void> ChangeMessageVisibility(std::string_view receipt_handle,
                                               int visibility_timeout_seconds) = 0;

  struct VisibilityChange {
    std::string id;
    std::string receipt_handle;
    int visibility_timeout_seconds = 0;
  };
  virtual Result<std::vector<BatchEntryResult<void>>> ChangeMessageVisibilityBatch(
      const std::vector<VisibilityChange>& entries) = 0;

  virtual Result<QueueStats> GetQueueAttributes() = 0;

  // The queue's configuration only (no message counts), for checking
  // requests before sending them (ValidateSendMessageRequest). The default
  // takes it from GetQueueAttributes(); backends that hold it in memory
  // override it, because counting messages costs a scan (sqlite) or a
  // request (SQS). Errors: those of GetQueueAttributes. A decorator that
  // accepts larger bodies than its inner queue (the blob-offloading queue)
  // reports the size it accepts. Thread-safe.
  virtual Result<QueueAttributes> GetQueueConfiguration();

  // postline's bulk send (SQS has no such call): any number of requests, in
  // as few writes as the backend allows. Returns one result per request, in
  // order; each entry is accepted or refused on its own, as in
  // SendMessageBatch (a producer that wants all-or-nothing checks every
  // request with ValidateSendMessageRequest first). The outer error is for a
  // failure that touched no entry. The sqlite backend writes every valid
  // entry in one transaction (one fsync; all of them or, on an I/O error,
  // none, reported per entry); the default sends SendMessageBatch calls of up
  // to 10 entries in order (SQS: one request each). An empty span returns an
  // empty vector. Thread-safe.
  virtual Result<std::vector<Result<SendMessageResult>>> SendMessages(
      std::span<const SendMessageRequest> requests);

  // PurgeQueue: deletes every message in the queue.
  virtual Result<void> PurgeQueue() = 0;
};

// Creates and looks up queues, like an SQS endpoint.
class QueueService {
 public:
  virtual ~QueueService() = default;
  // CreateQueue: idempotent when the attributes match; returns the queue.
  // Differing attributes on an existing queue: kInvalidInput
  // "QueueAlreadyExists". A RedrivePolicy naming a missing DLQ: kNotFound
  // "QueueDoesNotExist".
  virtual Result<std::shared_ptr<Queue>> CreateQueue(std::string_view name,
                                                     const QueueAttributes& attributes) = 0;
  // SetQueueAttributes: replaces the named queue's attributes (all of them).
  // Queue objects obtained later see the new values; other processes see
  // them when they next open the queue. Errors: kNotFound "QueueDoesNotExist"
  // (the queue, or the RedrivePolicy's DLQ); kInvalidInput
  // "InvalidParameterValue" for values outside SQS's ranges.
  virtual Result<void> SetQueueAttributes(std::string_view name,
                                          const QueueAttributes& attributes) = 0;
  // GetQueueUrl: kNotFound "QueueDoesNotExist" when absent.
  virtual Result<std::shared_ptr<Queue>> GetQueue(std::string_view name) = 0;
  virtual Result<std::vector<std::string>> ListQueues() = 0;
};

// When the sqlite backend's sends (SendMessage, SendMessageBatch,
// SendMessages) and queue set-up reach stable storage (SQLite's PRAGMA
// synchronous, https://sqlite.org/pragma.html#pragma_synchronous):
// - kFull (the default): the WAL is synced before the call returns; an
//   acknowledged message survives kill -9 and a power loss.
// - kNormal: the commit is in the OS page cache when the call returns; it
//   survives kill -9 of any process, but a power loss or kernel crash may roll
//   back the commits since the last WAL sync (checkpoint). Comparable to
//   Redis's AOF with appendfsync everysec. Several times faster for single
//   sends, which otherwise wait for one fsync each.
// The consumer's bookkeeping (receive, delete, visibility) always commits as
// kNormal: rolling it back can only cause a redelivery.
enum class SqliteSynchronous { kFull, kNormal };

// The embedded default: one SQLite database file holding all queues.
// `path` is created (with its parent directory) if absent. Opens in WAL mode;
// `synchronous` as above. Errors: kInternal/kTransient "ServiceUnavailable"
// when the file cannot be opened or created; kInternal "InternalError" when
// its schema is newer than this program's. Files of schema version 1 are
// migrated in place when opened.
Result<std::shared_ptr<QueueService>> OpenSqliteQueueService(
    const std::string& path, std::shared_ptr<Clock> clock = SystemClock(),
    SqliteSynchronous synchronous = SqliteSynchronous::kFull);

// In-process queues for tests; nothing survives the process.
std::shared_ptr<QueueService> NewMemoryQueueService(std::shared_ptr<Clock> clock = SystemClock());

// Validates a body against SQS's allowed characters (returns
// InvalidMessageContents naming the offending code point and its byte offset).
Result<void> ValidateMessageBody(std::string_view body);

// Checks a SendMessage request against a queue's attributes exactly as
// SendMessage would, without sending: body characters, delay, attributes and
// the total size (MessageTooLong above attributes.maximum_message_size).
// Lets a producer refuse a whole batch before any of it is queued.
Result<void> ValidateSendMessageRequest(const SendMessageRequest& request,
                                        const QueueAttributes& attributes);

// Hex MD5 of bytes (as SQS's MD5OfMessageBody).
std::string Md5Hex(std::string_view bytes);

// --- dead letters -----------------------------------------------------------------

// Message attributes of a dead letter: written by the delivery settler when
// it moves a message to its lane's DLQ, read by the dead-letter tools
// (service/ DeadLetters) and removed again by a redrive.
inline constexpr std::string_view kAttrReason = "postline-reason";  // permanent | expired | unparseable
inline constexpr std::string_view kAttrReplyCode = "postline-reply-code";  // Number
inline constexpr std::string_view kAttrReply = "postline-reply";  // server reply or error text
inline constexpr std::string_view kAttrSourceQueue = "postline-source-queue";
inline constexpr std::string_view kAttrEnvelopeId = "postline-envelope-id";
inline constexpr std::string_view kAttrAttempts = "postline-attempts";  // Number

// --- lanes ---------------------------------------------------------------------------

// The two lanes of the setup guide: priority 1–3 (verification, password
// reset) and 4–10 (invoices at 5, bulk mail).
enum class LaneId { kPriority, kRegular };

// "priority" or "regular" (metrics labels, log fields).
constexpr std::string_view LaneName(LaneId id) {
  return id == LaneId::kPriority ? "priority" : "regular";
}

// One lane: its queue, its DLQ and the priorities routed to it.
struct Lane {
  LaneId id = LaneId::kRegular;
  std::shared_ptr<Queue> queue;
  std::shared_ptr<Queue> dlq;
  int min_priority = 4;
  int max_priority = 10;
};

// The two lanes and their DLQs.
struct QueuePair {
  std::shared_ptr<Queue> priority;      // priority-emails-queue (priority 1–3)
  std::shared_ptr<Queue> regular;       // invoice-generation-queue (priority 4–10)
  std::shared_ptr<Queue> priority_dlq;  // priority-emails-queue-dlq
  std::shared_ptr<Queue> regular_dlq;   // invoice-generation-queue-dlq

  // Both lanes, priority first.
  std::array<Lane, 2> Lanes() const {
    return {Lane{LaneId::kPriority, priority, priority_dlq, 1, 3},
            Lane{LaneId::kRegular, regular, regular_dlq, 4, 10}};
  }
};

// The lane whose queue or DLQ is named `queue_name` (names as Queue::name()
// reports them, so custom SQS queue URLs work), or std::nullopt.
std::optional<Lane> FindLane(const QueuePair& pair, std::string_view queue_name);

// Creates (first use) or opens both guide queues and a DLQ for each
// ("<name>-dlq", RedrivePolicy maxReceiveCount = max_receive_count). Queues
// that exist with other attributes are brought to these with
// SetQueueAttributes, so a changed setting takes effect.
Result<QueuePair> EnsureGuideQueues(QueueService& service, const QueueAttributes& attributes,
                                    int max_receive_count);

// Router: priority 1–3 → pair.priority, 4–10 → pair.regular.
// Errors: kInvalidInput "invalid_priority" outside 1–10.
Result<std::shared_ptr<Queue>> RouteByPriority(const QueuePair& pair, int priority);

}  // namespace postline
