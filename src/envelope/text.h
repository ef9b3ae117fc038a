// Internal helpers of the envelope module: character checks, message quoting
// and base64. Not part of the public API.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "postline/error.h"

namespace postline::envelope_internal {

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates).
bool IsValidUtf8(std::string_view text);

// Number of Unicode code points in well-formed UTF-8 `text`.
std::size_t Utf8Length(std::string_view text);

// kInvalidInput "header_injection" naming `field` when `text` holds CR, LF
// or NUL; otherwise nothing.
std::optional<Error> CheckNoLineBreak(std::string_view text, std::string_view field);

// kInvalidInput "invalid_utf8" naming `field` when `text` is not UTF-8.
std::optional<Error> CheckUtf8(std::string_view text, std::string_view field);

// `text` as a JSON string literal, cut to at most `max_chars` bytes (on a
// UTF-8 boundary, with "…" appended), safe to put into a one-line message.
std::string Quoted(std::string_view text, std::size_t max_chars = 60);

// RFC 4648 base64 with padding, no line breaks.
std::string Base64Encode(std::string_view bytes);

// Decodes RFC 4648 base64; ASCII whitespace is ignored. Returns nothing when
// the text holds any other character outside the alphabet or bad padding.
std::optional<std::string> Base64Decode(std::string_view text);

inline bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 5322 §3.2.3 atext.
bool IsAtext(char c);

}  // namespace postline::envelope_internal
