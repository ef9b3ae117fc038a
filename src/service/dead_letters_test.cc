// DeadLetters: describing, selecting and redriving dead letters.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "postline/envelope.h"
#include "postline/queue.h"
#include "postline/service.h"
#include "testing/poison.h"

namespace postline {
namespace {

using testing_support::Nested;
using testing_support::PoisonBodies;

ReceivedMessage DeadMessage(std::string body, MessageAttributes attributes,
                            std::string source = {}) {
  ReceivedMessage m;
  m.message_id = "m-1";
  m.receipt_handle = "h-1";
  m.body = std::move(body);
  m.attributes = std::move(attributes);
  m.dead_letter_source_queue = std::move(source);
  return m;
}

TEST(DeadLetterTest, DescribesTheWorkersAttributesAndTheEnvelope) {
  auto m = DeadMessage(
      R"({"v":1,"id":"01JENV","from":"a@example.com","to":[{"name":"B","email":"b@example.com"}],)"
      R"("cc":"c@example.com","subject":"Invoice 7","text":"x"})",
      {{std::string(kAttrReason), {"String", "permanent"}},
       {std::string(kAttrReplyCode), {"Number", "550"}},
       {std::string(kAttrReply), {"String", "550 5.1.1 no such user"}},
       {std::string(kAttrSourceQueue), {"String", "priority-emails-queue"}},
       {std::string(kAttrEnvelopeId), {"String", "01JENV"}},
       {std::string(kAttrAttempts), {"Number", "3"}}});
  DeadLetterInfo d = DescribeDeadLetter(m);
  EXPECT_EQ(d.reason, "permanent");
  EXPECT_EQ(d.reply_code, 550);
  EXPECT_EQ(d.reply, "550 5.1.1 no such user");
  EXPECT_EQ(d.attempts, 3);
  EXPECT_EQ(d.source_queue, "priority-emails-queue");
  EXPECT_EQ(d.envelope_id, "01JENV");
  EXPECT_EQ(d.subject, "Invoice 7");
  EXPECT_EQ(d.recipients, (std::vector<std::string>{"b@example.com", "c@example.com"}));
}

TEST(DeadLetterTest, RedrivePolicyMovesAreMaxReceives) {
  auto m = DeadMessage(R"({"id":"01JX","to":"z@example.com","subject":"s"})", {},
                       "invoice-generation-queue");
  DeadLetterInfo d = DescribeDeadLetter(m);
  EXPECT_EQ(d.reason, "max_receives");
  EXPECT_EQ(d.source_queue, "invoice-generation-queue");
  EXPECT_EQ(d.envelope_id, "01JX");
  EXPECT_EQ(d.reply_code, 0);
}

TEST(DeadLetterTest, GarbageBodiesAreDescribedWithoutFailing) {
  auto m = DeadMessage("not json {", {{std::string(kAttrReason), {"String", "unparseable"}},
                                      {std::string(kAttrEnvelopeId), {"String", "-"}}});
  DeadLetterInfo d = DescribeDeadLetter(m);
  EXPECT_EQ(d.reason, "unparseable");
  EXPECT_EQ(d.envelope_id, "");
  EXPECT_TRUE(d.recipients.empty());
}

TEST(DeadLetterTest, PoisonBodiesAreDescribedWithoutFailing) {
  const std::string shallow_poison =
      R"({"id":"01JP","subject":"Invoice 9","to":"b@example.com","priority":1e400})";
  for (const auto& body : PoisonBodies()) {
    auto m = DeadMessage(body, {{std::string(kAttrReason), {"String", "unparseable"}},
                                {std::string(kAttrEnvelopeId), {"String", "-"}}});
    DeadLetterInfo d = DescribeDeadLetter(m);
    EXPECT_EQ(d.reason, "unparseable");
  }
  // The body is no envelope: nothing is read from it.
  DeadLetterInfo d = DescribeDeadLetter(DeadMessage(shallow_poison, {}));
  EXPECT_EQ(d.envelope_id, "");
  EXPECT_TRUE(d.recipients.empty());
}

TEST(DeadLetterTest, RedriveRequestDropsOnlyTheDeadLetterAttributes) {
  auto m = DeadMessage("{}", {{std::string(kAttrReason), {"String", "expired"}},
                              {std::string(kAttrReply), {"String", "x"}},
                              {std::string(kAttrSourceQueue), {"String", "q"}},
                              {std::string(kAttrAttempts), {"Number", "9"}},
                              {"trace-id", {"String", "abc"}}});
  SendMessageRequest r = RedriveRequest(m);
  EXPECT_EQ(r.body, "{}");
  EXPECT_EQ(r.delay_seconds, 0);
  ASSERT_EQ(r.attributes.size(), 1u);
  EXPECT_EQ(r.attributes.at("trace-id").value, "abc");
}

// One redrive for the CLI, the API and the dashboard: selection by reason,
// by message id and by count; unknown source queues are skipped; everything
// not moved is visible again at once; moves are reported as "queued".
TEST(DeadLetterTest, RedriveFromDeadLetterQueueMovesTheSelection) {
  auto service = NewMemoryQueueService();
  auto pair = EnsureGuideQueues(*service, GuideQueueAttributes(), 3);
  ASSERT_TRUE(pair) << pair.error().ToString();
  const auto dead = [&](std::string body, std::string reason, std::string source) {
    SendMessageRequest r;
    r.body = std::move(body);
    r.attributes[std::string(kAttrReason)] = {"String", std::move(reason)};
    r.attributes[std::string(kAttrSourceQueue)] = {"String", std::move(source)};
    r.attributes[std::string(kAttrEnvelopeId)] = {"String", r.body};
    auto sent = pair->regular_dlq->SendMessage(r);
    EXPECT_TRUE(sent);
    return sent ? sent->message_id : std::string();
  };
  const std::string regular = pair->regular->name();
  dead("e1", "permanent", regular);
  dead("e2", "expired", regular);
  const std::string e3 = dead("e3", "permanent", regular);
  dead("e4", "permanent", "someone-elses-queue");
  struct Recorder final : StatusObserver {
    std::vector<std::string> queued;
    void OnStatus(const StatusEvent& e) override {
      if (e.state == StatusEvent::State::kQueued) queued.push_back(e.envelope_id + "@" + e.queue);
    }
  } recorder;

  RedriveSelection by_id;
  by_id.message_ids = {e3};
  auto first = RedriveFromDeadLetterQueue(*pair, *pair->regular_dlq, by_id, &recorder);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->moved, 1);
  EXPECT_EQ(recorder.queued, std::vector<std::string>{"e3@" + regular});

