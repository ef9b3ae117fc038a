// postline/mime.h — an Email as RFC 5322 bytes, composed with GMime.
//
// Structure (RFC 2045–2049): multipart/mixed containing
// multipart/alternative (text/plain, then text/html), then each attachment
// with Content-Disposition: attachment. Without attachments the top part is
// the multipart/alternative (or the single text part when there is no html).
//
// Encodings: header text is RFC 2047 encoded-words that never split a UTF-8
// character and are at most 75 characters; non-ASCII attachment filenames
// use RFC 2231 parameters; bodies are quoted-printable or base64 where a line
// would exceed 998 octets or the text is not 7-bit; every line ends in CRLF.
// Date (RFC 5322 §3.6.1) and Message-ID (§3.6.4) are set; the Message-ID is
// "<envelope-id@sender-domain>", so a retry carries the same one.
// Bcc recipients are never written into the header.
//
// The mime module does no I/O.
// Thread-safety: ComposeMessage may be called from many threads at once
// (GMime is initialised once, thread-safely, on first use, and stays
// initialised for the lifetime of the process).
#pragma once

#include <chrono>
#include <string>

#include "postline/envelope.h"
#include "postline/error.h"

namespace postline {

struct ComposeOptions {
  // The Date header's value; the caller passes its Clock's Now().
  std::chrono::system_clock::time_point date;
};

// Returns the message bytes (CRLF line ends). The email must already have
// passed ValidateEmail and carry a non-empty id. Errors: kInvalidInput
// "header_injection" if a header value holds CR/LF (defence in depth),
// kInternal "mime_failed" if GMime fails.
Result<std::string> ComposeMessage(const Email& email, const ComposeOptions& options);

// "<id@domain>" where domain is the ASCII form of the From address's domain.
std::string MessageIdFor(const Email& email);

}  // namespace postline
