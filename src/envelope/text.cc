#include "text.h"

#include <array>
#include <cstdint>
#include <fmt/format.h>
#include <glib.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace postline::envelope_internal {

bool IsValidUtf8(std::string_view text) {
  return g_utf8_validate_len(text.data(), static_cast<gsize>(text.size()), nullptr);
}

std::size_t Utf8Length(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

std::optional<Error> CheckNoLineBreak(std::string_view text, std::string_view field) {
  for (char c : text) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return Error{
          ErrorKind::kInvalidInput, "header_injection",
          fmt::format("{} must not contain CR, LF or NUL characters (header injection)", field),
          std::string(field)};
    }
  }
  return std::nullopt;
}

std::optional<Error> CheckUtf8(std::string_view text, std::string_view field) {
  if (IsValidUtf8(text)) return std::nullopt;
  return Error{ErrorKind::kInvalidInput, "invalid_utf8",
               fmt::format("{} must be well-formed UTF-8", field), std::string(field)};
}

std::string Quoted(std::string_view text, std::size_t max_chars) {
  std::string cut(text);
  bool truncated = false;
  if (cut.size() > max_chars) {
    std::size_t end = max_chars;
    while (end > 0 && (static_cast<unsigned char>(cut[end]) & 0xC0) == 0x80) --end;
    cut.resize(end);
    truncated = true;
  }
  std::string out =
      nlohmann::json(cut).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (truncated) out.insert(out.size() - 1, "…");
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::unique_ptr<gchar, decltype(&g_free)> encoded(
      g_base64_encode(reinterpret_cast<const guchar*>(bytes.data()), bytes.size()), &g_free);
  return std::string(encoded.get());
}

std::optional<std::string> Base64Decode(std::string_view text) {
  // GLib's decoder skips characters outside the alphabet silently, so check
  // the alphabet and padding first. One table look-up per byte; the text is
  // copied only when it contains line breaks or blanks to drop.
  static constexpr auto kClass = [] {
    std::array<std::uint8_t, 256> t{};  // 0: refused, 1: alphabet or '=', 2: blank
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = 1;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = 1;
    for (int c = '0'; c <= '9'; ++c) t[c] = 1;
    t['+'] = t['/'] = t['='] = 1;
    t[' '] = t['\t'] = t['\r'] = t['\n'] = 2;
    return t;
  }();
  bool blanks = false;
  for (unsigned char c : text) {
    const std::uint8_t k = kClass[c];
    if (k == 0) return std::nullopt;
    blanks = blanks || k == 2;
  }
  std::string compact;
  std::string_view input = text;
  if (blanks) {
    compact.reserve(text.size());
    for (unsigned char c : text) {
      if (kClass[c] == 1) compact.push_back(static_cast<char>(c));
    }
    input = compact;
  }
  if (input.size() % 4 != 0) return std::nullopt;
  const std::size_t first_pad = input.find('=');
  if (first_pad != std::string_view::npos &&
      (input.size() - first_pad > 2 ||
       input.find_first_not_of('=', first_pad) != std::string_view::npos)) {
    return std::nullopt;
  }
  std::string out((input.size() / 4) * 3 + 3, '\0');
  gint state = 0;
  guint save = 0;
  const gsize n = g_base64_decode_step(input.data(), input.size(),
                                       reinterpret_cast<guchar*>(out.data()), &state, &save);
  out.resize(n);
  return out;
}

bool IsAtext(char c) {
  if (IsAsciiAlpha(c) || IsAsciiDigit(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace postline::envelope_internal
