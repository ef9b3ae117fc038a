#include "postline/queue_backend.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <random>
#include <set>

namespace postline {
namespace {

// Decodes one UTF-8 sequence at `offset` (strict: no overlong forms, no
// encoded surrogates, nothing above U+10FFFF). Returns the code point and
// advances `offset`, or std::nullopt for an invalid sequence.
std::optional<char32_t> DecodeUtf8(std::string_view s, std::size_t& offset) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(offset);
  if (lead < 0x80) {
    ++offset;
    return lead;
  }
  int length = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (offset + length > s.size()) return std::nullopt;
  for (int i = 1; i < length; ++i) {
    const unsigned char c = byte(offset + i);
    if ((c & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  offset += length;
  return cp;
}

bool AllowedCharacter(char32_t cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

// Checks `text` against SQS's character set; on failure returns a message
// naming the problem and its byte offset.
std::optional<std::string> FindBadCharacter(std::string_view text) {
  const auto refused = [](char32_t cp, std::size_t at) {
    return fmt::format(
        "has character U+{:04X} at byte offset {}; allowed are #x9 #xA #xD #x20-#xD7FF "
        "#xE000-#xFFFD #x10000-#x10FFFF",
        static_cast<std::uint32_t>(cp), at);
  };
  std::size_t offset = 0;
  while (offset < text.size()) {
    const std::size_t at = offset;
    // ASCII (most of an envelope: JSON and base64) without decoding.
    if (const auto byte = static_cast<unsigned char>(text[at]); byte < 0x80) {
      if (!AllowedCharacter(byte)) return refused(byte, at);
      ++offset;
      continue;
    }
    const std::optional<char32_t> cp = DecodeUtf8(text, offset);
    if (!cp) return fmt::format("is not valid UTF-8 at byte offset {}", at);
    if (!AllowedCharacter(*cp)) return refused(*cp, at);
  }
  return std::nullopt;
}

bool IsIdCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool IsIdentifier(std::string_view s, std::size_t max_length) {
  if (s.empty() || s.size() > max_length) return false;
  for (char c : s) {
    if (!IsIdCharacter(c)) return false;
  }
  return true;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    };
    if (lower(s[i]) != lower(prefix[i])) return false;
  }
  return true;
}

// SQS attribute names: 1–256 of [A-Za-z0-9_.-], no leading/trailing period,
// no "..", not starting with "AWS." or "Amazon." (any case).
std::optional<std::string> CheckAttributeName(std::string_view name) {
  if (name.empty() || name.size() > 256) return "must be 1-256 characters";
  for (char c : name) {
    if (!IsIdCharacter(c) && c != '.') {
      return "may contain only A-Z a-z 0-9 '_' '-' '.'";
    }
  }
  if (name.front() == '.' || name.back() == '.') return "must not start or end with '.'";
  if (name.find("..") != std::string_view::npos) return "must not contain '..'";
  if (StartsWithNoCase(name, "AWS.") || StartsWithNoCase(name, "Amazon.")) {
    return "must not start with the reserved prefixes 'AWS.' or 'Amazon.'";
  }
  return std::nullopt;
}

// A decimal number as SQS accepts it: [-+]digits[.digits][(e|E)[-+]digits],
// at most 38 significant digits.
bool IsSqsNumber(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  int digits = 0;
  int significant = 0;
  bool leading = true;
  const auto take_digits = [&] {
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (s[i] != '0') leading = false;
      if (!leading) ++significant;
      ++digits;
      ++i;
    }
  };
  take_digits();
  if (i < s.size() && s[i] == '.') {
    ++i;
    take_digits();
  }
  if (digits == 0 || significant > 38) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 3) return false;
  }
  return i == s.size();
}

void FillRandom(unsigned char* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) == 1) return;
  // OpenSSL's generator failed to seed (should not happen on Linux); the
  // kernel's generator behind random_device is still unpredictable.
  std::random_device device;
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<unsigned char>(device());
}

std::string Hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xF]);
  }
  return out;
}

}  // namespace

Result<void> ValidateMessageBody(std::string_view body) {
  if (body.empty()) {
    return InvalidInput("InvalidMessageContents",
                        "message body is empty; SQS requires at least 1 character", "MessageBody");
  }
  if (std::optional<std::string> bad = FindBadCharacter(body)) {
    return InvalidInput("InvalidMessageContents", fmt::format("message body {}", *bad),
                        "MessageBody");
  }
  return {};
}

std::string Md5Hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_md5(), nullptr) != 1) {
    return {};
  }
  return Hex(digest.data(), length);
}

