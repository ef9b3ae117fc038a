// The SMTP transcript and the outcome table (docs/delivery.md), on
// transcripts shaped like the lines libcurl reports.

#include "smtp_internal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace postline::transport_internal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Plays a conversation: lines starting with "C: " are sent, "S: " received.
SmtpTranscript Play(std::initializer_list<std::string_view> lines) {
  SmtpTranscript t;
  for (std::string_view line : lines) {
    std::string bytes = std::string(line.substr(3)) + "\r\n";
    if (line.starts_with("C: ")) {
      t.OnCommandBytes(bytes);
    } else {
      t.OnReplyBytes(bytes);
    }
  }
  return t;
}

TEST(SmtpTranscriptTest, RecordsExchangesAndDropsCredentials) {
  SmtpTranscript t = Play({
      "S: 220 smtp.test ESMTP",
      "C: EHLO client",
      "S: 250-smtp.test",
      "S: 250-AUTH LOGIN PLAIN",
      "S: 250 HELP",
      "C: AUTH LOGIN bWFpbGVy",
      "S: 334 UGFzc3dvcmQ6",
      "C: czNjcmV0",
      "S: 235 2.7.0 Authentication successful",
      "C: MAIL FROM:<a@x.test> SIZE=10",
      "S: 250 OK",
      "C: RCPT TO:<b@y.test>",
      "S: 550 5.1.1 no such user",
      "C: RCPT TO:<c@y.test>",
      "S: 250 OK",
      "C: DATA",
      "S: 354 go ahead",
      "S: 250 2.0.0 Ok: queued as 4XYZ12",
  });
  const auto& e = t.exchanges();
  ASSERT_EQ(e.size(), 9u);
  EXPECT_EQ(e[0].verb, "");
  EXPECT_EQ(e[0].code, 220);
  EXPECT_EQ(e[1].verb, "EHLO");
  EXPECT_EQ(e[1].reply, "250-smtp.test 250-AUTH LOGIN PLAIN 250 HELP");
  EXPECT_EQ(e[2].verb, "AUTH");
  EXPECT_EQ(e[3].verb, "AUTH-RESPONSE");
  for (const auto& x : e) {
    EXPECT_THAT(x.argument + x.reply, Not(HasSubstr("bWFpbGVy")));
    EXPECT_THAT(x.argument + x.reply, Not(HasSubstr("czNjcmV0")));
  }
  EXPECT_EQ(e[5].argument, "b@y.test");
  EXPECT_EQ(e[5].code, 550);
  EXPECT_EQ(e[8].verb, ".");
  EXPECT_EQ(e[8].code, 250);

  SendResult r = ClassifySmtpResult(CURLE_OK, t, "");
  EXPECT_EQ(r.outcome, SendOutcome::kSent);
  EXPECT_EQ(r.reply_code, 250);
  EXPECT_EQ(r.provider_message_id, "4XYZ12");
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].recipient, "b@y.test");
}

TEST(SmtpTranscriptTest, ReplyLinesSplitAcrossCallbacks) {
  SmtpTranscript t;
  t.OnCommandBytes("NOOP\r\n");
  t.OnReplyBytes("25");
  t.OnReplyBytes("0 O");
  EXPECT_FALSE(t.any_reply());
  t.OnReplyBytes("K\r\n");
  ASSERT_NE(t.LastCompleted(), nullptr);
  EXPECT_EQ(t.LastCompleted()->code, 250);
  EXPECT_EQ(t.LastCompleted()->reply, "250 OK");
}

TEST(SmtpTranscriptTest, ProviderMessageId) {
  EXPECT_EQ(ExtractProviderMessageId("250 2.0.0 Ok: queued as ABC"), "ABC");
  EXPECT_EQ(ExtractProviderMessageId("250 2.0.0 Ok: queued as 4Q1x2Y3z4 (more)"), "4Q1x2Y3z4");
  EXPECT_EQ(ExtractProviderMessageId("250 OK id=1rABcd-000XYZ-2a"), "1rABcd-000XYZ-2a");
  EXPECT_EQ(ExtractProviderMessageId("250 2.0.0 OK  1700000000 x12si - gsmtp"),
            "2.0.0 OK  1700000000 x12si - gsmtp");
}

