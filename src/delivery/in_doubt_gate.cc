#include "in_doubt_gate.h"

#include <algorithm>

namespace postline::worker_internal {

InDoubtGate::InDoubtGate(int capacity) : capacity_(std::max(1, capacity)) {}

bool InDoubtGate::Acquire(Lane lane, std::stop_token stop) {
  std::unique_lock lock(mu_);
  const bool priority = lane == Lane::kPriority;
  if (priority) ++priority_waiting_;
  ++waiting_;
  const bool got = cv_.wait(lock, stop, [&] {
    return taken_ < capacity_ && (priority || priority_waiting_ == 0);
  });
  if (priority) --priority_waiting_;
  --waiting_;
  if (got) ++taken_;
  // A priority caller that gave up may have been holding regular ones back.
  if (!got && priority) cv_.notify_all();
  return got;
}

void InDoubtGate::Release() {
  {
    std::lock_guard lock(mu_);
    if (taken_ > 0) --taken_;
  }
  cv_.notify_all();
}

int InDoubtGate::waiting() const {
  std::lock_guard lock(mu_);
  return waiting_;
}

int InDoubtGate::in_doubt() const {
  std::lock_guard lock(mu_);
  return taken_;
}

}  // namespace postline::worker_internal