namespace queue_backend {

std::unexpected<Error> InvalidParameter(std::string message, std::string field) {
  return InvalidInput("InvalidParameterValue", std::move(message), std::move(field));
}

std::unexpected<Error> QueueDoesNotExist(std::string_view name) {
  return MakeError(ErrorKind::kNotFound, "QueueDoesNotExist",
                   fmt::format("queue '{}' does not exist", name), "QueueName");
}

std::unexpected<Error> ReceiptHandleIsInvalid(std::string_view why) {
  return InvalidInput("ReceiptHandleIsInvalid", fmt::format("receipt handle {}", why),
                      "ReceiptHandle");
}

std::unexpected<Error> MessageNotInflight() {
  return InvalidInput("MessageNotInflight",
                      "the message is not in flight (it is visible or delayed); only a received "
                      "message within its visibility timeout can change visibility",
                      "ReceiptHandle");
}

std::unexpected<Error> InternalError(std::string message) {
  return MakeError(ErrorKind::kInternal, "InternalError", std::move(message));
}

Result<void> ValidateQueueName(std::string_view name) {
  if (!IsIdentifier(name, 80)) {
    return InvalidParameter(
        fmt::format("queue name '{}' must be 1-80 characters of A-Z a-z 0-9 '-' '_' (standard "
                    "queues only)",
                    name),
        "QueueName");
  }
  return {};
}

Result<void> ValidateQueueAttributes(std::string_view queue_name,
                                     const QueueAttributes& attributes) {
  const auto range = [](int value, int min, int max, std::string_view field,
                        std::string_view unit) -> Result<void> {
    if (value < min || value > max) {
      return InvalidParameter(
          fmt::format("{} is {}; allowed are {}-{} {}", field, value, min, max, unit),
          std::string(field));
    }
    return {};
  };
  if (auto r = range(attributes.visibility_timeout_seconds, 0, kMaxVisibilityTimeoutSeconds,
                     "VisibilityTimeout", "seconds");
      !r) {
    return r;
  }
  if (auto r = range(attributes.message_retention_seconds, kMinRetentionSeconds,
                     kMaxRetentionSeconds, "MessageRetentionPeriod", "seconds");
      !r) {
    return r;
  }
  if (auto r = range(attributes.delay_seconds, 0, kMaxDelaySeconds, "DelaySeconds", "seconds");
      !r) {
    return r;
  }
  if (auto r = range(attributes.maximum_message_size, kMinMaximumMessageSize,
                     kMaxMaximumMessageSize, "MaximumMessageSize", "bytes");
      !r) {
    return r;
  }
  if (auto r = range(attributes.receive_message_wait_time_seconds, 0, kMaxWaitTimeSeconds,
                     "ReceiveMessageWaitTimeSeconds", "seconds");
      !r) {
    return r;
  }
  if (attributes.redrive_policy) {
    const RedrivePolicy& policy = *attributes.redrive_policy;
    if (auto r = range(policy.max_receive_count, 1, 1000, "RedrivePolicy.maxReceiveCount", "");
        !r) {
      return r;
    }
    if (!IsIdentifier(policy.dead_letter_queue, 80)) {
      return InvalidParameter(
          fmt::format("RedrivePolicy dead-letter queue name '{}' must be 1-80 characters of "
                      "A-Z a-z 0-9 '-' '_'",
                      policy.dead_letter_queue),
          "RedrivePolicy.deadLetterTargetArn");
    }
    if (policy.dead_letter_queue == queue_name) {
      return InvalidParameter(
          fmt::format("queue '{}' cannot be its own dead-letter queue", queue_name),
          "RedrivePolicy.deadLetterTargetArn");
    }
  }
  return {};
}

bool SameAttributes(const QueueAttributes& a, const QueueAttributes& b) {
  const bool same_redrive =
      a.redrive_policy.has_value() == b.redrive_policy.has_value() &&
      (!a.redrive_policy ||
       (a.redrive_policy->dead_letter_queue == b.redrive_policy->dead_letter_queue &&
        a.redrive_policy->max_receive_count == b.redrive_policy->max_receive_count));
  return same_redrive && a.visibility_timeout_seconds == b.visibility_timeout_seconds &&
         a.message_retention_seconds == b.message_retention_seconds &&
         a.delay_seconds == b.delay_seconds && a.maximum_message_size == b.maximum_message_size &&
         a.receive_message_wait_time_seconds == b.receive_message_wait_time_seconds;
}

Result<void> ValidateVisibilityTimeout(int seconds, std::string_view field) {
  if (seconds < 0 || seconds > kMaxVisibilityTimeoutSeconds) {
    return InvalidParameter(fmt::format("{} is {}; allowed are 0-{} seconds", field, seconds,
                                        kMaxVisibilityTimeoutSeconds),
                            std::string(field));
  }
  return {};
}

Result<void> ValidateSendMessage(const SendMessageRequest& request,
                                 const QueueAttributes& queue_attributes) {
  if (auto r = ValidateMessageBody(request.body); !r) return r;
  if (request.delay_seconds &&
      (*request.delay_seconds < 0 || *request.delay_seconds > kMaxDelaySeconds)) {
    return InvalidParameter(fmt::format("DelaySeconds is {}; allowed are 0-{} seconds",
                                        *request.delay_seconds, kMaxDelaySeconds),
                            "DelaySeconds");
  }
  if (request.attributes.size() > static_cast<std::size_t>(kMaxMessageAttributes)) {
    return InvalidParameter(fmt::format("{} message attributes; at most {} are allowed",
                                        request.attributes.size(), kMaxMessageAttributes),
                            "MessageAttributes");
  }
  std::size_t size = request.body.size();
  for (const auto& [name, value] : request.attributes) {
    const std::string field = fmt::format("MessageAttribute.{}", name);
    if (std::optional<std::string> bad = CheckAttributeName(name)) {
      return InvalidParameter(fmt::format("message attribute name '{}' {}", name, *bad), field);
    }
    const std::string_view type = value.data_type;
    std::string_view base = type.substr(0, type.find('.'));
    const bool custom = type.find('.') != std::string_view::npos;
    if ((base != "String" && base != "Number" && base != "Binary") || type.size() > 256 ||
        (custom &&
         (type.size() == base.size() + 1 || !IsIdentifier(type.substr(base.size() + 1), 256)))) {
      return InvalidParameter(
          fmt::format("message attribute '{}' has data type '{}'; allowed are String, Number or "
                      "Binary, optionally followed by '.' and a custom label",
                      name, type),
          field);
    }
    if (value.value.empty()) {
      return InvalidParameter(
          fmt::format("message attribute '{}' must have a non-empty value", name), field);
    }
    if (base == "String") {
      if (std::optional<std::string> bad = FindBadCharacter(value.value)) {
        return InvalidParameter(fmt::format("message attribute '{}' value {}", name, *bad), field);
      }
    } else if (base == "Number" && !IsSqsNumber(value.value)) {
      return InvalidParameter(
          fmt::format("message attribute '{}' value '{}' is not a number (at most 38 "
                      "significant digits)",
                      name, value.value),
          field);
    }
    size += name.size() + value.data_type.size() + value.value.size();
  }
  if (size > static_cast<std::size_t>(queue_attributes.maximum_message_size)) {
    return InvalidInput(
        "MessageTooLong",
        fmt::format("message is {} bytes (body plus attribute names, types and values); the "
                    "queue's MaximumMessageSize is {} bytes",
                    size, queue_attributes.maximum_message_size),
        "MessageBody");
  }
  return {};
}

int EffectiveDelaySeconds(const SendMessageRequest& request, const QueueAttributes& attributes) {
  return request.delay_seconds.value_or(attributes.delay_seconds);
}

Result<ReceiveParameters> ResolveReceive(const ReceiveMessageRequest& request,
                                         const QueueAttributes& attributes) {
  ReceiveParameters out;
  out.max_number_of_messages = request.max_number_of_messages;
  if (out.max_number_of_messages < 1 || out.max_number_of_messages > kMaxBatchEntries) {
    return InvalidParameter(fmt::format("MaxNumberOfMessages is {}; allowed are 1-{}",
                                        out.max_number_of_messages, kMaxBatchEntries),
                            "MaxNumberOfMessages");
  }
  out.visibility_timeout_seconds =
      request.visibility_timeout_seconds.value_or(attributes.visibility_timeout_seconds);
  if (auto r = ValidateVisibilityTimeout(out.visibility_timeout_seconds, "VisibilityTimeout"); !r) {
    return std::unexpected(r.error());
  }
  out.wait_time_seconds =
      request.wait_time_seconds.value_or(attributes.receive_message_wait_time_seconds);
  if (out.wait_time_seconds < 0 || out.wait_time_seconds > kMaxWaitTimeSeconds) {
    return InvalidParameter(fmt::format("WaitTimeSeconds is {}; allowed are 0-{} seconds",
                                        out.wait_time_seconds, kMaxWaitTimeSeconds),
                            "WaitTimeSeconds");
  }
  return out;
}

Result<void> ValidateBatchIds(const std::vector<std::string_view>& ids) {
  if (ids.empty()) {
    return InvalidInput("EmptyBatchRequest", "the batch has no entries; send 1-10", "Entries");
  }
  if (ids.size() > static_cast<std::size_t>(kMaxBatchEntries)) {
    return InvalidInput("TooManyEntriesInBatchRequest",
                        fmt::format("the batch has {} entries; at most {} are allowed", ids.size(),
                                    kMaxBatchEntries),
                        "Entries");
  }
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!IsIdentifier(ids[i], 80)) {
      return InvalidInput("InvalidBatchEntryId",
                          fmt::format("batch entry id '{}' must be 1-80 characters of A-Z a-z "
                                      "0-9 '-' '_'",
                                      ids[i]),
                          fmt::format("Entries[{}].Id", i));
    }
    if (!seen.insert(ids[i]).second) {
      return InvalidInput("BatchEntryIdsNotDistinct",
                          fmt::format("batch entry id '{}' appears more than once", ids[i]),
                          fmt::format("Entries[{}].Id", i));
    }
  }
  return {};
}

