// The SQS backend over the AWS JSON 1.0 protocol.
#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "postline/json.h"
#include "postline/sqs.h"
#include "postline/queue_backend.h"

namespace postline {
namespace {

using nlohmann::json;
namespace qi = queue_backend;

std::string Md5HexBytes(std::string_view bytes) { return Md5Hex(bytes); }

// Maps an AWS error onto queue.h's names.
Error MapSqsError(Error e, const aws::ServiceError& se) {
  const std::string& code = se.code;
  const std::string& query = se.query_code;
  auto is = [&](std::initializer_list<std::string_view> names) {
    for (auto n : names) {
      if (code == n || query == n || query == fmt::format("AWS.SimpleQueueService.{}", n)) {
        return true;
      }
    }
    return false;
  };
  if (is({"QueueDoesNotExist", "NonExistentQueue"})) {
    return Error{ErrorKind::kNotFound, "QueueDoesNotExist", e.message, {}};
  }
  if (is({"QueueAlreadyExists", "QueueNameExists"})) {
    return Error{ErrorKind::kInvalidInput, "QueueAlreadyExists", e.message, {}};
  }
  if (is({"ReceiptHandleIsInvalid", "InvalidIdFormat"})) {
    return Error{ErrorKind::kInvalidInput, "ReceiptHandleIsInvalid", e.message, {}};
  }
  if (is({"MessageNotInflight"})) {
    return Error{ErrorKind::kInvalidInput, "MessageNotInflight", e.message, {}};
  }
  if (is({"InvalidParameterValue", "InvalidAttributeName", "InvalidAttributeValue",
          "MissingParameter", "InvalidParameterCombination", "InvalidMessageContents",
          "UnsupportedOperation"})) {
    std::string name = code == "InvalidMessageContents" ? code : "InvalidParameterValue";
    return Error{ErrorKind::kInvalidInput, name, e.message, {}};
  }
  for (std::string_view batch :
       {"EmptyBatchRequest", "TooManyEntriesInBatchRequest", "BatchEntryIdsNotDistinct",
        "InvalidBatchEntryId", "BatchRequestTooLong"}) {
    if (is({batch})) return Error{ErrorKind::kInvalidInput, std::string(batch), e.message, {}};
  }
  if (is({"PurgeQueueInProgress"})) {
    return Error{ErrorKind::kTransient, "PurgeQueueInProgress", e.message, {}};
  }
  if (e.kind == ErrorKind::kTransient && e.code != "stopped") e.code = "ServiceUnavailable";
  return e;
}

// Entry-level error of a batch result (Failed[]).
Error BatchEntryError(const json& failed) {
  aws::ServiceError se;
  se.code = JsonString(failed, "Code");
  se.message = JsonString(failed, "Message");
  se.sender_fault = JsonBool(failed, "SenderFault", false);
  Error base{se.sender_fault ? ErrorKind::kInvalidInput : ErrorKind::kTransient,
             se.code,
             se.message.empty() ? se.code : se.message,
             {}};
  Error mapped = MapSqsError(base, se);
  if (mapped.kind == ErrorKind::kInternal) mapped.kind = ErrorKind::kInvalidInput;
  return mapped;
}

std::string QueueNameFromArn(std::string_view arn) {
  auto colon = arn.rfind(':');
  return std::string(colon == std::string_view::npos ? arn : arn.substr(colon + 1));
}

int ToInt(const json& v, int fallback) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_string()) {
    try {
      return std::stoi(v.get<std::string>());
    } catch (...) {
      return fallback;
    }
  }
  return fallback;
}

