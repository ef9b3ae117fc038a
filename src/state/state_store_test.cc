#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "postline/state.h"

namespace postline {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using std::chrono::system_clock;

class ManualClock final : public Clock {
 public:
  system_clock::time_point Now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::time_point(Now().time_since_epoch());
  }
  void Advance(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  system_clock::time_point now_ = system_clock::time_point(seconds(1'800'000'000));
};

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("postline-status-{}-{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    clock_ = std::make_shared<ManualClock>();
    auto store = OpenSqliteStateStore((dir_ / "state.db").string(), clock_);
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = *store;
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  StatusEvent Event(StatusEvent::State state, std::string id, int attempts = 0,
                    std::string detail = "") {
    StatusEvent ev;
    ev.state = state;
    ev.envelope_id = std::move(id);
    ev.queue = "invoice-generation-queue";
    ev.attempts = attempts;
    ev.detail = std::move(detail);
    return ev;
  }

  fs::path dir_;
  std::shared_ptr<ManualClock> clock_;
  std::shared_ptr<StateStore> store_;
};

TEST_F(StateStoreTest, UnknownIdIsEmpty) {
  auto got = store_->GetStatus("01NOPE");
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
}

TEST_F(StateStoreTest, FollowsTheLifecycleAndKeepsTimestamps) {
  Email email;
  email.to = {{"", "a@example.com"}};
  email.cc = {{"Bee", "b@example.com"}};
  email.subject = "Invoice 42";
  email.idempotency_key = "inv-42";
  auto queued = Event(StatusEvent::State::kQueued, "01A");
  queued.email = &email;
  store_->OnStatus(queued);
  const auto created = clock_->Now();

  clock_->Advance(std::chrono::milliseconds(1500));
  store_->OnStatus(Event(StatusEvent::State::kSending, "01A", 1));
  clock_->Advance(std::chrono::milliseconds(500));
  auto retry = Event(StatusEvent::State::kRetrying, "01A", 1, "451 try later");
  retry.reply_code = 451;
  store_->OnStatus(retry);

  auto got = store_->GetStatus("01A");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "retrying");
  EXPECT_EQ((*got)->attempts, 1);
  EXPECT_EQ((*got)->reply_code, 451);
  EXPECT_EQ((*got)->last_error, "451 try later");
  EXPECT_EQ((*got)->recipients, (std::vector<std::string>{"a@example.com", "b@example.com"}));
  EXPECT_EQ((*got)->subject, "Invoice 42");
  EXPECT_EQ((*got)->idempotency_key, "inv-42");
  EXPECT_EQ(ToUnixMillis((*got)->created_at), ToUnixMillis(created));
  EXPECT_EQ(ToUnixMillis((*got)->updated_at), ToUnixMillis(created) + 2000);
  EXPECT_FALSE((*got)->sent_at.has_value());

  clock_->Advance(std::chrono::milliseconds(1000));
  auto sent = Event(StatusEvent::State::kSent, "01A", 2, "250 2.0.0 Ok: queued as ABC");
  sent.reply_code = 250;
  sent.provider_message_id = "ABC";
  store_->OnStatus(sent);
  got = store_->GetStatus("01A");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "sent");
  EXPECT_EQ((*got)->attempts, 2);
  EXPECT_EQ((*got)->provider_message_id, "ABC");
  EXPECT_EQ((*got)->reply, "250 2.0.0 Ok: queued as ABC");
  EXPECT_EQ((*got)->last_error, "451 try later");  // the last error stays visible
  ASSERT_TRUE((*got)->sent_at.has_value());
  EXPECT_EQ(ToUnixMillis(*(*got)->sent_at), ToUnixMillis(created) + 3000);
  // Recipients survive events that carry no e-mail.
  EXPECT_EQ((*got)->recipients.size(), 2u);
}

TEST_F(StateStoreTest, SentIsFinal) {
  store_->OnStatus(Event(StatusEvent::State::kSent, "01B", 1, "250 ok"));
  store_->OnStatus(Event(StatusEvent::State::kRetrying, "01B", 1, "late"));
  auto got = store_->GetStatus("01B");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "sent");
}

TEST_F(StateStoreTest, DeadCanBeQueuedAgainAfterARedrive) {
  store_->OnStatus(Event(StatusEvent::State::kDead, "01C", 3, "permanent: 550 no such user"));
  store_->OnStatus(Event(StatusEvent::State::kQueued, "01C"));
  auto got = store_->GetStatus("01C");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "queued");
  EXPECT_EQ((*got)->attempts, 3);  // never lowered
  EXPECT_EQ((*got)->last_error, "permanent: 550 no such user");
}

