// postline/ses.h — the Amazon SES transport (SESv2 SendEmail, raw content).
//
// Each message goes as POST /v2/email/outbound-emails (SigV4 service "ses")
// with Content.Raw.Data = base64 of exactly the MIME bytes the SMTP transport
// would send, FromEmailAddress = the envelope sender and
// Destination.ToAddresses = the envelope recipients (to, cc and bcc), at
// most 50 per call (SES's limit): a message with more recipients is sent in
// several calls. If a later call fails, the message counts as sent and the
// recipients of the failed calls are listed in SendResult::rejected (reply
// code 450 for transient, 550 for permanent failures), so recipients who got
// it are not mailed again.
//
// Classification (docs/delivery.md):
//   2xx                                                  → sent (provider_message_id = MessageId)
//   TooManyRequestsException, Throttling, LimitExceededException, HTTP 429,
//   HTTP 5xx, no response                                → transient (after aws.h's retries;
//                                                          SES drops throttled mail, so the
//                                                          message must stay queued)
//   MessageRejected, BadRequestException, MailFromDomainNotVerifiedException,
//   NotFoundException, other 4xx                         → permanent
//   SendingPausedException, AccountSuspendedException    → transient, and Check() fails from
//                                                          then on (health turns red)
//   AccessDenied(Exception)                              → transient (a policy to fix), Check()
//   fails
//
// Check(): GET /v2/email/account (GetAccount); fails with kPermanent
// "ses_sending_paused" when SendingEnabled is false or a send saw
// SendingPaused/AccountSuspended, kPermanent "AccessDenied" when refused,
// kTransient when SES cannot be reached.
//
// Thread-safety: one instance per thread (like every Transport); the
// AwsClient may be shared.
#pragma once

#include <memory>

#include "postline/aws.h"
#include "postline/sqs.h"
#include "postline/transport.h"

namespace postline {

inline constexpr int kSesMaxRecipientsPerCall = 50;

// `client` signs for service "ses" against the SES endpoint.
std::unique_ptr<Transport> NewSesTransport(std::shared_ptr<aws::AwsClient> client);

// Checks ses:SendEmail without sending: a SendEmail request without content,
// which SES refuses (BadRequest) after authorising the caller. Allowed unless
// the answer is an access error.
PermissionProbe ProbeSesPermission(aws::AwsClient& client);

}  // namespace postline
