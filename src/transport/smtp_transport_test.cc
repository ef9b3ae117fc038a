// SMTP transport against a real SMTP server (tests/peers/smtp_server.py).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "postline/transport.h"
#include "testing/smtp_test_server.h"

namespace postline {
namespace {

using ::postline::testing::SmtpTestServer;
using ::testing::HasSubstr;

// A message exercising SMTP transparency: a leading dot on the first line
// of the body, a line with a single dot, a line with two dots, and 8-bit
// text. CRLF line ends throughout.
OutgoingMessage SampleMessage(std::string envelope_id = "env-1",
                              std::vector<std::string> rcpt = {"alice@example.test"}) {
  OutgoingMessage m;
  m.envelope_id = std::move(envelope_id);
  m.mail_from = "billing@sender.test";
  m.rcpt_to = std::move(rcpt);
  m.data =
      "From: Billing <billing@sender.test>\r\n"
      "To: alice@example.test\r\n"
      "Subject: Invoice INV-0001\r\n"
      "Message-ID: <" +
      m.envelope_id +
      "@sender.test>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n"
      ".leading dot\r\n"
      ".\r\n"
      "..two dots\r\n"
      "Total: 1\xc2\xa0"
      "234,50 \xe2\x82\xac\r\n"
      "\r\n"
      "end\r\n";
  return m;
}

std::unique_ptr<SmtpTestServer> StartServer(std::vector<std::string> args = {}) {
  auto server = SmtpTestServer::Start(std::move(args));
  if (!server) {
    ADD_FAILURE() << server.error();
    return nullptr;
  }
  return std::move(*server);
}

SmtpSettings PlainSettings(const SmtpTestServer& server) {
  SmtpSettings s;
  s.host = "127.0.0.1";
  s.port = server.port();
  s.tls = SmtpTls::kNone;
  s.connect_timeout_ms = 5000;
  s.timeout_ms = 20000;
  return s;
}

SmtpSettings TlsSettings(const SmtpTestServer& server, SmtpTls tls) {
  SmtpSettings s = PlainSettings(server);
  s.host = "localhost";  // matches the certificate's DNS name
  s.tls = tls;
  s.ca_file = server.cert_file();
  s.user = "mailer";
  s.password = "s3cret";
  return s;
}

const std::vector<std::string> kStartTlsAuthArgs = {"--starttls", "--self-signed-dir",
                                                    "{tmp}/certs", "--auth", "mailer:s3cret"};

TEST(SmtpTransportTest, PlainLoopbackDeliversBytesIdentically) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(ValidateSmtpSettings(PlainSettings(*server)).has_value());
  auto transport = NewSmtpTransport(PlainSettings(*server));
  EXPECT_EQ(transport->name(), "smtp");

  OutgoingMessage m = SampleMessage("env-1", {"alice@example.test", "bob@example.test"});
  SendResult r = transport->Send(m);

  ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply << "\n" << server->Log();
  EXPECT_EQ(r.reply_code, 250);
  EXPECT_TRUE(r.rejected.empty());
  ASSERT_EQ(server->MessageCount(), 1);
  EXPECT_EQ(server->MessageBytes(1), m.data);
  nlohmann::json envelope = server->Envelope(1);
  EXPECT_EQ(envelope["mail_from"], "billing@sender.test");
  EXPECT_EQ(envelope["rcpt_tos"], nlohmann::json({"alice@example.test", "bob@example.test"}));
  EXPECT_EQ(envelope["tls"], false);
  // "250 2.0.0 Ok: queued as <id>": the id is the provider message id.
  EXPECT_EQ(r.provider_message_id, envelope["queue_id"].get<std::string>());
  EXPECT_THAT(r.reply, HasSubstr("queued as " + r.provider_message_id));
}

// before_commit runs once per send, before the server has the message (it
// holds back the end of DATA), for a small message and for one larger than
// libcurl's 16 KB upload buffer.
TEST(SmtpTransportTest, BeforeCommitRunsOnceBeforeTheServerHasTheMessage) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  for (std::size_t body_size : {std::size_t{100}, std::size_t{200000}}) {
    OutgoingMessage m = SampleMessage();
    for (std::size_t i = 0; i < body_size / 100; ++i) m.data += std::string(98, 'a') + "\r\n";
    const int before = server->MessageCount();
    int calls = 0;
    int seen_by_server = -1;
    m.before_commit = [&] {
      ++calls;
      seen_by_server = server->MessageCount();
    };
    SendResult r = transport->Send(m);
    ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply;
    EXPECT_EQ(calls, 1) << body_size;
    EXPECT_EQ(seen_by_server, before) << body_size;
    ASSERT_EQ(server->MessageCount(), before + 1);
    EXPECT_EQ(server->MessageBytes(before + 1), m.data);
  }
  // A send refused before DATA never reaches the point of no return.
  OutgoingMessage refused = SampleMessage();
  refused.rcpt_to = {};
  int calls = 0;
  refused.before_commit = [&] { ++calls; };
  EXPECT_EQ(transport->Send(refused).outcome, SendOutcome::kPermanent);
  EXPECT_EQ(calls, 0);
}

