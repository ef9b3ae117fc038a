// postline/state.h — what postline knows about each e-mail, shared by every
// process of a deployment: the sent log (which envelope ids were delivered),
// each e-mail's status (queued → sending → retrying → sent | dead) and the
// producers' idempotency keys.
//
// One interface, StateStore, with one backend per deployment:
//   sqlite   — <data dir>/state.db (WAL, synchronous=NORMAL, busy_timeout),
//              shared by the processes of one machine (CLI, `postline
//              worker`, `postline serve`, `postline api`) that share the data
//              directory.
//   postgres — a PostgreSQL database (POSTLINE_DATABASE_URL), shared by every
//              process on every machine that names it: tables postline_sent,
//              postline_email_status, postline_idempotency_keys, schema
//              version in postline_schema (numbered migrations at open).
// OpenStateStore picks one: a database URL means postgres, else sqlite.
//
// Whose clock: every timestamp written (sent_at of a SentRecord as given;
// created/updated/sent times of status; the time of an idempotency claim)
// and the "now" of Prune come from the Clock passed at open — on both
// backends, never the database server's clock — so a fake clock moves
// them in tests. Processes on several machines should keep their clocks in
// sync (NTP); a skew of seconds only shifts the order of ListStatus and when
// Prune removes a record. Times are kept in milliseconds.
//
// Who writes what: producers (service/ SendEmail, the dead-letter redrive)
// report "queued" and claim idempotency keys; the delivery settler is the
// only writer of the sent log and of the states after "queued".
//
// Durability of the sent log: a record survives a crash of any process; on
// sqlite a power loss may drop the last records, which can only cause a
// duplicate delivery (the at-least-once contract); on postgres a record is
// durable as the server's synchronous_commit makes it (on by default: WAL
// flushed before the commit returns).
//
// Thread-safety: a StateStore is safe to use from many threads, and from
// several processes that open the same database.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"
#include "postline/events.h"

namespace postline {

// One delivered e-mail, as kept by the sent log.
struct SentRecord {
  std::string envelope_id;
  std::string idempotency_key;
  std::string message_id;           // RFC 5322 Message-ID without angle brackets
  std::string queue;                // the queue it was received from
  std::string transport;            // "smtp" | "file" | "ses"
  std::string provider_message_id;
  std::string reply;                // the server's final reply
  std::vector<std::string> rejected_recipients;  // "addr: 550 reply" for refused RCPTs
  int attempts = 0;
  std::chrono::system_clock::time_point sent_at;
};

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

// How long records are kept (StateStore::Prune).
struct Retention {
  std::chrono::seconds sent_log{std::chrono::hours(24 * 30)};  // POSTLINE_SENT_LOG_RETENTION
  // Status records and idempotency keys: 14 days, SQS's longest message
  // retention, so no message outlives its record.
  std::chrono::seconds status{std::chrono::hours(24 * 14)};
};

struct PruneResult {
  std::int64_t sent_records = 0;     // sent-log records removed
  std::int64_t status_records = 0;   // status records removed (with their keys)
  // True when another process was pruning at the same time, so this call
  // removed nothing and left the work to it (postgres; sqlite waits instead).
  bool skipped = false;
};

// What one settled message adds to the store (StateStore::RecordSettled):
// its sent-log record when it was delivered, and its status event.
struct SettledMessage {
  std::optional<SentRecord> sent;
  std::optional<StatusEvent> status;  // status->email, when set, is not owned
};

// Which store this is and whether it answers (StateStore::Check).
struct StateStoreCheck {
  // "sqlite <path>" or "postgres <host:port/dbname>" (never a password).
  std::string store;
  bool reachable = false;
  std::optional<Error> error;  // why not, when not reachable
};

class StateStore : public StatusObserver {
 public:
  ~StateStore() override = default;

  // --- sent log ---------------------------------------------------------------

  // Records a delivery. Recording the same envelope id twice keeps the first.
  // Errors: kTransient — on sqlite "ServiceUnavailable" when the database is
  // busy or the disk fails; on postgres "database_unavailable" (server
  // unreachable or gone) or "database_busy" (postline/postgres.h).
  virtual Result<void> RecordSent(const SentRecord& record) = 0;

  // The sent-log record for an envelope id, or std::nullopt. Errors: as
  // RecordSent.
  virtual Result<std::optional<SentRecord>> FindSent(std::string_view envelope_id) = 0;

  // Number of sent-log records with sent_at at or after `since`, of `queue`
  // (empty: every queue). Errors: as RecordSent.
  virtual Result<std::int64_t> CountSentSince(std::chrono::system_clock::time_point since,
                                              std::string_view queue = {}) = 0;

  // --- status -------------------------------------------------------------------

  // StatusObserver: records the event. Rules: the first event creates the
  // record (created_at = now); later events replace state, queue, attempts
  // (never lowered), reply code and provider message id when given; the
  // detail of a "retrying" or "dead" event becomes last_error, of a "sent"
  // event the reply; recipients and subject are taken from event.email when
  // set. "sent" is final: later events other than "sent" do not change the
  // state (a redelivered duplicate is deleted without a send). Failures
  // (busy database, full disk) go to the StatusErrorHook given at open and
  // are otherwise ignored: status is advisory and must not stop delivery.
  void OnStatus(const StatusEvent& event) override = 0;

  // The status record for `envelope_id`, or std::nullopt when none exists.
  // Errors: kTransient "ServiceUnavailable" when the database is busy beyond
  // its timeout or unreadable.
  virtual Result<std::optional<EmailStatus>> GetStatus(std::string_view envelope_id) = 0;