std::int64_t ToInt64(const json& attrs, const char* key) {
  if (!attrs.contains(key)) return 0;
  const json& v = attrs[key];
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

json EncodeMessageAttributes(const MessageAttributes& attributes) {
  json out = json::object();
  for (const auto& [name, value] : attributes) {
    if (value.data_type.starts_with("Binary")) {
      out[name] = {{"DataType", value.data_type}, {"BinaryValue", aws::Base64Encode(value.value)}};
    } else {
      out[name] = {{"DataType", value.data_type}, {"StringValue", value.value}};
    }
  }
  return out;
}

Result<MessageAttributes> DecodeMessageAttributes(const json& in) {
  MessageAttributes out;
  if (!in.is_object()) return out;
  for (const auto& [name, value] : in.items()) {
    MessageAttributeValue v;
    v.data_type = JsonString(value, "DataType", "String");
    if (v.data_type.starts_with("Binary")) {
      auto bytes = aws::Base64Decode(JsonString(value, "BinaryValue"));
      if (!bytes) return std::unexpected(bytes.error());
      v.value = *bytes;
    } else {
      v.value = JsonString(value, "StringValue");
    }
    out[name] = std::move(v);
  }
  return out;
}

std::map<std::string, std::string> AttributesToSqs(const QueueAttributes& a,
                                                   const std::string& dlq_arn) {
  std::map<std::string, std::string> out = {
      {"VisibilityTimeout", std::to_string(a.visibility_timeout_seconds)},
      {"MessageRetentionPeriod", std::to_string(a.message_retention_seconds)},
      {"DelaySeconds", std::to_string(a.delay_seconds)},
      {"MaximumMessageSize", std::to_string(a.maximum_message_size)},
      {"ReceiveMessageWaitTimeSeconds", std::to_string(a.receive_message_wait_time_seconds)},
  };
  if (a.redrive_policy) {
    out["RedrivePolicy"] =
        json{{"deadLetterTargetArn", dlq_arn},
             {"maxReceiveCount", std::to_string(a.redrive_policy->max_receive_count)}}
            .dump();
  }
  return out;
}

QueueAttributes AttributesFromSqs(const json& attrs) {
  QueueAttributes a;
  auto get = [&](const char* key, int fallback) {
    return attrs.contains(key) ? ToInt(attrs[key], fallback) : fallback;
  };
  a.visibility_timeout_seconds = get("VisibilityTimeout", a.visibility_timeout_seconds);
  a.message_retention_seconds = get("MessageRetentionPeriod", a.message_retention_seconds);
  a.delay_seconds = get("DelaySeconds", a.delay_seconds);
  a.maximum_message_size = get("MaximumMessageSize", a.maximum_message_size);
  a.receive_message_wait_time_seconds =
      get("ReceiveMessageWaitTimeSeconds", a.receive_message_wait_time_seconds);
  if (attrs.contains("RedrivePolicy") && attrs["RedrivePolicy"].is_string() &&
      !attrs["RedrivePolicy"].get<std::string>().empty()) {
    auto parsed =
        ParseJson(attrs["RedrivePolicy"].get<std::string>(), {.document = "the SQS RedrivePolicy"});
    if (parsed && parsed->is_object()) {
      const json& policy = *parsed;
      RedrivePolicy rp;
      rp.dead_letter_queue = QueueNameFromArn(JsonString(policy, "deadLetterTargetArn"));
      rp.max_receive_count =
          policy.contains("maxReceiveCount") ? ToInt(policy["maxReceiveCount"], 0) : 0;
      a.redrive_policy = rp;
    }
  }
  return a;
}

std::chrono::system_clock::time_point FromMillis(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

// The JSON-protocol transport shared by the service and its queues.
class SqsApi {
 public:
  explicit SqsApi(SqsOptions options) : options_(std::move(options)) {}

  Result<json> Call(std::string_view action, const json& body, CURL* handle = nullptr,
                    std::stop_token stop = {}, long timeout_ms = 30000) {
    aws::HttpRequest request;
    request.method = "POST";
    request.path = "/";
    request.headers = {"Content-Type: application/x-amz-json-1.0",
                       fmt::format("X-Amz-Target: AmazonSQS.{}", action)};
    request.body = body.dump();
    request.timeout_ms = timeout_ms;
    aws::ServiceError se;
    auto response = options_.client->Send(request, handle, stop, &se);
    if (!response) {
      if (response.error().code == "stopped") return std::unexpected(response.error());
      return std::unexpected(MapSqsError(response.error(), se));
    }
    if (response->body.empty()) return json::object();
    auto parsed = ParseJson(response->body, {.document = "the SQS response"});
    if (!parsed) {
      return MakeError(
          ErrorKind::kTransient, "ServiceUnavailable",
          fmt::format("SQS {}: the response is not JSON: {}", action, parsed.error().message));
    }
    return parsed;
  }

  const SqsOptions& options() const { return options_; }

 private:
  SqsOptions options_;
};

class SqsQueue final : public Queue {
 public:
  SqsQueue(std::shared_ptr<SqsApi> api, std::string name, std::string url,
           QueueAttributes attributes)
      : api_(std::move(api)),
        name_(std::move(name)),
        url_(std::move(url)),
        attributes_(std::move(attributes)) {}

  const std::string& name() const override { return name_; }

  Result<SendMessageResult> SendMessage(const SendMessageRequest& request) override {
    if (auto ok = qi::ValidateSendMessage(request, Attributes()); !ok) {
      return std::unexpected(ok.error());
    }
    json body = {{"QueueUrl", url_}, {"MessageBody", request.body}};
    if (request.delay_seconds) body["DelaySeconds"] = *request.delay_seconds;
    if (!request.attributes.empty()) {
      body["MessageAttributes"] = EncodeMessageAttributes(request.attributes);
    }
    auto response = api_->Call("SendMessage", body);
    if (!response) return std::unexpected(response.error());
    return CheckSent(*response, request);
  }

  Result<std::vector<BatchEntryResult<SendMessageResult>>> SendMessageBatch(
      const std::vector<SendMessageBatchEntry>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& e : entries) ids.push_back(e.id);
    if (auto ok = qi::ValidateBatchIds(ids); !ok) return std::unexpected(ok.error());
    std::vector<BatchEntryResult<SendMessageResult>> results;
    std::map<std::string, size_t> index;
    const QueueAttributes attrs = Attributes();
    std::vector<size_t> to_send;
    for (size_t i = 0; i < entries.size(); ++i) {
      results.push_back({entries[i].id, MakeError(ErrorKind::kInternal, "InternalError", "unset")});
      index[entries[i].id] = i;
      if (auto ok = qi::ValidateSendMessage(entries[i].request, attrs); !ok) {
        results[i].result = std::unexpected(ok.error());
      } else {
        to_send.push_back(i);
      }
    }
    // Entries that failed without the sender's fault are sent again (only
    // those: an accepted entry is never sent twice).
    for (int attempt = 0; attempt < 3 && !to_send.empty(); ++attempt) {
      json list = json::array();
      for (size_t i : to_send) {
        const auto& r = entries[i].request;
        json e = {{"Id", entries[i].id}, {"MessageBody", r.body}};
        if (r.delay_seconds) e["DelaySeconds"] = *r.delay_seconds;
        if (!r.attributes.empty()) e["MessageAttributes"] = EncodeMessageAttributes(r.attributes);
        list.push_back(std::move(e));
      }
      auto response = api_->Call("SendMessageBatch", {{"QueueUrl", url_}, {"Entries", list}});
      if (!response) {
        for (size_t i : to_send) results[i].result = std::unexpected(response.error());
        break;
      }
      std::vector<size_t> again;
      for (const auto& ok : JsonArray(*response, "Successful")) {
        auto it = index.find(JsonString(ok, "Id"));
        if (it == index.end()) continue;
        results[it->second].result = CheckSent(ok, entries[it->second].request);
      }
      for (const auto& failed : JsonArray(*response, "Failed")) {
        auto it = index.find(JsonString(failed, "Id"));
        if (it == index.end()) continue;
        results[it->second].result = std::unexpected(BatchEntryError(failed));
        if (!JsonBool(failed, "SenderFault", false)) again.push_back(it->second);
      }
      to_send = std::move(again);
    }
    return results;
  }

  Result<std::vector<ReceivedMessage>> ReceiveMessage(
      const ReceiveMessageRequest& request) override {
    auto params = qi::ResolveReceive(request, Attributes());
    if (!params) return std::unexpected(params.error());
    json body = {{"QueueUrl", url_},
                 {"MaxNumberOfMessages", params->max_number_of_messages},
                 {"WaitTimeSeconds", params->wait_time_seconds},
                 {"MessageAttributeNames", {"All"}},
                 {"AttributeNames", {"All"}},
                 {"MessageSystemAttributeNames", {"All"}}};
    if (request.visibility_timeout_seconds) {
      body["VisibilityTimeout"] = *request.visibility_timeout_seconds;
    }
    const long timeout_ms =
        (params->wait_time_seconds + api_->options().receive_timeout_margin.count()) * 1000L;
    Result<json> response;
    // One receiving connection per queue; a concurrent receive of the same
    // queue object uses a pooled connection.
    std::unique_lock lock(receive_mu_, std::try_to_lock);
    if (lock.owns_lock()) {
      response =
          api_->Call("ReceiveMessage", body, receive_handle_.get(), request.stop, timeout_ms);
    } else {
      response = api_->Call("ReceiveMessage", body, nullptr, request.stop, timeout_ms);
    }
    if (!response) {
      if (response.error().code == "stopped") return std::vector<ReceivedMessage>{};
      return std::unexpected(response.error());
    }
    std::vector<ReceivedMessage> out;
    for (const auto& m : JsonArray(*response, "Messages")) {
      ReceivedMessage r;
      r.message_id = JsonString(m, "MessageId");
      r.receipt_handle = JsonString(m, "ReceiptHandle");
      r.body = JsonString(m, "Body");
      r.md5_of_body = JsonString(m, "MD5OfBody");
      if (r.md5_of_body != Md5HexBytes(r.body)) {
        return MakeError(ErrorKind::kTransient, "ChecksumMismatch",
                         fmt::format("SQS message {}: MD5OfBody {} does not match the body",
                                     r.message_id, r.md5_of_body));
      }
      auto attributes = DecodeMessageAttributes(JsonObject(m, "MessageAttributes"));
      if (!attributes) return std::unexpected(attributes.error());
      r.attributes = std::move(*attributes);
      if (!r.attributes.empty() &&
          JsonString(m, "MD5OfMessageAttributes") != SqsAttributesMd5(r.attributes)) {
        return MakeError(
            ErrorKind::kTransient, "ChecksumMismatch",
            fmt::format("SQS message {}: MD5OfMessageAttributes does not match", r.message_id));
      }
      const json& system = JsonObject(m, "Attributes");
      r.approximate_receive_count = static_cast<int>(ToInt64(system, "ApproximateReceiveCount"));
      r.sent_timestamp = FromMillis(ToInt64(system, "SentTimestamp"));
      r.first_receive_timestamp = FromMillis(ToInt64(system, "ApproximateFirstReceiveTimestamp"));
      if (system.contains("DeadLetterQueueSourceArn")) {
        r.dead_letter_source_queue =
            QueueNameFromArn(JsonString(system, "DeadLetterQueueSourceArn"));
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<void> DeleteMessage(std::string_view receipt_handle) override {
    if (receipt_handle.empty()) return qi::ReceiptHandleIsInvalid("the receipt handle is empty");
    if (api_->options().delete_batch_window.count() <= 0) {
      return DeleteOne(receipt_handle);
    }
    auto pending = std::make_shared<PendingDelete>();
    pending->handle = std::string(receipt_handle);
    std::unique_lock lock(delete_mu_);
    delete_waiting_.push_back(pending);
    delete_cv_.notify_all();
    while (!pending->result) {
      if (!delete_leader_) {
        delete_leader_ = true;
        delete_cv_.wait_for(lock, api_->options().delete_batch_window,
                            [&] { return delete_waiting_.size() >= kMaxBatchEntries; });
        std::vector<std::shared_ptr<PendingDelete>> batch;
        while (!delete_waiting_.empty() && batch.size() < kMaxBatchEntries) {
          batch.push_back(delete_waiting_.front());
          delete_waiting_.erase(delete_waiting_.begin());
        }
        lock.unlock();
        SendDeletes(batch);
        lock.lock();
        delete_leader_ = false;
        delete_cv_.notify_all();
      } else {
        delete_cv_.wait(lock);
      }
    }
    return *pending->result;
  }

  Result<std::vector<BatchEntryResult<void>>> DeleteMessageBatch(
      const std::vector<std::pair<std::string, std::string>>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& e : entries) ids.push_back(e.first);
    if (auto ok = qi::ValidateBatchIds(ids); !ok) return std::unexpected(ok.error());
    json list = json::array();
    for (const auto& [id, handle] : entries)
      list.push_back({{"Id", id}, {"ReceiptHandle", handle}});
    return BatchCall("DeleteMessageBatch", list, ids);
  }

  Result<void> ChangeMessageVisibility(std::string_view receipt_handle,
                                       int visibility_timeout_seconds) override {
    if (auto ok = qi::ValidateVisibilityTimeout(visibility_timeout_seconds, "VisibilityTimeout");
        !ok) {
      return ok;
    }
    auto response =
        api_->Call("ChangeMessageVisibility", {{"QueueUrl", url_},
                                               {"ReceiptHandle", receipt_handle},
                                               {"VisibilityTimeout", visibility_timeout_seconds}});
    if (!response) return std::unexpected(response.error());
    return {};
  }

  Result<std::vector<BatchEntryResult<void>>> ChangeMessageVisibilityBatch(
      const std::vector<VisibilityChange>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& e : entries) ids.push_back(e.id);
    if (auto ok = qi::ValidateBatchIds(ids); !ok) return std::unexpected(ok.error());
    std::vector<BatchEntryResult<void>> results;
    json list = json::array();
    std::vector<std::string_view> sent_ids;
    for (const auto& e : entries) {
      results.push_back({e.id, {}});
      if (auto ok =
              qi::ValidateVisibilityTimeout(e.visibility_timeout_seconds, "VisibilityTimeout");
          !ok) {
        results.back().result = ok;
        continue;
      }
      list.push_back({{"Id", e.id},
                      {"ReceiptHandle", e.receipt_handle},
                      {"VisibilityTimeout", e.visibility_timeout_seconds}});
      sent_ids.push_back(e.id);
    }
    if (!list.empty()) {
      auto sent = BatchCall("ChangeMessageVisibilityBatch", list, sent_ids);
      if (!sent) return std::unexpected(sent.error());
      for (auto& r : *sent) {
        for (auto& out : results) {
          if (out.id == r.id) out.result = r.result;
        }
      }
    }
    return results;
  }

  Result<QueueStats> GetQueueAttributes() override {
    auto response =
        api_->Call("GetQueueAttributes", {{"QueueUrl", url_}, {"AttributeNames", {"All"}}});
    if (!response) return std::unexpected(response.error());
    const json& attrs = JsonObject(*response, "Attributes");
    QueueStats stats;
    stats.approximate_number_of_messages = ToInt64(attrs, "ApproximateNumberOfMessages");
    stats.approximate_number_of_messages_not_visible =
        ToInt64(attrs, "ApproximateNumberOfMessagesNotVisible");
    stats.approximate_number_of_messages_delayed =
        ToInt64(attrs, "ApproximateNumberOfMessagesDelayed");
    stats.approximate_age_of_oldest_message_seconds = 0;  // a CloudWatch metric only
    stats.attributes = AttributesFromSqs(attrs);
    {
      std::lock_guard lock(attributes_mu_);
      attributes_ = stats.attributes;
    }
    return stats;
  }

  Result<void> PurgeQueue() override {
    auto response = api_->Call("PurgeQueue", {{"QueueUrl", url_}});
    if (!response) return std::unexpected(response.error());
    return {};
  }

 private:
  struct PendingDelete {
    std::string handle;
    std::optional<Result<void>> result;
  };

  QueueAttributes Attributes() {
    std::lock_guard lock(attributes_mu_);
    return attributes_;
  }

  Result<SendMessageResult> CheckSent(const json& response, const SendMessageRequest& request) {
    SendMessageResult result;
    result.message_id = JsonString(response, "MessageId");
    result.md5_of_body = JsonString(response, "MD5OfMessageBody");
    if (result.md5_of_body != Md5HexBytes(request.body)) {
      return MakeError(ErrorKind::kTransient, "ChecksumMismatch",
                       fmt::format("SQS SendMessage: MD5OfMessageBody {} does not match the body",
                                   result.md5_of_body));
    }
    if (!request.attributes.empty() &&
        JsonString(response, "MD5OfMessageAttributes") != SqsAttributesMd5(request.attributes)) {
      return MakeError(ErrorKind::kTransient, "ChecksumMismatch",
                       "SQS SendMessage: MD5OfMessageAttributes does not match the attributes");
    }
    return result;
  }

  Result<void> DeleteOne(std::string_view receipt_handle) {
    auto response =
        api_->Call("DeleteMessage", {{"QueueUrl", url_}, {"ReceiptHandle", receipt_handle}});
    if (!response) return std::unexpected(response.error());
    return {};
  }

  void SendDeletes(const std::vector<std::shared_ptr<PendingDelete>>& batch) {
    if (batch.size() == 1) {
      batch[0]->result = DeleteOne(batch[0]->handle);
      return;
    }
    json list = json::array();
    std::vector<std::string> ids;
    for (size_t i = 0; i < batch.size(); ++i) {
      ids.push_back(fmt::format("d{}", i));
      list.push_back({{"Id", ids.back()}, {"ReceiptHandle", batch[i]->handle}});
    }
    std::vector<std::string_view> views(ids.begin(), ids.end());
    auto results = BatchCall("DeleteMessageBatch", list, views);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!results) {
        batch[i]->result = std::unexpected(results.error());
      } else {
        batch[i]->result = (*results)[i].result;
      }
    }
  }

  // A batch call whose entries succeed or fail on their own; results in the
  // order of `ids`.
  Result<std::vector<BatchEntryResult<void>>> BatchCall(std::string_view action, const json& list,
                                                        const std::vector<std::string_view>& ids) {
    auto response = api_->Call(action, {{"QueueUrl", url_}, {"Entries", list}});
    if (!response) return std::unexpected(response.error());
    std::vector<BatchEntryResult<void>> results;
    for (auto id : ids) {
      results.push_back({std::string(id), MakeError(ErrorKind::kTransient, "ServiceUnavailable",
                                                    "SQS did not report this batch entry")});
    }
    auto find = [&](const std::string& id) -> BatchEntryResult<void>* {
      for (auto& r : results) {
        if (r.id == id) return &r;
      }
      return nullptr;
    };
    for (const auto& ok : JsonArray(*response, "Successful")) {
      if (auto* r = find(JsonString(ok, "Id"))) r->result = {};
    }
    for (const auto& failed : JsonArray(*response, "Failed")) {
      if (auto* r = find(JsonString(failed, "Id")))
        r->result = std::unexpected(BatchEntryError(failed));
    }
    return results;
  }

  std::shared_ptr<SqsApi> api_;
  std::string name_;
  std::string url_;
  std::mutex attributes_mu_;
  QueueAttributes attributes_;
  std::mutex receive_mu_;
  aws::CurlHandle receive_handle_;
  std::mutex delete_mu_;
  std::condition_variable delete_cv_;
  std::vector<std::shared_ptr<PendingDelete>> delete_waiting_;
  bool delete_leader_ = false;
};

