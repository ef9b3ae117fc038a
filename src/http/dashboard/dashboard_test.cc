// Unit tests of the dashboard: escaping, forms, cookies, the origin and CSRF
// checks, login, and the dead-letter actions on real (in-memory) queues and a
// real status store.
#include "postline/dashboard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "http/dashboard/dashboard_internal.h"
#include "http/dashboard/pages.h"
#include "postline/envelope.h"
#include "postline/service.h"
#include "postline/queue.h"
#include "postline/state.h"
#include "postline/delivery.h"

namespace postline {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(HtmlEscapeTest, EscapesEveryMarkupCharacter) {
  EXPECT_EQ(HtmlEscape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
  EXPECT_EQ(HtmlEscape("Zoë Müller"), "Zoë Müller");
}

TEST(FormTest, DecodesPlusPercentAndRepeatedNames) {
  auto form = ParseFormUrlEncoded("id=a%2Fb&id=c+d&csrf=x%3D&empty=&bad=%zz&&flag");
  ASSERT_EQ(form.size(), 6u);
  EXPECT_EQ(form[0], (std::pair<std::string, std::string>{"id", "a/b"}));
  EXPECT_EQ(form[1].second, "c d");
  EXPECT_EQ(form[2].second, "x=");
  EXPECT_EQ(form[3].second, "");
  EXPECT_EQ(form[4].second, "%zz");
  EXPECT_EQ(form[5].first, "flag");
}

TEST(CookieTest, SessionCookieAttributes) {
  std::string local = SessionCookie("abc", false, std::chrono::seconds(3600));
  EXPECT_THAT(local, HasSubstr("postline_session=abc"));
  EXPECT_THAT(local, HasSubstr("; HttpOnly"));
  EXPECT_THAT(local, HasSubstr("; SameSite=Strict"));
  EXPECT_THAT(local, HasSubstr("; Path=/"));
  EXPECT_THAT(local, HasSubstr("; Max-Age=3600"));
  EXPECT_THAT(local, Not(HasSubstr("Secure")));
  EXPECT_THAT(SessionCookie("abc", true, std::chrono::seconds(60)), HasSubstr("; Secure"));
  EXPECT_THAT(SessionCookie("", true, std::chrono::seconds(0)), HasSubstr("Max-Age=0"));
}

TEST(CookieTest, FindsTheNamedCookie) {
  EXPECT_EQ(CookieValue("a=1; postline_session=s3; b=2", "postline_session"), "s3");
  EXPECT_EQ(CookieValue("xpostline_session=s3", "postline_session"), "");
  EXPECT_EQ(CookieValue("", "postline_session"), "");
}

DashboardRequest Post(std::string host, std::string origin, std::string referer = {}) {
  DashboardRequest r;
  r.method = "POST";
  r.target = "/x";
  r.headers["host"] = std::move(host);
  if (!origin.empty()) r.headers["origin"] = std::move(origin);
  if (!referer.empty()) r.headers["referer"] = std::move(referer);
  return r;
}

TEST(SameOriginTest, AcceptsOnlyThisHost) {
  EXPECT_TRUE(SameOrigin(Post("127.0.0.1:8080", "http://127.0.0.1:8080")));
  EXPECT_TRUE(SameOrigin(Post("mail.example:443", "https://mail.example:443")));
  EXPECT_FALSE(SameOrigin(Post("127.0.0.1:8080", "http://evil.example")));
  EXPECT_FALSE(SameOrigin(Post("127.0.0.1:8080", "http://127.0.0.1:8081")));
  EXPECT_FALSE(SameOrigin(Post("127.0.0.1:8080", "http://127.0.0.1:8080.evil.example")));
  EXPECT_FALSE(SameOrigin(Post("127.0.0.1:8080", "null")));
  EXPECT_TRUE(SameOrigin(Post("127.0.0.1:8080", "", "http://127.0.0.1:8080/dead-letters")));
  EXPECT_FALSE(SameOrigin(Post("127.0.0.1:8080", "", "http://evil.example/127.0.0.1:8080")));
  EXPECT_FALSE(SameOrigin(Post("127.0.0.1:8080", "")));
}

TEST(SecretsTest, ComparesWholeValues) {
  EXPECT_TRUE(SecretsEqual("s3cret", "s3cret"));
  EXPECT_FALSE(SecretsEqual("s3cret", "s3cre"));
  EXPECT_FALSE(SecretsEqual("s3cret", "s3creT"));
}

TEST(LoopbackTest, KnowsLoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("[::1]"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("mail.example"));
}

// The shapes of postline::api::HttpRequest / HttpResponse (postline/api.h).
struct FakeApiRequest {
  std::string method, target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};
struct FakeApiResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string route;
};

TEST(AdapterTest, ConvertsTheApiTypes) {
  FakeApiRequest in{"POST", "/login?x=1", {{"host", "h:1"}, {"cookie", "a=b"}}, "token=t"};
  DashboardRequest r = FromApiRequest(in);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/login?x=1");
  EXPECT_EQ(r.headers.at("cookie"), "a=b");
  EXPECT_EQ(r.body, "token=t");
  DashboardResponse out{303, {{"Content-Type", "text/plain"}, {"Location", "/"}}, "See Other"};
  auto api = ToApiResponse<FakeApiResponse>(out);
  EXPECT_EQ(api.status, 303);
  EXPECT_EQ(api.content_type, "text/plain");
  ASSERT_EQ(api.headers.size(), 1u);
  EXPECT_EQ(api.headers[0].first, "Location");
  EXPECT_EQ(api.route, "dashboard");
  EXPECT_EQ(api.body, "See Other");
}

TEST(ServesTest, LeavesTheApiAlone) {
  EXPECT_TRUE(Dashboard::Serves("/"));
  EXPECT_TRUE(Dashboard::Serves("/dead-letters"));
  EXPECT_TRUE(Dashboard::Serves("/v1x"));
  EXPECT_FALSE(Dashboard::Serves("/v1"));
  EXPECT_FALSE(Dashboard::Serves("/v1/emails"));
  EXPECT_FALSE(Dashboard::Serves("/healthz"));
  EXPECT_FALSE(Dashboard::Serves("/readyz"));
  EXPECT_FALSE(Dashboard::Serves("/metrics"));
}

TEST(ChartTest, OneBarPerBucketScaledToTheTallest) {
  std::string svg = dashboard_internal::ThroughputSvg({0, 2, 4}, {0, 0, 4});
  EXPECT_THAT(svg, HasSubstr("<svg class=\"chart\""));
  // 4 sent + 4 failed is the top: the last sent bar is half the height (20 of 40).
  EXPECT_THAT(svg, HasSubstr("class=\"sent\" x=\"21\" y=\"20\" width=\"8\" height=\"20\""));
  EXPECT_THAT(svg, HasSubstr("class=\"failed\" x=\"21\" y=\"0\" width=\"8\" height=\"20\""));
  EXPECT_THAT(
      svg,
      HasSubstr(
          "aria-label=\"Sent per 5 minutes over the last hour, oldest first: 0 2 4 (+4 failed)\""));
}

// --- the dashboard on real queues and a real status store --------------------

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("dashboard_test_" + dashboard_internal::RandomHex(6));
    std::filesystem::create_directories(dir_);
    service_ = NewMemoryQueueService();
    auto pair = EnsureGuideQueues(*service_, GuideQueueAttributes(), 10);
    ASSERT_TRUE(pair) << pair.error().ToString();
    queues_ = *pair;
    auto status = OpenSqliteStateStore((dir_ / "state.db").string());
    ASSERT_TRUE(status) << status.error().ToString();
    status_ = *status;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Dashboard> Make(std::string token, bool loopback_only = true,
                                  std::int64_t depth_alarm = 1000) {
    DashboardSettings settings;
    settings.api_token = std::move(token);
    settings.loopback_only = loopback_only;
    settings.depth_alarm = depth_alarm;
    DashboardSources sources;
    sources.queues = queues_;
    sources.state = status_;
    sources.observer = status_;
    return std::make_unique<Dashboard>(settings, sources,
                                       Log(NewStderrJsonLogger("dashboard_test", "error")));
  }

