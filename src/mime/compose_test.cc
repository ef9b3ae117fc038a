#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mime_internal.h"
#include "postline/envelope.h"
#include "postline/mime.h"

namespace postline {
namespace {

using nlohmann::json;

// 2026-11-29T10:11:05Z
constexpr std::chrono::system_clock::time_point kDate{std::chrono::seconds{1795947065}};

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string RandomBytes(std::size_t n, unsigned seed) {
  std::mt19937 engine(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(byte(engine));
  return out;
}

Email BaseEmail() {
  Email email;
  email.id = "01JDXKQ4M3ZV8W5R2T7N9P6B1C";
  email.from = {"Acme Billing", "billing@example.com"};
  email.to = {{"Alice", "alice@example.com"}};
  email.subject = "Invoice 42";
  email.text = "Hi Alice,\nyour invoice is attached.\n";
  return email;
}

std::string Compose(const Email& email) {
  EXPECT_TRUE(ValidateEmail(email).has_value()) << ValidateEmail(email).error().ToString();
  auto message = ComposeMessage(email, ComposeOptions{kDate});
  EXPECT_TRUE(message.has_value()) << message.error().ToString();
  return message.value_or("");
}

// Runs Python's email package (policy=default) on the message and returns
// what it parsed.
json ParseWithPython(const std::string& message) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / ("postline_mime_" + std::to_string(::getpid()) + "_" +
                                   std::to_string(std::random_device{}()) + ".eml"))
                               .string();
  {
    std::ofstream out(path, std::ios::binary);
    out.write(message.data(), static_cast<std::streamsize>(message.size()));
  }
  const std::string script =
      std::string(POSTLINE_SOURCE_DIR) + "/src/mime/testdata/parse_message.py";
  const std::string command = "/usr/bin/python3 '" + script + "' '" + path + "'";
  std::string output;
  {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), &pclose);
    if (pipe == nullptr) {
      ADD_FAILURE() << "cannot run " << command;
      return json();
    }
    std::array<char, 4096> buffer;
    std::size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0)
      output.append(buffer.data(), n);
  }
  std::filesystem::remove(path);
  auto parsed = json::parse(output, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << "checker output: " << output;
  EXPECT_TRUE(parsed.contains("defects")) << output;
  if (parsed.contains("defects")) {
    EXPECT_EQ(parsed["defects"], json::array()) << output;
  }
  return parsed;
}

// The header block, unfolded lines kept as they are on the wire.
std::string HeaderBlock(const std::string& message) {
  return message.substr(0, message.find("\r\n\r\n") + 2);
}

// The raw (folded) value of the first header field `name`.
std::string RawHeader(const std::string& message, const std::string& name) {
  const std::string block = "\r\n" + HeaderBlock(message);
  const std::size_t start = block.find("\r\n" + name + ":");
  if (start == std::string::npos) return "";
  std::size_t end = start + 2;
  while (true) {
    end = block.find("\r\n", end);
    if (end == std::string::npos || end + 2 >= block.size() ||
        (block[end + 2] != ' ' && block[end + 2] != '\t')) {
      break;
    }
    end += 2;
  }
  return block.substr(start + 2 + name.size() + 1, end - start - 2 - name.size() - 1);
}

std::vector<std::string> EncodedWords(const std::string& raw) {
  std::vector<std::string> words;
  std::size_t pos = 0;
  while ((pos = raw.find("=?", pos)) != std::string::npos) {
    const std::size_t q1 = raw.find('?', pos + 2);
    const std::size_t q2 = q1 == std::string::npos ? q1 : raw.find('?', q1 + 1);
    const std::size_t end = q2 == std::string::npos ? q2 : raw.find("?=", q2 + 1);
    if (end == std::string::npos) break;
    words.push_back(raw.substr(pos, end + 2 - pos));
    pos = end + 2;
  }
  return words;
}

std::string Normalise(std::string text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    out += text[i];
  }
  return out;
}

