#include "postline/error.h"

#include <fmt/format.h>

namespace postline {

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidInput:
      return "invalid_input";
    case ErrorKind::kNotFound:
      return "not_found";
    case ErrorKind::kTransient:
      return "transient";
    case ErrorKind::kPermanent:
      return "permanent";
    case ErrorKind::kInternal:
      return "internal";
  }
  return "internal";
}

std::string Error::ToString() const {
  if (field.empty()) return fmt::format("{}: {}", code, message);
  return fmt::format("{}: {} [{}]", code, message, field);
}

}  // namespace postline
