#include "postline/service.h"

#include <gtest/gtest.h>

#include <array>
#include <mutex>

namespace postline {
namespace {

class RecordingObserver final : public StatusObserver {
 public:
  void OnStatus(const StatusEvent& e) override {
    std::lock_guard lock(mu);
    events.push_back({e.envelope_id, std::string(StatusStateName(e.state)), e.queue});
  }
  std::mutex mu;
  std::vector<std::array<std::string, 3>> events;
};

Email Mail(int priority) {
  Email e;
  e.from = {"Billing", "billing@example.com"};
  e.to = {{"", "alice@example.com"}};
  e.subject = "Hello";
  e.text = "hi";
  e.priority = priority;
  return e;
}

std::int64_t Available(Queue& q) { return q.GetQueueAttributes()->approximate_number_of_messages; }

class ProducerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = NewMemoryQueueService();
    auto pair = EnsureGuideQueues(*service_, GuideQueueAttributes(), 5);
    ASSERT_TRUE(pair);
    queues_ = *pair;
  }
  std::shared_ptr<QueueService> service_;
  QueuePair queues_;
};

TEST_F(ProducerTest, RoutesByPriorityAndAssignsIds) {
  RecordingObserver observer;
  auto reset = EnqueueEmail(queues_, Mail(1), *SystemClock(), &observer);
  auto invoice = EnqueueEmail(queues_, Mail(5), *SystemClock(), &observer);
  ASSERT_TRUE(reset && invoice);
  EXPECT_EQ(reset->queue, "priority-emails-queue");
  EXPECT_EQ(invoice->queue, "invoice-generation-queue");
  EXPECT_EQ(reset->id.size(), 26u);
  EXPECT_NE(reset->id, invoice->id);
  EXPECT_EQ(Available(*queues_.priority), 1);
  EXPECT_EQ(Available(*queues_.regular), 1);
  ASSERT_EQ(observer.events.size(), 2u);
  EXPECT_EQ(observer.events[0][0], reset->id);
  EXPECT_EQ(observer.events[0][1], "queued");
  // The queued body is the envelope, decodable as JSON v1 with the same id.
  ReceiveMessageRequest req;
  auto got = queues_.priority->ReceiveMessage(req);
  ASSERT_TRUE(got && got->size() == 1);
  auto decoded = ParseEmailJson(got->front().body);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->id, reset->id);
  EXPECT_EQ(got->front().attributes.at("postline-envelope-id").value, reset->id);
}

TEST_F(ProducerTest, InvalidEmailQueuesNothing) {
  Email bad = Mail(5);
  bad.subject = "Invoice 42\r\nBcc: eve@example.net";
  auto r = EnqueueEmail(queues_, bad, *SystemClock());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "header_injection");
  EXPECT_EQ(Available(*queues_.regular), 0);
}

TEST_F(ProducerTest, BatchIsAllOrNothingOnValidationAndKeepsOrder) {
  std::vector<Email> emails;
  for (int i = 0; i < 25; ++i) emails.push_back(Mail(i % 5 == 0 ? 2 : 5));
  emails[17].priority = 0;
  auto refused = EnqueueEmails(queues_, emails, *SystemClock());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("[17]"), std::string::npos);
  EXPECT_EQ(Available(*queues_.regular) + Available(*queues_.priority), 0);

  emails[17].priority = 7;
  emails[3].id = "01JORDERTEST00000000000003";
  auto queued = EnqueueEmails(queues_, emails, *SystemClock());
  ASSERT_TRUE(queued);
  ASSERT_EQ(queued->size(), 25u);
  EXPECT_EQ((*queued)[3]->id, "01JORDERTEST00000000000003");
  for (std::size_t i = 0; i < queued->size(); ++i) {
    ASSERT_TRUE((*queued)[i]) << i;
    EXPECT_EQ((*queued)[i]->queue, i % 5 == 0 ? "priority-emails-queue" : "invoice-generation-queue");
  }
  EXPECT_EQ(Available(*queues_.priority), 5);
  EXPECT_EQ(Available(*queues_.regular), 20);
}

}  // namespace
}  // namespace postline
