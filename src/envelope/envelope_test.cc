#include "postline/envelope.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "postline/clock.h"

namespace postline {
namespace {

using nlohmann::json;

std::string Minimal(const std::string& extra = "") {
  return R"({"from": "Acme <billing@example.com>", "to": "alice@example.com", "text": "Hi")" +
         extra + "}";
}

Error ParseError(const std::string& text) {
  auto result = ParseEmailJson(text);
  EXPECT_FALSE(result.has_value()) << text;
  return result.has_value() ? Error{} : result.error();
}

TEST(AddressTest, ParsesForms) {
  auto plain = ParseAddress("alice@example.com");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(*plain, (Address{"", "alice@example.com"}));

  auto named = ParseAddress("  Alice   Liddell <alice@example.com> ");
  ASSERT_TRUE(named.has_value());
  EXPECT_EQ(*named, (Address{"Alice Liddell", "alice@example.com"}));

  auto quoted = ParseAddress(R"j("Doe, Jane \"JD\" (Billing)" <jane@example.com>)j");
  ASSERT_TRUE(quoted.has_value()) << quoted.error().ToString();
  EXPECT_EQ(*quoted, (Address{R"(Doe, Jane "JD" (Billing))", "jane@example.com"}));

  auto utf8 = ParseAddress("Jürgen Müller <j@bücher.example>");
  ASSERT_TRUE(utf8.has_value());
  EXPECT_EQ(utf8->name, "Jürgen Müller");
  EXPECT_EQ(utf8->email, "j@bücher.example");
  EXPECT_EQ(utf8->AsciiEmail().value(), "j@xn--bcher-kva.example");

  auto quoted_local = ParseAddress(R"("john doe"@example.com)");
  ASSERT_TRUE(quoted_local.has_value());
  EXPECT_EQ(quoted_local->email, R"("john doe"@example.com)");

  EXPECT_TRUE(ParseAddress("root@localhost").has_value());
}

TEST(AddressTest, DecodesEncodedDisplayNames) {
  auto b = ParseAddress("=?UTF-8?B?TcO8bGxlciwgQW5uYQ==?= <anna@example.com>");
  ASSERT_TRUE(b.has_value()) << b.error().ToString();
  EXPECT_EQ(b->name, "Müller, Anna");
  auto q = ParseAddress("=?ISO-8859-1?Q?J=FCrgen_M=FCller?= <j@example.com>");
  ASSERT_TRUE(q.has_value()) << q.error().ToString();
  EXPECT_EQ(q->name, "Jürgen Müller");
  // Adjacent encoded-words join without the space between them (RFC 2047 §6.2);
  // an encoded-word next to an ordinary word keeps the space.
  auto joined = ParseAddress("=?UTF-8?B?8J2UuA==?= =?UTF-8?B?8J2UuA==?= GmbH <g@example.com>");
  ASSERT_TRUE(joined.has_value());
  EXPECT_EQ(joined->name, "𝔸𝔸 GmbH");
  // Inside a quoted-string an encoded-word is plain text.
  auto literal = ParseAddress("\"=?UTF-8?B?8J2UuA==?=\" <l@example.com>");
  ASSERT_TRUE(literal.has_value());
  EXPECT_EQ(literal->name, "=?UTF-8?B?8J2UuA==?=");
  // A malformed encoded-word is taken literally.
  auto bad = ParseAddress("=?UTF-8?B?***?= <l@example.com>");
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->name, "=?UTF-8?B?***?=");
  // Encoded line breaks are header injection too.
  auto injected = ParseAddress("=?UTF-8?Q?Eve=0D=0ABcc=3A_x?= <e@example.com>", "to[0]");
  ASSERT_FALSE(injected.has_value());
  EXPECT_EQ(injected.error().code, "header_injection");
  EXPECT_EQ(injected.error().field, "to[0]");
}

TEST(AddressTest, RejectsBadAddresses) {
  for (const char* bad :
       {"", "alice", "alice@", "@example.com", "a..b@example.com", ".a@example.com",
        "a@-example.com", "a@exa_mple.com", "a@example..com", "Doe, Jane <jane@example.com>",
        "Alice <alice@example.com", "a b@example.com", "\"unterminated <a@example.com>"}) {
    auto result = ParseAddress(bad, "to[3]");
    ASSERT_FALSE(result.has_value()) << bad;
    EXPECT_EQ(result.error().code, "invalid_address") << bad;
    EXPECT_EQ(result.error().field, "to[3]") << bad;
    EXPECT_EQ(result.error().kind, ErrorKind::kInvalidInput);
    EXPECT_EQ(result.error().message.find('\n'), std::string::npos);
  }
  auto utf8_local = ParseAddress("jürgen@example.com");
  ASSERT_FALSE(utf8_local.has_value());
  EXPECT_NE(utf8_local.error().message.find(
                "non-ASCII local part needs SMTPUTF8, which postline does not use"),
            std::string::npos);
  auto long_local = ParseAddress(std::string(65, 'a') + "@example.com");
  ASSERT_FALSE(long_local.has_value());
  EXPECT_NE(long_local.error().message.find("64"), std::string::npos);
  auto long_address =
      ParseAddress(std::string(64, 'a') + "@" + std::string(60, 'b') + "." + std::string(60, 'c') +
                   "." + std::string(60, 'd') + "." + std::string(60, 'e') + ".com");
  ASSERT_FALSE(long_address.has_value());
  EXPECT_NE(long_address.error().message.find("254"), std::string::npos);
}

TEST(AddressTest, HeaderInjectionInRecipient) {
  auto result = ParseAddressList("bob@example.com\r\nRCPT TO:<eve@example.net>", "to");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, "header_injection");
  EXPECT_EQ(result.error().field, "to");