class SqsService final : public SqsQueueService {
 public:
  explicit SqsService(SqsOptions options) : api_(std::make_shared<SqsApi>(std::move(options))) {}

  Result<std::shared_ptr<Queue>> CreateQueue(std::string_view name,
                                             const QueueAttributes& attributes) override {
    if (auto ok = qi::ValidateQueueName(name); !ok) return std::unexpected(ok.error());
    if (auto ok = qi::ValidateQueueAttributes(name, attributes); !ok) {
      return std::unexpected(ok.error());
    }
    std::string dlq_arn;
    if (attributes.redrive_policy) {
      auto arn = QueueArn(attributes.redrive_policy->dead_letter_queue);
      if (!arn) return std::unexpected(arn.error());
      dlq_arn = *arn;
    }
    json body = {{"QueueName", name}, {"Attributes", AttributesToSqs(attributes, dlq_arn)}};
    auto response = api_->Call("CreateQueue", body);
    if (!response) return std::unexpected(response.error());
    std::string url = JsonString(*response, "QueueUrl");
    Remember(name, url);
    auto queue = std::make_shared<SqsQueue>(api_, std::string(name), url, attributes);
    // SQS refuses differing attributes itself; emulators may not, so compare.
    auto stats = queue->GetQueueAttributes();
    if (!stats) return std::unexpected(stats.error());
    if (!qi::SameAttributes(stats->attributes, attributes)) {
      return InvalidInput("QueueAlreadyExists",
                          fmt::format("queue \"{}\" exists with other attributes", name),
                          "QueueName");
    }
    return queue;
  }

