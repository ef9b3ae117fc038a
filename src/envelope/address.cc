// Address parsing (RFC 5322 §3.4) and IDN domain handling (RFC 5890/5891,
// UTS #46 via libidn2).
#include <fmt/format.h>
#include <glib.h>
#include <idn2.h>

#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "address_internal.h"
#include "postline/envelope.h"
#include "text.h"

namespace postline {
namespace {

using envelope_internal::CheckNoLineBreak;
using envelope_internal::CheckUtf8;
using envelope_internal::IsAsciiAlpha;
using envelope_internal::IsAsciiDigit;
using envelope_internal::IsAtext;
using envelope_internal::Quoted;

constexpr std::size_t kMaxLocalPartOctets = 64;
constexpr std::size_t kMaxAddressOctets = 254;
constexpr std::size_t kMaxLabelOctets = 63;
constexpr std::size_t kMaxDomainOctets = 253;

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWsp(s.back())) s.remove_suffix(1);
  return s;
}

std::unexpected<Error> BadAddress(std::string_view field, std::string_view text,
                                  std::string_view why) {
  return InvalidInput("invalid_address",
                      fmt::format("{} {} is not a valid address: {}; allowed: "
                                  "\"local@domain\" or \"Display Name <local@domain>\"",
                                  field, Quoted(text), why),
                      std::string(field));
}

bool HasNonAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// Checks a local part: dot-atom or quoted-string, ASCII only.
std::optional<std::string> LocalPartProblem(std::string_view local) {
  if (local.empty()) return "the local part before '@' is empty";
  if (HasNonAscii(local)) {
    return "non-ASCII local part needs SMTPUTF8, which postline does not use";
  }
  if (local.size() > kMaxLocalPartOctets) {
    return fmt::format("the local part is {} octets, at most {} are allowed", local.size(),
                       kMaxLocalPartOctets);
  }
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return "unterminated quoted local part";
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
      const char c = local[i];
      if (c == '\\') {
        if (i + 2 >= local.size()) return "dangling backslash in quoted local part";
        ++i;
        continue;
      }
      if (c == '"') return "unescaped quote in quoted local part";
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
        return "control character in quoted local part";
      }
    }
    return std::nullopt;
  }
  if (local.front() == '.' || local.back() == '.') return "the local part starts or ends with '.'";
  char prev = 0;
  for (char c : local) {
    if (c == '.') {
      if (prev == '.') return "the local part contains \"..\"";
    } else if (!IsAtext(c)) {
      return fmt::format("character {} is not allowed in an unquoted local part",
                         Quoted(std::string_view(&c, 1)));
    }
    prev = c;
  }
  return std::nullopt;
}

// Checks an ASCII (A-label) domain: LDH labels of 1–63 octets, ≤ 253 total.
std::optional<std::string> AsciiDomainProblem(std::string_view domain) {
  if (domain.empty()) return "the domain after '@' is empty";
  if (domain.size() > kMaxDomainOctets) {
    return fmt::format("the domain is longer than {} octets", kMaxDomainOctets);
  }
  std::size_t start = 0;
  while (start <= domain.size()) {
    std::size_t end = domain.find('.', start);
    if (end == std::string_view::npos) end = domain.size();
    const std::string_view label = domain.substr(start, end - start);
    if (label.empty()) return "the domain has an empty label";
    if (label.size() > kMaxLabelOctets) {
      return fmt::format("a domain label is longer than {} octets", kMaxLabelOctets);
    }
    if (label.front() == '-' || label.back() == '-') {
      return "a domain label starts or ends with '-'";
    }
    for (char c : label) {
      if (!(IsAsciiAlpha(c) || IsAsciiDigit(c) || c == '-')) {
        return fmt::format("character {} is not allowed in a domain",
                           Quoted(std::string_view(&c, 1)));
      }
    }
    start = end + 1;
  }
  return std::nullopt;
}

// Splits an addr-spec at the '@' that separates local part and domain.
bool SplitAddrSpec(std::string_view spec, std::string_view& local, std::string_view& domain) {
  std::size_t at = std::string_view::npos;
  if (!spec.empty() && spec.front() == '"') {
    // The '@' follows the closing quote of a quoted local part.
    for (std::size_t i = 1; i < spec.size(); ++i) {
      if (spec[i] == '\\') {
        ++i;
      } else if (spec[i] == '"') {
        if (i + 1 < spec.size() && spec[i + 1] == '@') at = i + 1;
        break;
      }
    }
  } else {
    at = spec.rfind('@');
  }
  if (at == std::string_view::npos) return false;
  local = spec.substr(0, at);
  domain = spec.substr(at + 1);
  return true;
}