TEST_F(StateStoreTest, ListsByStateNewestFirst) {
  store_->OnStatus(Event(StatusEvent::State::kDead, "01D1", 1, "x"));
  clock_->Advance(seconds(1));
  store_->OnStatus(Event(StatusEvent::State::kDead, "01D2", 1, "y"));
  store_->OnStatus(Event(StatusEvent::State::kQueued, "01D3"));
  auto dead = store_->ListStatus("dead", 10);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 2u);
  EXPECT_EQ((*dead)[0].id, "01D2");
  EXPECT_EQ((*dead)[1].id, "01D1");
  auto one = store_->ListStatus("dead", 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
  auto bad = store_->ListStatus("dead", 0);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "invalid_limit");
}

TEST_F(StateStoreTest, IdempotencyKeyIsClaimedOnce) {
  auto first = store_->ClaimIdempotencyKey("order-7", "01E1");
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->existed);
  EXPECT_EQ(first->envelope_id, "01E1");
  ASSERT_TRUE(store_->SetIdempotencyQueue("order-7", "priority-emails-queue"));
  auto second = store_->ClaimIdempotencyKey("order-7", "01E2");
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->existed);
  EXPECT_EQ(second->envelope_id, "01E1");
  EXPECT_EQ(second->queue, "priority-emails-queue");
  // Releasing with the wrong id keeps the claim; with the right one frees it.
  ASSERT_TRUE(store_->ReleaseIdempotencyKey("order-7", "01E2"));
  EXPECT_TRUE(store_->ClaimIdempotencyKey("order-7", "01E3")->existed);
  ASSERT_TRUE(store_->ReleaseIdempotencyKey("order-7", "01E1"));
  auto third = store_->ClaimIdempotencyKey("order-7", "01E3");
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->existed);
  EXPECT_EQ(third->envelope_id, "01E3");

  auto empty = store_->ClaimIdempotencyKey("", "01E4");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, "invalid_idempotency_key");
  EXPECT_FALSE(store_->ClaimIdempotencyKey(std::string(129, 'k'), "01E4"));
}

TEST_F(StateStoreTest, ConcurrentClaimsOfOneKeyAgreeOnOneId) {
  // Two connections (as two processes would have) race for the same keys.
  auto other = OpenSqliteStateStore((dir_ / "state.db").string(), clock_);
  ASSERT_TRUE(other);
  std::mutex mu;
  std::map<std::string, std::set<std::string>> ids_by_key;
  std::atomic<int> new_claims{0};
  auto race = [&](StateStore& store, std::string prefix) {
    for (int i = 0; i < 50; ++i) {
      std::string key = fmt::format("k{}", i);
      auto claim = store.ClaimIdempotencyKey(key, prefix + std::to_string(i));
      ASSERT_TRUE(claim) << claim.error().ToString();
      if (!claim->existed) ++new_claims;
      std::lock_guard lock(mu);
      ids_by_key[key].insert(claim->envelope_id);
    }
  };
  std::thread a([&] { race(*store_, "A"); });
  std::thread b([&] { race(**other, "B"); });
  a.join();
  b.join();
  EXPECT_EQ(new_claims.load(), 50);
  for (const auto& [key, ids] : ids_by_key) EXPECT_EQ(ids.size(), 1u) << key;
}

TEST_F(StateStoreTest, PruneRemovesOldRecordsAndKeys) {
  store_->OnStatus(Event(StatusEvent::State::kSent, "01F1", 1, "250"));
  ASSERT_TRUE(store_->ClaimIdempotencyKey("old", "01F1"));
  clock_->Advance(std::chrono::hours(24 * 15));
  store_->OnStatus(Event(StatusEvent::State::kQueued, "01F2"));
  auto removed = store_->Prune(Retention{});
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->status_records, 1);
  EXPECT_FALSE(store_->GetStatus("01F1")->has_value());
  EXPECT_TRUE(store_->GetStatus("01F2")->has_value());
  EXPECT_FALSE(store_->ClaimIdempotencyKey("old", "01F3")->existed);
}

TEST_F(StateStoreTest, AFailedWriteIsReportedThroughTheHook) {
  std::vector<std::string> errors;
  const auto path = (dir_ / "hooked.db").string();
  auto store = OpenSqliteStateStore(path, clock_, [&](const StatusEvent& ev, const Error& e) {
    errors.push_back(ev.envelope_id + " " + e.code);
  });
  ASSERT_TRUE(store);
  // Another connection drops the table underneath the store.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "DROP TABLE email_status", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  (*store)->OnStatus(Event(StatusEvent::State::kQueued, "01G"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.front(), "01G ServiceUnavailable");
}

}  // namespace
}  // namespace postline
