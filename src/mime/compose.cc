// ComposeMessage: an Email as RFC 5322 / MIME bytes, built with GMime 3.
//
// GMime builds the MIME tree, transfer-encodes the bodies and writes the
// message with CRLF line ends. The top-level header fields (From, To, Cc,
// Reply-To, Subject, Date, Message-ID and the extra headers) are formatted
// here and handed to GMime as raw values, because GMime's RFC 2047 encoder
// keeps a long word in one encoded-word longer than the 75 characters RFC
// 2047 §2 allows. EncodeWords below splits at UTF-8 character boundaries.
//
// GMime is initialised once per process (std::call_once) on first use and
// never shut down: g_mime_shutdown() is not safe while other threads might
// still compose, and the library holds no resources that need releasing.
#include <fmt/format.h>
#include <glib.h>
#include <gmime/gmime.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "mime_internal.h"
#include "postline/envelope.h"
#include "postline/mime.h"

namespace postline {
namespace {

constexpr std::size_t kMaxLineOctets = 998;  // RFC 5322 §2.1.1
constexpr std::size_t kFoldColumn = 78;      // RFC 5322 §2.1.1 SHOULD
constexpr std::size_t kMaxEncodedWord = 75;  // RFC 2047 §2
// Longer ASCII words in a Subject or display name are sent as encoded-words,
// so that every header line can be folded to fit.
constexpr std::size_t kMaxPlainWord = 76;
// Longer ASCII display names are not sent as one quoted-string token.
constexpr std::size_t kMaxQuotedName = 400;
constexpr std::string_view kWordPrefix = "=?UTF-8?B?";
constexpr std::string_view kWordSuffix = "?=";
// Base64 turns 3 bytes into 4 characters: 45 bytes fill the 60 characters
// left in a 75-character word after the 12 characters of framing.
constexpr std::size_t kMaxBytesPerWord =
    (kMaxEncodedWord - kWordPrefix.size() - kWordSuffix.size()) / 4 * 3;

struct GObjectUnref {
  void operator()(gpointer object) const {
    if (object != nullptr) g_object_unref(object);
  }
};
template <typename T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct FormatOptionsFree {
  void operator()(GMimeFormatOptions* options) const { g_mime_format_options_free(options); }
};

struct GFree {
  void operator()(gpointer p) const { g_free(p); }
};

void EnsureGMimeInitialised() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

bool IsAsciiText(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7E) return false;
  }
  return true;
}

bool IsAtextOrSpace(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ') {
    return true;
  }
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

// RFC 5322 §3.2.4 quoted-string of printable ASCII `text`.
std::string QuotedString(std::string_view text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string Base64(std::string_view bytes) {
  std::unique_ptr<gchar, GFree> encoded(
      g_base64_encode(reinterpret_cast<const guchar*>(bytes.data()), bytes.size()));
  return std::string(encoded.get());
}

// Length of the UTF-8 sequence that starts with `lead` (1 for stray bytes).
std::size_t Utf8SequenceLength(unsigned char lead) {
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

}  // namespace

namespace mime_internal {

// RFC 2047 B encoded-words for UTF-8 `text`: each at most 75 characters,
// each holding whole UTF-8 characters only.
std::vector<std::string> EncodeWords(std::string_view text) {
  std::vector<std::string> words;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = start;
    while (end < text.size()) {
      std::size_t next = end + Utf8SequenceLength(static_cast<unsigned char>(text[end]));
      if (next > text.size()) next = text.size();
      if (next - start > kMaxBytesPerWord) break;
      end = next;
    }
    words.push_back(
        fmt::format("{}{}{}", kWordPrefix, Base64(text.substr(start, end - start)), kWordSuffix));
    start = end;
  }
  return words;
}

// Joins tokens with single spaces into a raw header value (" v\n"), turning
// a space into a fold ("\n ") where a line would pass 78 characters. Empty
// tokens (from runs of spaces) are never put at the start of a line.
std::string FoldTokens(std::string_view name, const std::vector<std::string>& tokens) {
  std::string out;
  std::size_t column = name.size() + 1;
  bool first = true;
  for (const std::string& token : tokens) {
    if (!first && !token.empty() && column + 1 + token.size() > kFoldColumn) {
      out += "\n ";
      column = 1;
    } else {
      out += ' ';
      ++column;
    }
    out += token;
    column += token.size();
    first = false;
  }
  out += '\n';
  return out;
}

// Tokens of an unstructured field (RFC 5322 §3.2.5 with RFC 2047 §5(1)):
// leading plain ASCII words stay readable; from the first word that needs
// encoding on, the rest of the text becomes encoded-words.
std::vector<std::string> UnstructuredTokens(std::string_view text, bool encode_long_words) {
  std::vector<std::string> tokens;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(start, end - start);
    if (!IsAsciiText(word) || word.find("=?") != std::string_view::npos ||
        (encode_long_words && word.size() > kMaxPlainWord)) {
      for (std::string& encoded : EncodeWords(text.substr(start))) {
        tokens.push_back(std::move(encoded));
      }
      return tokens;
    }
    tokens.emplace_back(word);
    start = end + 1;
  }
  return tokens;
}