  // Records in `state` ("dead", …), most recently updated first, at most
  // `limit` (1–1000). Errors: kInvalidInput "invalid_limit"; as GetStatus.
  virtual Result<std::vector<EmailStatus>> ListStatus(std::string_view state, int limit) = 0;

  // --- idempotency keys -----------------------------------------------------------

  // Claims `key` (1–128 characters) for `envelope_id` if no one has: on
  // success returns {envelope_id, "", false}. If the key was claimed before,
  // returns the earlier claim with existed = true and changes nothing.
  // Atomic across threads and processes. Errors: kInvalidInput
  // "invalid_idempotency_key" (empty or over 128 characters); as GetStatus.
  virtual Result<IdempotencyClaim> ClaimIdempotencyKey(std::string_view key,
                                                       std::string_view envelope_id) = 0;

  // Notes the queue an idempotency claim's e-mail went to (for replays).
  virtual Result<void> SetIdempotencyQueue(std::string_view key, std::string_view queue) = 0;

  // Gives up a claim made by `envelope_id` (when its enqueue failed), so the
  // key may be used again. A key held by another id is left alone.
  virtual Result<void> ReleaseIdempotencyKey(std::string_view key,
                                             std::string_view envelope_id) = 0;

  // --- retention --------------------------------------------------------------------

  // Deletes sent-log records older than now − retention.sent_log, and
  // status records and idempotency keys last updated before now −
  // retention.status. One process prunes at a time: on postgres a call
  // that finds another process pruning (a transaction-level advisory lock)
  // returns at once with skipped = true; on sqlite it waits for the write
  // lock. Errors: as RecordSent.
  virtual Result<PruneResult> Prune(const Retention& retention) = 0;

  // --- batches and health -------------------------------------------------------------

  // Records the sent-log records and status events of `messages`, in order,
  // in ONE transaction — on postgres one round trip — with the rules of
  // RecordSent (the first record of an envelope id wins) and OnStatus
  // ("sent" is final, attempts never lowered, …). A status event with an
  // empty envelope id is skipped. Unlike OnStatus the outcome is returned,
  // not given to the StatusErrorHook: on error nothing of the batch is
  // recorded, so a caller that deletes queue messages only after this
  // succeeds never loses a sent-log record. An empty span does nothing.
  // Errors: as RecordSent.
  virtual Result<void> RecordSettled(std::span<const SettledMessage> messages) = 0;

  // Which store this is and whether it answers now (a read of its schema),
  // for `postline health`. Never fails: an unreachable store is reported in
  // the result. Blocks at most the backend's connect/busy timeout.
  virtual StateStoreCheck Check() = 0;
};

// Called when OnStatus fails to record; must not throw.
using StatusErrorHook = std::function<void(const StatusEvent&, const Error&)>;

// Opens (creating the file, its parent directory and the tables) the SQLite
// state store at `path` — normally Settings::StateDatabasePath(). `on_error`
// may be empty. Errors: kTransient "ServiceUnavailable" naming
// POSTLINE_DATA_DIR when the file cannot be opened or the tables cannot be
// created.
Result<std::shared_ptr<StateStore>> OpenSqliteStateStore(
    const std::string& path, std::shared_ptr<Clock> clock = SystemClock(),
    StatusErrorHook on_error = {});

// Opens the PostgreSQL state store at `database_url` (a libpq URI
// postgres[ql]://… or keyword/value string; sslmode and the rest honoured as
// libpq does): creates a pool of at most `pool_size` connections (1–64),
// connects once and brings the schema to this program's version (numbered
// migrations in one transaction under an advisory lock, so processes that
// start together do not race). `on_error` may be empty.
//
// Each call takes a pooled connection for its statements; a connection the
// server dropped (restart, failover, pg_terminate_backend) is replaced, and
// a call that found its idle connection dropped runs once more on a new one.
// Text PostgreSQL cannot hold (NUL bytes, ill-formed UTF-8 — e.g. in an SMTP
// server's reply) is stored with U+FFFD in their place.
//
// Errors: "invalid_database_url" (kInvalidInput); "database_unavailable"
// (kTransient) naming host:port/dbname — never the password — when the
// server cannot be reached or refuses the login; "schema_too_new"
// (kPermanent, "schema version N of state in … is newer than this
// program's M; upgrade postline"); the rest of postline/postgres.h's map.
// Later calls return the same codes ("database_unavailable", "database_busy"
// for a deadlock or a pool with no free connection within 10 s).
Result<std::shared_ptr<StateStore>> OpenPostgresStateStore(
    const std::string& database_url, std::shared_ptr<Clock> clock = SystemClock(),
    StatusErrorHook on_error = {}, int pool_size = 8);

// What OpenStateStore needs to pick and open a backend.
struct StateStoreOptions {
  std::string database_url;  // POSTLINE_DATABASE_URL: set → postgres
  std::string sqlite_path;   // else this file (Settings::StateDatabasePath())
  std::shared_ptr<Clock> clock = SystemClock();
  StatusErrorHook on_error;  // may be empty
  int pool_size = 8;         // postgres: connections per process, 1–64
};

// OpenPostgresStateStore when `database_url` is set, else
// OpenSqliteStateStore on `sqlite_path`. Errors: theirs.
Result<std::shared_ptr<StateStore>> OpenStateStore(const StateStoreOptions& options);

}  // namespace postline
