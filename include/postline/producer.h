// postline/producer.h — putting e-mails on the queues.
//
// The one path every producer (CLI, HTTP API, invoice sender) takes: assign
// the envelope id, validate, encode as JSON v1, check the body against SQS's
// rules, route by priority (1–3 priority lane, 4–10 regular lane) and send.
// Nothing is queued unless the whole e-mail is valid.
//
// Thread-safety: functions are safe to call concurrently (the queues are).
#pragma once

#include <string>
#include <vector>

#include "postline/clock.h"
#include "postline/envelope.h"
#include "postline/error.h"
#include "postline/queue.h"

namespace postline {

// Observes e-mails as they move (queued, sending, retrying, sent, dead); the
// status store implements it. Implementations must be thread-safe and must
// not throw; a failure to record is theirs to log.
struct StatusEvent {
  enum class State { kQueued, kSending, kRetrying, kSent, kDead };
  State state = State::kQueued;
  std::string envelope_id;
  std::string queue;
  int attempts = 0;                 // receives so far (0 when queued)
  int reply_code = 0;
  std::string detail;               // last error, DLQ reason, or the server's reply
  std::string provider_message_id;  // when sent
  const Email* email = nullptr;     // when known (queued, sending); not owned
};
std::string_view StatusStateName(StatusEvent::State state);  // "queued", "sending", …

class StatusObserver {
 public:
  virtual ~StatusObserver() = default;
  virtual void OnStatus(const StatusEvent& event) = 0;
};

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

}  // namespace postline