// Tokens of one mailbox (RFC 5322 §3.4): the display name as atoms, a
// quoted-string, or encoded-words, then "<addr-spec>".
std::vector<std::string> MailboxTokens(std::string_view name, std::string_view ascii_email) {
  std::vector<std::string> tokens;
  if (name.empty()) {
    tokens.emplace_back(ascii_email);
    return tokens;
  }
  // Words longer than a line can hold, and very long names, take the
  // mixed form below, whose tokens are all short enough to fold.
  bool short_words = name.size() <= kMaxQuotedName;
  for (std::size_t start = 0; start <= name.size();) {
    std::size_t end = name.find(' ', start);
    if (end == std::string_view::npos) end = name.size();
    if (end - start > kMaxPlainWord) short_words = false;
    start = end + 1;
  }
  bool plain = short_words && IsAsciiText(name) && name.find("=?") == std::string_view::npos &&
               name.front() != ' ' && name.back() != ' ' &&
               name.find("  ") == std::string_view::npos;
  for (char c : name) {
    if (!IsAtextOrSpace(c)) plain = false;
  }
  if (plain) {
    std::size_t start = 0;
    while (start <= name.size()) {
      std::size_t end = name.find(' ', start);
      if (end == std::string_view::npos) end = name.size();
      tokens.emplace_back(name.substr(start, end - start));
      start = end + 1;
    }
  } else if (short_words && IsAsciiText(name) && name.find("=?") == std::string_view::npos) {
    tokens.push_back(QuotedString(name));
  } else {
    // Mixed phrase: ASCII words stay atoms or quoted-strings; each run of
    // words with non-ASCII text becomes encoded-words. Keeping ASCII words
    // between the runs matters: RFC 2047 decoders drop the space between two
    // adjacent encoded-words, while Python's email package keeps it in
    // display names, so a run is split into several encoded-words only when
    // it is longer than one word can hold (45 bytes).
    std::string run;
    auto flush = [&] {
      for (std::string& word : EncodeWords(run)) tokens.push_back(std::move(word));
      run.clear();
    };
    std::size_t start = 0;
    while (start <= name.size()) {
      std::size_t end = name.find(' ', start);
      if (end == std::string_view::npos) end = name.size();
      const std::string_view word = name.substr(start, end - start);
      start = end + 1;
      if (word.empty()) continue;
      if (IsAsciiText(word) && word.find("=?") == std::string_view::npos &&
          word.size() <= kMaxPlainWord) {
        flush();
        bool atom = true;
        for (char c : word) atom = atom && IsAtextOrSpace(c);
        tokens.push_back(atom ? std::string(word) : QuotedString(word));
      } else {
        if (!run.empty()) run += ' ';
        run += word;
      }
    }
    flush();
  }
  tokens.push_back(fmt::format("<{}>", ascii_email));
  return tokens;
}

