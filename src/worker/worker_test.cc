#include "postline/worker.h"

#include <gtest/gtest.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>

#include <deque>
#include <set>
#include <filesystem>
#include <sstream>
#include <thread>

namespace postline {
namespace {

using namespace std::chrono_literals;

// The seam under test is the Transport: this one records what it was asked
// to send and answers with scripted outcomes (sent when the script is empty).
class ScriptedTransport final : public Transport {
 public:
  struct Shared {
    std::mutex mu;
    std::deque<SendResult> script;
    std::vector<OutgoingMessage> sent;
    std::chrono::milliseconds delay{0};
  };
  explicit ScriptedTransport(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  SendResult Send(const OutgoingMessage& m) override {
    std::this_thread::sleep_for(shared_->delay);
    std::lock_guard lock(shared_->mu);
    SendResult r{SendOutcome::kSent, 250, "250 2.0.0 Ok: queued as X", "X", {}};
    if (!shared_->script.empty()) {
      r = shared_->script.front();
      shared_->script.pop_front();
    }
    if (r.outcome == SendOutcome::kSent) shared_->sent.push_back(m);
    return r;
  }
  Result<void> Check() override { return {}; }
  std::string_view name() const override { return "scripted"; }

 private:
  std::shared_ptr<Shared> shared_;
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("postline-worker-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    service_ = NewMemoryQueueService();
    auto pair = EnsureGuideQueues(*service_, GuideQueueAttributes(), 3);
    ASSERT_TRUE(pair) << pair.error().ToString();
    queues_ = *pair;
    auto log = OpenSentLog((dir_ / "state.db").string());
    ASSERT_TRUE(log) << log.error().ToString();
    sent_log_ = *log;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_out_);
    logger_ = std::make_shared<spdlog::logger>("test", sink);
    logger_->set_formatter(std::make_unique<spdlog::pattern_formatter>(JsonLinesPattern()));
    shared_ = std::make_shared<ScriptedTransport::Shared>();
    settings_.concurrency = 2;
    settings_.wait_time_seconds = 1;
    settings_.retry_min_seconds = 60;
    settings_.retry_max_seconds = 60;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Worker> NewWorker() {
    auto shared = shared_;
    return std::make_unique<Worker>(
        settings_, queues_, [shared] { return std::make_unique<ScriptedTransport>(shared); },
        sent_log_, SystemClock(), Log(logger_));
  }

  std::string Enqueue(Queue& queue, int priority, std::string id = {}) {
    Email e;
    e.id = id.empty() ? NewEnvelopeId() : id;
    e.from = {"Billing", "billing@example.com"};
    e.to = {{"Alice", "alice@example.com"}};
    e.bcc = {{"", "audit@example.com"}};
    e.subject = "Invoice";
    e.text = "hello\n";
    e.priority = priority;
    SendMessageRequest req;
    req.body = EncodeEmailJson(e);
    EXPECT_TRUE(queue.SendMessage(req));
    return e.id;
  }

  ReceivedMessage ReceiveOne(Queue& queue) {
    ReceiveMessageRequest req;
    req.visibility_timeout_seconds = 30;
    auto got = queue.ReceiveMessage(req);
    EXPECT_TRUE(got);
    EXPECT_EQ(got->size(), 1u);
    return got->empty() ? ReceivedMessage{} : got->front();
  }

  std::int64_t Depth(Queue& q) {
    auto s = q.GetQueueAttributes();
    EXPECT_TRUE(s);
    return s->approximate_number_of_messages + s->approximate_number_of_messages_not_visible +
           s->approximate_number_of_messages_delayed;
  }

  std::filesystem::path dir_;
  std::shared_ptr<QueueService> service_;
  QueuePair queues_;
  std::shared_ptr<SentLog> sent_log_;
  std::ostringstream log_out_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<ScriptedTransport::Shared> shared_;
  WorkerSettings settings_;
};

TEST_F(WorkerTest, SentIsRecordedThenDeleted) {
  auto worker = NewWorker();
  std::string id = Enqueue(*queues_.regular, 5);
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  ASSERT_EQ(shared_->sent.size(), 1u);
  EXPECT_EQ(shared_->sent[0].envelope_id, id);
  EXPECT_EQ(shared_->sent[0].mail_from, "billing@example.com");
  // Bcc is an envelope recipient, never a header.
  EXPECT_EQ(shared_->sent[0].rcpt_to,
            (std::vector<std::string>{"alice@example.com", "audit@example.com"}));
  EXPECT_EQ(shared_->sent[0].data.find("audit@example.com"), std::string::npos);
  EXPECT_EQ(Depth(*queues_.regular), 0);
  auto rec = sent_log_->Find(id);
  ASSERT_TRUE(rec && rec->has_value());
  EXPECT_EQ((*rec)->message_id, id + "@example.com");
  EXPECT_EQ((*rec)->attempts, 1);
  EXPECT_NE(log_out_.str().find("\"envelope_id\":\"" + id + "\""), std::string::npos);
}

TEST_F(WorkerTest, DuplicateIsDeletedWithoutSending) {
  auto worker = NewWorker();
  std::string id = Enqueue(*queues_.regular, 5);
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  Enqueue(*queues_.regular, 5, id);  // the same envelope again
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  EXPECT_EQ(shared_->sent.size(), 1u);
  EXPECT_EQ(Depth(*queues_.regular), 0);
  EXPECT_EQ(worker->stats().duplicates.load(), 1);
}

TEST_F(WorkerTest, TransientHidesTheMessageForTheBackoff) {
  auto worker = NewWorker();
  shared_->script.push_back({SendOutcome::kTransient, 451, "451 4.3.0 try later", "", {}});
  Enqueue(*queues_.regular, 5);
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  auto stats = queues_.regular->GetQueueAttributes();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->approximate_number_of_messages, 0);
  EXPECT_EQ(stats->approximate_number_of_messages_not_visible, 1);  // hidden for 60 s
  EXPECT_EQ(Depth(*queues_.regular_dlq), 0);
  EXPECT_EQ(worker->stats().retried.load(), 1);
}

TEST_F(WorkerTest, PermanentGoesToTheDlqWithTheReason) {
  auto worker = NewWorker();
  shared_->script.push_back({SendOutcome::kPermanent, 550, "550 5.1.1 no such user", "", {}});
  std::string id = Enqueue(*queues_.priority, 1);
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.priority, *queues_.priority_dlq,
                 ReceiveOne(*queues_.priority));
  EXPECT_EQ(Depth(*queues_.priority), 0);
  auto dead = ReceiveOne(*queues_.priority_dlq);
  EXPECT_EQ(dead.attributes.at(std::string(kAttrReason)).value, "permanent");
  EXPECT_EQ(dead.attributes.at(std::string(kAttrReplyCode)).value, "550");
  EXPECT_EQ(dead.attributes.at(std::string(kAttrReply)).value, "550 5.1.1 no such user");
  EXPECT_EQ(dead.attributes.at(std::string(kAttrSourceQueue)).value, "priority-emails-queue");
  EXPECT_EQ(dead.attributes.at(std::string(kAttrEnvelopeId)).value, id);
  EXPECT_NE(dead.body.find(id), std::string::npos);  // the envelope is kept whole
}

TEST_F(WorkerTest, UnparseableBodyIsQuarantined) {
  auto worker = NewWorker();
  SendMessageRequest req;
  req.body = "this is not an envelope";
  ASSERT_TRUE(queues_.regular->SendMessage(req));
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  EXPECT_TRUE(shared_->sent.empty());
  auto dead = ReceiveOne(*queues_.regular_dlq);
  EXPECT_EQ(dead.body, "this is not an envelope");
  EXPECT_EQ(dead.attributes.at(std::string(kAttrReason)).value, "unparseable");
}

TEST_F(WorkerTest, AttachmentPathsInQueuedEnvelopesAreRefused) {
  auto worker = NewWorker();
  SendMessageRequest req;
  req.body = R"({"v":1,"id":"01JABCDEFGHJKMNPQRSTVWXYZ0","from":"a@example.com","to":"b@example.com",)"
             R"("text":"x","attachments":[{"filename":"p","content_type":"text/plain","path":"/etc/passwd"}]})";
  ASSERT_TRUE(queues_.regular->SendMessage(req));
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  EXPECT_TRUE(shared_->sent.empty());
  auto dead = ReceiveOne(*queues_.regular_dlq);
  EXPECT_EQ(dead.attributes.at(std::string(kAttrReason)).value, "unparseable");
  EXPECT_NE(dead.attributes.at(std::string(kAttrReply)).value.find("attachments[0].path"),
            std::string::npos);
}

TEST_F(WorkerTest, RunServesThePriorityLaneFirstAndDrains) {
  for (int i = 0; i < 30; ++i) Enqueue(*queues_.regular, 5);
  std::vector<std::string> priority_ids;
  for (int i = 0; i < 5; ++i) priority_ids.push_back(Enqueue(*queues_.priority, 1));
  shared_->delay = 5ms;
  auto worker = NewWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  for (int i = 0; i < 400 && worker->stats().sent.load() < 35; ++i) std::this_thread::sleep_for(10ms);
  stop.request_stop();
  run.join();
  ASSERT_EQ(shared_->sent.size(), 35u);
  // Every priority e-mail is among the first sends: two senders, so at most
  // two regular messages can be ahead of them.
  for (const auto& id : priority_ids) {
    auto it = std::find_if(shared_->sent.begin(), shared_->sent.end(),
                           [&](const OutgoingMessage& m) { return m.envelope_id == id; });
    ASSERT_NE(it, shared_->sent.end());
    EXPECT_LT(it - shared_->sent.begin(), 5 + 2);
  }
}

TEST_F(WorkerTest, StopReleasesReceivedButUnstartedMessages) {
  for (int i = 0; i < 20; ++i) Enqueue(*queues_.priority, 2);
  shared_->delay = 200ms;
  settings_.concurrency = 1;
  auto worker = NewWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  std::this_thread::sleep_for(300ms);
  stop.request_stop();
  run.join();
  auto stats = queues_.priority->GetQueueAttributes();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->approximate_number_of_messages_not_visible, 0);
  EXPECT_EQ(stats->approximate_number_of_messages + static_cast<std::int64_t>(shared_->sent.size()),
            20);
  EXPECT_GE(shared_->sent.size(), 1u);
}

TEST(BackoffTest, StaysWithinClampedExponentialBounds) {
  std::mt19937_64 rng(42);
  for (int attempt = 1; attempt <= 20; ++attempt) {
    long long cap = std::min<long long>(3600, 15LL << std::min(attempt - 1, 30));
    for (int i = 0; i < 200; ++i) {
      int s = BackoffSeconds(attempt, 15, 3600, rng);
      ASSERT_GE(s, 15);
      ASSERT_LE(s, cap);
    }
  }
  // Full jitter spreads retries: attempt 8 draws from [15, 1920].
  std::set<int> seen;
  for (int i = 0; i < 100; ++i) seen.insert(BackoffSeconds(8, 15, 3600, rng));
  EXPECT_GT(seen.size(), 50u);
}

}  // namespace
}  // namespace postline
