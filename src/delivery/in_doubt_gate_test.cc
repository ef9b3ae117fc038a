#include "in_doubt_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace postline::worker_internal {
namespace {

using namespace std::chrono_literals;

// Waits (bounded) until `pred` holds; the gate's waiters have no other signal.
template <typename Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 2000 && !pred(); ++i) std::this_thread::sleep_for(1ms);
  return pred();
}

TEST(InDoubtGate, NeverMoreInDoubtThanCapacity) {
  InDoubtGate gate(2);
  std::atomic<int> now{0};
  std::atomic<int> most{0};
  std::vector<std::jthread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(gate.Acquire(t % 2 ? Lane::kPriority : Lane::kRegular));
        const int n = ++now;
        int seen = most.load();
        while (n > seen && !most.compare_exchange_weak(seen, n)) {
        }
        --now;
        gate.Release();
      }
    });
  }
  threads.clear();
  EXPECT_LE(most.load(), 2);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(gate.in_doubt(), 0);
}

TEST(InDoubtGate, PriorityWaiterGoesBeforeRegularWaiters) {
  InDoubtGate gate(1);
  ASSERT_TRUE(gate.Acquire(Lane::kRegular));
  std::atomic<int> order{0};
  std::atomic<int> regular_at{-1};
  std::atomic<int> priority_at{-1};
  std::jthread regular([&] {
    ASSERT_TRUE(gate.Acquire(Lane::kRegular));
    regular_at = order++;
    gate.Release();
  });
  ASSERT_TRUE(Eventually([&] { return gate.waiting() == 1; }));  // the regular one waits first
  std::jthread priority([&] {
    ASSERT_TRUE(gate.Acquire(Lane::kPriority));
    priority_at = order++;
    gate.Release();
  });
  ASSERT_TRUE(Eventually([&] { return gate.waiting() == 2; }));
  gate.Release();
  regular.join();
  priority.join();
  EXPECT_EQ(priority_at.load(), 0);
  EXPECT_EQ(regular_at.load(), 1);
}

TEST(InDoubtGate, StopEndsTheWaitWithoutTakingAPlace) {
  InDoubtGate gate(1);
  ASSERT_TRUE(gate.Acquire(Lane::kRegular));
  std::stop_source stop;
  std::atomic<int> result{-1};
  std::jthread waiter([&] { result = gate.Acquire(Lane::kPriority, stop.get_token()) ? 1 : 0; });
  ASSERT_TRUE(Eventually([&] { return gate.waiting() == 1; }));
  EXPECT_EQ(result.load(), -1);
  stop.request_stop();
  waiter.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_EQ(gate.in_doubt(), 1);
  gate.Release();
  EXPECT_EQ(gate.in_doubt(), 0);
}

TEST(InDoubtPlace, TakesOnceAndReleasesOnScopeExit) {
  InDoubtGate gate(1);
  {
    InDoubtPlace place(&gate, Lane::kRegular);
    place.Take();
    place.Take();  // a second before_commit (a retried connection) holds one place
    EXPECT_EQ(gate.in_doubt(), 1);
  }
  EXPECT_EQ(gate.in_doubt(), 0);
  InDoubtPlace unused(&gate, Lane::kRegular);  // never taken: nothing to give back
}

}  // namespace
}  // namespace postline::worker_internal
