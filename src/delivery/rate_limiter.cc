#include "rate_limiter.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

namespace postline::worker_internal {
namespace {

using std::chrono::duration;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::steady_clock;

nanoseconds SecondsToWait(double seconds) {
  // At least 1 ms, so a caller never spins.
  return std::max<nanoseconds>(milliseconds(1),
                               duration_cast<nanoseconds>(duration<double>(seconds)));
}

double Seconds(steady_clock::duration d) { return duration<double>(d).count(); }

}  // namespace

bool IsThrottlingReply(int reply_code, std::string_view reply) {
  if (reply_code < 400 || reply_code >= 500) return false;
  if (reply_code == 454) return true;
  std::string lower(reply);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // Enhanced status code (RFC 3463) after the reply code: "4.7.x" is policy.
  std::string_view rest(lower);
  if (rest.size() > 4 && std::isdigit(static_cast<unsigned char>(rest[0]))) rest.remove_prefix(4);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.starts_with("4.7.")) return true;
  for (std::string_view word : {"rate limit", "rate-limit", "ratelimit", "rate exceeded", "throttl",
                                "too many", "slow down"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

bool IsConnectionFailure(const SendResult& result) {
  return result.outcome == SendOutcome::kTransient && result.reply_code == 0;
}

RateLimiter::RateLimiter(RateLimiterSettings settings, std::shared_ptr<Clock> clock,
                         std::optional<Log> log)
    : settings_(settings), clock_(std::move(clock)), log_(std::move(log)) {
  rate_ = std::max(0.0, settings_.rate_per_second);
  const auto now = clock_->SteadyNow();
  total_ = {std::max(1.0, rate_), now};
  regular_ = {std::max(1.0, RegularRateLocked()), now};
}

double RateLimiter::RegularRateLocked() const {
  const int reserve = std::clamp(settings_.priority_reserve_percent, 0, 100);
  return rate_ * (100 - reserve) / 100.0;
}

void RateLimiter::RefillLocked(steady_clock::time_point now) {
  if (rate_ <= 0) return;
  // Additive increase back towards the ceiling (or without bound when the
  // ceiling is "unlimited"), once the last decrease is a cooldown old.
  const double ceiling = settings_.rate_per_second;
  const auto increase_from =
      std::max(total_.refilled, last_decrease_ + settings_.decrease_cooldown);
  if (rate_before_decrease_ > 0 && (ceiling <= 0 || rate_ < ceiling) && now > increase_from) {
    const double step = std::max(settings_.min_increase_per_second,
                                 settings_.increase_fraction * rate_before_decrease_);
    rate_ += step * Seconds(now - increase_from);
    if (ceiling > 0 && rate_ >= ceiling) {
      rate_ = ceiling;
      if (log_) log_->Info("rate_restored", {{"rate_per_s", rate_}});
    } else if (log_ && now - last_increase_log_ >= std::chrono::seconds(5)) {
      last_increase_log_ = now;
      log_->Info("rate_increased", {{"rate_per_s", std::round(rate_ * 100) / 100}});
    }
  }
  for (auto [bucket, rate] :
       {std::pair{&total_, rate_}, std::pair{&regular_, RegularRateLocked()}}) {
    if (now > bucket->refilled) {
      bucket->tokens =
          std::min(std::max(1.0, rate), bucket->tokens + rate * Seconds(now - bucket->refilled));
    }
    bucket->refilled = now;
  }
}

nanoseconds RateLimiter::TryAcquire(Lane lane) {
  std::lock_guard lock(mu_);
  const auto now = clock_->SteadyNow();
  if (open_) {
    if (now < open_until_) return duration_cast<nanoseconds>(open_until_ - now);
    // Half-open: one probe at a time. A probe that never reported (its sender
    // stopped) is replaced after a while.
    if (probe_in_flight_ && now - probe_started_ < settings_.breaker_max_open * 4) {
      return milliseconds(100);
    }
    probe_in_flight_ = true;
    probe_started_ = now;
    recent_grants_.push_back(now);
    return nanoseconds(0);
  }
  while (!recent_grants_.empty() && now - recent_grants_.front() > std::chrono::seconds(1)) {
    recent_grants_.pop_front();
  }
  if (rate_ > 0) {
    RefillLocked(now);
    if (lane == Lane::kPriority) {
      if (total_.tokens < 1) return SecondsToWait((1 - total_.tokens) / rate_);
      total_.tokens -= 1;
    } else {
      const double regular_rate = RegularRateLocked();
      if (regular_rate <= 0) return std::chrono::seconds(1);
      if (total_.tokens < 1 || regular_.tokens < 1) {
        return SecondsToWait(
            std::max((1 - total_.tokens) / rate_, (1 - regular_.tokens) / regular_rate));
      }
      total_.tokens -= 1;
      regular_.tokens -= 1;
    }
  }
  recent_grants_.push_back(now);
  return nanoseconds(0);
}

bool RateLimiter::Acquire(Lane lane, const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    const nanoseconds wait = TryAcquire(lane);
    if (wait.count() == 0) return true;
    std::unique_lock lock(mu_);
    // Woken early by OnResult (rate change, breaker closed) or by stop.
    cv_.wait_for(lock, stop, std::min<nanoseconds>(wait, std::chrono::seconds(1)),
                 [] { return false; });
  }
  return false;
}

void RateLimiter::SetRateLocked(double rate, std::string_view why, std::string_view reply) {
  rate_ = rate;
  total_.tokens = std::min(total_.tokens, std::max(1.0, rate_));
  regular_.tokens = std::min(regular_.tokens, std::max(1.0, RegularRateLocked()));
  if (log_) {
    log_->Warn("rate_decreased",
               {{"rate_per_s", std::round(rate_ * 100) / 100}, {"reason", why}, {"reply", reply}});
  }
}

void RateLimiter::OnResult(const SendResult& result) {
  {
    std::lock_guard lock(mu_);
    const auto now = clock_->SteadyNow();
    while (!recent_grants_.empty() && now - recent_grants_.front() > std::chrono::seconds(1)) {
      recent_grants_.pop_front();
    }
    if (IsConnectionFailure(result)) {
      if (probe_in_flight_) {
        probe_in_flight_ = false;
        open_interval_ = std::min(settings_.breaker_max_open, open_interval_ * 2);
        open_until_ = now + open_interval_;
        if (log_) {
          log_->Warn("circuit_open",
                     {{"open_s", open_interval_.count() / 1000.0}, {"reply", result.reply}});
        }
      } else if (++consecutive_failures_ >= settings_.breaker_threshold && !open_) {
        open_ = true;
        open_interval_ = settings_.breaker_min_open;
        open_until_ = now + open_interval_;
        if (log_) {
          log_->Warn("circuit_open", {{"open_s", open_interval_.count() / 1000.0},
                                      {"consecutive_failures", consecutive_failures_},
                                      {"reply", result.reply}});
        }
      }
    } else {
      consecutive_failures_ = 0;
      if (open_) {
        open_ = false;
        probe_in_flight_ = false;
        open_interval_ = milliseconds(0);
        if (log_) log_->Info("circuit_closed", {{"reply_code", result.reply_code}});
      }
      if (result.outcome != SendOutcome::kSent &&
          IsThrottlingReply(result.reply_code, result.reply) &&
          (last_decrease_ == steady_clock::time_point{} ||
           now - last_decrease_ >= settings_.decrease_cooldown)) {
        RefillLocked(now);
        // Unlimited so far: start from the rate observed over the last second.
        const double base =
            rate_ > 0 ? rate_ : std::max(1.0, static_cast<double>(recent_grants_.size()));
        rate_before_decrease_ = base;
        last_decrease_ = now;
        if (rate_ <= 0) {
          total_ = {0, now};
          regular_ = {0, now};
        }
        SetRateLocked(std::max(settings_.min_rate_per_second, base * settings_.decrease_factor),
                      "throttled", result.reply);
      }
    }
  }
  cv_.notify_all();
}

void RateLimiter::Unused() {
  {
    std::lock_guard lock(mu_);
    probe_in_flight_ = false;
  }
  cv_.notify_all();
}

double RateLimiter::current_rate() const {
  std::lock_guard lock(mu_);
  return rate_;
}

bool RateLimiter::breaker_open() const {
  std::lock_guard lock(mu_);
  return open_;
}

}  // namespace postline::worker_internal