std::string StripFinalNewline(std::string text) {
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

TEST(ComposeTest, SubjectWithAstralCharactersRoundTripsInShortEncodedWords) {
  Email email = BaseEmail();
  email.subject = "Rechnung " + Repeat("𝔸", 30) + " – Überfällig";
  const std::string message = Compose(email);
  const std::string raw = RawHeader(message, "Subject");
  const auto words = EncodedWords(raw);
  ASSERT_GE(words.size(), 3u) << raw;
  for (const std::string& word : words) EXPECT_LE(word.size(), 75u) << word;
  const json parsed = ParseWithPython(message);
  EXPECT_EQ(parsed["subject"], email.subject);
  EXPECT_EQ(parsed["subject"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(ComposeTest, EncodedWordsNeverSplitCharacters) {
  for (const std::string& text : {Repeat("𝔸", 40), "a" + Repeat("ü", 50), Repeat("€", 33)}) {
    std::string joined;
    for (const std::string& word : mime_internal::EncodeWords(text)) {
      EXPECT_LE(word.size(), 75u);
      ASSERT_EQ(word.substr(0, 10), "=?UTF-8?B?");
      const std::string payload = word.substr(10, word.size() - 12);
      // Each word decodes on its own to whole characters.
      const json decoded =
          json::parse("\"" + payload + "\"");  // payload is base64, a valid JSON string body
      std::string bytes;
      {
        static const std::string kAlphabet =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        int bits = 0;
        unsigned value = 0;
        for (char c : decoded.get<std::string>()) {
          if (c == '=') break;
          value = (value << 6) | static_cast<unsigned>(kAlphabet.find(c));
          bits += 6;
          if (bits >= 8) {
            bits -= 8;
            bytes += static_cast<char>((value >> bits) & 0xFF);
          }
        }
      }
      ASSERT_FALSE(bytes.empty());
      EXPECT_NE(static_cast<unsigned char>(bytes.front()) & 0xC0, 0x80u) << word;
      joined += bytes;
    }
    EXPECT_EQ(joined, text);
  }
}

TEST(ComposeTest, DisplayNamesWithCommasParseBackAsTwoMailboxes) {
  auto parsed_input = ParseEmailJson(R"j({
    "from": "billing@example.com",
    "to": [{"name": "Doe, Jane (Billing)", "email": "jane@example.com"},
           "\"Müller, Anna – Buchhaltung & Rechnungswesen GmbH\" <anna@example.com>"],
    "subject": "Invoice", "text": "Hello", "id": "01JDXKQ4M3ZV8W5R2T7N9P6B1C"})j");
  ASSERT_TRUE(parsed_input.has_value()) << parsed_input.error().ToString();
  const json parsed = ParseWithPython(Compose(*parsed_input));
  const json expected = json::parse(R"j([
    {"name": "Doe, Jane (Billing)", "email": "jane@example.com"},
    {"name": "Müller, Anna – Buchhaltung & Rechnungswesen GmbH", "email": "anna@example.com"}])j");
  EXPECT_EQ(parsed["to"], expected);
}

TEST(ComposeTest, AttachmentFilenameAndBytesSurvive) {
  Email email = BaseEmail();
  email.html = "<p>Hi Alice,</p>";
  const std::string pdf = RandomBytes(30 * 1024, 42);
  email.attachments.push_back({"Faktura_Żółć_2024.pdf", "application/pdf", pdf});
  email.attachments.push_back({"plain.txt", "text/plain", "a\nb\r\nc\rd\0e"});
  const std::string message = Compose(email);
  const json parsed = ParseWithPython(message);
  EXPECT_EQ(parsed["content_type"], "multipart/mixed");
  EXPECT_EQ(parsed["parts"], json::parse(R"(["multipart/mixed", "multipart/alternative",
    "text/plain", "text/html", "application/pdf", "text/plain"])"));
  ASSERT_EQ(parsed["attachments"].size(), 2u);
  EXPECT_EQ(parsed["attachments"][0]["filename"], "Faktura_Żółć_2024.pdf");
  EXPECT_EQ(parsed["attachments"][0]["content_type"], "application/pdf");
  auto roundtrip =
      ParseEmailJson(json({{"from", "a@example.com"},
                           {"to", "b@example.com"},
                           {"text", "x"},
                           {"attachments",
                            {{{"filename", "f"},
                              {"content_type", "application/pdf"},
                              {"content_base64", parsed["attachments"][0]["content_base64"]}},
                             {{"filename", "g"},
                              {"content_type", "text/plain"},
                              {"content_base64", parsed["attachments"][1]["content_base64"]}}}}})
                         .dump());
  ASSERT_TRUE(roundtrip.has_value()) << roundtrip.error().ToString();
  EXPECT_EQ(roundtrip->attachments[0].content, pdf);
  EXPECT_EQ(roundtrip->attachments[1].content, email.attachments[1].content);
  EXPECT_EQ(parsed["attachments"][1]["filename"], "plain.txt");
  // RFC 2231 parameter in UTF-8 on the wire.
  EXPECT_NE(message.find("filename*=UTF-8''Faktura_%C5%BB%C3%B3%C5%82%C4%87_2024.pdf"),
            std::string::npos)
      << HeaderBlock(message.substr(message.find("application/pdf") - 20));
}

TEST(ComposeTest, LongSingleLineHtmlArrivesIntactWithShortLines) {
  Email email = BaseEmail();
  std::string html = "<html><body>";
  while (html.size() < 5000 - 14) html += "<b>Zeile ä</b>";
  html.resize(5000 - 14);
  html += "</body></html>";
  ASSERT_EQ(html.size(), 5000u);
  email.html = html;
  email.text = Repeat("x", 1500);  // an ASCII line longer than 998 octets
  const std::string message = Compose(email);
  std::size_t start = 0;
  std::size_t longest = 0;
  while (start < message.size()) {
    std::size_t end = message.find("\r\n", start);
    if (end == std::string::npos) end = message.size();
    longest = std::max(longest, end - start);
    start = end + 2;
  }
  EXPECT_LE(longest, 998u);
  const json parsed = ParseWithPython(message);
  EXPECT_EQ(parsed["html"], html);
  EXPECT_EQ(parsed["text"], email.text);
}

TEST(ComposeTest, TextBodyIsCrlfOnTheWire) {
  Email email = BaseEmail();
  const std::string message = Compose(email);
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n') {
      ASSERT_TRUE(i > 0 && message[i - 1] == '\r') << "bare LF at " << i;
    }
    if (message[i] == '\r') {
      ASSERT_TRUE(i + 1 < message.size() && message[i + 1] == '\n') << "bare CR at " << i;
    }
  }
  EXPECT_NE(message.find("\r\n\r\nHi Alice,\r\nyour invoice is attached.\r\n"), std::string::npos)
      << message;
  const json parsed = ParseWithPython(message);
  EXPECT_EQ(Normalise(parsed["text"].get<std::string>()), email.text);
  EXPECT_EQ(parsed["content_type"], "text/plain");
  EXPECT_NE(HeaderBlock(message).find("Content-Type: text/plain; charset=utf-8\r\n"),
            std::string::npos);
}

