// The SES transport: SESv2 SendEmail with raw MIME content.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "postline/json.h"
#include "postline/ses.h"

namespace postline {
namespace {

using nlohmann::json;

bool Is(const aws::ServiceError& e, std::initializer_list<std::string_view> codes) {
  for (auto c : codes) {
    if (e.code == c) return true;
  }
  return false;
}

class SesTransport final : public Transport {
 public:
  explicit SesTransport(std::shared_ptr<aws::AwsClient> client) : client_(std::move(client)) {}

  SendResult Send(const OutgoingMessage& message) override {
    SendResult result;
    if (message.rcpt_to.empty()) {
      result.outcome = SendOutcome::kPermanent;
      result.reply = "no recipients";
      return result;
    }
    const std::string data = aws::Base64Encode(message.data);
    // SES may accept a request whose answer this process never reads.
    if (message.before_commit) message.before_commit();
    for (size_t first = 0; first < message.rcpt_to.size(); first += kSesMaxRecipientsPerCall) {
      const size_t last = std::min(message.rcpt_to.size(), first + kSesMaxRecipientsPerCall);
      std::vector<std::string> chunk(message.rcpt_to.begin() + first,
                                     message.rcpt_to.begin() + last);
      SendResult part = SendOnce(message, chunk, data);
      if (first == 0) {
        result = part;
        if (part.outcome != SendOutcome::kSent) return result;
        continue;
      }
      if (part.outcome != SendOutcome::kSent) {
        // Earlier recipients have it: keep "sent" and name those who do not.
        for (const auto& r : chunk) {
          result.rejected.push_back(
              {r, part.outcome == SendOutcome::kTransient ? 450 : 550, part.reply});
        }
      }
    }
    return result;
  }

  Result<void> Check() override {
    if (paused_) {
      return MakeError(ErrorKind::kPermanent, "ses_sending_paused",
                       fmt::format("SES refused sending: {}", paused_reason_));
    }
    aws::HttpRequest request;
    request.method = "GET";
    request.path = "/v2/email/account";
    request.timeout_ms = 10000;
    aws::ServiceError se;
    auto response = client_->Send(request, nullptr, {}, &se);
    if (!response) {
      if (Is(se, {"AccessDenied", "AccessDeniedException"})) {
        return MakeError(ErrorKind::kPermanent, "AccessDenied",
                         "SES GetAccount refused: the IAM policy lacks ses:GetAccount");
      }
      return std::unexpected(response.error());
    }
    auto account = ParseJson(response->body, {.document = "the SES GetAccount response"});
    if (account && !JsonBool(*account, "SendingEnabled", true)) {
      return MakeError(ErrorKind::kPermanent, "ses_sending_paused",
                       "SES reports SendingEnabled=false for this account and region");
    }
    return {};
  }

  std::string_view name() const override { return "ses"; }

 private:
  SendResult SendOnce(const OutgoingMessage& message, const std::vector<std::string>& recipients,
                      const std::string& data) {
    json body = {{"FromEmailAddress", message.mail_from},
                 {"Destination", {{"ToAddresses", recipients}}},
                 {"Content", {{"Raw", {{"Data", data}}}}}};
    aws::HttpRequest request;
    request.method = "POST";
    request.path = "/v2/email/outbound-emails";
    request.headers = {"Content-Type: application/json"};
    request.body = body.dump();
    request.timeout_ms = 60000;
    aws::ServiceError se;
    auto response = client_->Send(request, nullptr, {}, &se);
    SendResult r;
    if (response) {
      r.outcome = SendOutcome::kSent;
      r.reply_code = static_cast<int>(response->status);
      auto j = ParseJson(response->body, {.document = "the SES SendEmail response"});
      if (j) r.provider_message_id = JsonString(*j, "MessageId");
      r.reply = "SES accepted the message";
      return r;
    }
    r.reply_code = static_cast<int>(se.http_status);
    r.reply = response.error().message;
    if (Is(se, {"SendingPausedException", "AccountSuspendedException"})) {
      paused_ = true;
      paused_reason_ = se.code;
      r.outcome = SendOutcome::kTransient;
    } else if (aws::IsRetryableError(se) ||
               Is(se, {"TooManyRequestsException", "LimitExceededException", "AccessDenied",
                       "AccessDeniedException"})) {
      r.outcome = SendOutcome::kTransient;
    } else {
      r.outcome = SendOutcome::kPermanent;  // MessageRejected, BadRequest, MailFrom…, other 4xx
    }
    return r;
  }

  std::shared_ptr<aws::AwsClient> client_;
  bool paused_ = false;
  std::string paused_reason_;
};

}  // namespace

std::unique_ptr<Transport> NewSesTransport(std::shared_ptr<aws::AwsClient> client) {
  return std::make_unique<SesTransport>(std::move(client));
}

}  // namespace postline

namespace postline {

PermissionProbe ProbeSesPermission(aws::AwsClient& client) {
  aws::HttpRequest request;
  request.method = "POST";
  request.path = "/v2/email/outbound-emails";
  request.headers = {"Content-Type: application/json"};
  request.body = "{}";
  request.timeout_ms = 10000;
  aws::ServiceError se;
  auto response = client.Send(request, nullptr, {}, &se);
  PermissionProbe p{"ses:SendEmail", true, "allowed"};
  if (!response) {
    const bool denied = se.code == "AccessDenied" || se.code == "AccessDeniedException";
    p.allowed = !denied && !(se.http_status == 0 || aws::IsRetryableError(se));
    p.detail = response.error().ToString();
  }
  return p;
}

}  // namespace postline
