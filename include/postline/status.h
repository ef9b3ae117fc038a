// postline/status.h — the status store: where each e-mail is in its life
// (queued → sending → retrying → sent | dead), for `GET /v1/emails/{id}`,
// and the idempotency keys of the HTTP API.
//
// The store implements StatusObserver (postline/producer.h): producers
// report "queued" when they enqueue, the worker reports "sending",
// "retrying", "sent" and "dead" as it settles each message.
//
// Storage: SQLite, tables `email_status` and `idempotency_keys` in the
// state database (<data dir>/state.db, beside the sent log), WAL mode,
// synchronous=NORMAL, busy_timeout 5 s. Every process on one machine that
// shares the data directory (CLI, `postline worker`, `postline serve`,
// `postline api`) sees the same records.
//
// Limits: the file lives on one machine. With QUEUE_PROVIDER=sqs and
// workers on several machines each machine would keep its own, partial
// store; a shared store (e.g. a DynamoDB table or a PostgreSQL database keyed
// by envelope id) is needed then and is not part of this build
// (docs/api.md, "Status store").
//
// Thread-safety: a StatusStore is safe to use from many threads (one SQLite
// connection behind a mutex) and from several processes (SQLite locking).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"
#include "postline/producer.h"

namespace postline {

// One e-mail's state as last reported.
struct EmailStatus {
  std::string id;                       // envelope id
  std::string state;                    // "queued" | "sending" | "retrying" | "sent" | "dead"
  std::string queue;                    // queue it was last seen on
  int attempts = 0;                     // receives so far (ApproximateReceiveCount)
  int reply_code = 0;                   // the last SMTP reply code, 0 when none
  std::string last_error;               // the last transient or permanent failure; "" when none
  std::string reply;                    // the server's reply when sent
  std::string provider_message_id;      // when sent (SMTP queue id or SES MessageId)
  std::vector<std::string> recipients;  // to + cc + bcc addr-specs, when known
  std::string subject;                  // when known
  std::string idempotency_key;          // when the producer gave one
  std::chrono::system_clock::time_point created_at;              // first event (usually "queued")
  std::chrono::system_clock::time_point updated_at;              // latest event
  std::optional<std::chrono::system_clock::time_point> sent_at;  // when state became "sent"
};

// Outcome of ClaimIdempotencyKey.
struct IdempotencyClaim {
  std::string envelope_id;  // the id the key belongs to
  std::string queue;        // queue recorded with the key ("" until known)
  bool existed = false;     // true: the key was claimed before (a replay)
};

class StatusStore : public StatusObserver {
 public:
  ~StatusStore() override = default;

  // StatusObserver: records the event. Rules: the first event creates the
  // record (created_at = now); later events replace state, queue, attempts
  // (never lowered), reply code and provider message id when given; the
  // detail of a "retrying" or "dead" event becomes last_error, of a "sent"
  // event the reply; recipients and subject are taken from event.email when
  // set. "sent" is final: later events other than "sent" do not change the
  // state (a redelivered duplicate is deleted without a send). Failures
  // (busy database, full disk) are logged by the caller-supplied log hook
  // and otherwise ignored: status is advisory and must not stop delivery.
  void OnStatus(const StatusEvent& event) override = 0;

  // The record for `envelope_id`, or std::nullopt when none exists.
  // Errors: kTransient "ServiceUnavailable" when the database is busy beyond
  // its timeout or unreadable.
  virtual Result<std::optional<EmailStatus>> Get(std::string_view envelope_id) = 0;

  // Records in `state` ("dead", …), most recently updated first, at most
  // `limit` (1–1000). Errors: kInvalidInput "invalid_limit"; as Get.
  virtual Result<std::vector<EmailStatus>> List(std::string_view state, int limit) = 0;

  // Claims `key` (1–128 characters) for `envelope_id` if no one has: on
  // success returns {envelope_id, "", false}. If the key was claimed before,
  // returns the earlier claim with existed = true and changes nothing.
  // Atomic across threads and processes. Errors: kInvalidInput
  // "invalid_idempotency_key" (empty or over 128 characters); as Get.
  virtual Result<IdempotencyClaim> ClaimIdempotencyKey(std::string_view key,
                                                       std::string_view envelope_id) = 0;

  // Notes the queue an idempotency claim's e-mail went to (for replays).
  virtual Result<void> SetIdempotencyQueue(std::string_view key, std::string_view queue) = 0;

  // Gives up a claim made by `envelope_id` (when its enqueue failed), so the
  // key may be used again. A key held by another id is left alone.
  virtual Result<void> ReleaseIdempotencyKey(std::string_view key,
                                             std::string_view envelope_id) = 0;

  // Deletes status records and idempotency keys last updated before
  // now − retention; returns how many status records were removed.
  virtual Result<std::int64_t> Prune(std::chrono::seconds retention) = 0;
};

// Called with an error message when OnStatus fails to record; must not throw.
using StatusErrorHook = std::function<void(const StatusEvent&, const Error&)>;

// Opens (creating the file, its parent directory and the tables) the status
// store in the SQLite database at `path` — normally Settings::
// StateDatabasePath(). `on_error` may be empty. Errors: kTransient
// "ServiceUnavailable" naming POSTLINE_DATA_DIR when the file cannot be
// opened or the tables cannot be created.
Result<std::shared_ptr<StatusStore>> OpenStatusStore(const std::string& path,
                                                     std::shared_ptr<Clock> clock = SystemClock(),
                                                     StatusErrorHook on_error = {});

// How long status records are kept by default: 14 days, SQS's longest
// message retention, so no message outlives its record.
inline constexpr std::chrono::seconds kDefaultStatusRetention = std::chrono::hours(24 * 14);

}  // namespace postline
