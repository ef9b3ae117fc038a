// The state store on PostgreSQL (POSTLINE_DATABASE_URL): the sent log
// (postline_sent), e-mail status (postline_email_status) and idempotency
// keys (postline_idempotency_keys), shared by every process that names the
// database. Timestamps are timestamptz written from the injected Clock's
// milliseconds (never the server's now()).
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "postline/postgres.h"
#include "postline/state.h"
#include "state/state_internal.h"

namespace postline {
namespace {

using pg::Connection;
using pg::Params;
using pg::Rows;
using std::chrono::milliseconds;
using std::chrono::system_clock;
namespace si = state_internal;

// SQL with two shorthands expanded: TS($n) is the timestamptz of the
// milliseconds in parameter n (exact integer arithmetic), MS(col) the
// milliseconds of a timestamptz column.
std::string Sql(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text.substr(i).starts_with("TS(")) {
      const std::size_t close = text.find(')', i);
      out += fmt::format("('epoch'::timestamptz + {}::bigint * interval '1 millisecond')",
                         text.substr(i + 3, close - i - 3));
      i = close + 1;
    } else if (text.substr(i).starts_with("MS(")) {
      const std::size_t close = text.find(')', i);
      out +=
          fmt::format("(extract(epoch from {}) * 1000)::bigint", text.substr(i + 3, close - i - 3));
      i = close + 1;
    } else {
      out += text[i++];
    }
  }
  return out;
}

// Version 1: the tables of the sqlite backend, with timestamptz times and
// jsonb lists.
constexpr pg::Migration kMigrations[] = {
    {1,
     "CREATE TABLE postline_sent ("
     "  envelope_id text PRIMARY KEY,"
     "  idempotency_key text NOT NULL DEFAULT '',"
     "  message_id text NOT NULL DEFAULT '',"
     "  queue text NOT NULL DEFAULT '',"
     "  transport text NOT NULL DEFAULT '',"
     "  provider_message_id text NOT NULL DEFAULT '',"
     "  reply text NOT NULL DEFAULT '',"
     "  rejected_recipients jsonb NOT NULL DEFAULT '[]',"
     "  attempts integer NOT NULL DEFAULT 0,"
     "  sent_at timestamptz NOT NULL);"
     "CREATE INDEX postline_sent_by_time ON postline_sent (sent_at);"
     "CREATE INDEX postline_sent_by_queue ON postline_sent (queue, sent_at);"
     "CREATE INDEX postline_sent_by_key ON postline_sent (idempotency_key) "
     "  WHERE idempotency_key <> '';"
     "CREATE TABLE postline_email_status ("
     "  envelope_id text PRIMARY KEY,"
     "  state text NOT NULL CHECK (state IN ('queued', 'sending', 'retrying', 'sent', 'dead')),"
     "  queue text NOT NULL DEFAULT '',"
     "  attempts integer NOT NULL DEFAULT 0,"
     "  reply_code integer NOT NULL DEFAULT 0,"
     "  last_error text NOT NULL DEFAULT '',"
     "  reply text NOT NULL DEFAULT '',"
     "  provider_message_id text NOT NULL DEFAULT '',"
     "  recipients jsonb NOT NULL DEFAULT '[]',"
     "  subject text NOT NULL DEFAULT '',"
     "  idempotency_key text NOT NULL DEFAULT '',"
     "  created_at timestamptz NOT NULL,"
     "  updated_at timestamptz NOT NULL,"
     "  sent_at timestamptz);"
     "CREATE INDEX postline_email_status_by_state ON postline_email_status (state, updated_at);"
     "CREATE INDEX postline_email_status_by_time ON postline_email_status (updated_at);"
     "CREATE TABLE postline_idempotency_keys ("
     "  key text PRIMARY KEY,"
     "  envelope_id text NOT NULL,"
     "  queue text NOT NULL DEFAULT '',"
     "  created_at timestamptz NOT NULL);"
     "CREATE INDEX postline_idempotency_keys_by_time ON postline_idempotency_keys (created_at);"},
};