  // Queues an e-mail and dead-letters it the way the worker does.
  std::string DeadLetter(std::string subject, std::string to = "bad@example.com") {
    Email email;
    email.from = {"Billing", "billing@example.com"};
    email.to = {{"", to}};
    email.subject = std::move(subject);
    email.text = "Hello";
    email.html = "<p>Hello <script>alert(2)</script></p>";
    email.attachments.push_back({"invoice.pdf", "application/pdf", "%PDF-1.4 test"});
    auto queued = EnqueueEmail(queues_, email, *SystemClock(), status_.get());
    EXPECT_TRUE(queued) << queued.error().ToString();
    ReceiveMessageRequest receive;
    receive.wait_time_seconds = 0;
    auto got = queues_.regular->ReceiveMessage(receive);
    EXPECT_TRUE(got && got->size() == 1);
    const auto& m = got->front();
    SendMessageRequest dead;
    dead.body = m.body;
    dead.attributes[std::string(kAttrReason)] = {"String", "permanent"};
    dead.attributes[std::string(kAttrReplyCode)] = {"Number", "550"};
    dead.attributes[std::string(kAttrReply)] = {"String", "550 <b>no such user</b>"};
    dead.attributes[std::string(kAttrSourceQueue)] = {"String", queues_.regular->name()};
    dead.attributes[std::string(kAttrEnvelopeId)] = {"String", queued->id};
    dead.attributes[std::string(kAttrAttempts)] = {"Number", "1"};
    auto sent = queues_.regular_dlq->SendMessage(dead);
    EXPECT_TRUE(sent);
    EXPECT_TRUE(queues_.regular->DeleteMessage(m.receipt_handle));
    StatusEvent event;
    event.state = StatusEvent::State::kDead;
    event.envelope_id = queued->id;
    event.queue = queues_.regular->name();
    event.attempts = 1;
    event.reply_code = 550;
    event.detail = "permanent: 550 no such user";
    status_->OnStatus(event);
    dlq_message_ids_.push_back(sent->message_id);
    return queued->id;
  }