  const Error error = ParseError(
      R"({"from": "a@example.com", "to": ["bob@example.com\r\nRCPT TO:<eve@example.net>"],
          "text": "x"})");
  EXPECT_EQ(error.code, "header_injection");
  EXPECT_EQ(error.field, "to[0]");
  EXPECT_EQ(error.kind, ErrorKind::kInvalidInput);
}

TEST(AddressTest, ListSplittingRespectsQuotesAndAngles) {
  auto list = ParseAddressList(
      R"(a@example.com, "Doe, Jane" <jane@example.com>,, "Quote \", comma" <q@example.com> ,)"
      R"( Bob <bob@example.com>)");
  ASSERT_TRUE(list.has_value()) << list.error().ToString();
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0], (Address{"", "a@example.com"}));
  EXPECT_EQ((*list)[1], (Address{"Doe, Jane", "jane@example.com"}));
  EXPECT_EQ((*list)[2], (Address{"Quote \", comma", "q@example.com"}));
  EXPECT_EQ((*list)[3], (Address{"Bob", "bob@example.com"}));

  auto bad = ParseAddressList("a@example.com, not-an-address", "cc");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field, "cc[1]");
}

TEST(EnvelopeJsonTest, ParsesAllFields) {
  auto email = ParseEmailJson(R"j({
    "v": 1, "id": "01JDXKQ4M3ZV8W5R2T7N9P6B1C",
    "from": {"name": "Acme Billing", "email": "billing@example.com"},
    "to": "\"Doe, Jane (Billing)\" <jane@example.com>, bob@example.com",
    "cc": [{"email": "carol@example.com"}], "bcc": ["Eve <eve@example.net>"],
    "reply_to": "support@example.com",
    "subject": "Invoice 42", "text": "Hi", "html": "<p>Hi</p>",
    "attachments": [{"filename": "a.bin", "content_type": "application/octet-stream",
                     "content_base64": "AAEC/w=="}],
    "headers": {"X-Zeta": "1", "X-Alpha": "2"},
    "priority": 2, "idempotency_key": "invoice-42",
    "send_at": "2026-12-01T10:00:00.250+01:00"})j");
  ASSERT_TRUE(email.has_value()) << email.error().ToString();
  EXPECT_EQ(email->to.size(), 2u);
  EXPECT_EQ(email->to[0].name, "Doe, Jane (Billing)");
  EXPECT_EQ(email->bcc[0], (Address{"Eve", "eve@example.net"}));
  EXPECT_EQ(email->attachments[0].content, std::string("\x00\x01\x02\xff", 4));
  ASSERT_EQ(email->headers.size(), 2u);
  // Line-wrapped base64 (as MIME writes it) decodes the same.
  auto wrapped = ParseEmailJson(R"j({"v": 1, "from": "a@example.com", "to": "b@example.com",
    "subject": "s", "text": "t", "attachments": [{"filename": "a.bin",
    "content_type": "application/octet-stream", "content_base64": "AAEC\r\n/w=="}]})j");
  ASSERT_TRUE(wrapped.has_value()) << wrapped.error().ToString();
  EXPECT_EQ(wrapped->attachments[0].content, std::string("\x00\x01\x02\xff", 4));
  EXPECT_EQ(email->headers[0].first, "X-Zeta");  // order kept
  EXPECT_EQ(email->priority, 2);
  ASSERT_TRUE(email->send_at.has_value());
  EXPECT_EQ(ToUnixMillis(*email->send_at), 1796115600250LL);  // 2026-12-01T09:00:00.250Z

  auto pairs = ParseEmailJson(Minimal(R"(, "headers": [["X-A", "1"], ["X-A", "2"]])"));
  ASSERT_TRUE(pairs.has_value());
  EXPECT_EQ(pairs->headers.size(), 2u);
  auto defaults = ParseEmailJson(Minimal());
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->priority, kDefaultPriority);
  EXPECT_FALSE(defaults->send_at.has_value());
}