const std::string kInsertSent =
    Sql("INSERT INTO postline_sent (envelope_id, idempotency_key, message_id, queue, transport, "
        "provider_message_id, reply, rejected_recipients, attempts, sent_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::integer, TS($10)) "
        "ON CONFLICT (envelope_id) DO NOTHING");

const std::string kFindSent =
    Sql("SELECT envelope_id, idempotency_key, message_id, queue, transport, provider_message_id, "
        "reply, rejected_recipients::text, attempts, MS(sent_at) FROM postline_sent "
        "WHERE envelope_id = $1");

const std::string kCountSent = Sql("SELECT count(*) FROM postline_sent WHERE sent_at >= TS($1)");
const std::string kCountSentOfQueue =
    Sql("SELECT count(*) FROM postline_sent WHERE sent_at >= TS($1) AND queue = $2");

// The rules of StateStore::OnStatus, as the sqlite backend's upsert.
const std::string kUpsertStatus =
    Sql("INSERT INTO postline_email_status AS s (envelope_id, state, queue, attempts, reply_code, "
        "last_error, reply, provider_message_id, recipients, subject, idempotency_key, created_at, "
        "updated_at, sent_at) "
        "VALUES ($1, $2::text, $3, $4::integer, $5::integer, $6, $7, $8, $9::jsonb, $10, $11, "
        "TS($12), TS($12), CASE WHEN $2::text = 'sent' THEN TS($12) END) "
        "ON CONFLICT (envelope_id) DO UPDATE SET "
        "state = CASE WHEN s.state = 'sent' THEN 'sent' ELSE excluded.state END, "
        "queue = CASE WHEN s.state = 'sent' OR excluded.queue = '' THEN s.queue "
        "  ELSE excluded.queue END, "
        "attempts = greatest(s.attempts, excluded.attempts), "
        "reply_code = CASE WHEN excluded.reply_code <> 0 THEN excluded.reply_code "
        "  ELSE s.reply_code END, "
        "last_error = CASE WHEN excluded.last_error <> '' THEN excluded.last_error "
        "  ELSE s.last_error END, "
        "reply = CASE WHEN excluded.reply <> '' THEN excluded.reply ELSE s.reply END, "
        "provider_message_id = CASE WHEN excluded.provider_message_id <> '' "
        "  THEN excluded.provider_message_id ELSE s.provider_message_id END, "
        "recipients = CASE WHEN $13::boolean THEN excluded.recipients ELSE s.recipients END, "
        "subject = CASE WHEN $13::boolean THEN excluded.subject ELSE s.subject END, "
        "idempotency_key = CASE WHEN excluded.idempotency_key <> '' "
        "  THEN excluded.idempotency_key ELSE s.idempotency_key END, "
        "updated_at = excluded.updated_at, "
        "sent_at = coalesce(s.sent_at, excluded.sent_at)");

const std::string kStatusColumns =
    Sql("SELECT envelope_id, state, queue, attempts, reply_code, last_error, reply, "
        "provider_message_id, recipients::text, subject, idempotency_key, MS(created_at), "
        "MS(updated_at), MS(sent_at) FROM postline_email_status ");
const std::string kGetStatus = kStatusColumns + "WHERE envelope_id = $1";
const std::string kListStatus =
    kStatusColumns + "WHERE state = $1 ORDER BY updated_at DESC LIMIT $2::integer";

// Inserts the claim or, when the key is taken, returns the earlier one — in
// one statement. Under READ COMMITTED a claim committed by another process
// after this statement's snapshot makes the insert do nothing while the
// select cannot see it yet; the statement then returns no row and is run
// again.
const std::string kClaim =
    Sql("WITH ins AS (INSERT INTO postline_idempotency_keys (key, envelope_id, queue, created_at) "
        "  VALUES ($1, $2, '', TS($3)) ON CONFLICT (key) DO NOTHING RETURNING envelope_id, queue) "
        "SELECT envelope_id, queue, false FROM ins "
        "UNION ALL "
        "SELECT envelope_id, queue, true FROM postline_idempotency_keys "
        "  WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM ins)");

system_clock::time_point FromMillis(std::int64_t ms) {
  return system_clock::time_point(milliseconds(ms));
}

