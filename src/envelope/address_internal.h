// Internal address checks shared by the envelope's parser and validator.
#pragma once

#include <string>
#include <string_view>

#include "postline/envelope.h"
#include "postline/error.h"

namespace postline::envelope_internal {

// The ASCII (A-label, lower-case) form of a domain; kInvalidInput
// "invalid_address" naming `field` when it is not a valid host name or IDN.
Result<std::string> AsciiDomain(std::string_view domain, std::string_view field);

// Validates an addr-spec "local@domain" and returns it with the domain in
// ASCII form. Errors: "header_injection", "invalid_address".
Result<std::string> ValidateAddrSpec(std::string_view spec, std::string_view field);

// Validates a parsed Address (name free of CR/LF/NUL and UTF-8; email a
// valid addr-spec). Errors name "<field>.name" or "<field>.email".
Result<void> ValidateAddress(const Address& address, std::string_view field);

}  // namespace postline::envelope_internal