TEST(EnvelopeJsonTest, RoundTripWithArbitraryBytes) {
  std::mt19937 engine(7);
  Email email;
  email.id = "01JDXKQ4M3ZV8W5R2T7N9P6B1C";
  email.from = {"Acme, Billing", "billing@bücher.example"};
  email.to = {{"Jane \"JD\" Doe", "jane@example.com"}, {"", "bob@example.com"}};
  email.cc = {{"Carol", "carol@example.com"}};
  email.bcc = {{"", "eve@example.net"}};
  email.reply_to = {{"Support", "support@example.com"}};
  email.subject = "Rechnung 𝔸 – Überfällig";
  email.text = "Hi\nthere\r\n";
  email.html = "<p>Hi</p>";
  for (std::size_t size : {0u, 1u, 2u, 3u, 1000u, 4097u}) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(engine() & 0xFF);
    email.attachments.push_back({"file Żółć.bin", "application/octet-stream", bytes});
  }
  email.headers = {{"X-B", "2"}, {"X-A", "1"}, {"X-B", "3"}};
  email.priority = 9;
  email.idempotency_key = "key-1";
  email.send_at = std::chrono::system_clock::time_point{std::chrono::milliseconds{1796115600250}};

  const std::string encoded = EncodeEmailJson(email);
  const json as_json = json::parse(encoded);
  EXPECT_EQ(as_json["v"], 1);
  EXPECT_EQ(as_json["send_at"], "2026-12-01T09:00:00.250Z");
  EXPECT_TRUE(as_json["from"].is_object());
  EXPECT_TRUE(as_json["attachments"][0].contains("content_base64"));
  auto decoded = ParseEmailJson(encoded);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(*decoded, email);
}

