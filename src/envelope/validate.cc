// ValidateEmail: the checks every envelope passes before it is queued and
// again before it is composed.
#include <fmt/format.h>

#include <array>
#include <string>
#include <string_view>

#include "address_internal.h"
#include "postline/envelope.h"
#include "text.h"
#include "validate_internal.h"

namespace postline {
namespace envelope_internal {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// RFC 2045 §5.1 token characters.
bool IsTokenChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7F) return false;
  return std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

Result<void> CheckAddresses(const std::vector<Address>& list, std::string_view name) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (auto ok = ValidateAddress(list[i], fmt::format("{}[{}]", name, i)); !ok) return ok;
  }
  return {};
}

}  // namespace

// Longest unfoldable header line we accept: RFC 5322's 998 octets less room
// for the folding white space the composer may add.
constexpr std::size_t kMaxHeaderWordLine = 900;

bool IsReservedHeader(std::string_view name) {
  static constexpr std::array<std::string_view, 11> kReserved = {
      "From", "To",     "Cc",         "Bcc",          "Reply-To",   "Subject",
      "Date", "Sender", "Message-ID", "MIME-Version", "Return-Path"};
  for (std::string_view reserved : kReserved) {
    if (EqualsIgnoreCase(name, reserved)) return true;
  }
  return name.size() >= 8 && EqualsIgnoreCase(name.substr(0, 8), "Content-");
}

Result<void> ValidateHeaderName(std::string_view name, std::string_view field) {
  if (auto error = CheckNoLineBreak(name, field)) return Fail(error);
  if (name.empty()) {
    return InvalidInput("invalid_header_name",
                        fmt::format("{} is empty; allowed: printable ASCII except ':'", field),
                        std::string(field));
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ':') {
      return InvalidInput("invalid_header_name",
                          fmt::format("{} {} is not a header name; allowed: printable ASCII "
                                      "except ':' and space (RFC 5322 ftext)",
                                      field, Quoted(name)),
                          std::string(field));
    }
  }
  if (IsReservedHeader(name)) {
    return InvalidInput("reserved_header",
                        fmt::format("{} {} is set by postline and not allowed in headers; "
                                    "allowed: any other field name such as X-Invoice-Id",
                                    field, Quoted(name)),
                        std::string(field));
  }
  return {};
}

Result<void> ValidateContentType(std::string_view content_type, std::string_view field) {
  if (auto error = CheckNoLineBreak(content_type, field)) return Fail(error);
  const std::size_t slash = content_type.find('/');
  bool ok = slash != std::string_view::npos && slash > 0 && slash + 1 < content_type.size();
  if (ok) {
    for (std::size_t i = 0; i < content_type.size(); ++i) {
      if (i != slash && !IsTokenChar(content_type[i])) ok = false;
    }
  }
  if (!ok) {
    return InvalidInput("invalid_content_type",
                        fmt::format("{} {} is not a media type; allowed: \"type/subtype\" such "
                                    "as \"application/pdf\", without parameters",
                                    field, Quoted(content_type)),
                        std::string(field));
  }
  return {};
}

Result<void> ValidateEnvelopeId(std::string_view id) {
  if (id.size() > kMaxIdLength) {
    return InvalidInput(
        "invalid_id",
        fmt::format("id is {} characters; allowed: at most {}", id.size(), kMaxIdLength), "id");
  }
  for (char c : id) {
    if (!(IsAsciiAlpha(c) || IsAsciiDigit(c) || c == '-' || c == '_' || c == '.')) {
      return InvalidInput("invalid_id",
                          fmt::format("id {} has a character outside the allowed set; "
                                      "allowed: letters, digits, '-', '_' and '.'",
                                      Quoted(id)),
                          "id");
    }
  }
  if (!id.empty() &&
      (id.front() == '.' || id.back() == '.' || id.find("..") != std::string_view::npos)) {
    return InvalidInput(
        "invalid_id",
        fmt::format("id {} must not start or end with '.' or contain \"..\"", Quoted(id)), "id");
  }
  return {};
}

}  // namespace envelope_internal

