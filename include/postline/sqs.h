// postline/sqs.h — the queue interface (postline/queue.h) on Amazon SQS.
//
// Protocol: AWS JSON 1.0 (Content-Type application/x-amz-json-1.0,
// X-Amz-Target: AmazonSQS.<Action>), signed with SigV4 (postline/aws.h).
// Every request goes to the configured endpoint; a queue URL only names the
// queue (its host is not contacted), so the same URLs work through a proxy or
// against an emulator.
//
// Semantics are SQS's own. Inputs are validated before sending with the same
// rules as the other backends (so every backend refuses the same inputs with
// the same error names); SQS's answers are mapped onto the error names of
// postline/queue.h:
//   QueueDoesNotExist, AWS.SimpleQueueService.NonExistentQueue → kNotFound "QueueDoesNotExist"
//   QueueAlreadyExists / QueueNameExists → kInvalidInput "QueueAlreadyExists"
//   ReceiptHandleIsInvalid, InvalidIdFormat → kInvalidInput "ReceiptHandleIsInvalid"
//   MessageNotInflight → kInvalidInput "MessageNotInflight"
//   InvalidParameterValue, InvalidAttributeName/Value, MissingParameter → kInvalidInput
//       "InvalidParameterValue"; batch shape errors keep their names
//   AccessDenied(Exception), InvalidClientTokenId, SignatureDoesNotMatch → kPermanent (same code)
//   throttling, HTTP 5xx, network failures (after the retries of aws.h) → kTransient
//   MD5OfMessageBody / MD5OfMessageAttributes not matching → kTransient "ChecksumMismatch"
//
// Receive: each Queue object keeps one libcurl handle (one connection) for
// ReceiveMessage, with an HTTP timeout of WaitTimeSeconds + 10 s; a stop
// request abandons a long poll in flight at once (libcurl progress callback)
// and ReceiveMessage returns an empty list.
//
// DeleteMessage calls from concurrent threads are coalesced into
// DeleteMessageBatch requests (up to 10 entries, collected for at most
// `delete_batch_window`); each call returns only when its own entry's result
// is known, with that entry's result.
//
// GetQueueAttributes: ApproximateNumberOfMessages, …NotVisible, …Delayed and
// the queue's attributes. approximate_age_of_oldest_message_seconds is 0: SQS
// reports the oldest message's age only as the CloudWatch metric
// ApproximateAgeOfOldestMessage, not as a queue attribute.
//
// Thread-safety: the service and its queues are safe to use from many threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "postline/aws.h"
#include "postline/queue.h"

namespace postline {

struct SqsOptions {
  std::shared_ptr<aws::AwsClient> client;  // service "sqs"
  // DeleteMessage coalescing window (0 disables coalescing).
  std::chrono::milliseconds delete_batch_window{20};
  // Added to WaitTimeSeconds for the receive's HTTP timeout.
  std::chrono::seconds receive_timeout_margin{10};
};

// A parsed queue URL: https://sqs.{region}.amazonaws.com/{account-id}/{queue-name},
// or any http(s) URL whose path ends in /{account-id}/{queue-name} when a
// custom endpoint is configured.
struct SqsQueueUrl {
  std::string url;
  std::string region;  // from the host for AWS URLs; empty otherwise
  std::string account_id;
  std::string name;
};
// Errors: kInvalidInput "InvalidParameterValue" naming `field` (e.g.
// SQS_REGULAR_QUEUE_URL) when the URL is not of either form (an AWS host
// requires the public form; a custom host is accepted only when
// `custom_endpoint` is true), or the queue name is not 1–80 [A-Za-z0-9_-].
Result<SqsQueueUrl> ParseSqsQueueUrl(std::string_view url, bool custom_endpoint,
                                     std::string_view field);

// The SQS MD5 of message attributes (SQS Developer Guide, "Calculating the
// MD5 message digest for message attributes"): names sorted; for each, the
// 4-byte big-endian length and bytes of the name, of the data type, then the
// transport type byte (1 for String/Number, 2 for Binary) and the 4-byte
// length and bytes of the value. Hex, lowercase. Empty attributes: "".
std::string SqsAttributesMd5(const MessageAttributes& attributes);

class SqsQueueService : public QueueService {
 public:
  // Opens a queue by URL (GetQueueAttributes once, to learn its attributes).
  // Errors: as ParseSqsQueueUrl; kNotFound "QueueDoesNotExist".
  virtual Result<std::shared_ptr<Queue>> GetQueueByUrl(std::string_view url,
                                                       std::string_view field) = 0;
  // The queue's URL and ARN (GetQueueUrl + GetQueueAttributes QueueArn).
  // Errors: kNotFound "QueueDoesNotExist".
  virtual Result<std::string> QueueUrl(std::string_view name) = 0;
  virtual Result<std::string> QueueArn(std::string_view name) = 0;
  // SetQueueAttributes SqsManagedSseEnabled=true (SSE-SQS).
  virtual Result<void> EnableManagedSse(std::string_view name) = 0;
};

std::shared_ptr<SqsQueueService> NewSqsQueueService(SqsOptions options);

// The guide's two queues by URL and their DLQs by name ("<name>-dlq", looked
// up with GetQueueUrl). Creates nothing: queues are created once by
// `postline queues create`. Errors: as GetQueueByUrl (naming the variable);
// kNotFound "QueueDoesNotExist" when a DLQ is missing.
Result<QueuePair> OpenSqsQueuePair(SqsQueueService& service, std::string_view regular_url,
                                   std::string_view priority_url);

// One IAM permission checked by ProbeSqsPermissions / ProbeSesPermission.
struct PermissionProbe {
  std::string action;  // e.g. "sqs:DeleteMessage"
  bool allowed = false;
  std::string detail;  // the error that decided it ("AccessDenied: …"), or the answer
};

// Checks each SQS action the producer and worker need on `queue_url`
// without side effects: GetQueueUrl and GetQueueAttributes for real;
// SendMessage (empty body, DelaySeconds 901), ReceiveMessage
// (MaxNumberOfMessages 11), DeleteMessage and ChangeMessageVisibility (an
// invalid receipt handle) with parameters SQS refuses after authorising the
// caller. An action is missing when the answer is an access error
// (AccessDenied, AccessDeniedException, UnauthorizedOperation); any other
// answer means it is allowed. Transport failures make the action "not
// allowed" with the failure as detail.
std::vector<PermissionProbe> ProbeSqsPermissions(aws::AwsClient& client,
                                                 std::string_view queue_url);

}  // namespace postline