  RedriveSelection permanent;
  permanent.reasons = {"permanent"};
  auto second = RedriveFromDeadLetterQueue(*pair, *pair->regular_dlq, permanent, &recorder);
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->moved, 1);  // e1; e4's source queue is not ours
  EXPECT_EQ(second->skipped, 1);
  ASSERT_EQ(second->errors.size(), 1u);
  EXPECT_NE(second->errors[0].find("someone-elses-queue"), std::string::npos);

  // What was not moved is visible again at once: e2 (expired) and e4.
  auto left = ReceiveAllVisible(*pair->regular_dlq, 30);
  ASSERT_TRUE(left);
  std::set<std::string> bodies;
  for (const auto& m : *left) bodies.insert(m.body);
  EXPECT_EQ(bodies, (std::set<std::string>{"e2", "e4"}));
  ReleaseAll(*pair->regular_dlq, *left);

  // At most `max`: e2 and e5 qualify, one moves.
  dead("e5", "expired", regular);
  RedriveSelection one;
  one.reasons = {"expired"};
  one.max = 1;
  auto third = RedriveFromDeadLetterQueue(*pair, *pair->regular_dlq, one, nullptr);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->moved, 1);
  EXPECT_EQ(third->skipped, 0);

  auto back = ReceiveAllVisible(*pair->regular, 30);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->size(), 3u);  // e3, e1 and one of e2/e5
  for (const auto& m : *back) EXPECT_FALSE(m.attributes.contains(std::string(kAttrReason)));
}

TEST(DeadLetterTest, FilterParsing) {
  auto all = ParseDeadLetterFilter("");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 4u);
  auto two = ParseDeadLetterFilter("reason=permanent,max_receives");
  ASSERT_TRUE(two);
  EXPECT_EQ(*two, (std::vector<std::string>{"permanent", "max_receives"}));
  auto repeated = ParseDeadLetterFilter("reason=expired,reason=unparseable");
  ASSERT_TRUE(repeated);
  EXPECT_EQ(repeated->size(), 2u);
  auto unknown = ParseDeadLetterFilter("reason=bounced");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().field, "--filter");
  EXPECT_NE(unknown.error().message.find("max_receives"), std::string::npos);
  EXPECT_FALSE(ParseDeadLetterFilter("status=permanent"));
}

}  // namespace
}  // namespace postline