  Result<void> SetQueueAttributes(std::string_view name,
                                  const QueueAttributes& attributes) override {
    if (auto ok = qi::ValidateQueueAttributes(name, attributes); !ok) return ok;
    auto url = QueueUrl(name);
    if (!url) return std::unexpected(url.error());
    std::string dlq_arn;
    if (attributes.redrive_policy) {
      auto arn = QueueArn(attributes.redrive_policy->dead_letter_queue);
      if (!arn) return std::unexpected(arn.error());
      dlq_arn = *arn;
    }
    json attrs = AttributesToSqs(attributes, dlq_arn);
    if (!attributes.redrive_policy) attrs["RedrivePolicy"] = "";
    auto response = api_->Call("SetQueueAttributes", {{"QueueUrl", *url}, {"Attributes", attrs}});
    if (!response) return std::unexpected(response.error());
    return {};
  }

  Result<std::shared_ptr<Queue>> GetQueue(std::string_view name) override {
    if (auto ok = qi::ValidateQueueName(name); !ok) return std::unexpected(ok.error());
    auto url = QueueUrl(name);
    if (!url) return std::unexpected(url.error());
    return Open(name, *url);
  }

  Result<std::vector<std::string>> ListQueues() override {
    std::vector<std::string> names;
    std::string next;
    do {
      json body = {{"MaxResults", 1000}};
      if (!next.empty()) body["NextToken"] = next;
      auto response = api_->Call("ListQueues", body);
      if (!response) return std::unexpected(response.error());
      for (const auto& url : JsonArray(*response, "QueueUrls")) {
        if (!url.is_string()) continue;
        const std::string& u = url.get_ref<const std::string&>();
        names.push_back(u.substr(u.rfind('/') + 1));
      }
      next = JsonString(*response, "NextToken");
    } while (!next.empty());
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<std::shared_ptr<Queue>> GetQueueByUrl(std::string_view url,
                                               std::string_view field) override {
    auto parsed = ParseSqsQueueUrl(url, true, field);
    if (!parsed) return std::unexpected(parsed.error());
    Remember(parsed->name, parsed->url);
    return Open(parsed->name, parsed->url);
  }

  Result<std::string> QueueUrl(std::string_view name) override {
    {
      std::lock_guard lock(mu_);
      if (auto it = urls_.find(std::string(name)); it != urls_.end()) return it->second;
    }
    auto response = api_->Call("GetQueueUrl", {{"QueueName", name}});
    if (!response) return std::unexpected(response.error());
    std::string url = JsonString(*response, "QueueUrl");
    Remember(name, url);
    return url;
  }

  Result<std::string> QueueArn(std::string_view name) override {
    auto url = QueueUrl(name);
    if (!url) return std::unexpected(url.error());
    auto response =
        api_->Call("GetQueueAttributes", {{"QueueUrl", *url}, {"AttributeNames", {"QueueArn"}}});
    if (!response) return std::unexpected(response.error());
    return JsonString(JsonObject(*response, "Attributes"), "QueueArn");
  }

  Result<void> EnableManagedSse(std::string_view name) override {
    auto url = QueueUrl(name);
    if (!url) return std::unexpected(url.error());
    auto response =
        api_->Call("SetQueueAttributes",
                   {{"QueueUrl", *url}, {"Attributes", {{"SqsManagedSseEnabled", "true"}}}});
    if (!response) return std::unexpected(response.error());
    return {};
  }

 private:
  void Remember(std::string_view name, const std::string& url) {
    std::lock_guard lock(mu_);
    urls_[std::string(name)] = url;
  }

  Result<std::shared_ptr<Queue>> Open(std::string_view name, const std::string& url) {
    auto queue = std::make_shared<SqsQueue>(api_, std::string(name), url, QueueAttributes{});
    auto stats = queue->GetQueueAttributes();  // learns the attributes
    if (!stats) return std::unexpected(stats.error());
    return queue;
  }

  std::shared_ptr<SqsApi> api_;
  std::mutex mu_;
  std::map<std::string, std::string> urls_;
};

bool ValidName(std::string_view name) { return static_cast<bool>(qi::ValidateQueueName(name)); }

}  // namespace

