#include "rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>

namespace postline::worker_internal {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

// Time moves only when the test says so: no sleeps.
class ManualClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::nanoseconds(ns_.load()));
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns_.load()));
  }
  void Advance(nanoseconds by) { ns_ += by.count(); }

 private:
  std::atomic<std::int64_t> ns_{1'000'000'000'000};
};

SendResult Reply(SendOutcome outcome, int code, std::string text) {
  return SendResult{outcome, code, std::move(text), "", {}};
}

class RateLimiterTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();

  // Takes permits on `lane` for `span` of simulated time, moving the clock by
  // each wait the limiter asks for; returns how many were granted.
  int Drain(RateLimiter& limiter, Lane lane, nanoseconds span) {
    int granted = 0;
    nanoseconds elapsed{0};
    while (elapsed < span) {
      nanoseconds wait = limiter.TryAcquire(lane);
      if (wait.count() == 0) {
        ++granted;
        continue;
      }
      clock_->Advance(wait);
      elapsed += wait;
    }
    return granted;
  }
};

TEST_F(RateLimiterTest, UnlimitedNeverWaits) {
  RateLimiter limiter({}, clock_);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
  EXPECT_EQ(limiter.current_rate(), 0);
}

TEST_F(RateLimiterTest, RegularLaneLeavesTheReserveToPriority) {
  RateLimiterSettings s;
  s.rate_per_second = 10;
  s.priority_reserve_percent = 20;
  RateLimiter limiter(s, clock_);
  // A full bucket: regular may take 8 of the 10 tokens at once ...
  int regular = 0;
  while (limiter.TryAcquire(Lane::kRegular).count() == 0) ++regular;
  EXPECT_EQ(regular, 8);
  // ... and the remaining 2 are the priority lane's.
  EXPECT_EQ(limiter.TryAcquire(Lane::kPriority).count(), 0);
  EXPECT_EQ(limiter.TryAcquire(Lane::kPriority).count(), 0);
  EXPECT_GT(limiter.TryAcquire(Lane::kPriority).count(), 0);
}

TEST_F(RateLimiterTest, SustainedRatesStayWithinTheirShares) {
  RateLimiterSettings s;
  s.rate_per_second = 10;
  s.priority_reserve_percent = 20;
  RateLimiter limiter(s, clock_);
  // 20 simulated seconds of regular mail alone: at most 8/s (plus the burst).
  const int regular = Drain(limiter, Lane::kRegular, 20s);
  EXPECT_LE(regular, 8 * 20 + 8);
  EXPECT_GE(regular, 8 * 20 - 1);
  // Meanwhile the priority share filled up: a password reset goes at once.
  EXPECT_EQ(limiter.TryAcquire(Lane::kPriority).count(), 0);
  // Priority alone may use the whole rate.
  const int priority = Drain(limiter, Lane::kPriority, 10s);
  EXPECT_LE(priority, 10 * 10 + 10);
  EXPECT_GE(priority, 10 * 10 - 1);
}

TEST_F(RateLimiterTest, ThrottlingHalvesTheRateOncePerCooldownThenRecoversAdditively) {
  RateLimiterSettings s;
  s.rate_per_second = 10;
  RateLimiter limiter(s, clock_);
  const auto throttled = Reply(SendOutcome::kTransient, 454, "454 4.7.0 rate limit exceeded");
  limiter.OnResult(throttled);
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 5);
  // More 454s from sends that were already in flight: no further cut yet.
  limiter.OnResult(throttled);
  limiter.OnResult(throttled);
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 5);
  clock_->Advance(1s);
  limiter.OnResult(throttled);
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 2.5);
  // Additive increase: 5 % of the rate before the cut (5/s) per second,
  // i.e. +0.25/s each second, up to the ceiling.
  clock_->Advance(1s);  // cooldown
  (void)limiter.TryAcquire(Lane::kPriority);
  const double before = limiter.current_rate();
  clock_->Advance(4s);
  (void)limiter.TryAcquire(Lane::kPriority);
  EXPECT_NEAR(limiter.current_rate() - before, 4 * 0.25, 1e-6);
  clock_->Advance(600s);
  (void)limiter.TryAcquire(Lane::kPriority);
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 10);
}

TEST_F(RateLimiterTest, ThrottlingWhenUnlimitedStartsFromTheObservedRate) {
  RateLimiter limiter({}, clock_);
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
    clock_->Advance(20ms);
  }
  limiter.OnResult(Reply(SendOutcome::kTransient, 421, "421 4.7.0 Try again later"));
  // 40 grants within the last second, halved.
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 20);
  EXPECT_GT(limiter.TryAcquire(Lane::kRegular).count(), 0);  // bucket starts empty
}