TEST(SmtpTransportTest, MessageStartingWithDotArrivesIdentically) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  OutgoingMessage m = SampleMessage();
  m.data = ".X-Odd: first line starts with a dot\r\n\r\n.\r\n.end\r\n";
  ASSERT_EQ(transport->Send(m).outcome, SendOutcome::kSent);
  EXPECT_EQ(server->MessageBytes(1), m.data);
}

TEST(SmtpTransportTest, StartTlsWithAuthUsingCaFile) {
  auto server = StartServer(kStartTlsAuthArgs);
  ASSERT_NE(server, nullptr);
  ASSERT_FALSE(server->cert_file().empty());
  for (SmtpTls tls : {SmtpTls::kStartTls, SmtpTls::kAuto}) {
    SmtpSettings s = TlsSettings(*server, tls);
    ASSERT_TRUE(ValidateSmtpSettings(s).has_value());
    auto transport = NewSmtpTransport(s);
    OutgoingMessage m = SampleMessage(tls == SmtpTls::kAuto ? "env-auto" : "env-starttls");
    SendResult r = transport->Send(m);
    ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply << "\n" << server->Log();
  }
  ASSERT_EQ(server->MessageCount(), 2);
  for (int seq : {1, 2}) {
    nlohmann::json envelope = server->Envelope(seq);
    EXPECT_EQ(envelope["tls"], true);
    EXPECT_EQ(envelope["auth_user"], "mailer");
  }
  EXPECT_EQ(server->MessageBytes(1), SampleMessage("env-starttls").data);
  // Every AUTH happened inside TLS, after STARTTLS.
  bool seen_starttls = false;
  int auths = 0;
  for (const auto& e : server->Events()) {
    if (e["event"] == "starttls") seen_starttls = true;
    if (e["event"] == "auth") {
      ++auths;
      EXPECT_TRUE(seen_starttls);
      EXPECT_EQ(e["tls"], true);
    }
  }
  EXPECT_EQ(auths, 2);
}

TEST(SmtpTransportTest, ImplicitTls) {
  auto server = StartServer(
      {"--implicit-tls", "--self-signed-dir", "{tmp}/certs", "--auth", "mailer:s3cret"});
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(TlsSettings(*server, SmtpTls::kImplicit));
  OutgoingMessage m = SampleMessage();
  SendResult r = transport->Send(m);
  ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply << "\n" << server->Log();
  EXPECT_EQ(server->MessageBytes(1), m.data);
  EXPECT_EQ(server->Envelope(1)["tls"], true);
  EXPECT_EQ(server->CountEvents("starttls"), 0);
}

