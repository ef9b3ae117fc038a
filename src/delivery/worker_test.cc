#include "postline/delivery.h"
#include "postline/service.h"

#include "testing/poison.h"

#include <gtest/gtest.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

namespace postline {
namespace {

using testing_support::Nested;
using testing_support::PoisonBodies;

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
    // A gate in front of every send: permits < 0 lets every send through,
    // otherwise each send takes one permit and waits while there is none.
    std::condition_variable gate;
    int permits = -1;
    int waiting = 0;                   // sends waiting at the gate now
    std::vector<std::string> started;  // envelope ids in the order Send was called
    int committing = 0;                // sends between before_commit and their return
    int most_committing = 0;
    void Permit(int n) {
      {
        std::lock_guard lock(mu);
        permits = n;
      }
      gate.notify_all();
    }
  };
  explicit ScriptedTransport(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  SendResult Send(const OutgoingMessage& m) override {
    {
      std::unique_lock lock(shared_->mu);
      shared_->started.push_back(m.envelope_id);
      ++shared_->waiting;
      shared_->gate.wait(lock, [&] { return shared_->permits != 0; });
      --shared_->waiting;
      if (shared_->permits > 0) --shared_->permits;
    }
    // The point of no return comes before the server's processing (delay).
    if (m.before_commit) m.before_commit();
    {
      std::lock_guard lock(shared_->mu);
      shared_->most_committing = std::max(shared_->most_committing, ++shared_->committing);
    }
    std::this_thread::sleep_for(shared_->delay);
    std::lock_guard lock(shared_->mu);
    --shared_->committing;
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
    auto log = OpenSqliteStateStore((dir_ / "state.db").string());
    ASSERT_TRUE(log) << log.error().ToString();
    state_ = *log;
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
        state_, SystemClock(), Log(logger_));
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
  std::shared_ptr<StateStore> state_;
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
  auto rec = state_->FindSent(id);
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

// One such body aborted the worker on every receive (exit 134: nlohmann's
// out_of_range escaped; SIGSEGV for the nesting), and the good e-mail
// received in the same batch stayed in flight for good.
TEST_F(WorkerTest, PoisonBodiesAreDeadLetteredAsUnparseableAndTheBatchIsDelivered) {
  const auto poison = PoisonBodies();
  for (const auto& body : poison) {
    SendMessageRequest req;
    req.body = body;
    ASSERT_TRUE(queues_.regular->SendMessage(req)) << body.substr(0, 80);
  }
  const std::string good = Enqueue(*queues_.regular, 5);
  auto worker = NewWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  for (int i = 0; i < 500 && (worker->stats().sent.load() < 1 ||
                              worker->stats().dead.load() < static_cast<long>(poison.size()));
       ++i) {
    std::this_thread::sleep_for(10ms);
  }
  stop.request_stop();
  run.join();
  ASSERT_EQ(shared_->sent.size(), 1u);
  EXPECT_EQ(shared_->sent[0].envelope_id, good);
  EXPECT_EQ(worker->stats().dead.load(), static_cast<long>(poison.size()));
  EXPECT_EQ(Depth(*queues_.regular), 0);
  auto dead = ReceiveAllVisible(*queues_.regular_dlq, 30);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), poison.size());
  std::multiset<std::string> bodies(poison.begin(), poison.end());
  for (const auto& m : *dead) {
    EXPECT_EQ(m.attributes.at(std::string(kAttrReason)).value, "unparseable");
    const std::string reply = m.attributes.at(std::string(kAttrReply)).value;
    EXPECT_TRUE(reply.starts_with("number_out_of_range") || reply.starts_with("json_too_deep"))
        << reply;
    EXPECT_EQ(bodies.count(m.body), 1u) << "the body is kept whole";
    // The dead-letter tools describe it too.
    DeadLetterInfo info = DescribeDeadLetter(m);
    EXPECT_EQ(info.reason, "unparseable");
    EXPECT_TRUE(info.recipients.empty());
  }
}