// "Sun, 29 Nov 2026 10:11:05 +0000" (RFC 5322 §3.3), in UTC.
std::string FormatDate(std::chrono::system_clock::time_point when) {
  static constexpr std::string_view kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto seconds = std::chrono::floor<std::chrono::seconds>(when);
  const auto days = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day date{days};
  const std::chrono::weekday weekday{days};
  const std::chrono::hh_mm_ss<std::chrono::seconds> time{seconds - days};
  return fmt::format("{}, {:02d} {} {:04d} {:02d}:{:02d}:{:02d} +0000", kDays[weekday.c_encoding()],
                     static_cast<unsigned>(date.day()),
                     kMonths[static_cast<unsigned>(date.month()) - 1],
                     static_cast<int>(date.year()), time.hours().count(), time.minutes().count(),
                     time.seconds().count());
}

}  // namespace mime_internal

namespace {

using mime_internal::FoldTokens;

std::unexpected<Error> Injection(std::string_view field) {
  return InvalidInput("header_injection",
                      fmt::format("{} must not contain CR, LF or NUL characters (header "
                                  "injection)",
                                  field),
                      std::string(field));
}

bool HasLineBreak(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::unexpected<Error> MimeFailed(std::string_view what) {
  return MakeError(ErrorKind::kInternal, "mime_failed", std::string(what));
}

// Re-checks every value that ends up in a header (defence in depth: the
// email should already have passed ValidateEmail).
Result<void> CheckHeaderValues(const Email& email) {
  auto check_list = [](const std::vector<Address>& list, std::string_view name) -> Result<void> {
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (HasLineBreak(list[i].name) || HasLineBreak(list[i].email)) {
        return Injection(fmt::format("{}[{}]", name, i));
      }
    }
    return {};
  };
  if (HasLineBreak(email.from.name) || HasLineBreak(email.from.email)) return Injection("from");
  if (auto ok = check_list(email.to, "to"); !ok) return ok;
  if (auto ok = check_list(email.cc, "cc"); !ok) return ok;
  if (auto ok = check_list(email.reply_to, "reply_to"); !ok) return ok;
  if (HasLineBreak(email.subject)) return Injection("subject");
  if (HasLineBreak(email.id)) return Injection("id");
  for (std::size_t i = 0; i < email.headers.size(); ++i) {
    if (HasLineBreak(email.headers[i].first) || HasLineBreak(email.headers[i].second)) {
      return Injection(fmt::format("headers[{}]", i));
    }
  }
  for (std::size_t i = 0; i < email.attachments.size(); ++i) {
    if (HasLineBreak(email.attachments[i].filename)) {
      return Injection(fmt::format("attachments[{}].filename", i));
    }
    if (HasLineBreak(email.attachments[i].content_type)) {
      return Injection(fmt::format("attachments[{}].content_type", i));
    }
  }
  return {};
}

Result<std::string> AddressHeader(std::string_view header, const std::vector<Address>& list,
                                  std::string_view field) {
  std::vector<std::string> tokens;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto ascii = list[i].AsciiEmail();
    if (!ascii) {
      Error error = ascii.error();
      error.field = fmt::format("{}[{}]", field, i);
      return std::unexpected(error);
    }
    std::vector<std::string> mailbox = mime_internal::MailboxTokens(list[i].name, *ascii);
    if (i + 1 < list.size()) mailbox.back() += ',';
    for (std::string& token : mailbox) tokens.push_back(std::move(token));
  }
  return FoldTokens(header, tokens);
}

// Appends a header with an already formatted raw value (" value\n").
void AppendRawHeader(GMimeObject* object, const char* name, const std::string& raw_value) {
  g_mime_object_append_header(object, name, "", nullptr);
  GMimeHeaderList* headers = g_mime_object_get_header_list(object);
  GMimeHeader* header =
      g_mime_header_list_get_header_at(headers, g_mime_header_list_get_count(headers) - 1);
  g_mime_header_set_raw_value(header, raw_value.c_str());
}

// Text in canonical form (RFC 2046 §4.1.1): every line break is CRLF.
std::string CanonicalLineBreaks(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  return out;
}