TEST(SmtpTransportTest, NoStartTlsOfferedFailsBeforeAuth) {
  // The server would accept AUTH in clear text: only the client's policy
  // keeps the credentials off the wire.
  auto server =
      StartServer({"--no-starttls-offer", "--auth", "mailer:s3cret", "--allow-plaintext-auth"});
  ASSERT_NE(server, nullptr);
  for (SmtpTls tls : {SmtpTls::kStartTls, SmtpTls::kAuto}) {
    SmtpSettings s = PlainSettings(*server);
    s.tls = tls;
    s.user = "mailer";
    s.password = "s3cret";
    auto transport = NewSmtpTransport(s);
    SendResult r = transport->Send(SampleMessage());
    EXPECT_EQ(r.outcome, SendOutcome::kPermanent);
    EXPECT_THAT(r.reply, HasSubstr("did not offer STARTTLS"));
    EXPECT_THAT(r.reply, HasSubstr("POSTLINE_SMTP_TLS=none"));
  }
  EXPECT_EQ(server->CountEvents("ehlo"), 2);  // the client did talk to it...
  EXPECT_EQ(server->CountEvents("auth"), 0);  // ...but never sent AUTH
  EXPECT_EQ(server->CountEvents("mail"), 0);
  EXPECT_EQ(server->MessageCount(), 0);

  // Control: with TLS off (loopback only) the same server does see AUTH,
  // so the recording above would have caught a leak.
  SmtpSettings plain = PlainSettings(*server);
  plain.user = "mailer";
  plain.password = "s3cret";
  SendResult r = NewSmtpTransport(plain)->Send(SampleMessage());
  ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply;
  EXPECT_EQ(server->CountEvents("auth"), 1);
}

TEST(SmtpTransportTest, UntrustedCertificateIsTransientAndSendsNoCredentials) {
  auto server = StartServer(kStartTlsAuthArgs);
  ASSERT_NE(server, nullptr);
  SmtpSettings s = TlsSettings(*server, SmtpTls::kStartTls);
  s.ca_file.clear();  // system store: does not trust the self-signed cert
  SendResult r = NewSmtpTransport(s)->Send(SampleMessage());
  EXPECT_EQ(r.outcome, SendOutcome::kTransient) << r.reply;
  EXPECT_FALSE(r.reply.empty());
  EXPECT_EQ(server->CountEvents("auth"), 0);
  EXPECT_EQ(server->MessageCount(), 0);
}

TEST(SmtpTransportTest, WrongPasswordIsPermanent) {
  auto server = StartServer(kStartTlsAuthArgs);
  ASSERT_NE(server, nullptr);
  SmtpSettings s = TlsSettings(*server, SmtpTls::kStartTls);
  s.password = "wrong";
  SendResult r = NewSmtpTransport(s)->Send(SampleMessage());
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent) << r.reply;
  EXPECT_EQ(r.reply_code, 535);
  EXPECT_EQ(server->MessageCount(), 0);
}

TEST(SmtpTransportTest, SomeRecipientsRefusedIsSentToTheOthers) {
  auto server = StartServer({"--reject-rcpt", "bad@=550"});
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  OutgoingMessage m = SampleMessage("env-1", {"good@example.test", "bad@example.test"});
  SendResult r = transport->Send(m);
  ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply;
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].recipient, "bad@example.test");
  EXPECT_EQ(r.rejected[0].reply_code, 550);
  EXPECT_THAT(r.rejected[0].reply, HasSubstr("5.1.1 no such user"));
  ASSERT_EQ(server->MessageCount(), 1);
  EXPECT_EQ(server->Envelope(1)["rcpt_tos"], nlohmann::json({"good@example.test"}));
  EXPECT_EQ(server->MessageBytes(1), m.data);
}

TEST(SmtpTransportTest, AllRecipientsRefusedWith550IsPermanent) {
  auto server = StartServer({"--reject-rcpt", "bad@=550", "--reject-rcpt", "gone@=550"});
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  SendResult r = transport->Send(SampleMessage("env-1", {"bad@example.test", "gone@example.test"}));
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent) << r.reply;
  EXPECT_EQ(r.reply_code, 550);
  EXPECT_THAT(r.reply, HasSubstr("bad@example.test"));
  EXPECT_THAT(r.reply, HasSubstr("gone@example.test"));
  EXPECT_EQ(r.rejected.size(), 2u);
  EXPECT_EQ(server->MessageCount(), 0);
}

