// Internals of the dashboard module shared by its .cc files and tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "postline/dashboard.h"
#include "postline/envelope.h"
#include "postline/error.h"
#include "postline/queue.h"
#include "postline/delivery.h"

namespace postline::dashboard_internal {

// `bytes` random bytes from OpenSSL's CSPRNG, as lower-case hex.
std::string RandomHex(int bytes);

// "2026-11-29 10:42:47" (UTC).
std::string FormatTime(std::chrono::system_clock::time_point t);

// "0s", "42s", "3m 05s", "2h 10m", "3d 4h".
std::string FormatAge(std::int64_t seconds);

// Percent-decoding for one form component ('+' is a space).
std::string FormDecode(std::string_view text);
// Percent-encoding of a path segment or query value.
std::string UrlEncode(std::string_view text);

// The first value of `name` in parsed form fields, or empty.
std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form,
                      std::string_view name);
// Every value of `name`.
std::vector<std::string> FormValues(const std::vector<std::pair<std::string, std::string>>& form,
                                    std::string_view name);

// Splits "/a/b/c" into {"a","b","c"} (percent-decoded).
std::vector<std::string> PathSegments(std::string_view path);

// --- dead letters ---------------------------------------------------------

// One dead letter as read from a DLQ.
struct DeadLetter {
  ReceivedMessage message;
  std::string dlq;             // the DLQ's name
  DeadLetterInfo info;         // DescribeDeadLetter (postline/service.h)
  std::optional<Email> email;  // the decoded envelope, when the body is one
  std::string parse_error;     // why it is not, otherwise
};

struct DeadLetterPage {
  std::vector<DeadLetter> letters;  // oldest first
  bool truncated = false;           // more than `limit` were in the DLQ
};

// Reads up to `limit` messages of `dlq` without consuming them: receives
// them in batches of 10 with a 30 s visibility timeout, then releases every
// one (ChangeMessageVisibility 0). Errors: the queue's.
Result<DeadLetterPage> PeekDeadLetters(Queue& dlq, int limit);

struct DeadLetterActionResult {
  int done = 0;                     // redriven or deleted
  std::vector<std::string> errors;  // one line per message that failed
};

// Redrives (send to the source queue, then delete from the DLQ) or deletes
// the messages of `dlq` whose MessageId is in `ids`, or every message when
// `all`, at most `limit`. The source queue is the attribute
// postline-source-queue, else ReceivedMessage::dead_letter_source_queue; it
// must be one of `queues`' two lanes. The message sent is RedriveRequest's
// (postline/service.h): same body, dead-letter attributes dropped. `observer`
// (may be null) is told "queued" for each redriven e-mail. Messages not acted
// on are released at once. Errors: the queue's, when the DLQ cannot be read;
// a message that cannot be moved is listed in `errors` and stays.
Result<DeadLetterActionResult> RedriveSelected(const QueuePair& queues, Queue& dlq,
                                               const std::set<std::string>& ids, bool all,
                                               int limit, StatusObserver* observer);
Result<DeadLetterActionResult> DeleteSelected(Queue& dlq, const std::set<std::string>& ids,
                                              bool all, int limit);

}  // namespace postline::dashboard_internal
