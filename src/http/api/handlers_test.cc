#include <fmt/format.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "postline/api.h"

namespace postline::api {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ApiServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("postline-api-{}-{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    service_ = NewMemoryQueueService();
    auto pair = EnsureGuideQueues(*service_, GuideQueueAttributes(), 3);
    ASSERT_TRUE(pair);
    queues_ = *pair;
    auto status = OpenSqliteStateStore((dir_ / "state.db").string());
    ASSERT_TRUE(status);
    status_ = *status;
    logger_ = std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
    logger_->set_pattern(JsonLinesPattern());
    metrics_ = std::make_shared<Metrics>("file");
    Make({});
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Make(ApiSettings settings) {
    ApiDependencies deps;
    deps.queues = queues_;
    deps.state = status_;
    deps.default_from = "Shop <shop@example.com>";
    deps.clock = SystemClock();
    deps.logger = logger_;
    deps.metrics = metrics_;
    api_ = std::make_unique<ApiService>(settings, deps);
  }

  HttpResponse Call(std::string method, std::string target, std::string body = "",
                    std::vector<std::pair<std::string, std::string>> headers = {
                        {"content-type", "application/json"}}) {
    HttpRequest req{std::move(method), std::move(target), std::move(headers), std::move(body)};
    return api_->Handle(req);
  }

  std::int64_t Available(Queue& q) {
    return q.GetQueueAttributes()->approximate_number_of_messages;
  }

  fs::path dir_;
  std::shared_ptr<QueueService> service_;
  QueuePair queues_;
  std::shared_ptr<StateStore> status_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<Metrics> metrics_;
  std::unique_ptr<ApiService> api_;
};

const char* kEnvelope = R"({"to": ["a@example.com"], "subject": "Hi", "text": "x", "priority": 2})";

TEST(HttpStatusFor, MapsEveryKindInOnePlace) {
  EXPECT_EQ(HttpStatusFor({ErrorKind::kInvalidInput, "malformed_json", "", ""}), 400);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kInvalidInput, "invalid_address", "", ""}), 422);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kInvalidInput, "unauthorized", "", ""}), 401);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kInvalidInput, "payload_too_large", "", ""}), 413);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kInvalidInput, "unsupported_media_type", "", ""}), 415);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kNotFound, "QueueDoesNotExist", "", ""}), 404);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kTransient, "ServiceUnavailable", "", ""}), 503);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kPermanent, "x", "", ""}), 422);
  EXPECT_EQ(HttpStatusFor({ErrorKind::kInternal, "x", "", ""}), 500);
}

TEST(ErrorResponse, HidesInternalDetail) {
  auto r = ErrorResponse({ErrorKind::kInternal, "pdf_error", "cairo at /usr/lib/x: boom", "f"});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("cairo"), std::string::npos);
  auto body = json::parse(r.body);
  EXPECT_EQ(body["error"]["code"], "pdf_error");
}

TEST(ParseListenAddress, AcceptsHostPortForms) {
  auto a = ParseListenAddress("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  auto b = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  for (const char* bad : {"", "8080", ":80", "host:", "host:65536", "host:8o"}) {
    auto r = ParseListenAddress(bad, "POSTLINE_HTTP_ADDR");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "POSTLINE_HTTP_ADDR");
  }
}

TEST_F(ApiServiceTest, PostEmailQueuesOnTheRightLaneAndRecordsQueued) {
  auto r = Call("POST", "/v1/emails", kEnvelope);
  ASSERT_EQ(r.status, 202) << r.body;
  auto body = json::parse(r.body);
  EXPECT_EQ(body["queue"], "priority-emails-queue");
  EXPECT_EQ(body["status"], "queued");
  EXPECT_EQ(Available(*queues_.priority), 1);
  auto st = Call("GET", "/v1/emails/" + body["id"].get<std::string>());
  ASSERT_EQ(st.status, 200);
  auto s = json::parse(st.body);
  EXPECT_EQ(s["state"], "queued");
  EXPECT_EQ(s["recipients"], json::array({"a@example.com"}));
  EXPECT_EQ(s["sent_at"], nullptr);
  EXPECT_EQ(r.route, "/v1/emails");
}