Result<void> ValidateEmail(const Email& email, const EnvelopeLimits& limits) {
  using envelope_internal::CheckNoLineBreak;
  using envelope_internal::CheckUtf8;
  using envelope_internal::Fail;

  if (auto ok = envelope_internal::ValidateEnvelopeId(email.id); !ok) return ok;

  if (email.from.email.empty()) {
    return InvalidInput("missing_field",
                        "from is required; allowed: an address \"Name <local@domain>\"", "from");
  }
  if (auto ok = envelope_internal::ValidateAddress(email.from, "from"); !ok) return ok;
  for (const auto& [list, name] :
       {std::pair{&email.to, "to"}, std::pair{&email.cc, "cc"}, std::pair{&email.bcc, "bcc"},
        std::pair{&email.reply_to, "reply_to"}}) {
    if (auto ok = envelope_internal::CheckAddresses(*list, name); !ok) return ok;
  }
  const std::size_t recipients = email.to.size() + email.cc.size() + email.bcc.size();
  if (recipients == 0) {
    return InvalidInput("no_recipients",
                        "to, cc and bcc are all empty; allowed: at least one recipient", "to");
  }
  if (recipients > limits.max_recipients) {
    return InvalidInput("too_many_recipients",
                        fmt::format("to, cc and bcc hold {} recipients; allowed: at most {}",
                                    recipients, limits.max_recipients),
                        "to");
  }

  if (auto error = CheckNoLineBreak(email.subject, "subject")) return Fail(error);
  if (auto error = CheckUtf8(email.subject, "subject")) return Fail(error);
  if (email.text.empty() && email.html.empty()) {
    return InvalidInput("missing_body", "text and html are both empty; allowed: either or both",
                        "text");
  }
  if (auto error = CheckUtf8(email.text, "text")) return Fail(error);
  if (auto error = CheckUtf8(email.html, "html")) return Fail(error);

  std::size_t total = email.subject.size() + email.text.size() + email.html.size();
  for (std::size_t i = 0; i < email.attachments.size(); ++i) {
    const Attachment& attachment = email.attachments[i];
    const std::string filename_field = fmt::format("attachments[{}].filename", i);
    if (attachment.filename.empty()) {
      return InvalidInput("missing_field",
                          fmt::format("{} is empty; allowed: a file name such as "
                                      "\"invoice.pdf\"",
                                      filename_field),
                          filename_field);
    }
    if (auto error = CheckNoLineBreak(attachment.filename, filename_field)) return Fail(error);
    if (auto error = CheckUtf8(attachment.filename, filename_field)) return Fail(error);
    if (auto ok = envelope_internal::ValidateContentType(
            attachment.content_type, fmt::format("attachments[{}].content_type", i));
        !ok) {
      return ok;
    }
    total += attachment.content.size() + attachment.filename.size();
  }

  for (std::size_t i = 0; i < email.headers.size(); ++i) {
    const auto& [name, value] = email.headers[i];
    if (auto ok = envelope_internal::ValidateHeaderName(name, fmt::format("headers[{}]", i)); !ok) {
      return ok;
    }
    const std::string value_field = fmt::format("headers.{}", name);
    if (auto error = CheckNoLineBreak(value, value_field)) return Fail(error);
    if (auto error = CheckUtf8(value, value_field)) return Fail(error);
    // Header lines may be folded only at white space (RFC 5322 §2.2.3), and
    // no line may exceed 998 octets (§2.1.1): a word that can't fit is refused
    // here rather than failing later in the worker.
    std::size_t word = 0;
    for (std::size_t k = 0; k <= value.size(); ++k) {
      if (k == value.size() || value[k] == ' ' || value[k] == '\t') {
        if (name.size() + 2 + word > envelope_internal::kMaxHeaderWordLine) {
          return InvalidInput("header_too_long",
                              fmt::format("{} has a word of {} bytes that cannot be folded; "
                                          "allowed: words of at most {} bytes",
                                          value_field, word,
                                          envelope_internal::kMaxHeaderWordLine - name.size() - 2),
                              value_field);
        }
        word = 0;
      } else {
        ++word;
      }
    }
    total += name.size() + value.size();
  }

  if (email.priority < kMinPriority || email.priority > kMaxPriority) {
    return InvalidInput("invalid_priority",
                        fmt::format("priority {} is out of range; allowed: integer {}–{}",
                                    email.priority, kMinPriority, kMaxPriority),
                        "priority");
  }
  if (auto error = CheckUtf8(email.idempotency_key, "idempotency_key")) return Fail(error);
  if (envelope_internal::Utf8Length(email.idempotency_key) >
      envelope_internal::kMaxIdempotencyKeyLength) {
    return InvalidInput("invalid_idempotency_key",
                        fmt::format("idempotency_key is {} characters; allowed: at most {}",
                                    envelope_internal::Utf8Length(email.idempotency_key),
                                    envelope_internal::kMaxIdempotencyKeyLength),
                        "idempotency_key");
  }

  if (total > limits.max_total_bytes) {
    return InvalidInput("too_large",
                        fmt::format("the envelope's content is {} bytes; allowed: at most {} "
                                    "bytes (subject, bodies, attachments and headers)",
                                    total, limits.max_total_bytes),
                        email.attachments.empty() ? "text" : "attachments");
  }
  return {};
}

}  // namespace postline
