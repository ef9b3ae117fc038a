// postline/delivery.h — the scheduler service (the worker): receives from both lanes,
// delivers through a Transport, and settles each message with the queue.
//
// Delivery is at-least-once with duplicate suppression:
//   sent       → recorded in the sent log, then DeleteMessage
//   transient  → ChangeMessageVisibility(backoff); the queue redelivers later
//   permanent  → SendMessage to the lane's DLQ with the reason as message
//                attributes, then DeleteMessage
//   unparseable body → DLQ with reason "unparseable": any body that
//                ParseEmailJson refuses, whatever is inside it (not JSON,
//                nesting past kMaxJsonDepth, a number beyond double range;
//                postline/json.h); the rest of the batch goes on
//   already in the sent log → DeleteMessage without sending (a redelivered
//                duplicate)
// After maxReceiveCount receives the queue's RedrivePolicy moves a message to
// the DLQ by itself.
//
// Lanes: each queue is received by its own long-poll loop into its own
// buffer, and a sender that becomes free always takes the oldest priority
// message (priority 1–3) before any regular one, so a regular backlog never
// delays a priority e-mail by more than the sends already in progress.
//
// Receiving ahead (docs/delivery.md "Receiving"): a lane's loop asks for
// kMaxBatchEntries (10) messages per ReceiveMessage whenever its buffer holds
// at most `concurrency` messages, so a buffer never holds more than
// 10 + concurrency received-but-unstarted messages per lane. The regular lane
// also waits while more than `concurrency` priority messages are buffered.
// Buffered messages are covered by the visibility heartbeat from the moment
// of the receive; heartbeat extensions due together, and the releases at
// shutdown, go out as ChangeMessageVisibilityBatch requests (≤ 10 entries).
// Senders that stop taking messages (a hung send or log) do not keep the
// buffered ones hidden: see `stall_release_seconds`.
// While Run is active, deletes are collected per queue for at most
// `delete_batch_window_ms` (and a tenth of the visibility timeout), or until
// 10 are waiting, and sent as one DeleteMessageBatch; the sender does not
// wait for them. An idle worker makes
// one long poll per queue per `wait_time_seconds`.
//
// Thread-safety: a Worker is driven by one Run call; its internals use
// `concurrency` sender threads, one receiver thread per lane, a visibility
// heartbeat thread and a delete-batching thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "postline/clock.h"
#include "postline/envelope.h"
#include "postline/error.h"
#include "postline/log.h"
#include "postline/events.h"
#include "postline/state.h"
#include "postline/queue.h"
#include "postline/transport.h"

namespace postline {

struct WorkerSettings {
  int concurrency = 4;                  // sender threads, 1–256
  int visibility_timeout_seconds = 30;  // per receive; extended by the heartbeat while sending
  int wait_time_seconds = 20;           // long poll, 1–20
  int retry_min_seconds = 15;           // backoff floor
  int retry_max_seconds = 3600;         // backoff ceiling
  int max_age_seconds = 345600;         // older failing mail goes to the DLQ as "expired"
  EnvelopeLimits limits;
  // Token bucket per transport, messages per second; 0 = unlimited. The rate
  // drops multiplicatively on throttling replies (454, 4.7.x) and recovers
  // additively (AIMD); docs/delivery.md "Rate limiting".
  double rate_limit_per_second = 0;
  // Percent of the rate the regular lane may not use (0–90).
  int priority_reserve_percent = 20;
  // Sent-log records older than this are pruned (at start, then hourly).
  int sent_log_retention_seconds = 2592000;  // 30 days
  // While Run is active: how long, in milliseconds, a settled message's
  // delete may wait for others of the same queue to share one
  // DeleteMessageBatch (sent at once when 10 are waiting). The window used
  // is min(delete_batch_window_ms, visibility_timeout_seconds × 100 ms): a
  // tenth of the visibility timeout at most, so the message is still hidden
  // when its delete goes out. The sent log has recorded a sent e-mail before
  // its delete is queued, so a redelivery meanwhile is recognised as a
  // duplicate. 0: each delete is sent by the sender itself, synchronously
  // (as Handle does outside Run).
  int delete_batch_window_ms = 1000;
  // Received messages wait in the worker's buffers only while its senders
  // make progress: once the oldest buffered message has waited
  // max(visibility_timeout_seconds, stall_release_seconds) seconds and no
  // sender has taken a message for as long, every buffered message is
  // released (visibility 0) for other workers, and the worker receives again
  // only when one of its senders comes back for work.
  int stall_release_seconds = 30;
  // Sends that may be past their transport's point of no return
  // (OutgoingMessage::before_commit) and not yet in the sent log, at once, in
  // this worker: the most e-mails one crash can send twice. Others wait at
  // that point, priority mail first. ≥ 1 (POSTLINE_MAX_IN_DOUBT).
  int max_in_doubt = 1;
};

// Exponential backoff with full jitter, clamped: a uniformly random number of
// seconds in [min, min(max, min · 2^(attempt−1))]. attempt ≥ 1.
int BackoffSeconds(int attempt, int min_seconds, int max_seconds, std::mt19937_64& rng);

// The visibility heartbeat's decision for one message being worked on: the
// new visibility timeout (seconds from `now`) to set, or 0 when no extension
// is due. Due when less than half of `visibility_timeout_seconds` (at least
// 1 s) is left before `visible_again`; the extension is
// visibility_timeout_seconds, shortened so that the message never stays
// hidden beyond SQS's ceiling of 12 hours after `received`; −1 when that
// ceiling is reached (nothing can be extended any more). Pure.
int VisibilityExtensionSeconds(std::chrono::steady_clock::time_point now,
                               std::chrono::steady_clock::time_point received,
                               std::chrono::steady_clock::time_point visible_again,
                               int visibility_timeout_seconds);

struct WorkerStats {
  std::atomic<std::int64_t> sent{0};
  std::atomic<std::int64_t> retried{0};
  std::atomic<std::int64_t> dead{0};
  std::atomic<std::int64_t> duplicates{0};
};

namespace worker_internal {
class RateLimiter;
class DeleteBatcher;
class InDoubtGate;
}  // namespace worker_internal

class Worker {
 public:
  // REQUIRES: queues has all four queues; transport_factory returns a new
  // Transport per call; state and clock non-null.
  Worker(WorkerSettings settings, QueuePair queues, TransportFactory transport_factory,
         std::shared_ptr<StateStore> state, std::shared_ptr<Clock> clock, Log log);
  ~Worker();