TEST_F(ApiServiceTest, RoutingAnswers404And405WithAllow) {
  auto missing = Call("GET", "/v1/nope");
  EXPECT_EQ(missing.status, 404);
  auto wrong = Call("PUT", "/v1/emails");
  EXPECT_EQ(wrong.status, 405);
  bool has_allow = false;
  for (const auto& [k, v] : wrong.headers) has_allow = has_allow || (k == "Allow" && v == "POST");
  EXPECT_TRUE(has_allow);
  // "/v1/emails:batch" is not taken for an id.
  EXPECT_EQ(Call("GET", "/v1/emails:batch").status, 405);
}

TEST_F(ApiServiceTest, TokenIsRequiredOnV1OnlyWhenConfigured) {
  ApiSettings s;
  s.token = "tok";
  Make(s);
  EXPECT_EQ(Call("GET", "/v1/queues").status, 401);
  EXPECT_EQ(Call("GET", "/v1/queues", "", {{"authorization", "Bearer nope"}}).status, 401);
  EXPECT_EQ(Call("GET", "/v1/queues", "", {{"authorization", "Bearer tok"}}).status, 200);
  EXPECT_EQ(Call("GET", "/v1/queues", "", {{"authorization", "bearer tok"}}).status, 200);
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_EQ(log_.str().find("tok\""), std::string::npos);
}

TEST_F(ApiServiceTest, PathAttachmentsAreRefused) {
  auto r = Call("POST", "/v1/emails",
                R"({"to": ["a@example.com"], "subject": "s", "text": "t",
                    "attachments": [{"filename": "x", "content_type": "text/plain",
                                     "path": "/etc/hostname"}]})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(json::parse(r.body)["error"]["field"], "attachments[0].path");
  EXPECT_EQ(Available(*queues_.regular), 0);
}

TEST_F(ApiServiceTest, InvoiceLogoPathsAreRefused) {
  std::ifstream in(std::string(POSTLINE_SOURCE_DIR) + "/examples/schulgeld-de.json");
  ASSERT_TRUE(in);
  json inv = json::parse(in);
  inv["seller"]["logo"] = "/etc/hostname";
  for (const char* route : {"/v1/invoices:email", "/v1/invoices:render"}) {
    auto r = Call("POST", route, inv.dump());
    EXPECT_EQ(r.status, 422) << r.body;
    EXPECT_EQ(json::parse(r.body)["error"]["field"], "/seller/logo");
  }
  EXPECT_EQ(Available(*queues_.regular), 0);
}

TEST_F(ApiServiceTest, IdempotencyKeyQueuesOnce) {
  auto first = Call("POST", "/v1/emails", kEnvelope,
                    {{"content-type", "application/json"}, {"idempotency-key", "k1"}});
  auto second = Call("POST", "/v1/emails", kEnvelope,
                     {{"content-type", "application/json"}, {"idempotency-key", "k1"}});
  ASSERT_EQ(first.status, 202);
  ASSERT_EQ(second.status, 202);
  EXPECT_EQ(json::parse(first.body)["id"], json::parse(second.body)["id"]);
  EXPECT_TRUE(json::parse(second.body)["replayed"].get<bool>());
  EXPECT_EQ(Available(*queues_.priority), 1);
  auto bad = Call("POST", "/v1/emails", kEnvelope,
                  {{"content-type", "application/json"}, {"idempotency-key", "has space"}});
  EXPECT_EQ(bad.status, 422);
}