TEST(SmtpTransportTest, RecipientBusy451IsTransient) {
  auto server = StartServer({"--reject-rcpt", "busy@=451", "--reject-rcpt", "bad@=550"});
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  SendResult r = transport->Send(SampleMessage("env-1", {"busy@example.test"}));
  EXPECT_EQ(r.outcome, SendOutcome::kTransient) << r.reply;
  EXPECT_EQ(r.reply_code, 451);
  // One 4yz among refusals makes the whole refusal transient.
  r = transport->Send(SampleMessage("env-2", {"bad@example.test", "busy@example.test"}));
  EXPECT_EQ(r.outcome, SendOutcome::kTransient) << r.reply;
  EXPECT_EQ(server->MessageCount(), 0);
}

TEST(SmtpTransportTest, Data451IsTransientAndTheNextSendSucceeds) {
  auto server = StartServer({"--fail-data", "451:1"});
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  SendResult first = transport->Send(SampleMessage("env-1"));
  EXPECT_EQ(first.outcome, SendOutcome::kTransient) << first.reply;
  EXPECT_EQ(first.reply_code, 451);
  EXPECT_THAT(first.reply, HasSubstr("4.3.0"));
  EXPECT_EQ(server->MessageCount(), 0);

  OutgoingMessage m = SampleMessage("env-2");
  SendResult second = transport->Send(m);
  ASSERT_EQ(second.outcome, SendOutcome::kSent) << second.reply << "\n" << server->Log();
  ASSERT_EQ(server->MessageCount(), 1);
  EXPECT_EQ(server->MessageBytes(1), m.data);
}

TEST(SmtpTransportTest, EachFailureLeavesTheTransportUsable) {
  auto server = StartServer({"--reject-rcpt", "bad@=550", "--fail-data", "554:1"});
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  // Refused in the middle of the transaction (libcurl drops the connection)...
  EXPECT_EQ(transport->Send(SampleMessage("env-1", {"bad@example.test"})).outcome,
            SendOutcome::kPermanent);
  // ...refused at the end of DATA (the transaction is over)...
  EXPECT_EQ(transport->Send(SampleMessage("env-2")).outcome, SendOutcome::kPermanent);
  // ...and the next message still goes through.
  OutgoingMessage m = SampleMessage("env-3");
  SendResult r = transport->Send(m);
  ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply << "\n" << server->Log();
  ASSERT_EQ(server->MessageCount(), 1);
  EXPECT_EQ(server->MessageBytes(1), m.data);
}

TEST(SmtpTransportTest, Data554IsPermanent) {
  auto server = StartServer({"--fail-data", "554:1"});
  ASSERT_NE(server, nullptr);
  SendResult r = NewSmtpTransport(PlainSettings(*server))->Send(SampleMessage());
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent) << r.reply;
  EXPECT_EQ(r.reply_code, 554);
  EXPECT_THAT(r.reply, HasSubstr("554 5.6.0"));
  EXPECT_EQ(server->MessageCount(), 0);
}

TEST(SmtpTransportTest, NothingListeningIsTransient) {
  SmtpSettings s;
  s.host = "127.0.0.1";
  s.port = postline::testing::UnusedLoopbackPort();
  ASSERT_NE(s.port, 0);
  s.tls = SmtpTls::kNone;
  auto transport = NewSmtpTransport(s);
  SendResult r = transport->Send(SampleMessage());
  EXPECT_EQ(r.outcome, SendOutcome::kTransient);
  EXPECT_EQ(r.reply_code, 0);
  EXPECT_THAT(r.reply, HasSubstr("connect"));
}

