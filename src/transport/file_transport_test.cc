// The file transport on a real file system (a temporary directory).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "postline/transport.h"

namespace postline {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class FileTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "postline-outbox-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static std::string ReadFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  static std::vector<std::string> Names(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  static OutgoingMessage Message(std::string id, std::string data) {
    OutgoingMessage m;
    m.envelope_id = std::move(id);
    m.mail_from = "billing@sender.test";
    m.rcpt_to = {"alice@example.test"};
    m.data = std::move(data);
    return m;
  }

  fs::path root_;
};

TEST_F(FileTransportTest, WritesMessageAtomicallyIntoANewOutbox) {
  fs::path outbox = root_ / "var" / "outbox";  // does not exist yet
  auto transport = NewFileTransport(outbox.string());
  EXPECT_EQ(transport->name(), "file");
  std::string data = "Subject: hi\r\n\r\n.dot line\r\n\xe2\x82\xac\r\n";
  SendResult r = transport->Send(Message("0b9f-42", data));
  ASSERT_EQ(r.outcome, SendOutcome::kSent) << r.reply;
  fs::path written = outbox / "0b9f-42.eml";
  EXPECT_EQ(ReadFile(written), data);
  EXPECT_EQ(r.provider_message_id, written.string());
  // Only the message: no temporary file left behind.
  EXPECT_THAT(Names(outbox), ::testing::ElementsAre("0b9f-42.eml"));
}

TEST_F(FileTransportTest, SendingTheSameEnvelopeAgainReplacesTheFile) {
  auto transport = NewFileTransport(root_.string());
  ASSERT_EQ(transport->Send(Message("env", "first\r\n")).outcome, SendOutcome::kSent);
  ASSERT_EQ(transport->Send(Message("env", "second\r\n")).outcome, SendOutcome::kSent);
  ASSERT_EQ(transport->Send(Message("other", "third\r\n")).outcome, SendOutcome::kSent);
  EXPECT_EQ(ReadFile(root_ / "env.eml"), "second\r\n");
  EXPECT_THAT(Names(root_), ::testing::ElementsAre("env.eml", "other.eml"));
}

TEST_F(FileTransportTest, UnsafeEnvelopeIdsArePermanent) {
  auto transport = NewFileTransport((root_ / "outbox").string());
  for (const char* id : {"", "../escape", "a/b", ".hidden", "..", "tab\tid"}) {
    SendResult r = transport->Send(Message(id, "x\r\n"));
    EXPECT_EQ(r.outcome, SendOutcome::kPermanent) << id;
    EXPECT_THAT(r.reply, HasSubstr("envelope_id")) << id;
  }
  EXPECT_FALSE(fs::exists(root_ / "escape.eml"));
  EXPECT_FALSE(fs::exists(root_ / "outbox" / "a"));
}

TEST_F(FileTransportTest, UnwritableOutboxIsTransient) {
  // Root ignores permissions: use an outbox whose parent is a regular file.
  fs::path file = root_ / "not-a-dir";
  std::ofstream(file) << "x";
  auto transport = NewFileTransport((file / "outbox").string());
  SendResult r = transport->Send(Message("env", "x\r\n"));
  EXPECT_EQ(r.outcome, SendOutcome::kTransient);
  EXPECT_THAT(r.reply, HasSubstr("not-a-dir"));
  EXPECT_THAT(r.reply, HasSubstr("Not a directory"));

  auto check = transport->Check();
  ASSERT_FALSE(check.has_value());
  EXPECT_EQ(check.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(check.error().field, "POSTLINE_OUTBOX_DIR");
}

TEST_F(FileTransportTest, CheckCreatesTheOutboxAndLeavesNothing) {
  fs::path outbox = root_ / "outbox";
  auto transport = NewFileTransport(outbox.string());
  auto check = transport->Check();
  ASSERT_TRUE(check.has_value()) << check.error().ToString();
  EXPECT_TRUE(fs::is_directory(outbox));
  EXPECT_TRUE(Names(outbox).empty());
}

}  // namespace
}  // namespace postline