EmailStatus ReadStatus(const Rows& rows, int r) {
  EmailStatus s;
  s.id = rows.Text(r, 0);
  s.state = rows.Text(r, 1);
  s.queue = rows.Text(r, 2);
  s.attempts = static_cast<int>(rows.Int(r, 3));
  s.reply_code = static_cast<int>(rows.Int(r, 4));
  s.last_error = rows.Text(r, 5);
  s.reply = rows.Text(r, 6);
  s.provider_message_id = rows.Text(r, 7);
  s.recipients = si::StringsFromJson(rows.Text(r, 8));
  s.subject = rows.Text(r, 9);
  s.idempotency_key = rows.Text(r, 10);
  s.created_at = FromMillis(rows.Int(r, 11));
  s.updated_at = FromMillis(rows.Int(r, 12));
  if (!rows.IsNull(r, 13)) s.sent_at = FromMillis(rows.Int(r, 13));
  return s;
}

class PostgresStateStore final : public StateStore {
 public:
  PostgresStateStore(std::shared_ptr<pg::ConnectionPool> pool, std::shared_ptr<Clock> clock,
                     StatusErrorHook on_error)
      : pool_(std::move(pool)), clock_(std::move(clock)), on_error_(std::move(on_error)) {}

  Result<void> RecordSent(const SentRecord& r) override {
    return pool_->Run<void>([&](Connection& c) -> Result<void> {
      auto done = c.Exec(kInsertSent, SentParams(r), "record sent");
      if (!done) return std::unexpected(done.error());
      return {};
    });
  }

  Result<std::optional<SentRecord>> FindSent(std::string_view envelope_id) override {
    return pool_->Run<std::optional<SentRecord>>(
        [&](Connection& c) -> Result<std::optional<SentRecord>> {
          auto rows = c.Exec(kFindSent, Params().Utf8(envelope_id), "find sent");
          if (!rows) return std::unexpected(rows.error());
          if (rows->empty()) return std::nullopt;
          SentRecord r;
          r.envelope_id = rows->Text(0, 0);
          r.idempotency_key = rows->Text(0, 1);
          r.message_id = rows->Text(0, 2);
          r.queue = rows->Text(0, 3);
          r.transport = rows->Text(0, 4);
          r.provider_message_id = rows->Text(0, 5);
          r.reply = rows->Text(0, 6);
          r.rejected_recipients = si::StringsFromJson(rows->Text(0, 7));
          r.attempts = static_cast<int>(rows->Int(0, 8));
          r.sent_at = FromMillis(rows->Int(0, 9));
          return r;
        });
  }