TEST_F(WorkerTest, AttachmentPathsInQueuedEnvelopesAreRefused) {
  auto worker = NewWorker();
  SendMessageRequest req;
  req.body =
      R"({"v":1,"id":"01JABCDEFGHJKMNPQRSTVWXYZ0","from":"a@example.com","to":"b@example.com",)"
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
  for (int i = 0; i < 400 && worker->stats().sent.load() < 35; ++i)
    std::this_thread::sleep_for(10ms);
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

// POSTLINE_MAX_IN_DOUBT: however many senders, no more sends than the limit
// are past their point of no return at once; with a larger limit they are.
TEST_F(WorkerTest, InDoubtSendsAreBoundedByMaxInDoubt) {
  for (int limit : {1, 4}) {
    settings_.concurrency = 4;
    settings_.max_in_doubt = limit;
    shared_->delay = 10ms;
    shared_->most_committing = 0;
    const std::size_t before = shared_->sent.size();
    for (int i = 0; i < 24; ++i) Enqueue(*queues_.regular, 5);
    auto worker = NewWorker();
    std::stop_source stop;
    std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
    for (int i = 0; i < 1000 && worker->stats().sent.load() < 24; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    stop.request_stop();
    run.join();
    ASSERT_EQ(shared_->sent.size(), before + 24) << "limit " << limit;
    if (limit == 1) {
      EXPECT_EQ(shared_->most_committing, 1);
    } else {
      EXPECT_GT(shared_->most_committing, 1);
      EXPECT_LE(shared_->most_committing, limit);
    }
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

namespace postline {
namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;

TEST(VisibilityExtensionTest, ExtendsWhenHalfIsLeftAndNeverBeyondTwelveHours) {
  const steady_clock::time_point t0{std::chrono::hours(100)};
  // Received at t0 with 30 s: nothing due for the first 15 s.
  EXPECT_EQ(VisibilityExtensionSeconds(t0 + 10s, t0, t0 + 30s, 30), 0);
  EXPECT_EQ(VisibilityExtensionSeconds(t0 + 15s, t0, t0 + 30s, 30), 30);
  EXPECT_EQ(VisibilityExtensionSeconds(t0 + 29s, t0, t0 + 30s, 30), 30);
  // Short timeouts: due once at most 1 s is left.
  EXPECT_EQ(VisibilityExtensionSeconds(t0 + 500ms, t0, t0 + 2s, 2), 0);
  EXPECT_EQ(VisibilityExtensionSeconds(t0 + 1s, t0, t0 + 2s, 2), 2);
  // Near the 12-hour ceiling the extension shrinks, then stops.
  const auto late = t0 + 43200s - 11s;
  EXPECT_EQ(VisibilityExtensionSeconds(late, t0, late + 5s, 30), 10);
  EXPECT_EQ(VisibilityExtensionSeconds(t0 + 43199s, t0, t0 + 43200s, 30), -1);
}


}  // namespace
}  // namespace postline

namespace postline {
namespace {

// The system clock, moved ahead: for mail that has been failing for days.
class AheadClock final : public Clock {
 public:
  explicit AheadClock(std::chrono::seconds ahead) : ahead_(ahead) {}
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now() + ahead_;
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::now();
  }

 private:
  std::chrono::seconds ahead_;
};

TEST_F(WorkerTest, TransientPastMaxAgeGoesToTheDlqAsExpired) {
  settings_.max_age_seconds = 3600;
  shared_->script.push_back({SendOutcome::kTransient, 451, "451 4.3.0 try later", "", {}});
  std::string id = Enqueue(*queues_.regular, 5);
  auto shared = shared_;
  Worker worker(
      settings_, queues_, [shared] { return std::make_unique<ScriptedTransport>(shared); },
      state_, std::make_shared<AheadClock>(std::chrono::hours(2)), Log(logger_));
  ScriptedTransport transport(shared_);
  worker.Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  EXPECT_EQ(Depth(*queues_.regular), 0);
  auto dead = ReceiveOne(*queues_.regular_dlq);
  EXPECT_EQ(dead.attributes.at(std::string(kAttrReason)).value, "expired");
  EXPECT_EQ(dead.attributes.at(std::string(kAttrReplyCode)).value, "451");
  EXPECT_EQ(dead.attributes.at(std::string(kAttrEnvelopeId)).value, id);
}

TEST_F(WorkerTest, PartlyRefusedRecipientsAreSentAndReported) {
  SendResult partial{SendOutcome::kSent, 250, "250 2.0.0 Ok: queued as Q", "Q", {}};
  partial.rejected.push_back({"audit@example.com", 550, "550 5.1.1 no such user"});
  shared_->script.push_back(partial);
  std::string id = Enqueue(*queues_.regular, 5);
  auto worker = NewWorker();
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  EXPECT_EQ(Depth(*queues_.regular), 0);
  EXPECT_EQ(Depth(*queues_.regular_dlq), 0);
  auto rec = state_->FindSent(id);
  ASSERT_TRUE(rec && rec->has_value());
  ASSERT_EQ((*rec)->rejected_recipients.size(), 1u);
  EXPECT_NE((*rec)->rejected_recipients[0].find("audit@example.com: 550"), std::string::npos);
  EXPECT_NE(log_out_.str().find("\"recipient_rejected\""), std::string::npos);
}

// The heartbeat keeps a message hidden while a send outlasts the visibility
// timeout, so no other receiver gets it.
TEST_F(WorkerTest, HeartbeatHidesAMessageWhoseSendOutlastsTheVisibilityTimeout) {
  settings_.visibility_timeout_seconds = 2;
  settings_.concurrency = 1;
  shared_->delay = 3500ms;
  Enqueue(*queues_.regular, 5);
  auto worker = NewWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  std::this_thread::sleep_for(2800ms);  // the first 2 s timeout has passed
  ReceiveMessageRequest peek;
  peek.max_number_of_messages = 10;
  auto other = queues_.regular->ReceiveMessage(peek);
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->empty()) << "another receiver got the message while it was being sent";
  for (int i = 0; i < 300 && worker->stats().sent.load() < 1; ++i)
    std::this_thread::sleep_for(10ms);
  stop.request_stop();
  run.join();
  EXPECT_EQ(shared_->sent.size(), 1u);
  EXPECT_EQ(Depth(*queues_.regular), 0);
}

TEST_F(WorkerTest, ThrottlingRepliesLowerTheRate) {
  settings_.rate_limit_per_second = 10;
  shared_->script.push_back(
      {SendOutcome::kTransient, 454, "454 4.7.0 rate limit exceeded", "", {}});
  Enqueue(*queues_.regular, 5);
  auto worker = NewWorker();
  ScriptedTransport transport(shared_);
  worker->Handle(transport, *queues_.regular, *queues_.regular_dlq, ReceiveOne(*queues_.regular));
  EXPECT_DOUBLE_EQ(worker->current_rate(), 5);
  EXPECT_NE(log_out_.str().find("\"rate_decreased\""), std::string::npos);
}

}  // namespace
}  // namespace postline

namespace postline {
namespace {

TEST_F(WorkerTest, SentLogPruneRemovesOnlyRecordsOlderThanTheRetention) {
  const auto now = std::chrono::system_clock::now();
  SentRecord old_record;
  old_record.envelope_id = "old";
  old_record.idempotency_key = "key-old";
  old_record.sent_at = now - std::chrono::hours(24 * 31);
  SentRecord fresh = old_record;
  fresh.envelope_id = "fresh";
  fresh.sent_at = now - std::chrono::hours(24);
  ASSERT_TRUE(state_->RecordSent(old_record));
  ASSERT_TRUE(state_->RecordSent(fresh));
  Retention retention;
  retention.sent_log = std::chrono::seconds(2592000);
  auto pruned = state_->Prune(retention);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->sent_records, 1);
  EXPECT_FALSE(state_->FindSent("old")->has_value());
  auto kept = state_->FindSent("fresh");
  ASSERT_TRUE(kept && kept->has_value());
  EXPECT_EQ((*kept)->idempotency_key, "key-old");
}

}  // namespace
}  // namespace postline