std::string SqsAttributesMd5(const MessageAttributes& attributes) {
  if (attributes.empty()) return {};
  std::string buffer;
  auto put_length = [&](size_t n) {
    for (int shift = 24; shift >= 0; shift -= 8) buffer += static_cast<char>((n >> shift) & 0xFF);
  };
  auto put = [&](std::string_view s) {
    put_length(s.size());
    buffer.append(s);
  };
  for (const auto& [name, value] : attributes) {  // std::map: sorted by name (bytes)
    put(name);
    put(value.data_type);
    buffer += static_cast<char>(value.data_type.starts_with("Binary") ? 2 : 1);
    put(value.value);
  }
  return Md5Hex(buffer);
}

Result<SqsQueueUrl> ParseSqsQueueUrl(std::string_view url, bool custom_endpoint,
                                     std::string_view field) {
  auto bad = [&](std::string_view why) {
    return InvalidInput(
        "InvalidParameterValue",
        fmt::format("{} must be a queue URL like https://sqs.{{region}}.amazonaws.com/"
                    "{{account-id}}/{{queue-name}} ({}), got \"{}\"",
                    field, why, url),
        std::string(field));
  };
  std::string_view rest;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return bad("http:// or https://");
  }
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return bad("no path");
  std::string_view host = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  auto last = path.rfind('/');
  if (last == std::string_view::npos) return bad("the path must be /{account-id}/{queue-name}");
  SqsQueueUrl out;
  out.url = std::string(url);
  out.name = std::string(path.substr(last + 1));
  std::string_view before = path.substr(0, last);
  out.account_id = std::string(
      before.substr(before.rfind('/') == std::string_view::npos ? 0 : before.rfind('/') + 1));
  if (!ValidName(out.name)) return bad("queue names are 1–80 of [A-Za-z0-9_-]");
  const bool aws_host = host.ends_with(".amazonaws.com");
  if (aws_host) {
    // sqs.<region>.amazonaws.com (or <region>.queue.amazonaws.com, the legacy form)
    if (!url.starts_with("https://") || !host.starts_with("sqs.")) {
      return bad("AWS queue URLs are https://sqs.<region>.amazonaws.com/...");
    }
    out.region =
        std::string(host.substr(4, host.size() - 4 - std::string_view(".amazonaws.com").size()));
    if (out.region.empty() || before.find('/') != std::string_view::npos ||
        out.account_id.size() != 12 ||
        !std::all_of(out.account_id.begin(), out.account_id.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return bad("the account id is 12 digits");
    }
  } else if (!custom_endpoint) {
    return bad("a host other than sqs.<region>.amazonaws.com needs AWS_ENDPOINT");
  }
  if (out.account_id.empty()) return bad("the account id is missing");
  return out;
}