TEST(SmtpTranscriptTest, ClassifiesReplyCodes) {
  struct Case {
    std::initializer_list<std::string_view> lines;
    CURLcode code;
    SendOutcome outcome;
    int reply_code;
  };
  const Case cases[] = {
      // MAIL FROM refused
      {{"C: MAIL FROM:<a@x>", "S: 451 4.3.0 try later"},
       CURLE_SEND_ERROR,
       SendOutcome::kTransient,
       451},
      {{"C: MAIL FROM:<a@x>", "S: 553 5.1.8 sender refused"},
       CURLE_SEND_ERROR,
       SendOutcome::kPermanent,
       553},
      // libcurl's QUIT after the failure does not hide the refusal
      {{"C: MAIL FROM:<a@x>", "S: 530 5.7.0 Authentication required", "C: QUIT", "S: 221 Bye"},
       CURLE_SEND_ERROR,
       SendOutcome::kPermanent,
       530},
      // DATA end refused
      {{"C: DATA", "S: 354 go", "S: 452 4.3.1 full"},
       CURLE_WEIRD_SERVER_REPLY,
       SendOutcome::kTransient,
       452},
      {{"C: DATA", "S: 354 go", "S: 554 5.6.0 refused"},
       CURLE_WEIRD_SERVER_REPLY,
       SendOutcome::kPermanent,
       554},
      // AUTH refused / temporarily unavailable
      {{"C: AUTH PLAIN secret", "S: 535 5.7.8 bad credentials"},
       CURLE_LOGIN_DENIED,
       SendOutcome::kPermanent,
       535},
      {{"C: AUTH PLAIN secret", "S: 454 4.7.0 try later"},
       CURLE_LOGIN_DENIED,
       SendOutcome::kTransient,
       454},
      // STARTTLS offered but failing temporarily
      {{"C: STARTTLS", "S: 454 4.7.0 TLS not available"},
       CURLE_USE_SSL_FAILED,
       SendOutcome::kTransient,
       454},
      // STARTTLS not offered at all
      {{"C: EHLO c", "S: 250 HELP"}, CURLE_USE_SSL_FAILED, SendOutcome::kPermanent, 250},
      // Server says 421 and closes
      {{"S: 421 4.3.2 shutting down"}, CURLE_RECV_ERROR, SendOutcome::kTransient, 421},
      // Network and TLS failures without a reply
      {{}, CURLE_COULDNT_CONNECT, SendOutcome::kTransient, 0},
      {{}, CURLE_COULDNT_RESOLVE_HOST, SendOutcome::kTransient, 0},
      {{}, CURLE_OPERATION_TIMEDOUT, SendOutcome::kTransient, 0},
      {{}, CURLE_GOT_NOTHING, SendOutcome::kTransient, 0},
      {{}, CURLE_SSL_CONNECT_ERROR, SendOutcome::kTransient, 0},
      {{}, CURLE_PEER_FAILED_VERIFICATION, SendOutcome::kTransient, 0},
      {{}, CURLE_LOGIN_DENIED, SendOutcome::kPermanent, 0},
      {{}, CURLE_SSL_CACERT_BADFILE, SendOutcome::kPermanent, 0},
      // Accepted, then the connection broke: still sent.
      {{"C: DATA", "S: 354 go", "S: 250 2.0.0 Ok: queued as Q1"},
       CURLE_RECV_ERROR,
       SendOutcome::kSent,
       250},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(curl_easy_strerror(c.code));
    SendResult r = ClassifySmtpResult(c.code, Play(c.lines), "detail");
    EXPECT_EQ(r.outcome, c.outcome);
    EXPECT_EQ(r.reply_code, c.reply_code);
    EXPECT_FALSE(r.reply.empty());
  }
}

TEST(SmtpTranscriptTest, AllRecipientsRefused) {
  SmtpTranscript all5 = Play(
      {"C: RCPT TO:<a@x>", "S: 550 5.1.1 no such user", "C: RCPT TO:<b@x>", "S: 553 5.1.3 bad"});
  SendResult r = ClassifySmtpResult(CURLE_SEND_ERROR, all5, "RCPT failed: 553 (last error)");
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent);
  EXPECT_EQ(r.reply_code, 553);
  EXPECT_EQ(r.rejected.size(), 2u);
  EXPECT_THAT(r.reply, HasSubstr("<a@x> 550 5.1.1 no such user"));

  SmtpTranscript mixed = Play(
      {"C: RCPT TO:<a@x>", "S: 451 4.2.1 busy", "C: RCPT TO:<b@x>", "S: 550 5.1.1 no such user"});
  r = ClassifySmtpResult(CURLE_SEND_ERROR, mixed, "");
  EXPECT_EQ(r.outcome, SendOutcome::kTransient);
}

TEST(SmtpTranscriptTest, NoStartTlsExplainsTheFix) {
  SendResult r = ClassifySmtpResult(CURLE_USE_SSL_FAILED,
                                    Play({"C: EHLO c", "S: 250-smtp.test", "S: 250 HELP"}),
                                    "STARTTLS not supported.");
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent);
  EXPECT_THAT(r.reply, HasSubstr("server did not offer STARTTLS"));
  EXPECT_THAT(r.reply, HasSubstr("POSTLINE_SMTP_TLS=none only for a loopback"));
}

TEST(SmtpTranscriptTest, LocalFailureTextNamesTheCause) {
  SendResult r = ClassifySmtpResult(CURLE_COULDNT_CONNECT, SmtpTranscript(),
                                    "Failed to connect to 127.0.0.1 port 1: Connection refused");
  EXPECT_EQ(r.reply,
            "Couldn't connect to server: Failed to connect to 127.0.0.1 port 1: Connection "
            "refused");
}

TEST(SmtpUrlTest, SchemeFollowsTheTlsMode) {
  SmtpSettings s;
  s.host = "smtp.gmail.com";
  s.port = 587;
  EXPECT_EQ(SmtpUrl(s), "smtp://smtp.gmail.com:587/");
  s.port = 465;  // kAuto on 465: implicit TLS
  EXPECT_EQ(SmtpUrl(s), "smtps://smtp.gmail.com:465/");
  s.tls = SmtpTls::kStartTls;
  EXPECT_EQ(SmtpUrl(s), "smtp://smtp.gmail.com:465/");
  s.tls = SmtpTls::kImplicit;
  s.port = 2465;
  EXPECT_EQ(SmtpUrl(s), "smtps://smtp.gmail.com:2465/");
  s.tls = SmtpTls::kNone;
  s.host = "::1";
  s.port = 2525;
  s.helo_name = "client.example.com";
  EXPECT_EQ(SmtpUrl(s), "smtp://[::1]:2525/client.example.com");
}

}  // namespace
}  // namespace postline::transport_internal