namespace postline {
namespace {

using namespace std::chrono_literals;

// The seam under test for receiving and settling: a Queue that forwards every
// call to a memory queue and counts the requests the worker makes, by SQS
// action, with the entries of the batch requests.
class CountingQueue final : public Queue {
 public:
  struct Counts {
    int receive_calls = 0;                   // ReceiveMessage calls started
    int receives = 0;                        // ReceiveMessage calls returned
    int receives_with_mail = 0;              // … that returned at least one message
    int received = 0;                        // messages returned
    std::set<int> asked;                     // MaxNumberOfMessages values asked for
    int deletes = 0;                         // DeleteMessage calls
    int delete_batches = 0;                  // DeleteMessageBatch calls
    int deleted_in_batches = 0;              // their entries
    int changes = 0;                         // ChangeMessageVisibility calls
    int change_batches = 0;                  // ChangeMessageVisibilityBatch calls
    std::vector<int> change_batch_timeouts;  // each entry's VisibilityTimeout
  };
  explicit CountingQueue(std::shared_ptr<Queue> inner) : inner_(std::move(inner)) {}
  Counts counts() {
    std::lock_guard lock(mu_);
    return counts_;
  }
  Queue& inner() { return *inner_; }

  const std::string& name() const override { return inner_->name(); }
  Result<SendMessageResult> SendMessage(const SendMessageRequest& request) override {
    return inner_->SendMessage(request);
  }
  Result<std::vector<BatchEntryResult<SendMessageResult>>> SendMessageBatch(
      const std::vector<SendMessageBatchEntry>& entries) override {
    return inner_->SendMessageBatch(entries);
  }
  Result<std::vector<ReceivedMessage>> ReceiveMessage(
      const ReceiveMessageRequest& request) override {
    Count([](Counts& c) { ++c.receive_calls; });
    auto got = inner_->ReceiveMessage(request);
    std::lock_guard lock(mu_);
    ++counts_.receives;
    counts_.asked.insert(request.max_number_of_messages);
    if (got && !got->empty()) {
      ++counts_.receives_with_mail;
      counts_.received += static_cast<int>(got->size());
    }
    return got;
  }
  Result<void> DeleteMessage(std::string_view receipt_handle) override {
    Count([](Counts& c) { ++c.deletes; });
    return inner_->DeleteMessage(receipt_handle);
  }
  Result<std::vector<BatchEntryResult<void>>> DeleteMessageBatch(
      const std::vector<std::pair<std::string, std::string>>& entries) override {
    Count([&](Counts& c) {
      ++c.delete_batches;
      c.deleted_in_batches += static_cast<int>(entries.size());
    });
    return inner_->DeleteMessageBatch(entries);
  }
  Result<void> ChangeMessageVisibility(std::string_view receipt_handle,
                                       int visibility_timeout_seconds) override {
    Count([](Counts& c) { ++c.changes; });
    return inner_->ChangeMessageVisibility(receipt_handle, visibility_timeout_seconds);
  }
  Result<std::vector<BatchEntryResult<void>>> ChangeMessageVisibilityBatch(
      const std::vector<VisibilityChange>& entries) override {
    Count([&](Counts& c) {
      ++c.change_batches;
      for (const auto& e : entries) c.change_batch_timeouts.push_back(e.visibility_timeout_seconds);
    });
    return inner_->ChangeMessageVisibilityBatch(entries);
  }
  Result<QueueStats> GetQueueAttributes() override { return inner_->GetQueueAttributes(); }
  Result<void> PurgeQueue() override { return inner_->PurgeQueue(); }