TEST(EnvelopeJsonTest, EveryErrorNamesItsField) {
  struct Case {
    std::string json;
    std::string code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {Minimal(R"(, "subject": "Invoice 42\r\nBcc: eve@example.net")"), "header_injection",
       "subject"},
      {Minimal(R"(, "priority": 0)"), "invalid_priority", "priority"},
      {Minimal(R"(, "priority": 11)"), "invalid_priority", "priority"},
      {Minimal(R"(, "priority": 5.5)"), "invalid_priority", "priority"},
      {Minimal(R"(, "priority": "5")"), "invalid_priority", "priority"},
      {Minimal(R"(, "colour": "red")"), "unknown_field", "colour"},
      {Minimal(R"(, "v": 2)"), "unsupported_version", "v"},
      {Minimal(R"(, "cc": ["a@example.com", "nope"])"), "invalid_address", "cc[1]"},
      {Minimal(R"(, "reply_to": [{"email": "r@example.com", "mail": "x"}])"), "unknown_field",
       "reply_to[0].mail"},
      {Minimal(R"(, "headers": {"Subject": "x"})"), "reserved_header", "headers[0]"},
      {Minimal(R"(, "headers": {"content-type": "x"})"), "reserved_header", "headers[0]"},
      {Minimal(R"(, "headers": {"X Bad": "x"})"), "invalid_header_name", "headers[0]"},
      {Minimal(R"(, "headers": {"X-Ok": "a\nb"})"), "header_injection", "headers.X-Ok"},
      {Minimal(R"(, "headers": [["X-Ok"]])"), "invalid_type", "headers[0]"},
      {Minimal(R"(, "headers": {"X-Long": ")" + std::string(1000, 'a') + R"("})"),
       "header_too_long", "headers.X-Long"},
      {Minimal(R"(, "send_at": "9999-12-31T23:59:59Z")"), "invalid_send_at", "send_at"},
      {Minimal(R"(, "send_at": "1600-01-01T00:00:00Z")"), "invalid_send_at", "send_at"},
      {Minimal(R"(, "attachments": [{"filename": "a", "content_type": "application/pdf"}])"),
       "invalid_attachment", "attachments[0]"},
      {Minimal(
           R"(, "attachments": [{"filename": "a", "content_type": "pdf", "content_base64": ""}])"),
       "invalid_content_type", "attachments[0].content_type"},
      {Minimal(
           R"(, "attachments": [{"filename": "", "content_type": "a/b", "content_base64": ""}])"),
       "missing_field", "attachments[0].filename"},
      {Minimal(
           R"(, "attachments": [{"filename": "a\r\nb", "content_type": "a/b", "content_base64": ""}])"),
       "header_injection", "attachments[0].filename"},
      {Minimal(
           R"(, "attachments": [{"filename": "a", "content_type": "a/b", "content_base64": "!!"}])"),
       "invalid_base64", "attachments[0].content_base64"},
      {Minimal(
           R"(, "attachments": [{"filename": "a", "content_type": "a/b", "content_base64": "AA=C"}])"),
       "invalid_base64", "attachments[0].content_base64"},
      {Minimal(
           R"(, "attachments": [{"filename": "a", "content_type": "a/b", "content_base64": "AAE"}])"),
       "invalid_base64", "attachments[0].content_base64"},
      {Minimal(
           R"(, "attachments": [{"filename": "a", "content_type": "a/b", "path": "/nonexistent/postline/x.pdf"}])"),
       "unreadable_attachment", "attachments[0].path"},
      {Minimal(R"(, "idempotency_key": ")" + std::string(129, 'k') + "\""),
       "invalid_idempotency_key", "idempotency_key"},
      {Minimal(R"(, "send_at": "2026-12-01 09:00")"), "invalid_send_at", "send_at"},
      {Minimal(R"(, "send_at": "2026-12-01T09:00:00")"), "invalid_send_at", "send_at"},
      {Minimal(R"(, "send_at": "2026-02-30T09:00:00Z")"), "invalid_send_at", "send_at"},
      {Minimal(R"(, "id": "a b")"), "invalid_id", "id"},
      {Minimal(R"(, "subject": 42)"), "invalid_type", "subject"},
      {R"({"to": "a@example.com", "text": "x"})", "missing_field", "from"},
      {R"({"from": "a@example.com", "text": "x"})", "no_recipients", "to"},
      {R"({"from": "a@example.com", "to": "b@example.com"})", "missing_body", "text"},
      {R"({"from": {"name": "A\nB", "email": "a@example.com"}, "to": "b@example.com", "text": "x"})",
       "header_injection", "from.name"},
      {"[1, 2]", "invalid_type", "(root)"},
  };
  for (const Case& c : cases) {
    const Error error = ParseError(c.json);
    EXPECT_EQ(error.code, c.code) << c.json << " → " << error.ToString();
    EXPECT_EQ(error.field, c.field) << c.json << " → " << error.ToString();
    EXPECT_EQ(error.kind, ErrorKind::kInvalidInput) << c.json;
    EXPECT_FALSE(error.message.empty());
    EXPECT_EQ(error.message.find_first_of("\r\n"), std::string::npos) << error.message;
    if (!c.field.empty() && c.field != "(root)") {
      EXPECT_NE(error.message.find(c.field), std::string::npos) << error.message;
    }
  }
  EXPECT_NE(ParseError(Minimal(R"(, "priority": 0)")).message.find("allowed: integer 1–10"),
            std::string::npos);
}

