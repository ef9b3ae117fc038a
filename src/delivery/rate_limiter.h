// The worker's send gate: a token bucket per transport with a share reserved
// for the priority lane, AIMD on throttling replies, and a circuit breaker on
// connection failures. docs/delivery.md, "Rate limiting" and "Outages".
//
// Thread-safety: every member function may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string_view>

#include "postline/clock.h"
#include "postline/log.h"
#include "postline/transport.h"

namespace postline::worker_internal {

enum class Lane { kPriority, kRegular };

struct RateLimiterSettings {
  // Ceiling in messages per second; 0 means unlimited (AIMD still applies
  // once the server throttles: the rate starts from what was observed).
  double rate_per_second = 0;
  // Percent of the rate the regular lane may not use (0–90): the regular
  // lane is held to rate · (100 − reserve) / 100, the priority lane may use
  // the whole rate.
  int priority_reserve_percent = 20;
  // AIMD: on a throttling reply the rate is multiplied by this (at most once
  // per decrease_cooldown) ...
  double decrease_factor = 0.5;
  std::chrono::milliseconds decrease_cooldown{1000};
  // ... and grows back by this fraction of the rate before the last decrease,
  // per second without throttling (at least min_increase_per_second).
  double increase_fraction = 0.05;
  double min_increase_per_second = 0.1;
  double min_rate_per_second = 0.1;
  // Circuit breaker: after this many consecutive connection failures (no
  // reply from the server at all), sending stops for an interval that starts
  // at breaker_min_open and doubles after each failed probe up to
  // breaker_max_open. After the interval one probe send is let through.
  int breaker_threshold = 3;
  std::chrono::milliseconds breaker_min_open{1000};
  std::chrono::milliseconds breaker_max_open{30000};
};

// True for replies that ask the client to slow down: 454 (as sent by rate
// limiting relays and by SES-style gateways), any 4yz with enhanced status
// 4.7.x (policy, e.g. "421 4.7.0 Try again later"), and 4yz replies whose text
// says "rate", "throttl" or "too many".
bool IsThrottlingReply(int reply_code, std::string_view reply);

// True for a transient failure in which the server said nothing: connection
// refused or reset, DNS failure, timeout, TLS handshake failure.
bool IsConnectionFailure(const SendResult& result);

class RateLimiter {
 public:
  RateLimiter(RateLimiterSettings settings, std::shared_ptr<Clock> clock,
              std::optional<Log> log = std::nullopt);

  // Takes a permit for one send on `lane` now and returns 0, or returns how
  // long to wait before asking again (never 0 then). Uses clock->SteadyNow().
  std::chrono::nanoseconds TryAcquire(Lane lane);

  // Blocks until a permit is taken (true) or `stop` is requested (false).
  bool Acquire(Lane lane, const std::stop_token& stop);

  // Feedback after each send that took a permit.
  void OnResult(const SendResult& result);
  // A permit was taken but nothing was sent (the message was lost to another
  // receiver): frees a half-open probe slot.
  void Unused();

  // Current rate in messages per second; 0 when unlimited.
  double current_rate() const;
  bool breaker_open() const;

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled;
  };
  void RefillLocked(std::chrono::steady_clock::time_point now);
  double RegularRateLocked() const;
  void SetRateLocked(double rate, std::string_view why, std::string_view reply);

  const RateLimiterSettings settings_;
  std::shared_ptr<Clock> clock_;
  std::optional<Log> log_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  double rate_ = 0;  // 0: unlimited
  double rate_before_decrease_ = 0;
  Bucket total_;
  Bucket regular_;
  std::chrono::steady_clock::time_point last_decrease_{};
  std::chrono::steady_clock::time_point last_increase_log_{};
  std::deque<std::chrono::steady_clock::time_point> recent_grants_;  // last second
  // Breaker.
  int consecutive_failures_ = 0;
  bool open_ = false;
  bool probe_in_flight_ = false;
  std::chrono::steady_clock::time_point open_until_{};
  std::chrono::steady_clock::time_point probe_started_{};
  std::chrono::milliseconds open_interval_{0};
};

}  // namespace postline::worker_internal