// Decodes one RFC 2047 encoded-word "=?charset?B|Q?text?=" to UTF-8.
// Returns nothing when `atom` is not a well-formed encoded-word or its
// charset is unknown, in which case the atom is taken literally.
std::optional<std::string> DecodeEncodedWord(std::string_view atom) {
  if (atom.size() < 8 || !atom.starts_with("=?") || !atom.ends_with("?=")) return std::nullopt;
  const std::string_view inner = atom.substr(2, atom.size() - 4);
  const std::size_t q1 = inner.find('?');
  if (q1 == std::string_view::npos || q1 == 0 || q1 + 2 >= inner.size() || inner[q1 + 2] != '?') {
    return std::nullopt;
  }
  std::string charset(inner.substr(0, q1));
  if (const std::size_t star = charset.find('*'); star != std::string::npos) {
    charset.resize(star);  // RFC 2231 §5 language suffix
  }
  const char encoding = inner[q1 + 1];
  const std::string_view text = inner.substr(q1 + 3);
  if (text.find('?') != std::string_view::npos) return std::nullopt;
  std::string bytes;
  if (encoding == 'B' || encoding == 'b') {
    auto decoded = envelope_internal::Base64Decode(text);
    if (!decoded) return std::nullopt;
    bytes = std::move(*decoded);
  } else if (encoding == 'Q' || encoding == 'q') {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '_') {
        bytes.push_back(' ');
      } else if (text[i] == '=') {
        if (i + 2 >= text.size()) return std::nullopt;
        const std::string hex(text.substr(i + 1, 2));
        if (hex.size() != 2 || !std::isxdigit(static_cast<unsigned char>(hex[0])) ||
            !std::isxdigit(static_cast<unsigned char>(hex[1]))) {
          return std::nullopt;
        }
        bytes.push_back(static_cast<char>(std::stoi(hex, nullptr, 16)));
        i += 2;
      } else {
        bytes.push_back(text[i]);
      }
    }
  } else {
    return std::nullopt;
  }
  gsize written = 0;
  std::unique_ptr<gchar, decltype(&g_free)> utf8(
      g_convert(bytes.data(), static_cast<gssize>(bytes.size()), "UTF-8", charset.c_str(), nullptr,
                &written, nullptr),
      &g_free);
  if (utf8 == nullptr) return std::nullopt;
  return std::string(utf8.get(), written);
}

// Parses a display name (RFC 5322 §3.2.5 phrase) into its text: words are
// joined by single spaces, quoted-strings are unescaped, and RFC 2047
// encoded-words are decoded (with no space between adjacent ones, §6.2).
Result<std::string> ParsePhrase(std::string_view phrase, std::string_view field,
                                std::string_view whole) {
  struct Word {
    std::string text;
    bool encoded = false;
  };
  std::vector<Word> words;
  std::size_t i = 0;
  while (i < phrase.size()) {
    if (IsWsp(phrase[i])) {
      ++i;
      continue;
    }
    Word word;
    if (phrase[i] == '"') {
      ++i;
      bool closed = false;
      while (i < phrase.size()) {
        const char c = phrase[i];
        if (c == '\\') {
          if (i + 1 >= phrase.size()) break;
          word.text.push_back(phrase[i + 1]);
          i += 2;
          continue;
        }
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        word.text.push_back(c);
        ++i;
      }
      if (!closed) return BadAddress(field, whole, "unterminated quoted display name");
      words.push_back(std::move(word));
      continue;
    }
    while (i < phrase.size() && !IsWsp(phrase[i]) && phrase[i] != '"') {
      const char c = phrase[i];
      const bool allowed = IsAtext(c) || c == '.' || static_cast<unsigned char>(c) >= 0x80;
      if (!allowed) {
        return BadAddress(field, whole,
                          fmt::format("character {} in a display name needs the name in double "
                                      "quotes",
                                      Quoted(std::string_view(&c, 1))));
      }
      word.text.push_back(c);
      ++i;
    }
    if (auto decoded = DecodeEncodedWord(word.text)) {
      if (auto error = CheckNoLineBreak(*decoded, field)) return std::unexpected(*error);
      if (auto error = CheckUtf8(*decoded, field)) return std::unexpected(*error);
      word.text = std::move(*decoded);
      word.encoded = true;
    }
    words.push_back(std::move(word));
  }
  std::string out;
  for (std::size_t w = 0; w < words.size(); ++w) {
    if (w > 0 && !(words[w - 1].encoded && words[w].encoded)) out.push_back(' ');
    out += words[w].text;
  }
  return out;
}

}  // namespace

