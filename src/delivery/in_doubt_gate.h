// Bounds how many sends may be "in doubt" at once: past their transport's
// point of no return (OutgoingMessage::before_commit) but not yet recorded
// in the sent log. A crash of the worker (kill -9, power loss) can send again
// only the e-mails in doubt at that moment, each with the same Message-ID, so
// this bound is the most duplicates one crash can cause.
// docs/delivery.md, "Idempotency and the duplicate window".
//
// Thread-safety: every member function may be called from any thread.
#pragma once

#include <condition_variable>
#include <mutex>
#include <stop_token>

#include "rate_limiter.h"  // Lane

namespace postline::worker_internal {

class InDoubtGate {
 public:
  // `capacity`: sends in doubt at once, ≥ 1.
  explicit InDoubtGate(int capacity);

  // Blocks until a place is free, then takes it. Priority-lane callers go
  // before waiting regular ones. Returns false, without taking a place, when
  // `stop` is requested while waiting (the caller must then not commit).
  bool Acquire(Lane lane, std::stop_token stop = {});
  // Gives back a place taken by Acquire.
  void Release();

  int capacity() const { return capacity_; }
  int in_doubt() const;
  int waiting() const;  // callers blocked in Acquire

 private:
  const int capacity_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  int taken_ = 0;
  int priority_waiting_ = 0;
  int waiting_ = 0;
};

// Holds a place in an InDoubtGate from the transport's before_commit until
// the outcome is recorded (or the send failed): released on destruction.
// Used by one send on one thread.
class InDoubtPlace {
 public:
  InDoubtPlace(InDoubtGate* gate, Lane lane) : gate_(gate), lane_(lane) {}
  ~InDoubtPlace() { Release(); }
  InDoubtPlace(const InDoubtPlace&) = delete;
  InDoubtPlace& operator=(const InDoubtPlace&) = delete;

  // The before_commit hook: takes a place once (later calls do nothing).
  void Take() {
    if (gate_ != nullptr && !held_) held_ = gate_->Acquire(lane_);
  }
  void Release() {
    if (held_) gate_->Release();
    held_ = false;
  }

 private:
  InDoubtGate* gate_;
  Lane lane_;
  bool held_ = false;
};

}  // namespace postline::worker_internal