TEST_F(RateLimiterTest, SentAndOrdinaryFailuresLeaveTheRateAlone) {
  RateLimiterSettings s;
  s.rate_per_second = 10;
  RateLimiter limiter(s, clock_);
  limiter.OnResult(Reply(SendOutcome::kSent, 250, "250 ok"));
  limiter.OnResult(Reply(SendOutcome::kTransient, 451, "451 4.3.0 temporary failure"));
  limiter.OnResult(Reply(SendOutcome::kPermanent, 550, "550 5.1.1 no such user"));
  EXPECT_DOUBLE_EQ(limiter.current_rate(), 10);
}

TEST_F(RateLimiterTest, BreakerOpensAfterConnectionFailuresAndProbesWithBackoff) {
  RateLimiter limiter({}, clock_);
  const auto refused = Reply(SendOutcome::kTransient, 0, "Couldn't connect to server");
  limiter.OnResult(refused);
  limiter.OnResult(refused);
  EXPECT_FALSE(limiter.breaker_open());
  limiter.OnResult(refused);
  ASSERT_TRUE(limiter.breaker_open());
  EXPECT_EQ(limiter.TryAcquire(Lane::kPriority), nanoseconds(1s));
  clock_->Advance(1s);
  // One probe; everyone else waits for its outcome.
  EXPECT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
  EXPECT_GT(limiter.TryAcquire(Lane::kPriority).count(), 0);
  limiter.OnResult(refused);  // the probe failed: open twice as long
  EXPECT_EQ(limiter.TryAcquire(Lane::kRegular), nanoseconds(2s));
  // Doubling stops at breaker_max_open (30 s).
  for (int i = 0; i < 10; ++i) {
    clock_->Advance(limiter.TryAcquire(Lane::kRegular));
    ASSERT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
    limiter.OnResult(refused);
  }
  EXPECT_EQ(limiter.TryAcquire(Lane::kRegular), nanoseconds(30s));
  clock_->Advance(30s);
  ASSERT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
  limiter.OnResult(Reply(SendOutcome::kSent, 250, "250 ok"));  // server is back
  EXPECT_FALSE(limiter.breaker_open());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
}

TEST_F(RateLimiterTest, UnusedProbeFreesTheSlot) {
  RateLimiter limiter({}, clock_);
  const auto refused = Reply(SendOutcome::kTransient, 0, "Connection refused");
  for (int i = 0; i < 3; ++i) limiter.OnResult(refused);
  clock_->Advance(1s);
  ASSERT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
  EXPECT_GT(limiter.TryAcquire(Lane::kRegular).count(), 0);
  limiter.Unused();
  EXPECT_EQ(limiter.TryAcquire(Lane::kRegular).count(), 0);
}

TEST_F(RateLimiterTest, AcquireReturnsFalseWhenStopped) {
  RateLimiterSettings s;
  s.rate_per_second = 0.001;  // one token, then a very long wait
  RateLimiter limiter(s, clock_);
  std::stop_source stop;
  ASSERT_TRUE(limiter.Acquire(Lane::kPriority, stop.get_token()));
  stop.request_stop();
  EXPECT_FALSE(limiter.Acquire(Lane::kPriority, stop.get_token()));
}

TEST(ThrottlingReplyTest, RecognisesSlowDownReplies) {
  EXPECT_TRUE(IsThrottlingReply(454, "454 4.7.0 rate limit exceeded"));
  EXPECT_TRUE(IsThrottlingReply(421, "421 4.7.0 Try again later, closing connection."));
  EXPECT_TRUE(IsThrottlingReply(450, "450 4.7.28 Gmail has detected an unusual rate"));
  EXPECT_TRUE(IsThrottlingReply(451, "451 Too many messages, slow down"));
  EXPECT_TRUE(IsThrottlingReply(450, "450 Throttling failure: Maximum sending rate exceeded."));
  EXPECT_FALSE(IsThrottlingReply(451, "451 4.3.0 temporary failure"));
  EXPECT_FALSE(IsThrottlingReply(421, "421 4.3.2 service shutting down"));
  EXPECT_FALSE(IsThrottlingReply(554, "554 5.7.1 rate limit: rejected"));  // permanent
  EXPECT_FALSE(IsThrottlingReply(0, "Couldn't connect to server"));
}

TEST(ConnectionFailureTest, OnlyTransientFailuresWithoutAReply) {
  EXPECT_TRUE(IsConnectionFailure({SendOutcome::kTransient, 0, "Connection refused", "", {}}));
  EXPECT_FALSE(IsConnectionFailure({SendOutcome::kTransient, 451, "451 busy", "", {}}));
  EXPECT_FALSE(IsConnectionFailure({SendOutcome::kPermanent, 0, "bad URL", "", {}}));
}

}  // namespace
}  // namespace postline::worker_internal
