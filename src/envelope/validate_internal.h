// Internal checks shared by the JSON decoder and ValidateEmail.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "postline/error.h"

namespace postline::envelope_internal {

inline constexpr std::size_t kMaxIdLength = 128;
inline constexpr std::size_t kMaxIdempotencyKeyLength = 128;

// True for header names postline writes itself (From, To, Cc, Bcc, Reply-To,
// Subject, Date, Sender, Message-ID, MIME-Version, Return-Path, Content-*),
// compared case-insensitively.
bool IsReservedHeader(std::string_view name);

// RFC 5322 ftext, not reserved. Errors: "header_injection",
// "invalid_header_name", "reserved_header", naming `field`.
Result<void> ValidateHeaderName(std::string_view name, std::string_view field);

// "type/subtype" of RFC 2045 tokens. Errors: "header_injection",
// "invalid_content_type".
Result<void> ValidateContentType(std::string_view content_type, std::string_view field);

// Empty, or 1–128 of [A-Za-z0-9._-] without leading/trailing/double dots
// (it becomes the left part of the Message-ID). Error: "invalid_id".
Result<void> ValidateEnvelopeId(std::string_view id);

inline std::unexpected<Error> Fail(std::optional<Error> error) { return std::unexpected(*error); }

}  // namespace postline::envelope_internal