  DashboardRequest Get(std::string target) {
    DashboardRequest r;
    r.method = "GET";
    r.target = std::move(target);
    r.headers["host"] = "127.0.0.1:8080";
    if (!cookie_.empty()) r.headers["cookie"] = "postline_session=" + cookie_;
    r.peer_is_loopback = true;
    return r;
  }
  DashboardRequest PostForm(std::string target, std::string body) {
    DashboardRequest r = Get(std::move(target));
    r.method = "POST";
    r.headers["origin"] = "http://127.0.0.1:8080";
    r.headers["content-type"] = "application/x-www-form-urlencoded";
    r.body = std::move(body);
    return r;
  }
  DashboardResponse Send(Dashboard& d, const DashboardRequest& r) {
    auto response = d.Handle(r);
    for (const auto& [name, value] : response.headers) {
      if (name == "Set-Cookie") {
        cookie_ = CookieValue(value.substr(0, value.find(';')), "postline_session");
        set_cookie_ = value;
      }
    }
    return response;
  }
  static std::string Header(const DashboardResponse& r, std::string_view name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return {};
  }
  static std::string Csrf(const std::string& html) {
    std::smatch m;
    static const std::regex kCsrf(R"re(name="csrf" value="([0-9a-f]+)")re");
    return std::regex_search(html, m, kCsrf) ? m[1].str() : std::string();
  }
  std::int64_t Depth(Queue& q) {
    auto s = q.GetQueueAttributes();
    return s ? s->approximate_number_of_messages + s->approximate_number_of_messages_not_visible
             : -1;
  }

  std::filesystem::path dir_;
  std::shared_ptr<QueueService> service_;
  QueuePair queues_;
  std::shared_ptr<StateStore> status_;
  std::vector<std::string> dlq_message_ids_;
  std::string cookie_, set_cookie_;
};