std::shared_ptr<SqsQueueService> NewSqsQueueService(SqsOptions options) {
  return std::make_shared<SqsService>(std::move(options));
}

Result<QueuePair> OpenSqsQueuePair(SqsQueueService& service, std::string_view regular_url,
                                   std::string_view priority_url) {
  QueuePair pair;
  auto regular = service.GetQueueByUrl(regular_url, "SQS_REGULAR_QUEUE_URL");
  if (!regular) return std::unexpected(regular.error());
  auto priority = service.GetQueueByUrl(priority_url, "SQS_PRIORITY_QUEUE_URL");
  if (!priority) return std::unexpected(priority.error());
  pair.regular = *regular;
  pair.priority = *priority;
  for (auto [queue, dlq] :
       {std::pair{pair.regular, &pair.regular_dlq}, std::pair{pair.priority, &pair.priority_dlq}}) {
    auto found = service.GetQueue(DeadLetterQueueName(queue->name()));
    if (!found) {
      Error e = found.error();
      e.message = fmt::format(
          "the dead-letter queue {} of {} is missing ({}); run `postline "
          "queues create`",
          DeadLetterQueueName(queue->name()), queue->name(), e.message);
      return std::unexpected(e);
    }
    *dlq = *found;
  }
  return pair;
}

}  // namespace postline