// 7bit when every byte is ASCII and every line fits in 998 octets;
// quoted-printable otherwise (RFC 2045 §2.7, §6.7).
GMimeContentEncoding TextEncoding(std::string_view canonical) {
  std::size_t line = 0;
  for (char c : canonical) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || u == 0) return GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
    if (c == '\n') {
      line = 0;
    } else if (c != '\r' && ++line > kMaxLineOctets) {
      return GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
    }
  }
  return GMIME_CONTENT_ENCODING_7BIT;
}

void SetContent(GMimePart* part, std::string_view bytes) {
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
  GPtr<GMimeDataWrapper> wrapper(
      g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(part, wrapper.get());
}

GPtr<GMimeObject> TextPart(const char* subtype, std::string_view text) {
  GPtr<GMimeTextPart> part(g_mime_text_part_new_with_subtype(subtype));
  const std::string canonical = CanonicalLineBreaks(text);
  SetContent(GMIME_PART(part.get()), canonical);
  g_mime_object_set_content_type_parameter(GMIME_OBJECT(part.get()), "charset", "utf-8");
  g_mime_part_set_content_encoding(GMIME_PART(part.get()), TextEncoding(canonical));
  return GPtr<GMimeObject>(GMIME_OBJECT(part.release()));
}

void UseUtf8Charset(GMimeParamList* params, const char* name) {
  if (params == nullptr) return;
  if (GMimeParam* param = g_mime_param_list_get_parameter(params, name)) {
    g_mime_param_set_charset(param, "utf-8");
  }
}

GPtr<GMimeObject> AttachmentPart(const Attachment& attachment) {
  const std::size_t slash = attachment.content_type.find('/');
  std::string type = "application";
  std::string subtype = "octet-stream";
  if (slash != std::string::npos && slash > 0 && slash + 1 < attachment.content_type.size()) {
    type = attachment.content_type.substr(0, slash);
    subtype = attachment.content_type.substr(slash + 1);
  }
  GPtr<GMimePart> part(g_mime_part_new_with_type(type.c_str(), subtype.c_str()));
  SetContent(part.get(), attachment.content);
  g_mime_part_set_content_encoding(part.get(), GMIME_CONTENT_ENCODING_BASE64);
  // Sets Content-Disposition: attachment; filename=… and Content-Type's name=….
  g_mime_part_set_filename(part.get(), attachment.filename.c_str());
  GMimeObject* object = GMIME_OBJECT(part.get());
  UseUtf8Charset(
      g_mime_content_disposition_get_parameters(g_mime_object_get_content_disposition(object)),
      "filename");
  UseUtf8Charset(g_mime_content_type_get_parameters(g_mime_object_get_content_type(object)),
                 "name");
  return GPtr<GMimeObject>(GMIME_OBJECT(part.release()));
}

GPtr<GMimeObject> BodyPart(const Email& email) {
  GPtr<GMimeObject> body;
  if (!email.text.empty() && !email.html.empty()) {
    GPtr<GMimeMultipart> alternative(g_mime_multipart_new_with_subtype("alternative"));
    GPtr<GMimeObject> text = TextPart("plain", email.text);
    GPtr<GMimeObject> html = TextPart("html", email.html);
    g_mime_multipart_add(alternative.get(), text.get());
    g_mime_multipart_add(alternative.get(), html.get());
    body.reset(GMIME_OBJECT(alternative.release()));
  } else if (!email.html.empty()) {
    body = TextPart("html", email.html);
  } else {
    body = TextPart("plain", email.text);
  }
  if (email.attachments.empty()) return body;
  GPtr<GMimeMultipart> mixed(g_mime_multipart_new_with_subtype("mixed"));
  g_mime_multipart_add(mixed.get(), body.get());
  for (const Attachment& attachment : email.attachments) {
    GPtr<GMimeObject> part = AttachmentPart(attachment);
    g_mime_multipart_add(mixed.get(), part.get());
  }
  return GPtr<GMimeObject>(GMIME_OBJECT(mixed.release()));
}

// Every line ends in CRLF and holds at most 998 octets before it.
Result<void> CheckWireFormat(std::string_view message) {
  std::size_t line_start = 0;
  std::size_t line_number = 1;
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] != '\n') continue;
    if (i == 0 || message[i - 1] != '\r') {
      return MimeFailed(
          fmt::format("line {} of the composed message ends in a bare LF", line_number));
    }
    if (i - 1 - line_start > kMaxLineOctets) {
      return MimeFailed(
          fmt::format("line {} of the composed message is {} octets; at most {} "
                      "are allowed (a header value without spaces is too long)",
                      line_number, i - 1 - line_start, kMaxLineOctets));
    }
    line_start = i + 1;
    ++line_number;
  }
  return {};
}