TEST_F(DashboardTest, WithATokenPagesNeedTheLoginAndTheCookieIsStrict) {
  auto d = Make("s3cret");
  auto first = Send(*d, Get("/"));
  EXPECT_EQ(first.status, 303);
  EXPECT_EQ(Header(first, "Location"), "/login");
  EXPECT_THAT(set_cookie_, HasSubstr("HttpOnly"));
  EXPECT_THAT(set_cookie_, HasSubstr("SameSite=Strict"));
  EXPECT_THAT(set_cookie_, Not(HasSubstr("Secure")));  // loopback only

  auto login = Send(*d, Get("/login"));
  ASSERT_EQ(login.status, 200);
  std::string csrf = Csrf(login.body);
  ASSERT_FALSE(csrf.empty());

  auto wrong = Send(*d, PostForm("/login", "csrf=" + csrf + "&token=nope"));
  EXPECT_EQ(wrong.status, 401);
  std::string anonymous = cookie_;
  auto right = Send(*d, PostForm("/login", "csrf=" + csrf + "&token=s3cret"));
  EXPECT_EQ(right.status, 303);
  EXPECT_NE(cookie_, anonymous) << "the session id changes on login";
  EXPECT_THAT(set_cookie_, HasSubstr("HttpOnly"));
  EXPECT_THAT(set_cookie_, Not(HasSubstr("s3cret")));

  auto page = Send(*d, Get("/"));
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("invoice-generation-queue-dlq"));
  EXPECT_THAT(Header(page, "Content-Security-Policy"), HasSubstr("script-src 'self'"));
}

TEST_F(DashboardTest, BearerTokenIsAcceptedAndAWrongOneIsNot) {
  auto d = Make("s3cret");
  auto request = Get("/messages");
  request.headers["authorization"] = "Bearer s3cret";
  EXPECT_EQ(d->Handle(request).status, 200);
  request.headers["authorization"] = "Bearer s3cre";
  EXPECT_EQ(d->Handle(request).status, 303);
}

TEST_F(DashboardTest, CookiesAreSecureBeyondLoopback) {
  auto d = Make("s3cret", /*loopback_only=*/false);
  Send(*d, Get("/login"));
  EXPECT_THAT(set_cookie_, HasSubstr("; Secure"));
}

TEST_F(DashboardTest, WithoutATokenItIsOpenOnLoopbackOnly) {
  EXPECT_EQ(Make("")->Handle(Get("/")).status, 200);
  auto refused = Make("", /*loopback_only=*/false)->Handle(Get("/"));
  EXPECT_EQ(refused.status, 403);
  EXPECT_THAT(refused.body, HasSubstr("POSTLINE_API_TOKEN"));
}

TEST_F(DashboardTest, PostsNeedTheCsrfTokenAndTheOrigin) {
  DeadLetter("Invoice 1");
  auto d = Make("");
  auto page = Send(*d, Get("/dead-letters"));
  std::string csrf = Csrf(page.body);
  ASSERT_FALSE(csrf.empty());
  std::string body = "queue=invoice-generation-queue-dlq&action=redrive&id=" + dlq_message_ids_[0];

  auto no_token = Send(*d, PostForm("/dead-letters/action", body));
  EXPECT_EQ(no_token.status, 403);
  auto bad_token =
      Send(*d, PostForm("/dead-letters/action", body + "&csrf=" + std::string(64, 'a')));
  EXPECT_EQ(bad_token.status, 403);
  auto cross_site = PostForm("/dead-letters/action", body + "&csrf=" + csrf);
  cross_site.headers["origin"] = "http://evil.example";
  EXPECT_EQ(Send(*d, cross_site).status, 403);
  auto no_origin = PostForm("/dead-letters/action", body + "&csrf=" + csrf);
  no_origin.headers.erase("origin");
  EXPECT_EQ(Send(*d, no_origin).status, 403);
  EXPECT_EQ(Depth(*queues_.regular_dlq), 1) << "nothing was redriven by a refused request";

  auto ok = Send(*d, PostForm("/dead-letters/action", body + "&csrf=" + csrf));
  EXPECT_EQ(ok.status, 303);
  EXPECT_EQ(Depth(*queues_.regular_dlq), 0);
  EXPECT_EQ(Depth(*queues_.regular), 1);
}

