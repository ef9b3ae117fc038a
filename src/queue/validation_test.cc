// Backend-independent helpers of postline/queue.h: body validation, MD5, DLQ
// naming.
#include <gtest/gtest.h>

#include <string>

#include "postline/queue.h"

namespace postline {
namespace {

TEST(Md5Hex, MatchesKnownDigests) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Hex("The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6");
}

TEST(ValidateMessageBody, AcceptsSqsCharacterSet) {
  EXPECT_TRUE(ValidateMessageBody("plain ASCII"));
  EXPECT_TRUE(ValidateMessageBody("\t\n\r"));
  EXPECT_TRUE(ValidateMessageBody("caf\xC3\xA9 \xE2\x82\xAC"));  // é €
  EXPECT_TRUE(ValidateMessageBody("\xED\x9F\xBF"));              // U+D7FF
  EXPECT_TRUE(ValidateMessageBody("\xEE\x80\x80"));              // U+E000
  EXPECT_TRUE(ValidateMessageBody("\xEF\xBF\xBD"));              // U+FFFD
  EXPECT_TRUE(ValidateMessageBody("\xF0\x90\x80\x80"));          // U+10000
  EXPECT_TRUE(ValidateMessageBody("\xF4\x8F\xBF\xBF"));          // U+10FFFF
}

TEST(ValidateMessageBody, NamesTheOffendingCharacterAndOffset) {
  auto bell = ValidateMessageBody("ab\x07");
  ASSERT_FALSE(bell);
  EXPECT_EQ(bell.error().kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(bell.error().code, "InvalidMessageContents");
  EXPECT_NE(bell.error().message.find("U+0007"), std::string::npos) << bell.error().message;
  EXPECT_NE(bell.error().message.find("offset 2"), std::string::npos) << bell.error().message;
  EXPECT_EQ(bell.error().field, "MessageBody");
}

TEST(ValidateMessageBody, RejectsInvalidUtf8AndExcludedCodePoints) {
  for (const std::string& bad : {
           std::string("\x00", 1),           // NUL
           std::string("\x1F"),              // control
           std::string("\xED\xA0\x80"),      // encoded lone surrogate U+D800
           std::string("\xED\xBF\xBF"),      // U+DFFF
           std::string("\xEF\xBF\xBE"),      // U+FFFE
           std::string("\xEF\xBF\xBF"),      // U+FFFF
           std::string("\xC0\xAF"),          // overlong '/'
           std::string("\xE0\x80\xAF"),      // overlong
           std::string("\xF4\x90\x80\x80"),  // above U+10FFFF
           std::string("\x80"),              // stray continuation byte
           std::string("\xC3"),              // truncated
           std::string("\xFF"),
           std::string(""),
       }) {
    auto result = ValidateMessageBody(bad);
    ASSERT_FALSE(result) << "accepted bytes of length " << bad.size();
    EXPECT_EQ(result.error().code, "InvalidMessageContents");
  }
}

TEST(DeadLetterQueueName, AppendsDlq) {
  EXPECT_EQ(DeadLetterQueueName("invoice-generation-queue"), "invoice-generation-queue-dlq");
}

}  // namespace
}  // namespace postline