TEST_F(ApiServiceTest, BatchReportsEachItem) {
  auto r = Call("POST", "/v1/emails:batch",
                R"({"emails": [{"to": ["a@example.com"], "subject": "1", "text": "x"},
                               {"to": ["a@example.com"], "subject": "2"},
                               {"to": ["b@example.com"], "subject": "3", "text": "y"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = json::parse(r.body);
  EXPECT_EQ(body["queued"], 2);
  EXPECT_EQ(body["results"][1]["status"], "rejected");
  EXPECT_EQ(body["results"][1]["error"]["code"], "missing_body");
  EXPECT_TRUE(body["results"][1]["error"]["field"].get<std::string>().starts_with("emails[1]."));
  EXPECT_EQ(Available(*queues_.regular), 2);
}

std::string Nested(std::size_t depth, std::string_view open, std::string_view close,
                   std::string_view inner = "1") {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i) out += open;
  out += inner;
  for (std::size_t i = 0; i < depth; ++i) out += close;
  return out;
}

// A body nested 60,000 deep overflowed the stack (SIGSEGV) in the copy of the
// parsed document and its dump(): the API and the worker in it went down.
TEST_F(ApiServiceTest, DeepJsonNestingIsRefusedWith400AndTheServiceGoesOn) {
  const std::string envelope_head = R"({"to": ["a@example.com"], "subject": "Hi", "text": "x", )";
  struct Case {
    std::string target, body;
  };
  const Case cases[] = {
      {"/v1/emails", Nested(60000, R"({"a":)", "}")},
      {"/v1/emails", envelope_head + R"("headers": )" + Nested(100000, R"({"X":)", "}") + "}"},
      {"/v1/emails", R"({"subject": "Hi", "text": "x", "to": )" + Nested(100000, "[", "]") + "}"},
      {"/v1/emails", envelope_head + R"("attachments": )" + Nested(50000, "[", "]") + "}"},
      {"/v1/emails", envelope_head + R"("attachments": )" +
                         Nested(50000, R"([{"filename": "a", "x": )", "}]") + "}"},
      {"/v1/emails", Nested(33, "[", "]")},
      {"/v1/emails:batch", R"({"emails": [)" + Nested(60000, R"({"a":)", "}") + "]}"},
      {"/v1/emails:batch", R"({"emails": [{"to": "a@example.com", "text": "x", "cc": )" +
                               Nested(100000, "[", "]") + "}]}"},
      {"/v1/dlq:redrive", Nested(60000, R"({"queue":)", "}")},
  };
  for (const auto& c : cases) {
    auto r = Call("POST", c.target, c.body);
    ASSERT_EQ(r.status, 400) << c.target << " " << r.body.substr(0, 300);
    auto error = json::parse(r.body)["error"];
    EXPECT_EQ(error["code"], "json_too_deep") << r.body.substr(0, 300);
    EXPECT_NE(error["message"].get<std::string>().find("deeper than 32 levels"), std::string::npos)
        << r.body.substr(0, 300);
  }
  EXPECT_EQ(Available(*queues_.regular), 0);
  EXPECT_EQ(Available(*queues_.priority), 0);
  // The service still answers and queues.
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_EQ(Call("POST", "/v1/emails", kEnvelope).status, 202);
  EXPECT_EQ(Available(*queues_.priority), 1);
}

// 1e309 and 400-digit integers answered 500 internal_error (nlohmann's
// out_of_range escaped the parse_error handler).
TEST_F(ApiServiceTest, NumbersBeyondDoubleRangeAre422NamingTheField) {
  const std::string digits400(400, '4');
  struct Case {
    std::string target, body, field;
  };
  const Case cases[] = {
      {"/v1/emails", R"({"to": ["a@example.com"], "text": "x", "priority": 1e309})", "priority"},
      {"/v1/emails", R"({"to": ["a@example.com"], "text": "x", "priority": -1e400})", "priority"},
      {"/v1/emails", R"({"to": ["a@example.com"], "text": "x", "priority": )" + digits400 + "}",
       "priority"},
      {"/v1/emails", R"({"to": ["a@example.com"], "text": "x", "trace": -)" + digits400 + "}",
       "trace"},
      {"/v1/emails:batch",
       R"({"emails": [{"to": "a@example.com", "text": "x"}, {"to": "b@example.com", )"
       R"("text": "y", "priority": 1E+400}]})",
       "emails[1].priority"},
      {"/v1/dlq:redrive", R"({"max": 1e999})", "max"},
  };
  for (const auto& c : cases) {
    auto r = Call("POST", c.target, c.body);
    ASSERT_EQ(r.status, 422) << c.target << " " << r.body;
    auto error = json::parse(r.body)["error"];
    EXPECT_EQ(error["code"], "number_out_of_range") << r.body;
    EXPECT_EQ(error["field"], c.field) << r.body;
    EXPECT_TRUE(error["message"].get<std::string>().starts_with(c.field + ": number ")) << r.body;
  }
  EXPECT_EQ(Available(*queues_.regular), 0);
  EXPECT_EQ(Available(*queues_.priority), 0);
  EXPECT_EQ(log_.str().find("api_handler_exception"), std::string::npos) << log_.str();
}

// Invalid UTF-8 in a request header made dump() throw inside the error
// response: 500 instead of the 415 naming Content-Type.
TEST_F(ApiServiceTest, InvalidUtf8EchoedInAnErrorIsReplacedNotThrown) {
  auto r = Call("POST", "/v1/emails", kEnvelope, {{"content-type", "text/\xff\xfe"}});
  EXPECT_EQ(r.status, 415) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"]["field"], "Content-Type");
}

TEST_F(ApiServiceTest, RedriveMovesOnlyTheLettersPresentAndPurgeEmpties) {
  for (int i = 0; i < 3; ++i) {
    SendMessageRequest dead;
    dead.body = fmt::format(R"({{"v":1,"id":"01DEAD{}"}})", i);
    dead.attributes[std::string(kAttrReason)] = {"String", "permanent"};
    dead.attributes[std::string(kAttrEnvelopeId)] = {"String", fmt::format("01DEAD{}", i)};
    ASSERT_TRUE(queues_.regular_dlq->SendMessage(dead));
  }
  auto moved = RedriveDeadLetters(queues_, "invoice-generation-queue-dlq", 2, status_.get());
  ASSERT_TRUE(moved);
  ASSERT_EQ(moved->size(), 1u);
  EXPECT_EQ((*moved)[0].second, 2);
  EXPECT_EQ(Available(*queues_.regular), 2);
  EXPECT_EQ(Available(*queues_.regular_dlq), 1);
  auto got = queues_.regular->ReceiveMessage({});
  ASSERT_TRUE(got && got->size() == 1);
  EXPECT_FALSE((*got)[0].attributes.contains(std::string(kAttrReason)));
  EXPECT_EQ((*status_->GetStatus("01DEAD0"))->state, "queued");

  auto unknown = RedriveDeadLetters(queues_, "nope", 10, nullptr);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::kNotFound);
  auto purged = PurgeDeadLetters(queues_, "all");
  ASSERT_TRUE(purged);
  EXPECT_EQ(purged->size(), 2u);
  EXPECT_EQ(Available(*queues_.regular_dlq), 0);
}

TEST_F(ApiServiceTest, MetricsObserverCountsOutcomesByLane) {
  auto observer = metrics_->Observe(status_, "priority-emails-queue");
  StatusEvent ev;
  ev.envelope_id = "01M";
  ev.queue = "priority-emails-queue";
  ev.state = StatusEvent::State::kSending;
  observer->OnStatus(ev);
  ev.state = StatusEvent::State::kSent;
  observer->OnStatus(ev);
  ev.envelope_id = "01N";
  ev.queue = "invoice-generation-queue";
  ev.state = StatusEvent::State::kDead;
  ev.detail = "expired: gave up";
  observer->OnStatus(ev);
  const std::string text = metrics_->Serialize();
  EXPECT_NE(text.find(R"(postline_emails_sent_total{lane="priority",transport="file"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(postline_emails_failed_total{lane="regular",outcome="expired",transport="file"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(R"(postline_send_duration_seconds_count{lane="priority",transport="file"} 1)"),
      std::string::npos)
      << text;
  // Forwarded to the store.
  EXPECT_EQ((*status_->GetStatus("01M"))->state, "sent");
  EXPECT_EQ((*status_->GetStatus("01N"))->state, "dead");
}

}  // namespace
}  // namespace postline::api