TEST_F(DashboardTest, MessageTextIsEscapedOnEveryPage) {
  const std::string id = DeadLetter("<script>alert(1)</script>", "\"x<y\"@example.com");
  auto d = Make("");
  for (const std::string& target : std::vector<std::string>{
           "/dead-letters", "/dead-letters/invoice-generation-queue-dlq/" + dlq_message_ids_[0],
           "/emails/" + id, "/sent?q=alert",
           "/preview/dlq/invoice-generation-queue-dlq/" + dlq_message_ids_[0]}) {
    SCOPED_TRACE(target);
    auto page = Send(*d, Get(target));
    EXPECT_EQ(page.status, 200);
    EXPECT_THAT(page.body, Not(HasSubstr("<script>alert(1)")));
    EXPECT_THAT(page.body, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  }
  auto dead = Send(*d, Get("/dead-letters"));
  EXPECT_THAT(dead.body, HasSubstr("550 &lt;b&gt;no such user&lt;/b&gt;"));
}

TEST_F(DashboardTest, PreviewFramesTheHtmlPartInASandbox) {
  DeadLetter("Invoice 7");
  auto d = Make("");
  std::string base = "/preview/dlq/invoice-generation-queue-dlq/" + dlq_message_ids_[0];
  auto page = Send(*d, Get(base));
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("<iframe class=\"html-part\" sandbox=\"\""));
  EXPECT_THAT(page.body, HasSubstr("Message-ID"));
  EXPECT_THAT(page.body, HasSubstr("invoice.pdf"));
  auto html = Send(*d, Get(base + "/html"));
  EXPECT_EQ(html.body, "<p>Hello <script>alert(2)</script></p>");
  EXPECT_THAT(Header(html, "Content-Security-Policy"), HasSubstr("sandbox"));
  EXPECT_THAT(Header(html, "Content-Security-Policy"), HasSubstr("default-src 'none'"));
  auto pdf = Send(*d, Get(base + "/attachment/0"));
  EXPECT_EQ(Header(pdf, "Content-Type"), "application/pdf");
  EXPECT_EQ(pdf.body, "%PDF-1.4 test");
}

TEST_F(DashboardTest, DeleteAllAsksFirst) {
  DeadLetter("Invoice 1");
  DeadLetter("Invoice 2");
  auto d = Make("");
  std::string csrf = Csrf(Send(*d, Get("/dead-letters")).body);
  std::string body = "queue=invoice-generation-queue-dlq&action=delete-all&csrf=" + csrf;
  auto ask = Send(*d, PostForm("/dead-letters/action", body));
  EXPECT_EQ(ask.status, 200);
  EXPECT_THAT(ask.body, HasSubstr("name=\"confirm\" value=\"yes\""));
  EXPECT_EQ(Depth(*queues_.regular_dlq), 2);
  auto done = Send(*d, PostForm("/dead-letters/action", body + "&confirm=yes"));
  EXPECT_EQ(done.status, 303);
  EXPECT_EQ(Depth(*queues_.regular_dlq), 0);
}

TEST_F(DashboardTest, RedrivesOnlyTheSelectionAndRecordsQueued) {
  const std::string first = DeadLetter("Invoice 1");
  DeadLetter("Invoice 2");
  auto d = Make("");
  std::string csrf = Csrf(Send(*d, Get("/dead-letters")).body);
  auto r = Send(*d, PostForm("/dead-letters/action",
                             "queue=invoice-generation-queue-dlq&action=redrive&csrf=" + csrf +
                                 "&id=" + dlq_message_ids_[0]));
  EXPECT_EQ(r.status, 303);
  EXPECT_THAT(Header(r, "Location"), HasSubstr("done=redrive&n=1&failed=0"));
  EXPECT_EQ(Depth(*queues_.regular_dlq), 1);
  ReceiveMessageRequest receive;
  receive.wait_time_seconds = 0;
  auto back = queues_.regular->ReceiveMessage(receive);
  ASSERT_TRUE(back && back->size() == 1);
  EXPECT_EQ(back->front().attributes.count(std::string(kAttrReason)), 0u);
  auto status = status_->GetStatus(first);
  ASSERT_TRUE(status && *status);
  EXPECT_EQ((*status)->state, "queued");
}

