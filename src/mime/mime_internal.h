// Internal pieces of the mime module, exposed for its unit tests.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace postline::mime_internal {

// RFC 2047 "=?UTF-8?B?…?=" words, each ≤ 75 characters, never splitting a
// UTF-8 character.
std::vector<std::string> EncodeWords(std::string_view text);

// Raw folded header value (" tokens…\n") for header `name`.
std::string FoldTokens(std::string_view name, const std::vector<std::string>& tokens);

// Tokens of an unstructured field value (Subject, extra headers). ASCII
// words are kept as they are unless `encode_long_words` and longer than 76
// characters (then, like non-ASCII text, they become encoded-words). Extra
// headers keep long words (URLs in List-Unsubscribe must stay readable).
std::vector<std::string> UnstructuredTokens(std::string_view text, bool encode_long_words);

// Tokens of one mailbox: display name (atoms, quoted-string or
// encoded-words) then "<addr>", or just the address without a name.
std::vector<std::string> MailboxTokens(std::string_view name, std::string_view ascii_email);

// RFC 5322 §3.3 date-time in UTC, e.g. "Sun, 29 Nov 2026 10:11:05 +0000".
std::string FormatDate(std::chrono::system_clock::time_point when);

}  // namespace postline::mime_internal