TEST(SmtpTransportTest, ServerTimeoutIsTransient) {
  auto server = StartServer({"--stall-before-250", "5"});
  ASSERT_NE(server, nullptr);
  SmtpSettings s = PlainSettings(*server);
  s.timeout_ms = 1000;
  SendResult r = NewSmtpTransport(s)->Send(SampleMessage());
  EXPECT_EQ(r.outcome, SendOutcome::kTransient) << r.reply;
  EXPECT_THAT(r.reply, HasSubstr("Timeout"));
}

TEST(SmtpTransportTest, OneConnectionForFiveMessages) {
  auto server = StartServer(kStartTlsAuthArgs);
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(TlsSettings(*server, SmtpTls::kStartTls));
  for (int i = 1; i <= 5; ++i) {
    OutgoingMessage m = SampleMessage("env-" + std::to_string(i));
    SendResult r = transport->Send(m);
    ASSERT_EQ(r.outcome, SendOutcome::kSent) << i << ": " << r.reply;
    EXPECT_EQ(server->MessageBytes(i), m.data);
  }
  EXPECT_EQ(server->CountEvents("connection"), 1);
  EXPECT_EQ(server->CountEvents("auth"), 1);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(server->Envelope(i)["connection"], 1);
  // Destroying the transport closes the connection politely.
  transport.reset();
  EXPECT_EQ(server->CountEvents("quit"), 1);
}

TEST(SmtpTransportTest, ReconnectsAfterTheServerClosedAnIdleConnection) {
  auto server = StartServer({"--idle-timeout", "1"});
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  ASSERT_EQ(transport->Send(SampleMessage("env-1")).outcome, SendOutcome::kSent);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // past the idle timeout
  SendResult r = transport->Send(SampleMessage("env-2"));
  ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply;
  EXPECT_EQ(server->MessageCount(), 2);
  EXPECT_EQ(server->Envelope(2)["connection"], 2);
}

TEST(SmtpTransportTest, AddressWithLineBreakIsRefusedLocally) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(PlainSettings(*server));
  SendResult r = transport->Send(SampleMessage("env-1", {"a@example.test\r\nRSET"}));
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent);
  EXPECT_THAT(r.reply, HasSubstr("rcpt_to[0]"));
  OutgoingMessage m = SampleMessage();
  m.mail_from = "x@example.test\nDATA";
  EXPECT_EQ(transport->Send(m).outcome, SendOutcome::kPermanent);
  m = SampleMessage("env-2", {});
  EXPECT_EQ(transport->Send(m).outcome, SendOutcome::kPermanent);
  EXPECT_EQ(server->CountEvents("connection"), 0);
}

TEST(SmtpTransportTest, CheckHealthyServer) {
  auto server = StartServer(kStartTlsAuthArgs);
  ASSERT_NE(server, nullptr);
  auto transport = NewSmtpTransport(TlsSettings(*server, SmtpTls::kStartTls));
  auto ok = transport->Check();
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString() << "\n" << server->Log();
  // It really went through STARTTLS and AUTH, and said QUIT.
  EXPECT_EQ(server->CountEvents("starttls"), 1);
  EXPECT_EQ(server->CountEvents("auth_result"), 1);
  EXPECT_EQ(server->CountEvents("quit"), 1);
  EXPECT_EQ(server->MessageCount(), 0);
}

TEST(SmtpTransportTest, CheckNothingListeningIsTransient) {
  SmtpSettings s;
  s.host = "127.0.0.1";
  s.port = postline::testing::UnusedLoopbackPort();
  s.tls = SmtpTls::kNone;
  auto result = NewSmtpTransport(s)->Check();
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(result.error().field, "SMTP_HOST");
}

TEST(SmtpTransportTest, CheckWrongPasswordIsPermanent) {
  auto server = StartServer(kStartTlsAuthArgs);
  ASSERT_NE(server, nullptr);
  SmtpSettings s = TlsSettings(*server, SmtpTls::kStartTls);
  s.password = "wrong";
  auto result = NewSmtpTransport(s)->Check();
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, ErrorKind::kPermanent);
  EXPECT_EQ(result.error().code, "smtp_auth_refused");
  EXPECT_THAT(result.error().message, HasSubstr("535"));
}