 private:
  void Count(const std::function<void(Counts&)>& f) {
    std::lock_guard lock(mu_);
    f(counts_);
  }
  std::shared_ptr<Queue> inner_;
  std::mutex mu_;
  Counts counts_;
};

class ReceiveAheadTest : public WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    priority_ = std::make_shared<CountingQueue>(queues_.priority);
    regular_ = std::make_shared<CountingQueue>(queues_.regular);
    counted_ = queues_;
    counted_.priority = priority_;
    counted_.regular = regular_;
  }

  std::unique_ptr<Worker> NewCountedWorker() {
    auto shared = shared_;
    return std::make_unique<Worker>(
        settings_, counted_, [shared] { return std::make_unique<ScriptedTransport>(shared); },
        state_, SystemClock(), Log(logger_));
  }

  // Waits (up to 30 s) for `done`; false when it never held.
  static bool WaitFor(const std::function<bool()>& done) {
    for (int i = 0; i < 3000; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return done();
  }

  int Waiting() {
    std::lock_guard lock(shared_->mu);
    return shared_->waiting;
  }
  std::size_t Sent() {
    std::lock_guard lock(shared_->mu);
    return shared_->sent.size();
  }
  std::int64_t InFlight(Queue& q) {
    auto s = q.GetQueueAttributes();
    EXPECT_TRUE(s);
    return s ? s->approximate_number_of_messages_not_visible : -1;
  }

  std::shared_ptr<CountingQueue> priority_;
  std::shared_ptr<CountingQueue> regular_;
  QueuePair counted_;
};

// 110 e-mails: one ReceiveMessage per 10 messages, deletes coalesced into
// DeleteMessageBatch requests, never one DeleteMessage per e-mail.
TEST_F(ReceiveAheadTest, ReceivesTenPerRequestAndDeletesInBatches) {
  for (int i = 0; i < 100; ++i) Enqueue(*queues_.regular, 5);
  for (int i = 0; i < 10; ++i) Enqueue(*queues_.priority, 1);
  shared_->delay = 1ms;
  auto worker = NewCountedWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  ASSERT_TRUE(WaitFor([&] { return worker->stats().sent.load() == 110; }));
  stop.request_stop();
  run.join();  // sends the deletes still being collected
  EXPECT_EQ(Sent(), 110u);
  EXPECT_EQ(Depth(*queues_.regular), 0);
  EXPECT_EQ(Depth(*queues_.priority), 0);

  auto regular = regular_->counts();
  auto priority = priority_->counts();
  // Every receive asks for the SQS maximum; a queue holding 100 visible
  // messages is drained by exactly 10 receives.
  EXPECT_EQ(regular.asked, (std::set<int>{kMaxBatchEntries}));
  EXPECT_EQ(priority.asked, (std::set<int>{kMaxBatchEntries}));
  EXPECT_EQ(regular.receives_with_mail, 10);
  EXPECT_EQ(priority.receives_with_mail, 1);
  // Deletes: all in batches, and batches hold several entries.
  EXPECT_EQ(regular.deletes + priority.deletes, 0);
  EXPECT_EQ(regular.deleted_in_batches, 100);
  EXPECT_EQ(priority.deleted_in_batches, 10);
  EXPECT_LT(regular.delete_batches, 100 / 2) << "deletes were not coalesced";
  // Nothing was held long enough to need an extension, nothing released.
  EXPECT_EQ(regular.changes + regular.change_batches, 0);
}

// With every sender blocked, a lane holds at most 10 + concurrency received
// messages besides the ones being sent, and refills only when its buffer is
// down to one message per sender; a stop releases the buffered ones in
// ChangeMessageVisibilityBatch requests.
TEST_F(ReceiveAheadTest, BufferIsBoundedAndReleasedInBatchesOnStop) {
  for (int i = 0; i < 100; ++i) Enqueue(*queues_.regular, 5);
  shared_->Permit(0);
  auto worker = NewCountedWorker();  // concurrency 2
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  // One receive of 10: two are being sent, eight wait in the buffer.
  ASSERT_TRUE(WaitFor([&] { return Waiting() == 2; }));
  EXPECT_EQ(regular_->counts().receives_with_mail, 1);
  EXPECT_EQ(InFlight(*queues_.regular), 10);
  // Six sends drain the buffer to two (one per sender): one more receive of
  // 10, so 12 are buffered and 2 being sent — 10 + 2 × concurrency in flight
  // once the six deletes went out.
  shared_->Permit(6);
  ASSERT_TRUE(WaitFor([&] {
    auto c = regular_->counts();
    return Sent() == 6 && Waiting() == 2 && c.receives_with_mail == 2 && c.deleted_in_batches == 6;
  }));
  EXPECT_EQ(InFlight(*queues_.regular), 14);
  EXPECT_EQ(regular_->counts().received, 20);

  stop.request_stop();
  shared_->Permit(-1);  // the two sends in progress finish
  run.join();
  EXPECT_EQ(Sent(), 8u);
  auto after = queues_.regular->GetQueueAttributes();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->approximate_number_of_messages_not_visible, 0);
  EXPECT_EQ(after->approximate_number_of_messages, 92);
  // The twelve buffered messages: two batch requests (10 + 2), visibility 0.
  auto counts = regular_->counts();
  EXPECT_EQ(counts.changes, 0);
  EXPECT_EQ(counts.change_batches, 2);
  EXPECT_EQ(counts.change_batch_timeouts, std::vector<int>(12, 0));
  EXPECT_NE(log_out_.str().find("\"released\":12"), std::string::npos);
}