std::string DomainOf(std::string_view ascii_email) {
  const std::size_t at = ascii_email.rfind('@');
  return std::string(at == std::string_view::npos ? std::string_view("postline.invalid")
                                                  : ascii_email.substr(at + 1));
}

}  // namespace

std::string MessageIdFor(const Email& email) {
  auto ascii = email.from.AsciiEmail();
  const std::string domain = ascii ? DomainOf(*ascii) : std::string("postline.invalid");
  return fmt::format("<{}@{}>", email.id, domain);
}

Result<std::string> ComposeMessage(const Email& email, const ComposeOptions& options) {
  if (auto ok = CheckHeaderValues(email); !ok) return std::unexpected(ok.error());
  if (email.id.empty()) {
    return InvalidInput("missing_field",
                        "id is empty; allowed: the envelope id (NewEnvelopeId) that the "
                        "Message-ID is derived from",
                        "id");
  }
  auto from_ascii = email.from.AsciiEmail();
  if (!from_ascii) {
    Error error = from_ascii.error();
    error.field = "from";
    return std::unexpected(error);
  }
  EnsureGMimeInitialised();

  GPtr<GMimeMessage> message(g_mime_message_new(FALSE));
  GMimeObject* object = GMIME_OBJECT(message.get());

  AppendRawHeader(object, "Date", FoldTokens("Date", {mime_internal::FormatDate(options.date)}));
  auto from = AddressHeader("From", {email.from}, "from");
  if (!from) return std::unexpected(from.error());
  AppendRawHeader(object, "From", *from);
  for (const auto& [list, header, field] :
       {std::tuple{&email.reply_to, "Reply-To", "reply_to"}, std::tuple{&email.to, "To", "to"},
        std::tuple{&email.cc, "Cc", "cc"}}) {
    if (list->empty()) continue;
    auto value = AddressHeader(header, *list, field);
    if (!value) return std::unexpected(value.error());
    AppendRawHeader(object, header, *value);
  }
  AppendRawHeader(object, "Subject",
                  FoldTokens("Subject", mime_internal::UnstructuredTokens(email.subject, true)));
  AppendRawHeader(object, "Message-ID", FoldTokens("Message-ID", {MessageIdFor(email)}));
  AppendRawHeader(object, "MIME-Version", " 1.0\n");
  for (const auto& [name, value] : email.headers) {
    AppendRawHeader(object, name.c_str(),
                    FoldTokens(name, mime_internal::UnstructuredTokens(value, false)));
  }

  GPtr<GMimeObject> body = BodyPart(email);
  g_mime_message_set_mime_part(message.get(), body.get());

  std::unique_ptr<GMimeFormatOptions, FormatOptionsFree> format(g_mime_format_options_new());
  g_mime_format_options_set_newline_format(format.get(), GMIME_NEWLINE_FORMAT_DOS);
  g_mime_format_options_set_param_encoding_method(format.get(),
                                                  GMIME_PARAM_ENCODING_METHOD_RFC2231);
  GPtr<GMimeStream> stream(g_mime_stream_mem_new());
  if (g_mime_object_write_to_stream(object, format.get(), stream.get()) < 0) {
    return MimeFailed("GMime could not write the message");
  }
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream.get()));
  std::string out(reinterpret_cast<const char*>(bytes->data), bytes->len);
  if (auto ok = CheckWireFormat(out); !ok) return std::unexpected(ok.error());
  return out;
}

}  // namespace postline