  // Runs until `stop` is requested, then stops receiving, lets in-progress
  // sends finish, sends the deletes still being collected, releases
  // received-but-unstarted messages (visibility 0, in
  // ChangeMessageVisibilityBatch requests of ≤ 10 per queue) and returns; a
  // message received after the stop is released the same way. Returns an
  // error only when the worker could not start (kInternal
  // "worker_misconfigured" when a queue is missing). Queue failures while
  // running are logged and retried, never returned.
  Result<void> Run(std::stop_token stop);

  // Handles one received message completely (decode, dedupe, send, settle).
  // `queue` is the queue it came from, `dlq` that queue's DLQ. Used by Run's
  // senders; public so tests can drive a single message. The message is
  // covered by the visibility heartbeat (when Run is active) until settled.
  // Before sending it waits for the rate limiter; when Run is stopped
  // meanwhile, the message is released (visibility 0) unsent. Outside Run
  // (and with delete_batch_window_ms 0) the delete is done before this
  // returns; inside Run it is handed to the delete batcher.
  void Handle(Transport& transport, Queue& queue, Queue& dlq, const ReceivedMessage& message);

  // Current send rate limit in messages per second (0: unlimited).
  double current_rate() const;

  const WorkerStats& stats() const { return stats_; }

  // Receives every state change (sending, retrying, sent, dead). Set before
  // Run; may be null (the default).
  void SetStatusObserver(std::shared_ptr<StatusObserver> observer) {
    observer_ = std::move(observer);
  }

 private:
  void HandleTracked(Transport& transport, Queue& queue, Queue& dlq,
                     const ReceivedMessage& message, std::uint64_t token);
  std::uint64_t Track(Queue& queue, const ReceivedMessage& message,
                      std::chrono::steady_clock::time_point received);
  void Untrack(std::uint64_t token);
  // Extends the message's visibility now when less than half of it is left;
  // false when the queue says the message is no longer ours.
  bool EnsureVisibility(std::uint64_t token);
  // One heartbeat tick: extends every tracked message that is due, per queue
  // in ChangeMessageVisibilityBatch requests of ≤ 10 entries (a single due
  // message: ChangeMessageVisibility).
  void Heartbeat();
  void Settle(Queue& queue, const ReceivedMessage& message, std::string_view envelope_id);
  void DeadLetter(Queue& queue, Queue& dlq, const ReceivedMessage& message,
                  std::string_view envelope_id, std::string_view reason, int reply_code,
                  std::string_view reply);

  WorkerSettings settings_;
  QueuePair queues_;
  TransportFactory transport_factory_;
  std::shared_ptr<StateStore> state_;
  std::shared_ptr<Clock> clock_;
  Log log_;
  WorkerStats stats_;
  std::shared_ptr<StatusObserver> observer_;
  void Notify(StatusEvent::State state, std::string_view envelope_id, const Queue& queue,
              int attempts, int reply_code, std::string_view detail,
              std::string_view provider_message_id = {}, const Email* email = nullptr);
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  std::unique_ptr<worker_internal::RateLimiter> limiter_;
  std::unique_ptr<worker_internal::InDoubtGate> in_doubt_;  // settings_.max_in_doubt places
  // Set by Run before its threads start and reset after they are joined;
  // null outside Run (Settle deletes synchronously then).
  std::unique_ptr<worker_internal::DeleteBatcher> deleter_;
  // Envelope ids sent while the sent log could not be written (disk full).
  std::mutex unrecorded_mu_;
  std::set<std::string> unrecorded_;
  std::stop_token run_stop_;
  // Messages being sent now, for the visibility heartbeat.
  std::mutex inflight_mu_;
  struct InFlight {
    Queue* queue;
    std::string receipt_handle;
    std::string envelope_id;
    std::chrono::steady_clock::time_point visible_again;
    std::chrono::steady_clock::time_point received;
    bool lost = false;        // the queue refused an extension: another receiver has it
    bool cap_logged = false;  // the 12-hour ceiling was reached and logged
  };
  // Records the result of one extension of `f` to `extend` seconds from
  // `now`; false when the message is no longer ours (stale handle) or its
  // visibility has lapsed. REQUIRES: inflight_mu_ held.
  bool ApplyExtension(InFlight& f, const Result<void>& result,
                      std::chrono::steady_clock::time_point now, int extend);
  // The extension due for `f` at `now` (VisibilityExtensionSeconds); logs
  // the 12-hour ceiling once per message when it is reached.
  // REQUIRES: inflight_mu_ held.
  int DueExtension(InFlight& f, std::chrono::steady_clock::time_point now);
  std::map<std::uint64_t, InFlight> inflight_;
  std::uint64_t next_inflight_id_ = 0;
};

}  // namespace postline
