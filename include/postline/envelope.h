// postline/envelope.h — the e-mail envelope that producers queue and the
// worker delivers, its JSON v1 wire format, and its validation.
//
// The JSON v1 format is the contract for producers in any language; its
// schema is docs/envelope.schema.json. An envelope is opaque to the queue
// module: it travels as the message body.
//
// Thread-safety: all types are plain values; all functions are pure and
// reentrant.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"

namespace postline {

// A mailbox (RFC 5322 §3.4): an optional display name and an addr-spec.
struct Address {
  std::string name;   // display name, UTF-8, unquoted; may be empty
  std::string email;  // addr-spec "local@domain"; the domain as given (Unicode or ASCII)

  // The addr-spec with the domain converted to its ASCII (A-label) form
  // with libidn2 (IDNA 2008, UTS #46 non-transitional), e.g.
  // "info@bücher.example" → "info@xn--bcher-kva.example". Used for the SMTP
  // envelope. Errors: kInvalidInput "invalid_address" when the domain is not a
  // valid IDN.
  Result<std::string> AsciiEmail() const;

  friend bool operator==(const Address&, const Address&) = default;
};

struct Attachment {
  std::string filename;      // UTF-8; non-ASCII is encoded per RFC 2231 by the mime module
  std::string content_type;  // "type/subtype", e.g. "application/pdf"
  std::string content;       // the raw bytes (decoded from content_base64 or read from path)

  friend bool operator==(const Attachment&, const Attachment&) = default;
};

// Priorities 1–3 are the priority lane (verification, password reset,
// account notifications), 4–10 the regular lane (invoices at 5, bulk).
inline constexpr int kMinPriority = 1;
inline constexpr int kMaxPriority = 10;
inline constexpr int kDefaultPriority = 5;
inline constexpr int kInvoicePriority = 5;
inline bool IsPriorityLane(int priority) { return priority >= 1 && priority <= 3; }

struct Email {
  // Envelope id: assigned by the producer (see NewEnvelopeId) when queued;
  // the Message-ID and the sent log derive from it.
  std::string id;
  Address from;
  std::vector<Address> to;
  std::vector<Address> cc;
  std::vector<Address> bcc;
  std::vector<Address> reply_to;
  std::string subject;  // UTF-8
  std::string text;     // text/plain body, UTF-8, "\n" line ends
  std::string html;     // text/html body, UTF-8; may be empty
  std::vector<Attachment> attachments;
  // Extra header fields, in order (name, value). Names must be RFC 5322
  // field names; structural headers (From, To, Cc, Bcc, Reply-To, Subject,
  // Date, Sender, Message-ID, MIME-Version, Return-Path, Content-*) are refused.
  std::vector<std::pair<std::string, std::string>> headers;
  int priority = kDefaultPriority;
  std::string idempotency_key;  // optional producer key; empty when absent
  std::optional<std::chrono::system_clock::time_point> send_at;  // not before this time

  friend bool operator==(const Email&, const Email&) = default;
};

struct EnvelopeLimits {
  // Upper bound on the decoded size of subject + bodies + attachments + headers.
  std::size_t max_total_bytes = 25 * 1024 * 1024;
  std::size_t max_recipients = 500;  // to + cc + bcc
};

// Parses one address: "Name <local@domain>", "\"Doe, Jane\" <jane@x>",
// "local@domain", or an encoded display name. Errors: kInvalidInput
// "invalid_address" naming `field` and the expected form;
// "header_injection" when the text contains CR or LF.
// Display names: words are joined by single spaces, quoted-strings are
// unescaped, RFC 2047 encoded-words are decoded to UTF-8 (a decoded CR, LF
// or NUL is "header_injection"; text that is not UTF-8 is "invalid_utf8").
// `email` keeps the addr-spec as given (domain not converted).
Result<Address> ParseAddress(std::string_view text, std::string_view field = "address");

// Parses an RFC 5322 address-list ("a@x, \"Doe, Jane\" <j@y>"); commas inside
// quoted display names do not split. Errors as ParseAddress, field
// "<field>[i]".
Result<std::vector<Address>> ParseAddressList(std::string_view text,
                                              std::string_view field = "to");

// Checks an envelope: at least one recipient, every address valid (IDN
// domains via libidn2), no CR/LF in any header value, subject, name or
// address (kInvalidInput "header_injection", non-retryable), priority in
// 1–10 ("invalid_priority"), a text or html body, the total size within
// limits ("too_large"), attachments with a filename and content type.
// Other codes, all kInvalidInput with `field` set: "missing_field",
// "no_recipients", "too_many_recipients", "missing_body", "invalid_utf8",
// "invalid_header_name", "reserved_header", "invalid_content_type",
// "invalid_idempotency_key" (> 128 characters), "invalid_id" (a non-empty id
// must be ≤ 128 of [A-Za-z0-9._-], as it becomes part of the Message-ID).
Result<void> ValidateEmail(const Email& email, const EnvelopeLimits& limits = {});

// Decodes and validates JSON v1 (docs/envelope.schema.json). Attachments
// given by `path` are read from disk (relative to `base_dir`) and carried
// as content; an unreadable path is kInvalidInput "unreadable_attachment".
// An empty `base_dir` refuses path attachments altogether (kInvalidInput
// "attachment_path_refused"): the worker, the HTTP API and the dashboard read
// envelopes from producers and must not open files those producers name.
// The text is read by ParseOrderedJson (postline/json.h): malformed JSON is
// kInvalidInput "malformed_json" with line, column and byte offset; nesting
// deeper than kMaxJsonDepth (32) arrays and objects is "json_too_deep"; a
// number beyond double range (1e400, a 400-digit integer), in any field,
// known or not, is "number_out_of_range" naming the field ("priority").
// Unknown top-level fields are rejected ("unknown_field").
// Also: "invalid_type", "unsupported_version", "invalid_attachment",
// "invalid_base64", "invalid_send_at", and every ValidateEmail error.
// send_at is kept to millisecond precision.
Result<Email> ParseEmailJson(std::string_view json, std::string_view base_dir = ".",
                             const EnvelopeLimits& limits = {});

// Encodes as JSON v1 with "v": 1; attachments always as content_base64
// (never path), so the result is self-contained. Inverse of ParseEmailJson
// for any Email that passes ValidateEmail (send_at is written with
// millisecond precision, in UTC).
std::string EncodeEmailJson(const Email& email);

// A new envelope id: 26 characters of Crockford base32 (a ULID: 48-bit
// millisecond time, then 80 random bits), sortable by creation time.
// The random bits come from getrandom(2). Within one thread, ids created in
// the same millisecond increment the random part, so a thread's ids are
// strictly increasing while its clock does not go backwards.
// Thread-safe; reads the time from SystemClock().
std::string NewEnvelopeId();

// As NewEnvelopeId(), with the millisecond time read from `clock.Now()`
// (times before the Unix epoch count as 0).
std::string NewEnvelopeId(const Clock& clock);

}  // namespace postline