namespace postline {

std::vector<PermissionProbe> ProbeSqsPermissions(aws::AwsClient& client,
                                                 std::string_view queue_url) {
  const std::string url(queue_url);
  const std::string name = url.substr(url.rfind('/') + 1);
  const std::string bogus_handle = "postline-health-probe-invalid-receipt-handle";
  const std::vector<std::pair<std::string, json>> probes = {
      {"GetQueueUrl", {{"QueueName", name}}},
      {"GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"QueueArn"}}}},
      {"SendMessage", {{"QueueUrl", url}, {"MessageBody", ""}, {"DelaySeconds", 901}}},
      {"ReceiveMessage",
       {{"QueueUrl", url},
        {"MaxNumberOfMessages", 11},
        {"WaitTimeSeconds", 0},
        {"VisibilityTimeout", 0}}},
      {"DeleteMessage", {{"QueueUrl", url}, {"ReceiptHandle", bogus_handle}}},
      {"ChangeMessageVisibility",
       {{"QueueUrl", url}, {"ReceiptHandle", bogus_handle}, {"VisibilityTimeout", 0}}},
  };
  std::vector<PermissionProbe> out;
  for (const auto& [action, body] : probes) {
    aws::HttpRequest request;
    request.headers = {"Content-Type: application/x-amz-json-1.0",
                       fmt::format("X-Amz-Target: AmazonSQS.{}", action)};
    request.body = body.dump();
    request.timeout_ms = 10000;
    aws::ServiceError se;
    auto response = client.Send(request, nullptr, {}, &se);
    PermissionProbe p{"sqs:" + action, true, "allowed"};
    if (!response) {
      const bool denied = se.code == "AccessDenied" || se.code == "AccessDeniedException" ||
                          se.code == "UnauthorizedOperation" || se.query_code == "AccessDenied";
      const bool unreachable = se.http_status == 0 || aws::IsRetryableError(se);
      p.allowed = !denied && !unreachable;
      p.detail = response.error().ToString();
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace postline