TEST(ComposeTest, HeadersBccAndMessageId) {
  Email email = BaseEmail();
  email.cc = {{"Carol", "carol@example.com"}};
  email.bcc = {{"Eve", "eve@example.net"}};
  email.reply_to = {{"", "support@example.com"}};
  email.headers = {{"X-Invoice-Id", "42"}, {"X-Note", "grüße"}, {"X-Invoice-Id", "43"}};
  const std::string message = Compose(email);
  EXPECT_EQ(message.find("eve@example.net"), std::string::npos);
  EXPECT_EQ(HeaderBlock(message).find("Bcc"), std::string::npos);
  const json parsed = ParseWithPython(message);
  EXPECT_EQ(parsed["message_id"], "<01JDXKQ4M3ZV8W5R2T7N9P6B1C@example.com>");
  EXPECT_EQ(MessageIdFor(email), "<01JDXKQ4M3ZV8W5R2T7N9P6B1C@example.com>");
  EXPECT_EQ(parsed["date"], "2026-11-29T10:11:05+00:00");
  EXPECT_EQ(parsed["cc"], json::parse(R"([{"name": "Carol", "email": "carol@example.com"}])"));
  EXPECT_EQ(parsed["reply_to"], json::parse(R"([{"name": "", "email": "support@example.com"}])"));
  EXPECT_EQ(parsed["from"],
            json::parse(R"([{"name": "Acme Billing", "email": "billing@example.com"}])"));
  EXPECT_EQ(parsed["header_names"],
            json::parse(R"(["Date", "From", "Reply-To", "To", "Cc", "Subject", "Message-ID",
              "MIME-Version", "X-Invoice-Id", "X-Note", "X-Invoice-Id", "Content-Type",
              "Content-Transfer-Encoding"])"));
  EXPECT_EQ(parsed["headers"][9], json::parse(R"(["X-Note", "grüße"])"));
  EXPECT_EQ(parsed["headers"][10], json::parse(R"(["X-Invoice-Id", "43"])"));

  // Same id, later date: same Message-ID.
  auto again = ComposeMessage(email, ComposeOptions{kDate + std::chrono::hours(5)});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(ParseWithPython(*again)["message_id"], parsed["message_id"]);
}