namespace envelope_internal {

Result<std::string> AsciiDomain(std::string_view domain, std::string_view field) {
  if (domain.empty()) return BadAddress(field, domain, "the domain is empty");
  std::string ascii;
  if (HasNonAscii(domain)) {
    if (!IsValidUtf8(domain)) return BadAddress(field, domain, "the domain is not UTF-8");
    const std::string input(domain);
    char* raw = nullptr;
    const int rc = idn2_to_ascii_8z(input.c_str(), &raw, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    std::unique_ptr<char, decltype(&idn2_free)> output(raw, &idn2_free);
    if (rc != IDN2_OK || output == nullptr) {
      return BadAddress(field, domain,
                        fmt::format("the domain is not a valid IDN ({})", idn2_strerror(rc)));
    }
    ascii = output.get();
  } else {
    ascii.assign(domain);
    for (char& c : ascii) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  if (auto problem = AsciiDomainProblem(ascii)) return BadAddress(field, domain, *problem);
  return ascii;
}

Result<std::string> ValidateAddrSpec(std::string_view spec, std::string_view field) {
  if (auto error = CheckNoLineBreak(spec, field)) return std::unexpected(*error);
  std::string_view local;
  std::string_view domain;
  if (!SplitAddrSpec(spec, local, domain)) {
    return BadAddress(field, spec, "it has no '@' separating local part and domain");
  }
  if (auto problem = LocalPartProblem(local)) return BadAddress(field, spec, *problem);
  auto ascii_domain = AsciiDomain(domain, field);
  if (!ascii_domain) return std::unexpected(ascii_domain.error());
  std::string ascii = fmt::format("{}@{}", local, *ascii_domain);
  if (ascii.size() > kMaxAddressOctets || spec.size() > kMaxAddressOctets) {
    return BadAddress(field, spec,
                      fmt::format("the address is longer than {} octets", kMaxAddressOctets));
  }
  return ascii;
}

Result<void> ValidateAddress(const Address& address, std::string_view field) {
  const std::string name_field = fmt::format("{}.name", field);
  const std::string email_field = fmt::format("{}.email", field);
  if (auto error = CheckNoLineBreak(address.name, name_field)) return std::unexpected(*error);
  if (auto error = CheckUtf8(address.name, name_field)) return std::unexpected(*error);
  if (address.email.empty()) {
    return InvalidInput(
        "invalid_address",
        fmt::format("{} is empty; allowed: an address \"local@domain\"", email_field), email_field);
  }
  auto ascii = ValidateAddrSpec(address.email, email_field);
  if (!ascii) return std::unexpected(ascii.error());
  return {};
}

}  // namespace envelope_internal

Result<std::string> Address::AsciiEmail() const {
  return envelope_internal::ValidateAddrSpec(email, "email");
}

Result<Address> ParseAddress(std::string_view text, std::string_view field) {
  if (auto error = CheckNoLineBreak(text, field)) return std::unexpected(*error);
  if (auto error = CheckUtf8(text, field)) return std::unexpected(*error);
  const std::string_view trimmed = Trim(text);
  if (trimmed.empty()) return BadAddress(field, text, "it is empty");

  // Find '<' outside quoted strings: a name-addr.
  std::size_t angle = std::string_view::npos;
  bool in_quote = false;
  for (std::size_t i = 0; i < trimmed.size(); ++i) {
    const char c = trimmed[i];
    if (in_quote) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_quote = false;
      }
    } else if (c == '"') {
      in_quote = true;
    } else if (c == '<') {
      angle = i;
      break;
    }
  }

  Address address;
  std::string_view spec;
  if (angle == std::string_view::npos) {
    spec = trimmed;
  } else {
    if (trimmed.back() != '>') {
      return BadAddress(field, text, "'<' without a closing '>' at the end");
    }
    spec = Trim(trimmed.substr(angle + 1, trimmed.size() - angle - 2));
    auto name = ParsePhrase(trimmed.substr(0, angle), field, text);
    if (!name) return std::unexpected(name.error());
    address.name = std::move(*name);
  }
  if (spec.find_first_of("<>") != std::string_view::npos) {
    return BadAddress(field, text, "unexpected '<' or '>'");
  }
  auto ascii = envelope_internal::ValidateAddrSpec(spec, field);
  if (!ascii) return std::unexpected(ascii.error());
  address.email.assign(spec);
  return address;
}

Result<std::vector<Address>> ParseAddressList(std::string_view text, std::string_view field) {
  if (auto error = CheckNoLineBreak(text, field)) return std::unexpected(*error);
  std::vector<Address> out;
  std::vector<std::string_view> items;
  bool in_quote = false;
  int angle_depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size()) {
      items.push_back(text.substr(start));
      break;
    }
    const char c = text[i];
    if (in_quote) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_quote = false;
      }
      continue;
    }
    if (c == '"') {
      in_quote = true;
    } else if (c == '<') {
      ++angle_depth;
    } else if (c == '>') {
      if (angle_depth > 0) --angle_depth;
    } else if (c == ',' && angle_depth == 0) {
      items.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  // Empty elements (", ,") are allowed by RFC 5322's obs-addr-list and skipped.
  std::size_t index = 0;
  for (std::string_view item : items) {
    if (Trim(item).empty()) continue;
    auto address = ParseAddress(item, fmt::format("{}[{}]", field, index));
    if (!address) return std::unexpected(address.error());
    out.push_back(std::move(*address));
    ++index;
  }
  return out;
}

}  // namespace postline