TEST(EnvelopeJsonTest, MalformedJsonReportsByteOffset) {
  const Error error = ParseError(R"({"from": "a@example.com", "to": })");
  EXPECT_EQ(error.code, "malformed_json");
  EXPECT_NE(error.message.find("byte 33"), std::string::npos) << error.message;
}

// 1e400 made nlohmann throw out_of_range past the parse_error handler: the
// CLI aborted ("terminate called … number overflow") and the worker too.
TEST(EnvelopeJsonTest, NumbersBeyondDoubleRangeAreInvalidInputNamingTheField) {
  const std::string digits400(400, '9');
  const std::string digits401 = "1" + std::string(400, '0');
  struct Case {
    std::string extra;
    std::string field;
  };
  const Case cases[] = {
      {R"(, "priority": 1e400)", "priority"},
      {R"(, "priority": 1e309)", "priority"},
      {R"(, "priority": -1e400)", "priority"},
      {", \"priority\": " + digits400, "priority"},
      {", \"priority\": -" + digits400, "priority"},
      {", \"x_producer_sequence\": " + digits401, "x_producer_sequence"},
      {R"(, "v": 1e999)", "v"},
      {R"(, "headers": {"X-Count": 2e308})", "headers.X-Count"},
      {R"(, "attachments": [{"filename": "a", "size": 1e400}])", "attachments[0].size"},
  };
  for (const auto& c : cases) {
    const Error error = ParseError(Minimal(c.extra));
    EXPECT_EQ(error.kind, ErrorKind::kInvalidInput) << c.extra.substr(0, 60);
    EXPECT_EQ(error.code, "number_out_of_range") << error.ToString();
    EXPECT_EQ(error.field, c.field) << error.ToString();
    EXPECT_TRUE(error.message.starts_with(c.field + ": number ")) << error.message;
    EXPECT_NE(error.message.find("out of range"), std::string::npos) << error.message;
  }
  // Within double range but not an integer: the priority rule answers.
  EXPECT_EQ(ParseError(Minimal(R"(, "priority": 1e300)")).code, "invalid_priority");
}

// Nesting 60,000 deep overflowed the stack of nlohmann's recursive copy and
// dump() (the API copied every document) and of recursive readers.
TEST(EnvelopeJsonTest, DeepNestingIsRefusedWhileParsing) {
  auto nested = [](std::size_t depth, std::string_view open, std::string_view close) {
    std::string out;
    for (std::size_t i = 0; i < depth; ++i) out += open;
    out += "1";
    for (std::size_t i = 0; i < depth; ++i) out += close;
    return out;
  };
  const std::string bodies[] = {
      nested(60000, R"({"a":)", "}"),
      Minimal(", \"headers\": " + nested(100000, R"({"X":)", "}")),
      Minimal(", \"cc\": " + nested(100000, "[", "]")),
      Minimal(", \"attachments\": " + nested(50000, "[", "]")),
      Minimal(", \"reply_to\": " + nested(33, "[", "]")),
  };
  for (const auto& body : bodies) {
    const Error error = ParseError(body);
    EXPECT_EQ(error.kind, ErrorKind::kInvalidInput);
    EXPECT_EQ(error.code, "json_too_deep") << error.ToString().substr(0, 300);
    EXPECT_NE(error.message.find("deeper than 32 levels"), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find_first_of("\r\n"), std::string::npos);
  }
  EXPECT_EQ(ParseError(Minimal(", \"cc\": " + nested(31, "[", "]"))).code, "invalid_type");
}

