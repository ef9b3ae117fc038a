#include "postline/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace postline {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const ConfigProblem* FindProblem(const LoadedSettings& loaded, std::string_view variable) {
  for (const auto& p : loaded.problems) {
    if (p.variable == variable) return &p;
  }
  return nullptr;
}

TEST(ConfigTest, NoConfigurationIsTheEmbeddedMode) {
  auto loaded = ResolveSettings({});
  EXPECT_TRUE(loaded.problems.empty());
  EXPECT_EQ(loaded.settings.queue_provider, QueueProvider::kSqlite);
  EXPECT_EQ(loaded.settings.email_provider, EmailProvider::kFile);
  EXPECT_EQ(loaded.settings.data_dir, "./var");
  EXPECT_EQ(loaded.settings.QueueDatabasePath(), "./var/queue.db");
  EXPECT_EQ(loaded.settings.OutboxDir(), "./var/outbox");
}

// The setup guide's backend .env, as printed in the guide, loads unchanged.
TEST(ConfigTest, GuideDotEnvLoadsUnchanged) {
  auto vars = ParseDotEnv(ReadFile(POSTLINE_SOURCE_DIR "/src/config/testdata/guide.env"));
  ASSERT_TRUE(vars) << vars.error().ToString();
  auto loaded = ResolveSettings(*vars);
  for (const auto& p : loaded.problems) ADD_FAILURE() << p.variable << ": " << p.message;
  const Settings& s = loaded.settings;
  EXPECT_EQ(s.queue_provider, QueueProvider::kSqlite);  // not set in the guide's file
  EXPECT_EQ(s.email_provider, EmailProvider::kSmtp);
  EXPECT_EQ(s.aws_region, "us-east-1");
  EXPECT_EQ(s.aws_access_key_id, "your-access-key-id");
  EXPECT_EQ(s.aws_secret_access_key, "your-secret-access-key");
  EXPECT_EQ(s.sqs_regular_queue_url,
            "https://sqs.us-east-1.amazonaws.com/account/invoice-generation-queue");
  EXPECT_EQ(s.sqs_priority_queue_url,
            "https://sqs.us-east-1.amazonaws.com/account/priority-emails-queue");
  EXPECT_EQ(s.smtp.host, "smtp.gmail.com");
  EXPECT_EQ(s.smtp.port, 587);
  EXPECT_EQ(s.smtp.user, "your-email@gmail.com");
  EXPECT_EQ(s.smtp.password, "your-app-password");
  EXPECT_EQ(s.smtp.tls, SmtpTls::kAuto);
  EXPECT_EQ(s.frontend_url, "http://localhost:3000");
  EXPECT_EQ(s.from, "your-email@gmail.com");
}

// The same check against the guide itself, where the shared folder is present.
TEST(ConfigTest, GuideFileBlockMatchesTestData) {
  const std::string guide_path =
      POSTLINE_SOURCE_DIR "/../shared/seed/000_7b8e70ad16592459.txt";
  std::string guide = ReadFile(guide_path);
  if (guide.empty()) GTEST_SKIP() << "setup guide not found at " << guide_path;
  const std::string marker = "### Backend `.env`:\n```bash\n";
  size_t begin = guide.find(marker);
  ASSERT_NE(begin, std::string::npos);
  begin += marker.size();
  size_t end = guide.find("```", begin);
  ASSERT_NE(end, std::string::npos);
  auto from_guide = ParseDotEnv(guide.substr(begin, end - begin));
  auto from_testdata =
      ParseDotEnv(ReadFile(POSTLINE_SOURCE_DIR "/src/config/testdata/guide.env"));
  ASSERT_TRUE(from_guide);
  ASSERT_TRUE(from_testdata);
  EXPECT_EQ(*from_guide, *from_testdata);
  EXPECT_EQ(from_guide->size(), 11u);
}

TEST(ConfigTest, DotEnvSyntax) {
  auto vars = ParseDotEnv(
      "# comment\n"
      "export A=1\n"
      "B = two words  # trailing comment\n"
      "C=\"quoted # not a comment\\nnext\"\n"
      "D='single $HOME'\r\n"
      "E=\n"
      "F=a#b\n"
      "G=\"multi\nline\"\n");
  ASSERT_TRUE(vars) << vars.error().ToString();
  EXPECT_EQ(vars->at("A"), "1");
  EXPECT_EQ(vars->at("B"), "two words");
  EXPECT_EQ(vars->at("C"), "quoted # not a comment\nnext");
  EXPECT_EQ(vars->at("D"), "single $HOME");
  EXPECT_EQ(vars->at("E"), "");
  EXPECT_EQ(vars->at("F"), "a#b");
  EXPECT_EQ(vars->at("G"), "multi\nline");
}