std::string NewMessageId() {
  std::array<unsigned char, 16> b{};
  FillRandom(b.data(), b.size());
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  const std::string hex = Hex(b.data(), b.size());
  return fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4),
                     hex.substr(16, 4), hex.substr(20));
}

std::string NewReceiptToken() {
  std::array<unsigned char, 16> b{};
  FillRandom(b.data(), b.size());
  return Hex(b.data(), b.size());
}

std::string MakeReceiptHandle(std::string_view token, std::string_view message_id) {
  return fmt::format("{}{}", token, message_id);
}

Result<ParsedReceiptHandle> ParseReceiptHandle(std::string_view handle) {
  constexpr std::size_t kTokenLength = 32;
  if (handle.size() <= kTokenLength || handle.size() > kTokenLength + 80) {
    return ReceiptHandleIsInvalid("is malformed (wrong length)");
  }
  for (std::size_t i = 0; i < kTokenLength; ++i) {
    const char c = handle[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return ReceiptHandleIsInvalid("is malformed");
    }
  }
  const std::string_view id = handle.substr(kTokenLength);
  if (!IsIdentifier(id, 80)) return ReceiptHandleIsInvalid("is malformed");
  return ParsedReceiptHandle{std::string(handle.substr(0, kTokenLength)), std::string(id)};
}