TEST(EnvelopeJsonTest, AttachmentFromPath) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("postline_envelope_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  const std::string bytes("%PDF-1.7\n\x00\xff binary", 19);
  std::ofstream(dir / "invoice.pdf", std::ios::binary).write(bytes.data(), bytes.size());
  auto email = ParseEmailJson(
      Minimal(R"(, "attachments": [{"filename": "invoice.pdf", "content_type": "application/pdf",
                                     "path": "invoice.pdf"}])"),
      dir.string());
  ASSERT_TRUE(email.has_value()) << email.error().ToString();
  EXPECT_EQ(email->attachments[0].content, bytes);

  auto missing = ParseEmailJson(
      Minimal(R"(, "attachments": [{"filename": "x.pdf", "content_type": "application/pdf",
                                     "path": "missing.pdf"}])"),
      dir.string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, "unreadable_attachment");
  EXPECT_EQ(missing.error().field, "attachments[0].path");

  auto too_large = ParseEmailJson(
      Minimal(R"(, "attachments": [{"filename": "invoice.pdf", "content_type": "application/pdf",
                                     "path": "invoice.pdf"}])"),
      dir.string(), EnvelopeLimits{.max_total_bytes = 10});
  ASSERT_FALSE(too_large.has_value());
  EXPECT_EQ(too_large.error().code, "too_large");
  EXPECT_NE(too_large.error().message.find("19 bytes"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(EnvelopeJsonTest, EmptyBaseDirRefusesAttachmentPaths) {
  const std::string envelope =
      R"({"from": "a@example.com", "to": "b@example.com", "text": "x",
          "attachments": [{"filename": "p", "content_type": "text/plain", "path": "/etc/hostname"}]})";
  auto refused = ParseEmailJson(envelope, "");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "attachment_path_refused");
  EXPECT_EQ(refused.error().field, "attachments[0].path");
}

TEST(ValidateTest, LimitsAndInjection) {
  auto email = ParseEmailJson(Minimal());
  ASSERT_TRUE(email.has_value());
  Email big = *email;
  big.attachments.push_back({"a.bin", "application/octet-stream", std::string(2000, 'x')});
  auto result = ValidateEmail(big, EnvelopeLimits{.max_total_bytes = 1000});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, "too_large");
  EXPECT_NE(result.error().message.find("1000 bytes"), std::string::npos);

  auto big_json = ParseEmailJson(
      Minimal(R"(, "attachments": [{"filename": "a", "content_type": "a/b", "content_base64": ")" +
              std::string(4000, 'A') + "\"}]"),
      ".", EnvelopeLimits{.max_total_bytes = 1000});
  ASSERT_FALSE(big_json.has_value());
  EXPECT_EQ(big_json.error().code, "too_large");
  EXPECT_EQ(big_json.error().field, "attachments[0].content_base64");

  Email many = *email;
  many.to.assign(3, Address{"", "x@example.com"});
  result = ValidateEmail(many, EnvelopeLimits{.max_recipients = 2});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, "too_many_recipients");

  Email injected = *email;
  injected.subject = std::string("Invoice 42\0", 11);
  result = ValidateEmail(injected);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, "header_injection");

  Email bad_to = *email;
  bad_to.to.push_back({"", "bob@example.com\r\nRCPT TO:<eve@example.net>"});
  result = ValidateEmail(bad_to);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, "header_injection");
  EXPECT_EQ(result.error().field, "to[1].email");
  EXPECT_TRUE(ValidateEmail(*email).has_value());
}

