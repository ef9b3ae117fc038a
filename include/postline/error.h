// postline/error.h — the error value that crosses every module boundary.
//
// Every fallible function in a public postline header returns
// `postline::Result<T>` (= std::expected<T, Error>). An Error carries a
// `kind` that tells the caller what to do with it (fix the input, retry later,
// give up), a stable machine-readable `code`, a `message` a person can act on,
// and — for invalid input — the `field` that was wrong.
//
// Thread-safety: plain values; safe to copy and move between threads.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace postline {

enum class ErrorKind {
  kInvalidInput,  // the caller's input is wrong; retrying the same input fails again
  kNotFound,      // the named thing (queue, message, receipt handle, file) does not exist
  kTransient,     // a temporary condition (network, 4yz reply, busy database); retry later
  kPermanent,     // the operation can never succeed for this input (5yz reply, rejected)
  kInternal,      // a bug or an unexpected environment failure
};

// Returns "invalid_input", "not_found", "transient", "permanent" or "internal".
std::string_view ErrorKindName(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  // Stable identifier. Queue errors use SQS's error names
  // (e.g. "InvalidMessageContents", "ReceiptHandleIsInvalid"); other modules
  // use snake_case names such as "header_injection".
  std::string code;
  // One line a person can act on; names the field and what is allowed.
  std::string message;
  // The input field at fault ("to[1]", "SMTP_PORT", "body"), or empty.
  std::string field;

  // "code: message" (with " [field]" when set), for logs and CLI output.
  std::string ToString() const;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> MakeError(ErrorKind kind, std::string code, std::string message,
                                        std::string field = {}) {
  return std::unexpected<Error>(
      Error{kind, std::move(code), std::move(message), std::move(field)});
}

inline std::unexpected<Error> InvalidInput(std::string code, std::string message,
                                           std::string field = {}) {
  return MakeError(ErrorKind::kInvalidInput, std::move(code), std::move(message),
                   std::move(field));
}

}  // namespace postline