TEST_F(DashboardTest, QueueOverTheAlarmIsMarked) {
  DeadLetter("Invoice 1");
  DeadLetter("Invoice 2");
  auto calm = Send(*Make(""), Get("/"));
  EXPECT_THAT(calm.body, Not(HasSubstr("alarm-mark")));
  auto alarmed = Send(*Make("", true, /*depth_alarm=*/1), Get("/"));
  EXPECT_THAT(alarmed.body, HasSubstr("<span class=\"alarm-mark\""));
}

TEST_F(DashboardTest, RetryingEmailShowsTheBackoffWindow) {
  Email email;
  email.from = {"", "billing@example.com"};
  email.to = {{"", "busy@example.com"}};
  email.subject = "Invoice 9";
  email.text = "x";
  auto queued = EnqueueEmail(queues_, email, *SystemClock(), status_.get());
  ASSERT_TRUE(queued);
  StatusEvent retry;
  retry.state = StatusEvent::State::kRetrying;
  retry.envelope_id = queued->id;
  retry.queue = queues_.regular->name();
  retry.attempts = 3;
  retry.reply_code = 451;
  retry.detail = "451 mailbox busy";
  status_->OnStatus(retry);
  auto status = status_->GetStatus(queued->id);
  ASSERT_TRUE(status && *status);
  const auto at = (*status)->updated_at;

  // Without the bounds: only when the backoff started.
  auto unknown = Send(*Make(""), Get("/messages"));
  EXPECT_THAT(unknown.body,
              HasSubstr("after the backoff from " + dashboard_internal::FormatTime(at)));
  EXPECT_THAT(unknown.body, HasSubstr(">451 mailbox busy<"));

  // With 10 s–3600 s after the third attempt: 10 s to 40 s later.
  DashboardSettings settings;
  settings.retry_min_seconds = 10;
  settings.retry_max_seconds = 3600;
  DashboardSources sources;
  sources.queues = queues_;
  sources.state = status_;
  Dashboard d(settings, sources, Log(NewStderrJsonLogger("dashboard_test", "error")));
  auto known = d.Handle(Get("/messages"));
  EXPECT_THAT(known.body,
              HasSubstr(dashboard_internal::FormatTime(at + std::chrono::seconds(10)) + " – " +
                        dashboard_internal::FormatTime(at + std::chrono::seconds(40)).substr(11)));
}

TEST_F(DashboardTest, TimelineShowsTheFirstAndTheLatestState) {
  const std::string id = DeadLetter("Invoice 5");
  auto page = Send(*Make(""), Get("/emails/" + id));
  ASSERT_EQ(page.status, 200);
  std::smatch m;
  const std::regex item(
      R"re(<li><time>[^<]*</time> <span class="state state-(\w+)">\w+</span>([^\n]*)</li>)re");
  std::vector<std::pair<std::string, std::string>> items;
  for (auto it = std::sregex_iterator(page.body.begin(), page.body.end(), item);
       it != std::sregex_iterator(); ++it) {
    items.emplace_back((*it)[1].str(), (*it)[2].str());
  }
  ASSERT_EQ(items.size(), 2u) << page.body;
  EXPECT_EQ(items[0].first, "queued");
  EXPECT_THAT(items[0].second, Not(HasSubstr("attempt")));
  EXPECT_EQ(items[1].first, "dead");
  EXPECT_THAT(items[1].second, HasSubstr("attempt 1"));
  EXPECT_THAT(items[1].second, HasSubstr("permanent: 550 no such user"));
}

TEST_F(DashboardTest, AssetsAreEmbedded) {
  auto d = Make("s3cret");
  auto css = d->Handle(Get("/assets/dashboard.css"));
  EXPECT_EQ(css.status, 200);
  EXPECT_THAT(css.body, HasSubstr("@media (max-width: 600px)"));
  EXPECT_EQ(d->Handle(Get("/assets/layout.mustache")).status, 404);
}

}  // namespace
}  // namespace postline