namespace {

void PutString(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>((n >> shift) & 0xFF));
  out.append(s);
}

std::optional<std::string> TakeString(std::string_view& in) {
  if (in.size() < 4) return std::nullopt;
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(4);
  if (in.size() < n) return std::nullopt;
  std::string s(in.substr(0, n));
  in.remove_prefix(n);
  return s;
}

}  // namespace

std::string EncodeAttributes(const MessageAttributes& attributes) {
  std::string out;
  for (const auto& [name, value] : attributes) {
    PutString(out, name);
    PutString(out, value.data_type);
    PutString(out, value.value);
  }
  return out;
}

Result<MessageAttributes> DecodeAttributes(std::string_view bytes) {
  MessageAttributes out;
  while (!bytes.empty()) {
    std::optional<std::string> name = TakeString(bytes);
    std::optional<std::string> type = name ? TakeString(bytes) : std::nullopt;
    std::optional<std::string> value = type ? TakeString(bytes) : std::nullopt;
    if (!value) return InternalError("stored message attributes are corrupt");
    out[*name] = MessageAttributeValue{std::move(*type), std::move(*value)};
  }
  return out;
}

std::uint64_t ChangeNotifier::Generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

void ChangeNotifier::Notify() {
  {
    std::lock_guard lock(mu_);
    ++generation_;
  }
  cv_.notify_all();
}

ChangeNotifier::WaitResult ChangeNotifier::Wait(std::uint64_t seen,
                                                std::chrono::milliseconds timeout,
                                                const std::stop_token& stop) {
  std::unique_lock lock(mu_);
  std::stop_token token = stop;
  const bool changed = cv_.wait_for(lock, token, timeout, [&] { return generation_ != seen; });
  if (changed) return WaitResult::kChanged;
  if (stop.stop_requested()) return WaitResult::kStopped;
  return WaitResult::kTimedOut;
}

}  // namespace queue_backend
}  // namespace postline