// Regular mail received ahead never holds up priority mail: once the sender
// is free, a buffered priority message goes before the nine regular ones
// that were received before it.
TEST_F(ReceiveAheadTest, PriorityMailOvertakesBufferedRegularMail) {
  settings_.concurrency = 1;
  for (int i = 0; i < 40; ++i) Enqueue(*queues_.regular, 5);
  shared_->Permit(0);
  auto worker = NewCountedWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  ASSERT_TRUE(WaitFor([&] { return Waiting() == 1; }));  // 1 being sent, 9 buffered
  const std::string reset = Enqueue(*queues_.priority, 1);
  // Received, and in the buffer: the priority lane's next long poll (it
  // starts after the buffer took the message) is under way.
  ASSERT_TRUE(WaitFor([&] {
    auto c = priority_->counts();
    return c.received == 1 && c.receive_calls == c.receives + 1;
  }));
  shared_->Permit(-1);
  ASSERT_TRUE(WaitFor([&] { return worker->stats().sent.load() == 41; }));
  stop.request_stop();
  run.join();
  std::vector<std::string> started;
  {
    std::lock_guard lock(shared_->mu);
    started = shared_->started;
  }
  ASSERT_EQ(started.size(), 41u);
  EXPECT_NE(started[0], reset);
  EXPECT_EQ(started[1], reset) << "the priority message waited behind buffered regular mail";
  EXPECT_EQ(Depth(*queues_.regular), 0);
  EXPECT_EQ(Depth(*queues_.priority), 0);
}