class FixedClock final : public Clock {
 public:
  explicit FixedClock(long long millis) : millis_(millis) {}
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point{std::chrono::milliseconds{millis_}};
  }
  std::chrono::steady_clock::time_point SteadyNow() const override { return {}; }
  void Advance(long long millis) { millis_ += millis; }

 private:
  long long millis_;
};

TEST(EnvelopeIdTest, UlidFormatAndTimestamp) {
  const FixedClock clock(1469918176385LL);  // the ULID spec's example time
  const std::string id = NewEnvelopeId(clock);
  ASSERT_EQ(id.size(), 26u);
  EXPECT_EQ(id.substr(0, 10), "01ARYZ6S41");
  EXPECT_EQ(id.find_first_not_of("0123456789ABCDEFGHJKMNPQRSTVWXYZ"), std::string::npos);
  EXPECT_EQ(NewEnvelopeId(FixedClock(0)).substr(0, 10), "0000000000");
  EXPECT_TRUE(ValidateEmail(Email{.id = NewEnvelopeId(),
                                  .from = {"", "a@example.com"},
                                  .to = {{"", "b@example.com"}},
                                  .text = "x"})
                  .has_value());
}

TEST(EnvelopeIdTest, TenThousandUniqueAndOrdered) {
  FixedClock clock(1796115600000LL);
  std::vector<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    if (i % 7 == 0) clock.Advance(1);  // several ids per millisecond, many milliseconds
    ids.push_back(NewEnvelopeId(clock));
  }
  const std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size());
  for (std::size_t i = 1; i < ids.size(); ++i) {
    ASSERT_LT(ids[i - 1], ids[i]) << i;
  }
  // The production clock too: unique and non-decreasing.
  std::vector<std::string> real;
  for (int i = 0; i < 10000; ++i) real.push_back(NewEnvelopeId());
  EXPECT_EQ(std::set<std::string>(real.begin(), real.end()).size(), real.size());
  EXPECT_TRUE(std::is_sorted(real.begin(), real.end()));
}

TEST(EnvelopeIdTest, UniqueAcrossThreads) {
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < per_thread.size(); ++t) {
    threads.emplace_back([&per_thread, t] {
      for (int i = 0; i < 5000; ++i) per_thread[t].push_back(NewEnvelopeId());
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> all;
  for (const auto& ids : per_thread) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), 4u * 5000u);
}

TEST(FuzzTest, RandomInputNeverCrashes) {
  std::mt19937 engine(12345);
  const std::string alphabet = "{}[]\":,<>@\\ \r\n\t.abcAZ09-_=?é𝔸\x01\xff";
  for (int i = 0; i < 3000; ++i) {
    std::string input;
    const int length = static_cast<int>(engine() % 80);
    for (int j = 0; j < length; ++j) {
      input += (engine() % 4 == 0) ? static_cast<char>(engine() & 0xFF)
                                   : alphabet[engine() % alphabet.size()];
    }
    auto address = ParseAddress(input);
    auto list = ParseAddressList(input);
    auto email = ParseEmailJson(input);
    auto wrapped = ParseEmailJson(
        Minimal(", \"cc\": " + json(input).dump(-1, ' ', false, json::error_handler_t::replace)));
    // Whatever the outcome, a failure names a code and a one-line message.
    const std::vector<const Error*> errors = {
        address ? nullptr : &address.error(), list ? nullptr : &list.error(),
        email ? nullptr : &email.error(), wrapped ? nullptr : &wrapped.error()};
    for (const Error* error : errors) {
      if (error == nullptr) continue;
      EXPECT_FALSE(error->code.empty());
      EXPECT_EQ(error->message.find_first_of("\r\n"), std::string::npos) << error->message;
    }
  }
}

}  // namespace
}  // namespace postline