TEST(SmtpTransportTest, CheckWithoutStartTlsOfferIsPermanent) {
  auto server = StartServer({"--auth", "mailer:s3cret", "--allow-plaintext-auth"});
  ASSERT_NE(server, nullptr);
  SmtpSettings s = PlainSettings(*server);
  s.tls = SmtpTls::kStartTls;
  s.user = "mailer";
  s.password = "s3cret";
  auto result = NewSmtpTransport(s)->Check();
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().kind, ErrorKind::kPermanent);
  EXPECT_EQ(result.error().field, "POSTLINE_SMTP_TLS");
  EXPECT_EQ(server->CountEvents("auth"), 0);
}

TEST(SmtpTransportTest, UnvalidatedPlainTextToRemoteHostNeverConnects) {
  SmtpSettings s;
  s.host = "smtp.example.com";
  s.port = 25;
  s.tls = SmtpTls::kNone;
  auto transport = NewSmtpTransport(s);
  SendResult r = transport->Send(SampleMessage());
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent);
  EXPECT_THAT(r.reply, HasSubstr("POSTLINE_SMTP_TLS"));
  auto check = transport->Check();
  ASSERT_FALSE(check.has_value());
  EXPECT_EQ(check.error().kind, ErrorKind::kInvalidInput);
}

TEST(SmtpTransportTest, ServerStopsCleanlyOnSigterm) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  int status = server->Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << server->Log();
}

TEST(ValidateSmtpSettingsTest, PlainTextOnlyForLoopback) {
  SmtpSettings s;
  s.port = 25;
  s.tls = SmtpTls::kNone;
  for (const char* host : {"localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]"}) {
    s.host = host;
    EXPECT_TRUE(ValidateSmtpSettings(s).has_value()) << host;
  }
  for (const char* host :
       {"smtp.gmail.com", "10.0.0.1", "128.0.0.1", "localhost.example.com", "::2"}) {
    s.host = host;
    auto r = ValidateSmtpSettings(s);
    ASSERT_FALSE(r.has_value()) << host;
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
    EXPECT_EQ(r.error().field, "POSTLINE_SMTP_TLS");
    EXPECT_THAT(r.error().message, HasSubstr("loopback"));
  }
  s.host = "smtp.gmail.com";
  for (SmtpTls tls : {SmtpTls::kAuto, SmtpTls::kStartTls, SmtpTls::kImplicit}) {
    s.tls = tls;
    EXPECT_TRUE(ValidateSmtpSettings(s).has_value());
  }
}

TEST(ValidateSmtpSettingsTest, RejectsBadPortsAndHosts) {
  SmtpSettings s;
  s.host = "smtp.gmail.com";
  for (int port : {0, -1, 65536, 100000}) {
    s.port = port;
    auto r = ValidateSmtpSettings(s);
    ASSERT_FALSE(r.has_value()) << port;
    EXPECT_EQ(r.error().field, "SMTP_PORT");
    EXPECT_THAT(r.error().message, HasSubstr(std::to_string(port)));
  }
  for (int port : {1, 25, 465, 587, 65535}) {
    s.port = port;
    EXPECT_TRUE(ValidateSmtpSettings(s).has_value()) << port;
  }
  s.port = 587;
  for (const char* host : {"", "smtp.gmail.com/x", "a b", "user@host"}) {
    s.host = host;
    auto r = ValidateSmtpSettings(s);
    ASSERT_FALSE(r.has_value()) << host;
    EXPECT_EQ(r.error().field, "SMTP_HOST");
  }
}

TEST(SendOutcomeNameTest, Names) {
  EXPECT_EQ(SendOutcomeName(SendOutcome::kSent), "sent");
  EXPECT_EQ(SendOutcomeName(SendOutcome::kTransient), "transient");
  EXPECT_EQ(SendOutcomeName(SendOutcome::kPermanent), "permanent");
}

}  // namespace
}  // namespace postline
