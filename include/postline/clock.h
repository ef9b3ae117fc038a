// postline/clock.h — the injected source of time.
//
// Nothing in postline calls std::chrono::system_clock::now() directly; time is
// read through a Clock passed to constructors, so tests can move it.
//
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <chrono>
#include <memory>

namespace postline {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC), used for timestamps stored in queues and logs.
  virtual std::chrono::system_clock::time_point Now() const = 0;
  // Monotonic time, used for timeouts and rate limiting.
  virtual std::chrono::steady_clock::time_point SteadyNow() const = 0;
};

// The production clock: std::chrono::system_clock and steady_clock.
// Returns a process-wide instance that lives until exit; never null.
std::shared_ptr<Clock> SystemClock();

// Milliseconds since the Unix epoch of a system_clock time point.
inline long long ToUnixMillis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace postline