TEST(ComposeTest, IdnSenderDomainInMessageIdAndFrom) {
  Email email = BaseEmail();
  email.from = {"Bücher", "info@bücher.example"};
  EXPECT_EQ(MessageIdFor(email), "<01JDXKQ4M3ZV8W5R2T7N9P6B1C@xn--bcher-kva.example>");
  const json parsed = ParseWithPython(Compose(email));
  EXPECT_EQ(parsed["message_id"], "<01JDXKQ4M3ZV8W5R2T7N9P6B1C@xn--bcher-kva.example>");
  EXPECT_EQ(parsed["from"],
            json::parse(R"([{"name": "Bücher", "email": "info@xn--bcher-kva.example"}])"));
}

TEST(ComposeTest, SpecialDisplayNamesAreQuotedOrEncoded) {
  Email email = BaseEmail();
  email.to = {{"O'Brien \"Bob\" \\ Jr.", "bob@example.com"},
              {Repeat("𝔸", 11) + " and " + Repeat("𝔸", 11), "astral@example.com"},
              {"Zoë O'Neil, Jr.", "zoe@example.com"},
              {"=?UTF-8?B?not-a-word?=", "literal@example.com"},
              {"Plain Name", "plain@example.com"}};
  const std::string message = Compose(email);
  for (const std::string& word : EncodedWords(RawHeader(message, "To"))) {
    EXPECT_LE(word.size(), 75u) << word;
  }
  const json parsed = ParseWithPython(message);
  ASSERT_EQ(parsed["to"].size(), email.to.size()) << parsed["to"];
  for (std::size_t i = 0; i < email.to.size(); ++i) {
    EXPECT_EQ(parsed["to"][i]["name"], email.to[i].name);
    EXPECT_EQ(parsed["to"][i]["email"], email.to[i].email);
  }
}

TEST(ComposeTest, LongWordsInHeadersAreFolded) {
  Email email = BaseEmail();
  email.subject = "Invoice " + Repeat("x", 1200) + " due";
  email.to = {{Repeat("N", 1100), "long@example.com"},
              {Repeat("Doe, Jane ", 60), "jane@example.com"}};
  email.headers = {{"X-Long", Repeat("word ", 300)}};
  const std::string message = Compose(email);
  for (std::size_t start = 0; start < message.size();) {
    std::size_t end = message.find("\r\n", start);
    ASSERT_NE(end, std::string::npos);
    ASSERT_LE(end - start, 998u);
    start = end + 2;
  }
  const json parsed = ParseWithPython(message);
  EXPECT_EQ(parsed["subject"], email.subject);
  ASSERT_EQ(parsed["to"].size(), 2u);
  EXPECT_EQ(parsed["to"][1]["name"], email.to[1].name.substr(0, email.to[1].name.size() - 1));
  bool found = false;
  for (const json& header : parsed["headers"]) {
    if (header[0] != "X-Long") continue;
    found = true;
    EXPECT_EQ(header[1], email.headers[0].second);
  }
  EXPECT_TRUE(found);
}