  Result<std::int64_t> CountSentSince(system_clock::time_point since,
                                      std::string_view queue) override {
    return pool_->Run<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
      auto rows = queue.empty()
                      ? c.Exec(kCountSent, Params().Int(ToUnixMillis(since)), "count sent")
                      : c.Exec(kCountSentOfQueue, Params().Int(ToUnixMillis(since)).Utf8(queue),
                               "count sent");
      if (!rows) return std::unexpected(rows.error());
      return rows->Int(0, 0);
    });
  }

  void OnStatus(const StatusEvent& event) override {
    if (event.envelope_id.empty()) return;
    auto recorded = pool_->Run<void>([&](Connection& c) -> Result<void> {
      auto done = c.Exec(kUpsertStatus, StatusParams(event), "record status");
      if (!done) return std::unexpected(done.error());
      return {};
    });
    if (!recorded) si::ReportStatusError(on_error_, event, recorded.error());
  }

  Result<std::optional<EmailStatus>> GetStatus(std::string_view envelope_id) override {
    return pool_->Run<std::optional<EmailStatus>>(
        [&](Connection& c) -> Result<std::optional<EmailStatus>> {
          auto rows = c.Exec(kGetStatus, Params().Utf8(envelope_id), "get status");
          if (!rows) return std::unexpected(rows.error());
          if (rows->empty()) return std::nullopt;
          return ReadStatus(*rows, 0);
        });
  }

  Result<std::vector<EmailStatus>> ListStatus(std::string_view state, int limit) override {
    if (auto bad = si::CheckListLimit(limit)) return std::unexpected(*bad);
    return pool_->Run<std::vector<EmailStatus>>(
        [&](Connection& c) -> Result<std::vector<EmailStatus>> {
          auto rows = c.Exec(kListStatus, Params().Utf8(state).Int(limit), "list status");
          if (!rows) return std::unexpected(rows.error());
          std::vector<EmailStatus> out;
          out.reserve(static_cast<std::size_t>(rows->size()));
          for (int r = 0; r < rows->size(); ++r) out.push_back(ReadStatus(*rows, r));
          return out;
        });
  }

  Result<IdempotencyClaim> ClaimIdempotencyKey(std::string_view key,
                                               std::string_view envelope_id) override {
    if (auto bad = si::CheckIdempotencyKey(key)) return std::unexpected(*bad);
    const std::string id = pg::ToStorableText(envelope_id);
    const std::int64_t now = ToUnixMillis(clock_->Now());
    bool repeated = false;
    return pool_->Run<IdempotencyClaim>([&](Connection& c) -> Result<IdempotencyClaim> {
      // Run repeats this when the connection was lost; if the first try's
      // insert had committed, the key now holds our own id: still our claim.
      const bool retry = std::exchange(repeated, true);
      for (int attempt = 0; attempt < 10; ++attempt) {
        auto rows = c.Exec(kClaim, Params().Utf8(key).Text(id).Int(now), "claim idempotency key");
        if (!rows) return std::unexpected(rows.error());
        if (rows->empty()) continue;  // claimed after our snapshot: look again
        IdempotencyClaim claim{rows->Text(0, 0), rows->Text(0, 1), rows->Bool(0, 2)};
        if (retry && claim.existed && claim.envelope_id == id && claim.queue.empty()) {
          claim.existed = false;
        }
        return claim;
      }
      return MakeError(ErrorKind::kTransient, "database_busy",
                       fmt::format("claim idempotency key on PostgreSQL database {}: the key "
                                   "kept changing hands; try again",
                                   c.database()));
    });
  }

  Result<void> SetIdempotencyQueue(std::string_view key, std::string_view queue) override {
    return pool_->Run<void>([&](Connection& c) -> Result<void> {
      auto done = c.Exec("UPDATE postline_idempotency_keys SET queue = $1 WHERE key = $2",
                         Params().Utf8(queue).Utf8(key), "set idempotency queue");
      if (!done) return std::unexpected(done.error());
      return {};
    });
  }

  Result<void> ReleaseIdempotencyKey(std::string_view key, std::string_view envelope_id) override {
    return pool_->Run<void>([&](Connection& c) -> Result<void> {
      auto done =
          c.Exec("DELETE FROM postline_idempotency_keys WHERE key = $1 AND envelope_id = $2",
                 Params().Utf8(key).Utf8(envelope_id), "release idempotency key");
      if (!done) return std::unexpected(done.error());
      return {};
    });
  }

  Result<PruneResult> Prune(const Retention& retention) override {
    const std::int64_t sent_cutoff = ToUnixMillis(clock_->Now() - retention.sent_log);
    const std::int64_t status_cutoff = ToUnixMillis(clock_->Now() - retention.status);
    return pool_->Run<PruneResult>([&](Connection& c) -> Result<PruneResult> {
      auto tx = pg::Transaction::Begin(c);
      if (!tx) return std::unexpected(tx.error());
      // One pruner at a time across processes: the others skip this round.
      auto locked = c.Exec("SELECT pg_try_advisory_xact_lock($1::bigint)",
                           Params().Int(pg::AdvisoryLockKey("postline.state.prune")), "prune");
      if (!locked) return std::unexpected(locked.error());
      PruneResult out;
      if (!locked->Bool(0, 0)) {
        out.skipped = true;
        return out;  // the transaction rolls back, releasing nothing it did not take
      }
      static const std::string kPruneSent = Sql("DELETE FROM postline_sent WHERE sent_at < TS($1)");
      static const std::string kPruneStatus =
          Sql("DELETE FROM postline_email_status WHERE updated_at < TS($1)");
      static const std::string kPruneKeys =
          Sql("DELETE FROM postline_idempotency_keys WHERE created_at < TS($1)");
      auto sent = c.Exec(kPruneSent, Params().Int(sent_cutoff), "sent-log prune");
      if (!sent) return std::unexpected(sent.error());
      auto status = c.Exec(kPruneStatus, Params().Int(status_cutoff), "status prune");
      if (!status) return std::unexpected(status.error());
      auto keys = c.Exec(kPruneKeys, Params().Int(status_cutoff), "key prune");
      if (!keys) return std::unexpected(keys.error());
      if (auto committed = tx->Commit(); !committed) return std::unexpected(committed.error());
      out.sent_records = sent->affected();
      out.status_records = status->affected();
      return out;
    });
  }

  Result<void> RecordSettled(std::span<const SettledMessage> messages) override {
    std::vector<pg::Statement> batch;
    batch.reserve(messages.size() * 2);
    for (const auto& m : messages) {
      if (m.sent) batch.push_back({kInsertSent, SentParams(*m.sent)});
      if (m.status && !m.status->envelope_id.empty()) {
        batch.push_back({kUpsertStatus, StatusParams(*m.status)});
      }
    }
    if (batch.empty()) return {};
    return pool_->Run<void>([&](Connection& c) -> Result<void> {
      auto done = c.ExecBatch(batch, "record settled messages");
      if (!done) return std::unexpected(done.error());
      return {};
    });
  }

  StateStoreCheck Check() override {
    StateStoreCheck out;
    out.store = "postgres " + pool_->database();
    auto version = pool_->Run<std::int64_t>([](Connection& c) -> Result<std::int64_t> {
      auto rows = c.Exec("SELECT version FROM postline_schema WHERE component = 'state'", {},
                         "health check");
      if (!rows) return std::unexpected(rows.error());
      return rows->empty() ? 0 : rows->Int(0, 0);
    });
    out.reachable = version.has_value();
    if (!version) out.error = version.error();
    return out;
  }

 private:
  static Params SentParams(const SentRecord& r) {
    Params p;
    p.Utf8(r.envelope_id)
        .Utf8(r.idempotency_key)
        .Utf8(r.message_id)
        .Utf8(r.queue)
        .Utf8(r.transport)
        .Utf8(r.provider_message_id)
        .Utf8(r.reply)
        .Text(nlohmann::json(r.rejected_recipients)
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        .Int(r.attempts)
        .Int(ToUnixMillis(r.sent_at));
    return p;
  }

  Params StatusParams(const StatusEvent& ev) const {
    const si::StatusColumns cols = si::ColumnsOf(ev);
    Params p;
    p.Utf8(ev.envelope_id)
        .Text(StatusStateName(ev.state))
        .Utf8(ev.queue)
        .Int(ev.attempts)
        .Int(ev.reply_code)
        .Utf8(cols.last_error)
        .Utf8(cols.reply)
        .Utf8(ev.provider_message_id)
        .Text(cols.recipients_json)
        .Utf8(cols.subject)
        .Utf8(cols.idempotency_key)
        .Int(ToUnixMillis(clock_->Now()))
        .Bool(cols.has_email);
    return p;
  }

  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<Clock> clock_;
  StatusErrorHook on_error_;
};

}  // namespace

Result<std::shared_ptr<StateStore>> OpenPostgresStateStore(const std::string& database_url,
                                                           std::shared_ptr<Clock> clock,
                                                           StatusErrorHook on_error,
                                                           int pool_size) {
  pg::PoolOptions options;
  options.conninfo = database_url;
  options.size = pool_size;
  auto pool = pg::ConnectionPool::Create(std::move(options));
  if (!pool) return std::unexpected(pool.error());
  {
    auto lease = (*pool)->Acquire();
    if (!lease) return std::unexpected(lease.error());
    auto migrated = pg::Migrate(**lease, "state", kMigrations);
    if (!migrated) return std::unexpected(migrated.error());
  }
  return std::shared_ptr<StateStore>(std::make_shared<PostgresStateStore>(
      std::move(*pool), std::move(clock), std::move(on_error)));
}

}  // namespace postline
