// postline/service.h — the use cases, each written once; the CLI (app/), the
// HTTP API (http/api) and the dashboard (http/dashboard) call them and only
// parse input and format output.
//
// SendEmail — the one path every producer (CLI, HTTP API, invoice sender) takes: assign
// the envelope id, validate, encode as JSON v1, check the body against SQS's
// rules, route by priority (1–3 priority lane, 4–10 regular lane) and send.
// Nothing is queued unless the whole e-mail is valid.
//
// Thread-safety: functions are safe to call concurrently (the queues are).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "postline/clock.h"
#include "postline/envelope.h"
#include "postline/error.h"
#include "postline/events.h"
#include "postline/queue.h"

namespace postline {

struct EnqueueResult {
  std::string id;          // envelope id
  std::string queue;       // queue name it went to
  std::string message_id;  // the queue's MessageId
};

// Queues one e-mail. Assigns email.id (a ULID from `clock`) when empty.
// send_at within 900 s becomes the message's DelaySeconds; later ones are
// carried forward by the worker. Errors: ValidateEmail's and
// ValidateMessageBody's (kInvalidInput), the queue's (e.g. MessageTooLong,
// kTransient ServiceUnavailable). `observer` may be null.
Result<EnqueueResult> EnqueueEmail(const QueuePair& queues, Email email, const Clock& clock,
                                   StatusObserver* observer = nullptr);

// Queues many e-mails with one Queue::SendMessages call per lane (sqlite:
// one transaction and one fsync per lane, whatever the count; SQS:
// SendMessageBatch requests of 10). Every e-mail is validated first, against
// the envelope rules and the lane's queue configuration (size above all); if
// any is invalid, nothing is queued and the error names its index
// ("[i] …"). Returns one result per e-mail, in order; an entry the queue
// refused carries its error. Errors: those of GetQueueConfiguration.
Result<std::vector<Result<EnqueueResult>>> EnqueueEmails(const QueuePair& queues,
                                                         std::vector<Email> emails,
                                                         const Clock& clock,
                                                         StatusObserver* observer = nullptr);

// --- DeadLetters: list, show, redrive, purge ------------------------------------------

// Reasons a message is in a DLQ: the worker's kAttrReason values, plus
// "max_receives" for messages the queue's RedrivePolicy moved (they carry no
// postline attributes).
inline constexpr std::string_view kDeadLetterReasons[] = {"permanent", "expired", "unparseable",
                                                          "max_receives"};

// A dead letter as `postline dlq list/show` presents it.
struct DeadLetterInfo {
  std::string message_id;   // the DLQ's MessageId
  std::string envelope_id;  // from the attribute, else the body's "id"; "" when unknown
  std::string reason;       // one of kDeadLetterReasons
  int reply_code = 0;       // 0 when none
  std::string reply;        // server reply or error text; "" for max_receives
  int attempts = 0;         // receives before it was dead-lettered; 0 when unknown
  std::string source_queue; // kAttrSourceQueue, else dead_letter_source_queue; "" if unknown
  std::string subject;      // from the body when it is JSON; "" otherwise
  std::vector<std::string> recipients;  // to, cc, bcc addresses from the body
  std::chrono::system_clock::time_point sent_timestamp;  // when it entered the DLQ / was first sent
};

// Describes a message received from a DLQ. Never fails: a body that
// ParseJson refuses (not JSON, too deep, a number beyond double range)
// yields empty subject and recipients. Thread-safe (pure).
DeadLetterInfo DescribeDeadLetter(const ReceivedMessage& message);

// The SendMessage that returns a dead letter to its source queue: the body
// unchanged, every postline-* dead-letter attribute removed (other attributes
// kept), no delay. Pure.
SendMessageRequest RedriveRequest(const ReceivedMessage& message);

// Receives every message visible in `queue` now, 10 per ReceiveMessage, each
// hidden for `visibility_timeout_seconds`, up to `limit` messages; a message
// the queue returns twice ends the scan (an emulator may repeat one).
// `*truncated` (if given) tells whether more were visible past `limit`. On a
// queue error, what was received is released again and the error returned.
Result<std::vector<ReceivedMessage>> ReceiveAllVisible(Queue& queue,
                                                       int visibility_timeout_seconds,
                                                       std::size_t limit = SIZE_MAX,
                                                       bool* truncated = nullptr);

// Makes received messages visible again at once (ChangeMessageVisibilityBatch
// of up to 10, visibility 0). Best effort: a message whose release fails
// reappears when its visibility timeout ends.
void ReleaseAll(Queue& queue, const std::vector<ReceivedMessage>& messages);

// Which dead letters RedriveFromDeadLetterQueue moves.
struct RedriveSelection {
  std::vector<std::string> reasons;   // DeadLetterInfo::reason values; empty: every reason
  std::set<std::string> message_ids;  // the DLQ's MessageIds; empty: every message
  std::int64_t max = INT64_MAX;       // at most this many
  double rate_per_second = 0;         // pace of the moves; 0: as fast as the queues take them
};

struct RedriveOutcome {
  std::int64_t moved = 0;
  std::int64_t skipped = 0;         // selected, but their source queue is not in `queues`
  std::vector<std::string> errors;  // one line per message not moved, or moved but not deleted
};

// The redrive of `postline dlq redrive`, the HTTP API and the dashboard:
// takes the messages visible in `dlq` when the call starts (hidden for 900 s
// meanwhile), and moves each selected one back to its source queue
// (DeadLetterInfo::source_queue, found among `queues`' priority and regular
// queues; without one, the queue whose DLQ `dlq` is): SendMessage of
// RedriveRequest, then DeleteMessage. Send first: a
// crash in between leaves a copy in both, and the sent log keeps the e-mail
// from going out twice. Reports "queued" with detail "redriven from <dlq>" to
// `observer` (may be null) per moved message. The rest are released at once.
// Errors: a queue error while receiving (nothing moved then); failures of
// single messages are in RedriveOutcome::errors.
Result<RedriveOutcome> RedriveFromDeadLetterQueue(const QueuePair& queues, Queue& dlq,
                                                  const RedriveSelection& selection,
                                                  StatusObserver* observer = nullptr);

// Parses a `--filter` value "reason=R1,R2,…" (the "reason=" prefix may be
// given once, or per item) into reasons from kDeadLetterReasons. Empty input:
// every reason. Errors: kInvalidInput "invalid_filter" with field "--filter"
// naming the allowed values.
Result<std::vector<std::string>> ParseDeadLetterFilter(std::string_view filter);

}  // namespace postline