// A worker whose senders stop taking messages (a send or a log write hangs)
// gives its buffered messages back instead of extending them forever, and
// receives again only once a sender comes back for work.
TEST_F(ReceiveAheadTest, StuckSendersGiveBufferedMessagesBack) {
  settings_.visibility_timeout_seconds = 2;
  settings_.stall_release_seconds = 2;
  settings_.concurrency = 1;
  for (int i = 0; i < 10; ++i) Enqueue(*queues_.regular, 5);
  shared_->Permit(0);
  auto worker = NewCountedWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  ASSERT_TRUE(WaitFor([&] { return Waiting() == 1; }));  // 1 stuck in its send, 9 buffered
  auto visible = [&] {
    auto s = queues_.regular->GetQueueAttributes();
    return s ? s->approximate_number_of_messages : -1;
  };
  ASSERT_TRUE(WaitFor([&] { return visible() == 9; }));
  std::this_thread::sleep_for(1500ms);  // room for a wrong re-receive
  EXPECT_EQ(visible(), 9) << "the stalled worker received its released messages again";
  EXPECT_EQ(regular_->counts().receives_with_mail, 1);
  EXPECT_NE(log_out_.str().find("\"senders_stalled\""), std::string::npos);

  shared_->Permit(-1);  // the send completes: the worker takes up the rest
  ASSERT_TRUE(WaitFor([&] { return worker->stats().sent.load() == 10; }));
  stop.request_stop();
  run.join();
  std::set<std::string> distinct;
  {
    std::lock_guard lock(shared_->mu);
    for (const auto& m : shared_->sent) distinct.insert(m.envelope_id);
  }
  EXPECT_EQ(distinct.size(), 10u);
  EXPECT_EQ(Depth(*queues_.regular), 0);
}

// Buffered messages are covered by the heartbeat from the receive on: they
// stay hidden past their first visibility timeout, extended together in
// ChangeMessageVisibilityBatch requests.
TEST_F(ReceiveAheadTest, BufferedMessagesAreExtendedInBatches) {
  settings_.visibility_timeout_seconds = 2;
  settings_.concurrency = 1;
  for (int i = 0; i < 10; ++i) Enqueue(*queues_.regular, 5);
  shared_->Permit(0);
  auto worker = NewCountedWorker();
  std::stop_source stop;
  std::jthread run([&] { ASSERT_TRUE(worker->Run(stop.get_token())); });
  ASSERT_TRUE(WaitFor([&] { return Waiting() == 1; }));  // 1 being sent, 9 buffered
  ASSERT_EQ(regular_->counts().received, 10);
  std::this_thread::sleep_for(2800ms);  // the first 2 s timeout has passed
  ReceiveMessageRequest peek;
  peek.max_number_of_messages = 10;
  auto other = queues_.regular->ReceiveMessage(peek);
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->empty()) << other->size() << " received messages became visible";
  // All ten were received together, so they fall due together: one batch
  // of 10 per extension, none one by one.
  auto counts = regular_->counts();
  EXPECT_EQ(counts.changes, 0) << "extensions were sent one by one";
  EXPECT_GE(counts.change_batches, 1);
  EXPECT_EQ(counts.change_batch_timeouts.size(), 10u * counts.change_batches);
  for (int t : counts.change_batch_timeouts) EXPECT_EQ(t, 2);

  stop.request_stop();
  shared_->Permit(-1);
  run.join();
  EXPECT_EQ(Sent(), 1u);
  EXPECT_EQ(InFlight(*queues_.regular), 0);
  EXPECT_EQ(Depth(*queues_.regular), 9);
}

}  // namespace
}  // namespace postline