TEST(ConfigTest, DotEnvErrorsNameTheLine) {
  auto bad = ParseDotEnv("A=1\nthis is not an assignment\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "invalid_env_file");
  EXPECT_NE(bad.error().message.find("line 2"), std::string::npos);
  auto unterminated = ParseDotEnv("A=\"open\n");
  ASSERT_FALSE(unterminated);
  EXPECT_NE(unterminated.error().message.find("unterminated"), std::string::npos);
}

TEST(ConfigTest, EveryInvalidVariableIsNamedWithItsForm) {
  auto loaded = ResolveSettings({{"QUEUE_PROVIDER", "redis"},
                                 {"EMAIL_PROVIDER", "smtp"},
                                 {"SMTP_PORT", "abc"},
                                 {"POSTLINE_CONCURRENCY", "0"},
                                 {"POSTLINE_RETRY_MIN", "600"},
                                 {"POSTLINE_RETRY_MAX", "60"},
                                 {"FRONTEND_URL", "localhost:3000"},
                                 {"POSTLINE_FROM", "not an address"}});
  const ConfigProblem* p = FindProblem(loaded, "QUEUE_PROVIDER");
  ASSERT_NE(p, nullptr);
  EXPECT_NE(p->message.find("sqlite | sqs | memory"), std::string::npos);
  p = FindProblem(loaded, "SMTP_PORT");
  ASSERT_NE(p, nullptr);
  EXPECT_NE(p->message.find("1–65535"), std::string::npos);
  EXPECT_NE(FindProblem(loaded, "SMTP_HOST"), nullptr);  // required for smtp
  EXPECT_NE(FindProblem(loaded, "POSTLINE_CONCURRENCY"), nullptr);
  EXPECT_NE(FindProblem(loaded, "POSTLINE_RETRY_MAX"), nullptr);
  EXPECT_NE(FindProblem(loaded, "FRONTEND_URL"), nullptr);
  EXPECT_NE(FindProblem(loaded, "POSTLINE_FROM"), nullptr);
}

TEST(ConfigTest, PlainSmtpOnlyForLoopback) {
  auto remote = ResolveSettings({{"EMAIL_PROVIDER", "smtp"},
                                 {"SMTP_HOST", "smtp.gmail.com"},
                                 {"POSTLINE_SMTP_TLS", "none"}});
  EXPECT_FALSE(remote.problems.empty());
  auto local = ResolveSettings({{"EMAIL_PROVIDER", "smtp"},
                                {"SMTP_HOST", "127.0.0.1"},
                                {"SMTP_PORT", "2525"},
                                {"POSTLINE_SMTP_TLS", "none"}});
  for (const auto& p : local.problems) ADD_FAILURE() << p.variable << ": " << p.message;
}

TEST(ConfigTest, SqsNeedsItsUrls) {
  auto loaded = ResolveSettings({{"QUEUE_PROVIDER", "sqs"}});
  EXPECT_NE(FindProblem(loaded, "SQS_REGULAR_QUEUE_URL"), nullptr);
  EXPECT_NE(FindProblem(loaded, "SQS_PRIORITY_QUEUE_URL"), nullptr);
  EXPECT_NE(FindProblem(loaded, "AWS_REGION"), nullptr);
}

TEST(ConfigTest, DescribeRedactsSecrets) {
  auto loaded = ResolveSettings({{"SMTP_PASSWORD", "hunter2"},
                                 {"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"},
                                 {"AWS_SESSION_TOKEN", "tok"}});
  std::string all;
  for (const auto& line : DescribeSettings(loaded.settings)) all += line + "\n";
  EXPECT_EQ(all.find("hunter2"), std::string::npos);
  EXPECT_EQ(all.find("wJalrXUtnFEMI"), std::string::npos);
  EXPECT_EQ(all.find("=tok\n"), std::string::npos);
  EXPECT_NE(all.find("SMTP_PASSWORD=********"), std::string::npos);
}

TEST(ConfigTest, DatabaseUrlIsALibpqStringShownWithoutItsPassword) {
  EXPECT_TRUE(ResolveSettings({}).settings.database_url.empty());
  for (std::string url : {"postgresql://app:hunter2@db.internal:5432/postline?sslmode=require",
                          "postgres://db/postline", "host=db dbname=postline password=hunter2"}) {
    auto loaded = ResolveSettings({{"POSTLINE_DATABASE_URL", url}});
    EXPECT_EQ(FindProblem(loaded, "POSTLINE_DATABASE_URL"), nullptr) << url;
    EXPECT_EQ(loaded.settings.database_url, url);
    std::string all;
    for (const auto& line : DescribeSettings(loaded.settings)) all += line + "\n";
    EXPECT_EQ(all.find("hunter2"), std::string::npos) << all;
  }
  auto uri = ResolveSettings(
      {{"POSTLINE_DATABASE_URL", "postgresql://app:hunter2@db.internal:5432/postline"}});
  std::string all;
  for (const auto& line : DescribeSettings(uri.settings)) all += line + "\n";
  EXPECT_NE(all.find("POSTLINE_DATABASE_URL=postgresql://app:********@db.internal:5432/postline\n"),
            std::string::npos)
      << all;

  for (std::string bad : {"mysql://db/x", "hots=db", "postgresql://db/x?sslmod=require"}) {
    auto loaded = ResolveSettings({{"POSTLINE_DATABASE_URL", bad}});
    const auto* problem = FindProblem(loaded, "POSTLINE_DATABASE_URL");
    ASSERT_NE(problem, nullptr) << bad;
    EXPECT_NE(problem->message.find("libpq connection URI"), std::string::npos) << problem->message;
  }
}

}  // namespace
}  // namespace postline