// Random subjects, display names and bodies mixing ASCII, specials and 2-,
// 3- and 4-byte characters survive Python's parser.
TEST(ComposeTest, RandomTextSurvivesPython) {
  const std::vector<std::string> pieces = {"a", "Z", "9", " ", ",", "\"",   "\\", "(",  ")",
                                           "<", ">", "@", ":", ";", ".",    "=?", "?=", "_",
                                           "=", "ü", "ß", "–", "€", "日本", "𝔸",  "😀",  "\t"};
  std::mt19937 engine(2024);
  auto random_text = [&](std::size_t max_pieces) {
    std::string out;
    const std::size_t n = 1 + engine() % max_pieces;
    for (std::size_t i = 0; i < n; ++i) out += pieces[engine() % pieces.size()];
    return out;
  };
  for (int round = 0; round < 25; ++round) {
    Email email = BaseEmail();
    email.subject = "S" + random_text(60) + "E";
    // Display names: words of at most 10 pieces (≤ 40 bytes), so a run of
    // non-ASCII words needs no split (see MailboxTokens).
    std::string name = "N" + random_text(6);
    for (char& c : name) {
      if (c == '\t') c = 'x';
    }
    email.to = {{name + "Z", "one@example.com"}, {"Two", "two@example.com"}};
    email.text = random_text(200) + "\n" + random_text(50);
    email.html = "<p>" + random_text(300) + "</p>";
    const std::string message = Compose(email);
    const json parsed = ParseWithPython(message);
    EXPECT_EQ(parsed["subject"], email.subject) << HeaderBlock(message);
    ASSERT_EQ(parsed["to"].size(), 2u) << HeaderBlock(message);
    EXPECT_EQ(parsed["to"][0]["name"], email.to[0].name) << HeaderBlock(message);
    // The bodies end without a line break; Python may add one.
    EXPECT_EQ(StripFinalNewline(Normalise(parsed["text"].get<std::string>())), email.text);
    EXPECT_EQ(StripFinalNewline(Normalise(parsed["html"].get<std::string>())), email.html);
  }
}

TEST(ComposeTest, RejectsHeaderInjectionAndMissingId) {
  Email email = BaseEmail();
  email.subject = "Invoice 42\r\nBcc: eve@example.net";
  auto result = ComposeMessage(email, ComposeOptions{kDate});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, "header_injection");
  EXPECT_EQ(result.error().field, "subject");

  email = BaseEmail();
  email.headers = {{"X-A", "b\nc"}};
  result = ComposeMessage(email, ComposeOptions{kDate});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, "header_injection");

  email = BaseEmail();
  email.id.clear();
  result = ComposeMessage(email, ComposeOptions{kDate});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().field, "id");
}

TEST(ComposeTest, ComposesFromManyThreads) {
  Email email = BaseEmail();
  email.attachments.push_back({"a.bin", "application/octet-stream", RandomBytes(2000, 1)});
  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto message = ComposeMessage(email, ComposeOptions{kDate});
        if (message && message->find("Message-ID: <01JDXKQ4M3ZV8W5R2T7N9P6B1C@example.com>\r\n") !=
                           std::string::npos) {
          ++ok[static_cast<std::size_t>(t)];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok, std::vector<int>(4, 25));
}

TEST(ComposeTest, FormatDateIsRfc5322) {
  EXPECT_EQ(mime_internal::FormatDate(kDate), "Sun, 29 Nov 2026 10:11:05 +0000");
  EXPECT_EQ(mime_internal::FormatDate(std::chrono::system_clock::time_point{}),
            "Thu, 01 Jan 1970 00:00:00 +0000");
}

}  // namespace
}  // namespace postline
